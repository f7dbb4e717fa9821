"""FHIR R4 validation at the store's edge (fhir.resources R4B models, wire-compatible with R4).

Errors become `InvalidResource` with a FHIRPath expression naming the offending element.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from store.errors import InvalidResource, NotSupported
from store.fast_validation import fast_validate
from store.search_params import SUPPORTED_TYPES

MAX_REPORTED_ERRORS = 5


def fhirpath(resource_type: str, location: tuple[int | str, ...]) -> str:
    """('component', 0, 'valueInteger') -> 'Observation.component[0].valueInteger'."""
    path = resource_type
    for step in location:
        if isinstance(step, int):
            path += f"[{step}]"
        elif step == "resource_type":
            path += ".resourceType"
        elif not step.startswith("__"):  # pydantic's internal model-level locations
            path += f".{step}"
    return path


def require_supported_type(resource_type: Any) -> str:
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidResource("the resource has no resourceType", "resourceType")
    if resource_type not in SUPPORTED_TYPES:
        raise NotSupported(
            f"resource type '{resource_type}' is not supported by this server", "resourceType"
        )
    return resource_type


def validate_resource(body: Any, expected_type: str | None = None) -> str:
    """Validate one resource; return its type. Raises InvalidResource / NotSupported."""
    if not isinstance(body, Mapping):
        raise InvalidResource("a resource must be a JSON object", expected_type)
    resource_type = body.get("resourceType")
    if expected_type is not None and resource_type != expected_type:
        raise InvalidResource(
            f"resourceType is '{resource_type}' but the request is for '{expected_type}'",
            "resourceType",
        )
    resource_type = require_supported_type(resource_type)
    # The hot session shapes take a compiled path proven equivalent by differential tests;
    # anything it is not certain about goes through the full fhir.resources models.
    if fast_validate(body):
        return resource_type
    try:
        get_fhir_model_class(resource_type).model_validate(body)
    except ValidationError as error:
        raise _invalid(resource_type, error) from None
    return resource_type


def _invalid(resource_type: str, error: ValidationError) -> InvalidResource:
    problems = error.errors()
    messages = []
    for problem in problems[:MAX_REPORTED_ERRORS]:
        where = fhirpath(resource_type, tuple(problem["loc"]))
        # Never echo the input value: it may be patient data.
        messages.append(f"{where}: {problem['msg']}")
    more = len(problems) - MAX_REPORTED_ERRORS
    if more > 0:
        messages.append(f"... and {more} more")
    first = fhirpath(resource_type, tuple(problems[0]["loc"])) if problems else resource_type
    return InvalidResource("; ".join(messages), first)
