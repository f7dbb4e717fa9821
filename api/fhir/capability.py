"""The CapabilityStatement, generated from the registry the routes and index use."""

from __future__ import annotations

from typing import Any

from store.search_parameters import COMMON_PARAMS, RESULT_PARAMETERS
from store.search_params import RESOURCE_SPECS, ParamType, ResourceSpec

FHIR_VERSION = "4.0.1"
_WRITE = ("create", "update", "delete")
_READ = ("read", "vread", "history-instance", "history-type", "search-type")


def _includes(spec: ResourceSpec) -> list[str]:
    return [f"{spec.type}:{p.name}" for p in spec.params.values() if p.type is ParamType.REFERENCE]


def _revincludes(spec: ResourceSpec) -> list[str]:
    """Every reference parameter, of any type, that can point to `spec.type`."""
    return [
        f"{source.type}:{p.name}"
        for source in RESOURCE_SPECS.values()
        for p in source.params.values()
        if p.type is ParamType.REFERENCE and (not p.targets or spec.type in p.targets)
    ]


def _search_documentation() -> str:
    parameters = "; ".join(f"{name}: {text}" for name, text in RESULT_PARAMETERS.items())
    return (
        f"Search result parameters: {parameters}. Paging follows the next link (keyset, "
        "stable under inserts). Unknown parameters answer 400 unless the request says "
        "Prefer: handling=lenient."
    )


# The operations the bulk routes serve (api/fhir/bulk_routes.py).
_EXPORT = {
    "name": "export",
    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
}
_TYPE_OPERATIONS: dict[str, list[dict[str, str]]] = {
    "Patient": [
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
        },
        {
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        },
    ],
    "Group": [
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
        }
    ],
}


def capability_statement(base_url: str, software_version: str) -> dict[str, Any]:
    resources = []
    for spec in RESOURCE_SPECS.values():
        interactions = [*_READ, *(() if spec.read_only else _WRITE)]
        resources.append(
            {
                "type": spec.type,
                "interaction": [{"code": code} for code in interactions],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": not spec.read_only,
                "searchParam": [
                    {"name": p.name, "type": p.type.value}
                    for p in (*COMMON_PARAMS.values(), *spec.params.values())
                ],
            }
        )
        if spec.type in _TYPE_OPERATIONS:
            resources[-1]["operation"] = _TYPE_OPERATIONS[spec.type]
        # FHIR JSON has no empty arrays: only types with reference parameters list includes.
        for key, values in (
            ("searchInclude", _includes(spec)),
            ("searchRevInclude", _revincludes(spec)),
        ):
            if values:
                resources[-1][key] = values
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-21",
        "kind": "instance",
        "software": {"name": "reptrend", "version": software_version},
        "implementation": {"description": "reptrend FHIR R4 server", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        # JSON only: XML is deliberately not offered.
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": _search_documentation(),
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [_EXPORT],
            }
        ],
    }
