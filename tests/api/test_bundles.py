"""Transaction and batch Bundles: FHIR R4's processing rules (http.html#trules), over HTTP."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import FHIR
from tests.session_examples import example

SESSION = example("session-transaction.json")
PROCEDURE: dict[str, Any] = SESSION["entry"][0]["resource"]
REPETITION: dict[str, Any] = SESSION["entry"][1]["resource"]


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def patient(system: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], **extra}


def conditional_create(full_url: str, criteria: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": criteria},
        "resource": resource,
    }


def repetition(procedure_reference: str, subject: str = "Patient/rb") -> dict[str, Any]:
    return {
        **copy.deepcopy(REPETITION),
        "subject": {"reference": subject},
        "partOf": [{"reference": procedure_reference}],
    }


def total(client: TestClient, query: str) -> int:
    return int(client.get(f"/fhir/{query}&_summary=count").json()["total"])


def put(client: TestClient, resource: dict[str, Any]) -> None:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    assert client.put(url, json=resource, headers=FHIR).status_code in (200, 201)


def setup_session_procedure(client: TestClient, procedure_id: str) -> None:
    put(client, {"resourceType": "Patient", "id": "rb"})
    procedure = {k: v for k, v in copy.deepcopy(PROCEDURE).items() if k != "basedOn"}
    put(client, {**procedure, "id": procedure_id, "subject": {"reference": "Patient/rb"}})


# --- read-only types ------------------------------------------------------------------------

AUDIT_EVENT = {
    "resourceType": "AuditEvent",
    "id": "ae1",
    "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
    "recorded": "2026-03-01T08:00:00Z",
    "agent": [{"requestor": True, "who": {"display": "someone"}}],
    "source": {"observer": {"display": "reptrend"}},
}

AUDIT_WRITES: list[dict[str, Any]] = [
    {"request": {"method": "POST", "url": "AuditEvent"}, "resource": AUDIT_EVENT},
    {"request": {"method": "PUT", "url": "AuditEvent/ae1"}, "resource": AUDIT_EVENT},
    {"request": {"method": "DELETE", "url": "AuditEvent/ae1"}},
]


@pytest.mark.parametrize("entry", AUDIT_WRITES, ids=lambda e: e["request"]["method"])
def test_a_transaction_writing_a_read_only_type_fails_with_405(
    client: TestClient, entry: dict[str, Any]
) -> None:
    ok = {
        "request": {"method": "PUT", "url": "Patient/ro"},
        "resource": {"resourceType": "Patient", "id": "ro"},
    }
    response = client.post("/fhir", json=transaction(ok, entry), headers=FHIR)
    assert response.status_code == 405, response.text
    assert response.json()["issue"][0]["code"] == "not-supported"
    assert client.get("/fhir/Patient/ro").status_code == 404
    assert total(client, "AuditEvent?_id=ae1") == 0


def test_a_batch_refuses_each_write_of_a_read_only_type_with_405(client: TestClient) -> None:
    ok = {
        "request": {"method": "PUT", "url": "Patient/ro"},
        "resource": {"resourceType": "Patient", "id": "ro"},
    }
    response = client.post("/fhir", json=transaction(ok, *AUDIT_WRITES, kind="batch"), headers=FHIR)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "405", "405", "405"]
    assert entries[1]["response"]["outcome"]["issue"][0]["code"] == "not-supported"
    assert client.get("/fhir/Patient/ro").status_code == 200
    assert total(client, "AuditEvent?_id=ae1") == 0
