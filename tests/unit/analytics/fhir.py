"""FHIR resources in the session contract (CLINICAL_RULES section 2), small enough to read in a
test: what a client posts, so sources are tested through the real write path."""

from __future__ import annotations

from typing import Any

from domain.codes import (
    EXERCISE_SYSTEM,
    FORM_FAULT_SYSTEM,
    PAIN_SEVERITY_NRS,
    REPETITION_INDEX_EXTENSION,
    SESSION_MEASURE_SYSTEM,
)

PAIN_CODE = {"coding": [{"system": PAIN_SEVERITY_NRS.system, "code": PAIN_SEVERITY_NRS.code}]}


def _measure(code: str) -> dict[str, Any]:
    return {"coding": [{"system": SESSION_MEASURE_SYSTEM, "code": code}]}


def put(resource: dict[str, Any]) -> dict[str, Any]:
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": ref}}


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def organization(id_: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": id_, "name": f"Clinic {id_}"}


def patient(id_: str, organization_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "id": id_}
    if organization_id is not None:
        body["managingOrganization"] = {"reference": f"Organization/{organization_id}"}
    return body


def group(id_: str, members: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": id_,
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }


def prescription(
    id_: str,
    patient_id: str,
    protocol: str,
    status: str = "active",
    authored: str | None = None,
) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": id_,
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": EXERCISE_SYSTEM, "code": protocol}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        **({"authoredOn": authored} if authored else {}),
    }


def procedure(
    id_: str, patient_id: str, protocol: str, start: str, end: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": id_,
        "status": "completed",
        "code": {"coding": [{"system": EXERCISE_SYSTEM, "code": protocol}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if end is None:
        body["performedDateTime"] = start
    else:
        body["performedPeriod"] = {"start": start, "end": end}
    return body


def repetition(
    id_: str,
    patient_id: str,
    procedure_id: str,
    index: int,
    pain: int,
    effective: str,
    *,
    distance_cm: float | None = None,
    faults: tuple[str, ...] = (),
    peripheral: bool | None = None,
) -> dict[str, Any]:
    components: list[dict[str, Any]] = [
        {"code": _measure("repetition-index"), "valueInteger": index}
    ]
    if distance_cm is not None:
        components.append(
            {
                "code": _measure("knee-to-chest-distance"),
                "valueQuantity": {
                    "value": distance_cm,
                    "unit": "cm",
                    "system": "http://unitsofmeasure.org",
                    "code": "cm",
                },
            }
        )
    for fault in faults:
        components.append(
            {
                "code": _measure("form-fault"),
                "valueCodeableConcept": {"coding": [{"system": FORM_FAULT_SYSTEM, "code": fault}]},
            }
        )
    if peripheral is not None:
        components.append({"code": _measure("peripheral-symptoms"), "valueBoolean": peripheral})
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": PAIN_CODE,
        "subject": {"reference": f"Patient/{patient_id}"},
        "partOf": [{"reference": f"Procedure/{procedure_id}"}],
        "effectiveDateTime": effective,
        "valueInteger": pain,
        "component": components,
    }


def compact(
    id_: str, patient_id: str, procedure_id: str, pains: list[int], effective: str
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {**_measure("repetition-pain")},
        "subject": {"reference": f"Patient/{patient_id}"},
        "partOf": [{"reference": f"Procedure/{procedure_id}"}],
        "effectiveDateTime": effective,
        "component": [
            {
                "extension": [{"url": REPETITION_INDEX_EXTENSION, "valueInteger": i}],
                "code": PAIN_CODE,
                "valueQuantity": {
                    "value": p,
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                },
            }
            for i, p in enumerate(pains, start=1)
        ],
    }


def pain_report(id_: str, patient_id: str, effective: str, pain: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": PAIN_CODE,
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "valueInteger": pain,
    }


def session(
    procedure_id: str,
    patient_id: str,
    protocol: str,
    start: str,
    pains: list[int],
    *,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """A Procedure and one repetition Observation per pain, as PUT entries."""
    return [
        put(procedure(procedure_id, patient_id, protocol, start, end)),
        *(
            put(repetition(f"{procedure_id}-r{i}", patient_id, procedure_id, i, p, start))
            for i, p in enumerate(pains, start=1)
        ),
    ]
