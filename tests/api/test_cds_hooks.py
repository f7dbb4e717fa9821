"""CDS Hooks 2.0: discovery and the patient-view service, called with real request bodies."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.analytics.clinical_routes import today
from tests.api.conftest import FHIR
from tests.e2e.sessions import (
    WEARS_OFF,
    WORSENING,
    day,
    pain_report_entries,
    patient_entries,
    session_entries,
    transaction,
)

P = "p1"
SERVICE = "/cds-services/reptrend-flexion-status"


def hook_request(patient: str = P, **extra: Any) -> dict[str, Any]:
    """A patient-view request as an EHR sends it (CDS Hooks 2.0 section 'HTTP Request')."""
    return {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://ehr.example.org/fhir",
        "hook": "patient-view",
        "context": {"userId": "Practitioner/example", "patientId": patient},
        **extra,
    }


def post(client: TestClient, *entries: dict[str, Any]) -> None:
    response = client.post("/fhir", json=transaction(*entries), headers=FHIR)
    assert response.status_code == 200, response.text


def cards(client: TestClient, as_of: int, body: dict[str, Any] | None = None) -> list[Any]:
    client.app.dependency_overrides[today] = lambda: day(as_of)  # type: ignore[attr-defined]
    response = client.post(SERVICE, json=body or hook_request())
    assert response.status_code == 200, response.text
    return list(response.json()["cards"])


def test_discovery_lists_the_patient_view_service(client: TestClient) -> None:
    services = client.get("/cds-services").json()["services"]
    assert [(s["hook"], s["id"]) for s in services] == [("patient-view", "reptrend-flexion-status")]
    assert all(s["description"] and s["title"] for s in services)


@pytest.fixture
def worsened(client: TestClient) -> TestClient:
    post(client, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING))
    return client


def test_a_hold_answers_one_warning_card_with_its_dates_and_pain(worsened: TestClient) -> None:
    expected = {
        3: ["on hold since", str(day(0)), str(day(7)), str(day(14)), "pain 2,3,4,5"],
        10: ["retry due", str(day(7)), str(day(14)), "pain 2,3,4,5"],
        20: ["retry overdue since", str(day(14)), str(day(0)), "pain 2,3,4,5"],
    }
    for as_of, words in expected.items():
        [card] = cards(worsened, as_of)
        assert card["indicator"] == "warning"
        assert len(card["summary"]) < 140
        assert all(w in card["summary"] for w in words), card["summary"]
        assert card["source"]["label"]
        assert uuid.UUID(card["uuid"])
        assert "retry_min_days=7" in card["detail"]


def test_failed_retries_at_the_limit_answer_a_clinician_review_warning(
    worsened: TestClient,
) -> None:
    post(worsened, *session_entries(P, "r1", 7, WORSENING))
    post(worsened, *session_entries(P, "r2", 14, (1, 3, 5)))
    [card] = cards(worsened, 15)
    assert card["indicator"] == "warning"
    assert "clinician review" in card["summary"]
    assert str(day(14)) in card["summary"] and "pain 1,3,5" in card["summary"]


def test_a_tolerated_retry_leaves_no_card(worsened: TestClient) -> None:
    post(worsened, *session_entries(P, "retry", 8, WEARS_OFF))
    assert cards(worsened, 9) == []


def test_a_patient_who_became_ready_gets_an_info_card(client: TestClient) -> None:
    diary = {offset: 1 if offset in (-5, -2) else 0 for offset in range(-13, 1)}
    post(client, *patient_entries(P), *pain_report_entries(P, diary))
    [card] = cards(client, 0)
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Ready to start Flexion in lying: 12 of 14 days pain-free")
    assert str(day(0)) in card["summary"]


def test_prefetch_is_accepted_and_ignored(worsened: TestClient) -> None:
    prefetch = {"patient": {"resourceType": "Patient", "id": P}}
    assert len(cards(worsened, 3, hook_request(prefetch=prefetch))) == 1


def test_an_unknown_patient_gets_no_cards(client: TestClient) -> None:
    assert cards(client, 3, hook_request(patient="nobody")) == []


def test_each_card_has_its_own_uuid_per_hook_instance(worsened: TestClient) -> None:
    [first] = cards(worsened, 3)
    [again] = cards(worsened, 3, hook_request(hookInstance=str(uuid.uuid4())))
    assert first["uuid"] != again["uuid"]


def test_wrong_service_hook_or_context_answers_an_operation_outcome(client: TestClient) -> None:
    for path, body, code in [
        ("/cds-services/no-such-service", hook_request(), 404),
        (SERVICE, {**hook_request(), "hook": "order-select"}, 400),
        (SERVICE, {**hook_request(), "context": {"userId": "Practitioner/x"}}, 400),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == code, path
        assert response.json()["resourceType"] == "OperationOutcome"
