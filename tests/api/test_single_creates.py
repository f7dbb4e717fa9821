"""Creates posted one by one, as a patient app or an EHR sends them. On PostgreSQL a create
that is one statement skips the worker thread (planned writes); one that needs the database
first (a repetition, which reads its session) takes the ordinary path. Clients see the same
either way, on both backends."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import FHIR
from tests.session_examples import example


def _session_resources() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bundle = example("session-transaction.json")
    resources = [entry["resource"] for entry in bundle["entry"]]
    procedure = {k: v for k, v in resources[0].items() if k != "basedOn"}
    return procedure, resources[1:]


def test_a_session_posted_resource_by_resource_is_assessed_as_one(client: TestClient) -> None:
    client.put("/fhir/Patient/example", json={"resourceType": "Patient", "id": "example"})
    procedure, repetitions = _session_resources()
    created = client.post("/fhir/Procedure", json=procedure, headers=FHIR)
    assert created.status_code == 201
    procedure_id = created.json()["id"]
    for repetition in repetitions:
        body = {**repetition, "partOf": [{"reference": f"Procedure/{procedure_id}"}]}
        response = client.post("/fhir/Observation", json=body, headers=FHIR)
        assert response.status_code == 201, response.text
        assert response.headers["location"].endswith(f"/{response.json()['id']}/_history/1")
    session = client.get(f"/analytics/sessions/{procedure_id}").json()
    expected = [r.get("valueInteger", r.get("valueQuantity", {}).get("value")) for r in repetitions]
    assert session["pain"] == expected
    assert session["response"] == "wears-off"


def test_a_repetition_of_a_procedure_that_does_not_exist_is_refused_and_stores_nothing(
    client: TestClient,
) -> None:
    _, repetitions = _session_resources()
    body = {**repetitions[0], "partOf": [{"reference": "Procedure/nowhere"}]}
    response = client.post("/fhir/Observation", json=body, headers=FHIR)
    assert response.status_code in (400, 422)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "partOf" in outcome["issue"][0]["expression"][0]
    assert client.get("/fhir/Observation?_summary=count").json()["total"] == 0


def test_a_daily_pain_report_posted_alone_is_stored_and_found(client: TestClient) -> None:
    pain = example("daily-pain-observation.json", valueInteger=2)
    created = client.post("/fhir/Observation", json=pain, headers=FHIR)
    assert created.status_code == 201
    found = client.get("/fhir/Observation?patient=example&date=2026-03-01").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [created.json()["id"]]
    assert client.get(f"/fhir/Observation/{created.json()['id']}").json()["valueInteger"] == 2


def test_a_pain_report_dated_only_to_the_month_is_refused_naming_its_date(
    client: TestClient,
) -> None:
    # A daily pain report counts for a day (readiness, outcomes): a month or a year is not one.
    for partial in ("2025-01", "2025"):
        body = example("daily-pain-observation.json", effectiveDateTime=partial)
        response = client.post("/fhir/Observation", json=body, headers=FHIR)
        assert response.status_code == 400, response.text
        issue = response.json()["issue"][0]
        assert issue["expression"] == ["Observation.effectiveDateTime"]
        assert partial in issue["diagnostics"]
    day = client.post(
        "/fhir/Observation",
        json=example("daily-pain-observation.json", effectiveDateTime="2025-01-31"),
        headers=FHIR,
    )
    assert day.status_code == 201, day.text
    assert client.get("/fhir/Observation?_summary=count").json()["total"] == 1


def test_a_batch_entry_with_a_month_dated_pain_report_fails_alone(client: TestClient) -> None:
    entries = [
        {
            "request": {"method": "POST", "url": "Observation"},
            "resource": example("daily-pain-observation.json", effectiveDateTime=day),
        }
        for day in ("2025-01", "2025-01-31")
    ]
    response = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": entries}, headers=FHIR
    )
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("400") and statuses[1].startswith("201")
