"""The protocol catalog as FHIR: PlanDefinition + ActivityDefinition per exercise, the local
CodeSystems, and reading a tenant's stored (possibly clinic-modified) definition back.

Ids are deterministic: `PlanDefinition/<exercise code>`, `ActivityDefinition/<exercise code>`,
`CodeSystem/<name>`; canonical URLs are `https://reptrend.dev/fhir/<type>/<id>`. Every field of
`ProtocolParameters` is carried on the PlanDefinition in one complex extension
(`PARAMETERS_EXTENSION`, one sub-extension per parameter, named in camelCase), which is the
authoritative copy; ActivityDefinition.dosage mirrors the dosage for other FHIR tools.

The rules use the tenant's stored PlanDefinition when it exists, is not deleted and is
`active`; otherwise the built-in parameters. A stored definition the rules cannot read (an
unknown or out-of-range parameter) is not used: the built-in parameters apply and the
explanation says why (`ProtocolDefinition.note`), so ingest never fails on a clinic's edit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

import sqlalchemy as sa

from domain.codes import (
    CANONICAL_BASE,
    EXERCISE_SYSTEM,
    EXERCISE_THERAPY,
    FORM_FAULT_SYSTEM,
    LUMBAR_SPINE,
    PAIN_RESPONSE_SYSTEM,
    SESSION_MEASURE_SYSTEM,
    Coding,
    ExerciseCode,
    FormFault,
    SessionMeasure,
)
from domain.pain_response import PainResponse
from domain.protocols import (
    CATALOG,
    Category,
    InvalidParameter,
    Protocol,
    ProtocolParameters,
    StopRuleMode,
)
from store import tables
from store.batching import chunks
from store.errors import VersionConflict
from store.resource_store import Method, ResourceStore, Write
from store.search_params import SUPPORTED_TYPES

log = logging.getLogger("reptrend.catalog")

STRUCTURE_BASE: Final = f"{CANONICAL_BASE}/StructureDefinition"
PARAMETERS_EXTENSION: Final = f"{STRUCTURE_BASE}/protocol-parameters"
CATEGORY_EXTENSION: Final = f"{STRUCTURE_BASE}/protocol-category"
VARIANT_EXTENSION: Final = f"{STRUCTURE_BASE}/protocol-variant"
PROGRESSES_TO_EXTENSION: Final = f"{STRUCTURE_BASE}/progresses-to"
STOP_RULE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/stop-rule"
CATALOG_VERSION: Final = "1"
PLAN_TYPE: Final = Coding(
    "http://terminology.hl7.org/CodeSystem/plan-definition-type",
    "clinical-protocol",
    "Clinical Protocol",
)

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]


def plan_definition_url(code: str) -> str:
    return f"{CANONICAL_BASE}/PlanDefinition/{code}"


def activity_definition_url(code: str) -> str:
    return f"{CANONICAL_BASE}/ActivityDefinition/{code}"


# --- ProtocolParameters <-> the parameters extension -------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_FIELDS: Final = {_camel(f.name): f.name for f in fields(ProtocolParameters)}


def parameters_extension(params: ProtocolParameters) -> dict[str, Any]:
    """Every parameter as a sub-extension; `severePain` is left out when it is off (None)."""
    parts: list[dict[str, Any]] = []
    for url, name in _FIELDS.items():
        value = getattr(params, name)
        if value is None:
            continue
        if isinstance(value, StopRuleMode):
            parts.append({"url": url, "valueCode": str(value)})
        elif isinstance(value, bool):
            parts.append({"url": url, "valueBoolean": value})
        elif isinstance(value, int):
            parts.append({"url": url, "valueInteger": value})
        else:
            parts.append({"url": url, "valueDecimal": value})
    return {"url": PARAMETERS_EXTENSION, "extension": parts}


def parameters_from_plan(plan: Mapping[str, Any]) -> ProtocolParameters:
    """The parameters a PlanDefinition carries; missing ones keep the dataclass defaults.

    Raises `InvalidParameter` naming the parameter when one is unknown or out of range.
    """
    extensions = [e for e in plan.get("extension", ()) if e.get("url") == PARAMETERS_EXTENSION]
    if len(extensions) != 1:
        raise InvalidParameter(f"needs exactly one extension {PARAMETERS_EXTENSION}")
    values: dict[str, Any] = {}
    for part in extensions[0].get("extension", ()):
        url = part.get("url")
        if url not in _FIELDS:
            raise InvalidParameter(f"{url}: not a protocol parameter")
        value_keys = [k for k in part if k.startswith("value")]
        if len(value_keys) != 1:
            raise InvalidParameter(f"{url}: needs one value")
        value = part[value_keys[0]]
        name = _FIELDS[url]
        expected = type(getattr(ProtocolParameters(), name))
        if name == "severe_pain":
            expected = int
        if expected is StopRuleMode:
            expected = str
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise InvalidParameter(f"{url}: {value!r} is not a {expected.__name__}")
        values[name] = value
    return ProtocolParameters(**values)


# --- the built-in catalog as FHIR ---------------------------------------------------------------


def _coding(c: Coding) -> dict[str, str]:
    return {"system": c.system, "code": c.code, "display": c.display}


def _exercise_concept(p: Protocol) -> dict[str, Any]:
    return {
        "coding": [
            {"system": EXERCISE_SYSTEM, "code": p.code, "display": p.name},
            _coding(EXERCISE_THERAPY),
        ],
        "text": p.name,
    }


def _machine_name(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("-"))


def _seed_artifact(p: Protocol) -> dict[str, Any]:
    return {
        "type": "documentation",
        "label": p.source,
        "display": f"Source text shared/seeds/{p.source}.txt",
    }


def activity_definition(p: Protocol) -> dict[str, Any]:
    params = p.parameters
    body: dict[str, Any] = {
        "resourceType": "ActivityDefinition",
        "id": p.code,
        "url": activity_definition_url(p.code),
        "version": CATALOG_VERSION,
        "name": _machine_name(p.code),
        "title": p.name,
        "status": "active",
        "description": p.description,
        "relatedArtifact": [_seed_artifact(p)],
        "kind": "ServiceRequest",
        "code": _exercise_concept(p),
        "bodySite": [{"coding": [_coding(LUMBAR_SPINE)]}],
    }
    if params.dosage_checked:
        rep = {"unit": "repetition", "system": "http://unitsofmeasure.org", "code": "{repetition}"}
        body["dosage"] = [
            {
                "text": (
                    f"{params.min_reps}-{params.max_reps} repetitions a session, "
                    f"{params.min_sessions_per_day}-{params.max_sessions_per_day} sessions a day"
                ),
                "timing": {
                    "repeat": {
                        "frequency": params.min_sessions_per_day,
                        "frequencyMax": params.max_sessions_per_day,
                        "period": 1,
                        "periodUnit": "d",
                    }
                },
                "doseAndRate": [
                    {
                        "doseRange": {
                            "low": {"value": params.min_reps, **rep},
                            "high": {"value": params.max_reps, **rep},
                        }
                    }
                ],
            }
        ]
    return body


def plan_definition(p: Protocol) -> dict[str, Any]:
    params = p.parameters
    extensions: list[dict[str, Any]] = [
        parameters_extension(params),
        {"url": CATEGORY_EXTENSION, "valueCode": str(p.category)},
        *({"url": VARIANT_EXTENSION, "valueCode": v} for v in p.variants),
    ]
    if p.progresses_to is not None:
        extensions.append(
            {"url": PROGRESSES_TO_EXTENSION, "valueCanonical": plan_definition_url(p.progresses_to)}
        )
    actions: list[dict[str, Any]] = [
        {
            "id": "exercise",
            "title": p.name,
            "description": p.description,
            "code": [_exercise_concept(p)],
            "definitionCanonical": activity_definition_url(p.code),
        }
    ]
    if params.requires_extension_after and p.category is Category.FLEXION:
        cobra = CATALOG[ExerciseCode.EXTENSION_IN_LYING]
        minutes = {"unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}
        actions.append(
            {
                "id": "follow-with-extension",
                "title": f"Follow immediately with {cobra.name}",
                "code": [_exercise_concept(cobra)],
                "definitionCanonical": activity_definition_url(cobra.code),
                "relatedAction": [
                    {
                        "actionId": "exercise",
                        "relationship": "after-end",
                        "offsetRange": {
                            "low": {"value": 0, **minutes},
                            "high": {"value": params.extension_within_minutes, **minutes},
                        },
                    }
                ],
            }
        )
    return {
        "resourceType": "PlanDefinition",
        "id": p.code,
        "extension": extensions,
        "url": plan_definition_url(p.code),
        "version": CATALOG_VERSION,
        "name": _machine_name(p.code),
        "title": p.name,
        "type": {"coding": [_coding(PLAN_TYPE)]},
        "status": "active",
        "description": p.description,
        "relatedArtifact": [_seed_artifact(p)],
        "action": actions,
    }


def _code_system(
    name: str, url: str, title: str, concepts: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    concept = [{"code": code, "display": display} for code, display in concepts]
    return {
        "resourceType": "CodeSystem",
        "id": name,
        "url": url,
        "version": CATALOG_VERSION,
        "name": _machine_name(name),
        "title": title,
        "status": "active",
        "caseSensitive": True,
        "content": "complete",
        "count": len(concept),
        "concept": concept,
    }


def code_systems() -> list[dict[str, Any]]:
    measure_display = {
        SessionMeasure.REPETITION_INDEX: "Repetition index (1..n)",
        SessionMeasure.REPETITION_PAIN: "Pain per repetition (compact form)",
        SessionMeasure.KNEE_TO_CHEST_DISTANCE: "Knee-to-chest distance",
        SessionMeasure.FORM_FAULT: "Form fault",
        SessionMeasure.PERIPHERAL_SYMPTOMS: "Peripheral symptoms",
    }
    fault_display = {
        FormFault.HEAD_RAISED: "Head raised",
        FormFault.LEGS_STRAIGHTENED_ON_LOWERING: "Legs straightened on lowering",
        FormFault.NECK_STRAIN: "Tugging at the knees with the neck muscles",
    }
    return [
        _code_system(
            "exercise",
            EXERCISE_SYSTEM,
            "reptrend exercises",
            ((p.code, p.name) for p in CATALOG.values()),
        ),
        _code_system(
            "session-measure",
            SESSION_MEASURE_SYSTEM,
            "reptrend session measures",
            ((str(m), measure_display[m]) for m in SessionMeasure),
        ),
        _code_system(
            "form-fault",
            FORM_FAULT_SYSTEM,
            "reptrend form faults",
            ((str(f), fault_display[f]) for f in FormFault),
        ),
        _code_system(
            "pain-response",
            PAIN_RESPONSE_SYSTEM,
            "Pain response of one session",
            ((str(r), str(r).replace("-", " ").capitalize()) for r in PainResponse),
        ),
        _code_system(
            "stop-rule",
            STOP_RULE_SYSTEM,
            "reptrend stop-rule decisions",
            (
                ("hold", "Pain increased with each repetition: stop and wait"),
                ("retry", "Try the exercise again within the retry window"),
                ("on-hold", "Exercise on hold (stop rule)"),
            ),
        ),
    ]


def catalog_resources() -> list[dict[str, Any]]:
    """Every catalog resource this server can store (CodeSystem only once it is a served type)."""
    resources: list[dict[str, Any]] = []
    for p in CATALOG.values():
        resources.append(activity_definition(p))
        resources.append(plan_definition(p))
    if "CodeSystem" in SUPPORTED_TYPES:
        resources.extend(code_systems())
    return resources


def _existing_keys(store: ResourceStore, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Keys with any row at all (deleted included: a clinic's delete is respected)."""
    by_type: dict[str, list[str]] = {}
    for resource_type, resource_id in keys:
        by_type.setdefault(resource_type, []).append(resource_id)
    found: set[tuple[str, str]] = set()
    for resource_type, ids in by_type.items():
        for chunk in chunks(ids):
            found.update(
                (resource_type, i)
                for i in store.connection.execute(
                    sa.select(_RESOURCE.c.id).where(
                        _RESOURCE.c.tenant == store.tenant,
                        _RESOURCE.c.type == resource_type,
                        _RESOURCE.c.id.in_(chunk),
                    )
                ).scalars()
            )
    return found


def ensure_catalog(store: ResourceStore) -> int:
    """Write the catalog resources the tenant has never had; returns how many were written.

    Idempotent, and never overwrites (or resurrects) a clinic's own or deleted version. Runs in
    a savepoint: when a concurrent transaction seeds the same tenant first, this one keeps
    going with theirs instead of failing.
    """
    resources = catalog_resources()
    existing = _existing_keys(store, ((r["resourceType"], r["id"]) for r in resources))
    missing = [r for r in resources if (r["resourceType"], r["id"]) not in existing]
    if not missing:
        return 0
    savepoint = store.connection.begin_nested()
    try:
        store.write([Write(Method.UPDATE, r["resourceType"], r["id"], r) for r in missing])
    except VersionConflict:
        savepoint.rollback()
        return 0
    savepoint.commit()
    return len(missing)


# --- reading the definitions the rules use --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProtocolDefinition:
    """The parameters one protocol is judged with, and where they came from."""

    code: str
    parameters: ProtocolParameters
    source: str  # "built-in" or "PlanDefinition/<id>/_history/<version>"
    note: str | None = None  # why a stored definition was not used

    @property
    def description(self) -> str:
        text = f"parameters of {self.code}: {self.source}"
        return f"{text} ({self.note})" if self.note else text


def _built_in(code: str, note: str | None = None) -> ProtocolDefinition | None:
    p = CATALOG.get(code)
    if p is None:
        return None
    return ProtocolDefinition(code, p.parameters, "built-in", note)


def protocol_definitions(
    store: ResourceStore, codes: Iterable[str], *, ensure: bool = False
) -> dict[str, ProtocolDefinition]:
    """The definition of each code the tenant knows (stored or built in); unknown codes are
    left out. With `ensure`, the built-in catalog is first written if one of its
    PlanDefinitions never existed (one query when it did: the usual case at ingest)."""
    wanted = sorted(set(codes))
    rows = _plan_rows(store, [*wanted, *CATALOG] if ensure else wanted)
    if ensure and any(code not in rows for code in CATALOG) and ensure_catalog(store):
        rows = _plan_rows(store, wanted)
    found: dict[str, ProtocolDefinition] = {}
    for code in wanted:
        row = rows.get(code)
        definition = _definition(code, None if row is None or row.deleted else row)
        if definition is not None:
            found[code] = definition
    return found


def _plan_rows(store: ResourceStore, ids: Iterable[str]) -> dict[str, Any]:
    """PlanDefinition rows by id, deleted ones included."""
    rows: dict[str, Any] = {}
    for chunk in chunks(sorted(set(ids))):
        for row in store.connection.execute(
            sa.select(
                _RESOURCE.c.id, _RESOURCE.c.version_id, _RESOURCE.c.deleted, _RESOURCE.c.body
            ).where(
                _RESOURCE.c.tenant == store.tenant,
                _RESOURCE.c.type == "PlanDefinition",
                _RESOURCE.c.id.in_(chunk),
            )
        ):
            rows[row.id] = row
    return rows


def _definition(code: str, row: Any) -> ProtocolDefinition | None:
    if row is None or row.body is None:
        return _built_in(code)
    source = f"PlanDefinition/{code}/_history/{row.version_id}"
    if row.body.get("status") != "active":
        return _built_in(code, f"{source} is {row.body.get('status')}, not active")
    try:
        params = parameters_from_plan(row.body)
    except InvalidParameter as error:
        log.warning("stored protocol definition not usable", extra={"plan": source})
        return _built_in(code, f"{source} not usable: {error}")
    return ProtocolDefinition(code, params, source)


def with_parameters(p: Protocol, **changes: Any) -> dict[str, Any]:
    """A PlanDefinition for `p` with some parameters changed: what a clinic would store."""
    return plan_definition(replace(p, parameters=replace(p.parameters, **changes)))
