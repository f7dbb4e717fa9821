"""Builders of the session contract (CLINICAL_RULES section 2) for the clinical-rules tests.

Every resource gets a client id derived from the patient and session name, so a test can read
the decision resources back by their deterministic ids (`DetectedIssue/hold-<procedure id>`).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from domain.codes import (
    EXERCISE_SYSTEM,
    FORM_FAULT_SYSTEM,
    PAIN_SEVERITY_NRS,
    SESSION_MEASURE_SYSTEM,
)

DAY0 = date(2026, 3, 2)
FLEXION = "flexion-in-lying"
EXTENSION = "extension-in-lying"
WORSENING = (2, 3, 4, 5)  # rises every repetition, ends 3 above the start
WEARS_OFF = (4, 4, 3, 3, 2, 1)
PAIN_FREE = (0, 0, 0, 0, 0)


def day(offset: int) -> date:
    return DAY0 + timedelta(days=offset)


def local(offset: int, hhmm: str = "08:00", zone: str = "+01:00") -> str:
    return f"{day(offset).isoformat()}T{hhmm}:00{zone}"


def _entry(resource: dict[str, Any], method: str = "PUT") -> dict[str, Any]:
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": ref, "resource": resource, "request": {"method": method, "url": ref}}


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def patient_entries(patient: str, rx_status: str = "active") -> list[dict[str, Any]]:
    """The Patient and a flexion-in-lying prescription `ServiceRequest/<patient>-rx`."""
    return [
        _entry({"resourceType": "Patient", "id": patient, "name": [{"family": "Synthetic"}]}),
        _entry(
            {
                "resourceType": "ServiceRequest",
                "id": f"{patient}-rx",
                "status": rx_status,
                "intent": "order",
                "code": {"coding": [{"system": EXERCISE_SYSTEM, "code": FLEXION}]},
                "subject": {"reference": f"Patient/{patient}"},
            }
        ),
    ]


def procedure_id(patient: str, name: str) -> str:
    return f"{patient}-{name}"


def session_entries(
    patient: str,
    name: str,
    offset: int,
    pains: tuple[int, ...],
    *,
    protocol: str = FLEXION,
    hhmm: str = "08:00",
    minutes: int = 4,
    based_on: bool = True,
    status: str = "completed",
    faults: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """A Procedure and one Observation per repetition, all with client ids (PUT)."""
    pid = procedure_id(patient, name)
    start = local(offset, hhmm)
    hour, minute = (int(x) for x in hhmm.split(":"))
    end_minute = hour * 60 + minute + minutes
    end = local(offset, f"{end_minute // 60:02d}:{end_minute % 60:02d}")
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "code": {"coding": [{"system": EXERCISE_SYSTEM, "code": protocol}]},
        "subject": {"reference": f"Patient/{patient}"},
        "performedPeriod": {"start": start, "end": end},
    }
    if based_on:
        procedure["basedOn"] = [{"reference": f"ServiceRequest/{patient}-rx"}]
    entries = [_entry(procedure)]
    for index, pain in enumerate(pains, start=1):
        components: list[dict[str, Any]] = [
            {
                "code": {
                    "coding": [{"system": SESSION_MEASURE_SYSTEM, "code": "repetition-index"}]
                },
                "valueInteger": index,
            }
        ]
        fault = (faults or {}).get(index)
        if fault is not None:
            components.append(
                {
                    "code": {"coding": [{"system": SESSION_MEASURE_SYSTEM, "code": "form-fault"}]},
                    "valueCodeableConcept": {
                        "coding": [{"system": FORM_FAULT_SYSTEM, "code": fault}]
                    },
                }
            )
        entries.append(
            _entry(
                {
                    "resourceType": "Observation",
                    "id": f"{pid}-r{index}",
                    "status": "final",
                    "code": {
                        "coding": [
                            {"system": PAIN_SEVERITY_NRS.system, "code": PAIN_SEVERITY_NRS.code}
                        ]
                    },
                    "subject": {"reference": f"Patient/{patient}"},
                    "partOf": [{"reference": f"Procedure/{pid}"}],
                    "effectiveDateTime": start,
                    "valueInteger": pain,
                    "component": components,
                }
            )
        )
    return entries


def pain_report_entries(patient: str, pains_by_offset: dict[int, int]) -> list[dict[str, Any]]:
    """General pain reports (no partOf) in the evening of each day."""
    return [
        _entry(
            {
                "resourceType": "Observation",
                "id": f"{patient}-d{offset + 100}",
                "status": "final",
                "code": {
                    "coding": [{"system": PAIN_SEVERITY_NRS.system, "code": PAIN_SEVERITY_NRS.code}]
                },
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": local(offset, "20:00"),
                "valueInteger": pain,
            }
        )
        for offset, pain in sorted(pains_by_offset.items())
    ]


def hold_ids(patient: str, name: str) -> dict[str, str]:
    """The deterministic ids of the decision resources of the hold a session opened."""
    hold = f"hold-{procedure_id(patient, name)}"
    return {"DetectedIssue": hold, "Task": hold, "Flag": hold}


def as_client_posts(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same entries as an app posts them: POST with urn:uuid fullUrls, server-assigned ids."""
    urns = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": f"urn:uuid:{uuid.uuid4()}"
        for e in entries
    }
    posted = []
    for e in entries:
        resource = {k: v for k, v in e["resource"].items() if k != "id"}
        for key in ("partOf", "basedOn"):
            if key in resource:
                resource[key] = [
                    {"reference": urns.get(r["reference"], r["reference"])} for r in resource[key]
                ]
        ref = f"{e['resource']['resourceType']}/{e['resource']['id']}"
        posted.append(
            {
                "fullUrl": urns[ref],
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return posted
