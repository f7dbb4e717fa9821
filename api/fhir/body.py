"""Reading FHIR JSON request bodies: media type and syntax checked before any handler runs."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from api.errors import HttpProblem
from store.errors import InvalidRequest

ACCEPTED_MEDIA_TYPES = ("application/fhir+json", "application/json")


async def fhir_json_body(request: Request) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise HttpProblem(
            415,
            f"Content-Type {media_type or '(none)'} is not supported: "
            "send application/fhir+json (XML is not offered)",
            "not-supported",
        )
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        # Position only: the text around it could be patient data.
        raise InvalidRequest(
            f"the body is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from None
