"""FHIR JSON responses (application/fhir+json, serialised with orjson)."""

from __future__ import annotations

import contextvars
from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"

# Set per request by content negotiation (`_pretty=true`).
pretty_output: contextvars.ContextVar[bool] = contextvars.ContextVar("pretty", default=False)


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        option = orjson.OPT_INDENT_2 if pretty_output.get() else 0
        return orjson.dumps(content, option=option)
