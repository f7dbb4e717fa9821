"""The registry of resource types and search parameters this server offers.

One source of truth: the index writer fills the search tables from it, and the FHIR API builds
its routes, parameter parsing and CapabilityStatement from it, so neither can claim what the
other lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class ParamType(StrEnum):
    TOKEN = "token"
    REFERENCE = "reference"
    DATE = "date"
    QUANTITY = "quantity"
    NUMBER = "number"
    STRING = "string"
    URI = "uri"


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    type: ParamType
    # Element paths from the resource root; a list anywhere along a path is flattened.
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    type: str
    params: Mapping[str, SearchParam]
    read_only: bool = False


def _p(name: str, kind: ParamType, *paths: str, targets: tuple[str, ...] = ()) -> SearchParam:
    return SearchParam(name, kind, paths, targets)


T, R, D, Q, S, U = (
    ParamType.TOKEN,
    ParamType.REFERENCE,
    ParamType.DATE,
    ParamType.QUANTITY,
    ParamType.STRING,
    ParamType.URI,
)

_IDENTIFIER = _p("identifier", T, "identifier")
_STATUS = _p("status", T, "status")
_PATIENT_SUBJECT = (
    _p("patient", R, "subject", targets=("Patient",)),
    _p("subject", R, "subject"),
)
_NAMES = (
    _p("name", S, "name"),
    _p("family", S, "name.family"),
    _p("given", S, "name.given"),
)
_DEFINITION = (
    _IDENTIFIER,
    _STATUS,
    _p("url", U, "url"),
    _p("version", T, "version"),
    _p("name", S, "name"),
    _p("title", S, "title"),
)


def _spec(type_: str, *params: SearchParam, read_only: bool = False) -> ResourceSpec:
    return ResourceSpec(type_, {p.name: p for p in params}, read_only)


RESOURCE_SPECS: Mapping[str, ResourceSpec] = {
    spec.type: spec
    for spec in (
        _spec(
            "Patient",
            _IDENTIFIER,
            *_NAMES,
            _p("birthdate", D, "birthDate"),
            _p("gender", T, "gender"),
            _p("active", T, "active"),
            _p("organization", R, "managingOrganization", targets=("Organization",)),
        ),
        _spec("Practitioner", _IDENTIFIER, *_NAMES, _p("active", T, "active")),
        _spec(
            "Organization",
            _IDENTIFIER,
            _p("name", S, "name"),
            _p("active", T, "active"),
            _p("type", T, "type"),
        ),
        _spec(
            "Group",
            _IDENTIFIER,
            _p("member", R, "member.entity"),
            _p("type", T, "type"),
            _p("code", T, "code"),
            _p("actual", T, "actual"),
            _p("managing-entity", R, "managingEntity"),
        ),
        _spec(
            "Procedure",
            _IDENTIFIER,
            _STATUS,
            *_PATIENT_SUBJECT,
            _p("code", T, "code"),
            _p("category", T, "category"),
            _p("date", D, "performedDateTime", "performedPeriod"),
            _p("based-on", R, "basedOn"),
            _p("part-of", R, "partOf"),
        ),
        _spec(
            "Observation",
            _IDENTIFIER,
            _STATUS,
            *_PATIENT_SUBJECT,
            _p("code", T, "code"),
            _p("category", T, "category"),
            _p("date", D, "effectiveDateTime", "effectivePeriod", "effectiveInstant"),
            _p("part-of", R, "partOf"),
            _p("based-on", R, "basedOn"),
            _p("value-quantity", Q, "valueQuantity"),
            _p("component-code", T, "component.code"),
        ),
        _spec(
            "ServiceRequest",
            _IDENTIFIER,
            _STATUS,
            *_PATIENT_SUBJECT,
            _p("code", T, "code"),
            _p("category", T, "category"),
            _p("intent", T, "intent"),
            _p("authored", D, "authoredOn"),
            _p("based-on", R, "basedOn"),
            _p("requester", R, "requester"),
        ),
        _spec(
            "CarePlan",
            _IDENTIFIER,
            _STATUS,
            *_PATIENT_SUBJECT,
            _p("intent", T, "intent"),
            _p("category", T, "category"),
            _p("date", D, "period"),
            _p("based-on", R, "basedOn"),
            _p("instantiates-canonical", R, "instantiatesCanonical"),
        ),
        _spec("PlanDefinition", *_DEFINITION),
        _spec("CodeSystem", *_DEFINITION),
        _spec("ActivityDefinition", *_DEFINITION),
        _spec(
            "DetectedIssue",
            _IDENTIFIER,
            _STATUS,
            _p("patient", R, "patient", targets=("Patient",)),
            _p("code", T, "code"),
            _p("identified", D, "identifiedDateTime", "identifiedPeriod"),
            _p("implicated", R, "implicated"),
        ),
        _spec(
            "Task",
            _IDENTIFIER,
            _STATUS,
            _p("patient", R, "for", targets=("Patient",)),
            _p("subject", R, "for"),
            _p("code", T, "code"),
            _p("intent", T, "intent"),
            _p("focus", R, "focus"),
            _p("based-on", R, "basedOn"),
            _p("part-of", R, "partOf"),
            _p("period", D, "executionPeriod"),
            _p("authored-on", D, "authoredOn"),
        ),
        _spec(
            "Flag",
            _IDENTIFIER,
            _STATUS,
            *_PATIENT_SUBJECT,
            _p("date", D, "period"),
            _p("author", R, "author"),
            _p("category", T, "category"),
            _p("code", T, "code"),
        ),
        _spec(
            "AuditEvent",
            _p("date", D, "recorded"),
            _p("type", T, "type"),
            _p("subtype", T, "subtype"),
            _p("action", T, "action"),
            _p("outcome", T, "outcome"),
            _p("agent", R, "agent.who"),
            _p("entity", R, "entity.what"),
            read_only=True,
        ),
    )
}

SUPPORTED_TYPES = frozenset(RESOURCE_SPECS)


def spec_for(resource_type: str) -> ResourceSpec | None:
    return RESOURCE_SPECS.get(resource_type)
