"""FHIR R4 validation at the store's edge (fhir.resources R4B models, wire-compatible with R4).

Errors become `InvalidResource` with a FHIRPath expression naming the offending element.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
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
    full_validate(body, resource_type)
    return resource_type


def full_validate(body: Mapping[str, Any], resource_type: str) -> None:
    """The slow path on its own: the body's FHIR JSON shape, then the fhir.resources model.

    ``resource_type`` must be a supported type. Raises InvalidResource.
    """
    problems = json_shape_problems(body, resource_type)
    if problems:
        raise _invalid(resource_type, problems)
    try:
        get_fhir_model_class(resource_type).model_validate(body)
    except ValidationError as error:
        located = [
            (fhirpath(resource_type, tuple(problem["loc"])), problem["msg"])
            for problem in error.errors()
        ]
        raise _invalid(resource_type, located) from None


def _invalid(resource_type: str, problems: list[tuple[str, str]]) -> InvalidResource:
    # Never echo the input value: it may be patient data.
    messages = [f"{where}: {message}" for where, message in problems[:MAX_REPORTED_ERRORS]]
    more = len(problems) - MAX_REPORTED_ERRORS
    if more > 0:
        messages.append(f"... and {more} more")
    first = problems[0][0] if problems else resource_type
    return InvalidResource("; ".join(messages), first)


# ----------------------------------------------------------------------------------------------
# FHIR R4 JSON shape (hl7.org/fhir/R4/json.html), checked on the body as sent.
#
# fhir.resources validates in pydantic's lax mode ("active": "yes" -> True, "3" -> 3, "code": null
# passes, "name": [] passes), and the store keeps the body as sent, so the JSON itself is checked
# here against the element types the R4B models declare: booleans are JSON true/false,
# integer/positiveInt/unsignedInt JSON numbers without a fraction part, decimal a JSON number,
# every other primitive a JSON string; no null except in a primitive array whose `_name` partner
# array has a value at the same index; no empty object, array or string; JSON names only (the
# models also accept their Python names, e.g. `active__ext`). Keys the model does not know are
# left to fhir.resources ("Extra inputs are not permitted").
# ----------------------------------------------------------------------------------------------

_BOOLEAN: Final = "boolean"
_INTEGER: Final = "integer"
_DECIMAL: Final = "decimal"
_STRING: Final = "string"
_COMPLEX: Final = "complex"
_RESOURCE: Final = "resource"
_COMMENTS: Final = "comments"

_EXPECTED: Final[Mapping[str, str]] = {
    _BOOLEAN: "expected a JSON boolean (true or false, without quotes)",
    _INTEGER: "expected a JSON integer (a number without quotes or fraction part)",
    _DECIMAL: "expected a JSON number (without quotes)",
    _STRING: "expected a JSON string",
    _COMPLEX: "expected a JSON object",
    _RESOURCE: "expected a JSON object (a resource)",
    _COMMENTS: "expected a JSON string or an array of strings",
}
_NULL: Final = "null is not allowed here: leave the element out"
_NULL_IN_ARRAY: Final = (
    "null is not allowed here: a primitive array may hold null only where its '_' extension "
    "array has a value at the same index"
)
_EMPTY: Final[Mapping[type, str]] = {
    dict: "an empty object is not allowed: leave the element out",
    list: "an empty array is not allowed: leave the element out",
    str: "an empty string is not allowed: leave the element out",
}


@dataclass(frozen=True, slots=True)
class _Element:
    kind: str
    is_list: bool
    model: type[FHIRAbstractModel] | None = None


@dataclass(frozen=True, slots=True)
class _Shape:
    elements: Mapping[str, _Element]
    json_names: Mapping[str, str]  # Python field name -> JSON name, where they differ


def _without_none(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, UnionType):
        return [a for a in get_args(annotation) if a is not NoneType]
    return [annotation]


def _kind_of(annotation: Any) -> tuple[str, type[FHIRAbstractModel] | None]:
    """One item's annotation (Optional and List already removed) -> (kind, model)."""
    options = _without_none(annotation)
    if len(options) > 1:  # Union[Annotated[str, Id()], Annotated[str, String()]]
        kinds = {_kind_of(option) for option in options}
        if len(kinds) != 1:
            raise TypeError(f"an element of mixed types: {annotation}")
        return kinds.pop()
    (item,) = options
    if item is bool:
        return _BOOLEAN, None
    if get_origin(item) is Annotated:
        base = get_args(item)[0]
        if base is int:
            return _INTEGER, None
        if base is Decimal:
            return _DECIMAL, None
        return _STRING, None  # str, date, datetime, time, bytes (base64), UUID, url
    if isinstance(item, type) and issubclass(item, FhirBase):
        model = item.get_model_klass()
        if issubclass(item, FhirElementOrResourceBase) and model.__name__ == "Resource":
            return _RESOURCE, None
        return _COMPLEX, model
    if item is str:
        return _STRING, None
    raise TypeError(f"an element type this check does not know: {annotation}")


@functools.cache
def _shape(model: type[FHIRAbstractModel]) -> _Shape:
    elements: dict[str, _Element] = {}
    json_names: dict[str, str] = {}
    for name, field in model.model_fields.items():
        json_name = field.alias or name
        if json_name != name:
            json_names[name] = json_name
        if json_name == "fhir_comments":
            elements[json_name] = _Element(_COMMENTS, is_list=False)
            continue
        (annotation,) = _without_none(field.annotation)
        is_list = get_origin(annotation) is list
        if is_list:
            (annotation,) = get_args(annotation)
        kind, element_model = _kind_of(annotation)
        elements[json_name] = _Element(kind, is_list, element_model)
    return _Shape(elements, json_names)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, (int, float)):
        return "a JSON number" + (" with a fraction part" if isinstance(value, float) else "")
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return "a value that is not JSON"


Problems = list[tuple[str, str]]


def json_shape_problems(body: Mapping[str, Any], resource_type: str) -> Problems:
    """(FHIRPath, what is wrong) for every place where ``body`` is not FHIR R4 JSON."""
    problems: Problems = []
    _check_object(body, get_fhir_model_class(resource_type), resource_type, problems, True)
    return problems


def _check_object(
    value: Any, model: type[FHIRAbstractModel], path: str, problems: Problems, resource: bool
) -> None:
    if type(value) is not dict:
        problems.append((path, f"{_EXPECTED[_COMPLEX]}, got {_json_type(value)}"))
        return
    if not value:
        problems.append((path, _EMPTY[dict]))
        return
    shape = _shape(model)
    elements = shape.elements
    for key, item in value.items():
        if resource and key == "resourceType":
            continue
        element = elements.get(key)
        if element is None:
            json_name = shape.json_names.get(key)
            if json_name is not None:
                problems.append((f"{path}.{key}", f"not a FHIR JSON name: write '{json_name}'"))
            continue  # unknown: fhir.resources reports it
        where = f"{path}.{key}"
        if item is None:
            problems.append((where, _NULL))
        elif not element.is_list:
            _check_value(item, element, where, problems)
        elif type(item) is not list:
            problems.append((where, f"expected a JSON array, got {_json_type(item)}"))
        elif not item:
            problems.append((where, _EMPTY[list]))
        else:
            partner = None
            if element.kind is not _COMPLEX or key.startswith("_"):
                partner = value.get(key[1:] if key.startswith("_") else f"_{key}")
            for i, entry in enumerate(item):
                if entry is not None:
                    _check_value(entry, element, f"{where}[{i}]", problems)
                elif type(partner) is not list or i >= len(partner) or partner[i] is None:
                    problems.append((f"{where}[{i}]", _NULL_IN_ARRAY))


def _check_value(value: Any, element: _Element, where: str, problems: Problems) -> None:
    kind = element.kind
    t = type(value)
    if kind is _STRING:
        if t is not str:
            problems.append((where, f"{_EXPECTED[kind]}, got {_json_type(value)}"))
        elif not value:
            problems.append((where, _EMPTY[str]))
    elif kind is _BOOLEAN:
        if t is not bool:
            problems.append((where, f"{_EXPECTED[kind]}, got {_json_type(value)}"))
    elif kind is _INTEGER:
        if t is not int:
            problems.append((where, f"{_EXPECTED[kind]}, got {_json_type(value)}"))
    elif kind is _DECIMAL:
        if t is not int and t is not float:
            problems.append((where, f"{_EXPECTED[kind]}, got {_json_type(value)}"))
    elif kind is _COMPLEX:
        assert element.model is not None
        _check_object(value, element.model, where, problems, False)
    elif kind is _RESOURCE:
        if t is not dict:
            problems.append((where, f"{_EXPECTED[kind]}, got {_json_type(value)}"))
            return
        model = _resource_model(value.get("resourceType"))
        if model is not None:  # no or an unknown resourceType: fhir.resources reports it
            _check_object(value, model, where, problems, True)
    elif t is str:  # fhir_comments
        if not value:
            problems.append((where, _EMPTY[str]))
    elif t is list and value and all(type(c) is str and c for c in value):
        pass
    else:
        problems.append((where, f"{_EXPECTED[kind]}, got {_json_type(value)}"))


@functools.cache
def _model_of(resource_type: str) -> type[FHIRAbstractModel] | None:
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return None
    return model if model.has_resource_base() else None


def _resource_model(resource_type: Any) -> type[FHIRAbstractModel] | None:
    return _model_of(resource_type) if type(resource_type) is str else None
