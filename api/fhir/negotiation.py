"""Content negotiation for every /fhir route: JSON only (FHIR JSON, plain JSON, NDJSON for bulk
downloads), `_format` and `_pretty`, and the `Prefer: return=` choice for writes."""

from __future__ import annotations

from enum import StrEnum

from fastapi import Request

from api.errors import HttpProblem
from api.fhir_response import pretty_output

JSON_TYPES = frozenset(
    {
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "application/fhir+ndjson",
        "application/ndjson",
        "json",
        "ndjson",
        "*/*",
        "application/*",
    }
)
# Parameters about the response's form, never search criteria.
FORMAT_PARAMETERS = frozenset({"_format", "_pretty"})
# _format shorthands FHIR defines for JSON.
_FORMAT_ALIASES = {"json": "application/fhir+json", "ndjson": "application/fhir+ndjson"}


def _media_types(header: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]


async def negotiate(request: Request) -> None:
    """Refuse (406) what we cannot produce: XML and anything else that is not JSON.

    Async on purpose: FastAPI runs sync dependencies in a worker thread, where the
    `_pretty` context variable would be set in a context the handler never sees."""
    requested = request.query_params.get("_format")
    if requested is not None:
        wanted = [_FORMAT_ALIASES.get(requested.lower(), requested.lower())]
    else:
        wanted = _media_types(request.headers.get("accept", ""))
    if wanted and not any(w in JSON_TYPES or w.endswith("/*") for w in wanted):
        raise HttpProblem(
            406,
            f"cannot produce {', '.join(wanted)}: this server speaks FHIR JSON only "
            "(application/fhir+json); XML is not offered",
            "not-supported",
        )
    pretty_output.set(request.query_params.get("_pretty", "").lower() == "true")


class ReturnPreference(StrEnum):
    MINIMAL = "minimal"
    REPRESENTATION = "representation"
    OPERATION_OUTCOME = "OperationOutcome"


def return_preference(request: Request) -> ReturnPreference:
    for part in request.headers.get("prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "return":
            for option in ReturnPreference:
                if value.strip().strip('"') == option.value:
                    return option
    return ReturnPreference.REPRESENTATION


def lenient_handling(request: Request) -> bool:
    """`Prefer: handling=lenient` asks us to ignore unknown parameters instead of failing."""
    return any(
        part.strip().replace(" ", "").lower() == "handling=lenient"
        for part in request.headers.get("prefer", "").split(",")
    )
