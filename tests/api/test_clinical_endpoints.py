"""The JSON decision endpoints: /analytics/sessions/{id} and the per-patient status."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.analytics.clinical_routes import today
from tests.api.conftest import FHIR
from tests.e2e.sessions import (
    EXTENSION,
    WEARS_OFF,
    WORSENING,
    day,
    pain_report_entries,
    patient_entries,
    procedure_id,
    session_entries,
    transaction,
)

P = "p1"


def post(client: TestClient, *entries: dict[str, Any]) -> None:
    response = client.post("/fhir", json=transaction(*entries), headers=FHIR)
    assert response.status_code == 200, response.text


def status(client: TestClient, as_of: int | None = None, code: str = "flexion-in-lying") -> Any:
    query = f"?as_of={day(as_of)}" if as_of is not None else ""
    response = client.get(f"/analytics/patients/{P}/protocols/{code}/status{query}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def worsened(client: TestClient) -> TestClient:
    post(client, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING))
    return client


def test_a_session_reports_its_pain_response_and_figures(worsened: TestClient) -> None:
    body = worsened.get(f"/analytics/sessions/{procedure_id(P, 's0')}").json()
    assert {k: body[k] for k in ("procedure", "patient", "protocol", "date")} == {
        "procedure": procedure_id(P, "s0"),
        "patient": P,
        "protocol": "flexion-in-lying",
        "date": str(day(0)),
    }
    assert body["pain"] == [2, 3, 4, 5]
    assert body["response"] == "worsening"
    assert (body["first"], body["last"], body["peak"], body["rises"], body["falls"]) == (
        2,
        5,
        5,
        3,
        0,
    )
    assert body["slope"] == pytest.approx(1.0)
    assert body["progressing"] is None
    # Stopping after 4 repetitions because pain rose is not under-dose; no Cobra followed.
    assert body["flags"] == ["missing-extension"]
    assert "worsening_min_rise=2" in body["explanation"]
    assert "parameters of flexion-in-lying: PlanDefinition/flexion-in-lying" in body["explanation"]


def test_a_short_session_with_a_form_fault_followed_by_extension_is_flagged_so(
    client: TestClient,
) -> None:
    post(
        client,
        *patient_entries(P),
        *session_entries(P, "s0", 0, (4, 3, 2, 1), faults={2: "head-raised"}),
        *session_entries(P, "cobra", 0, (), protocol=EXTENSION, hhmm="08:10", based_on=False),
    )
    body = client.get(f"/analytics/sessions/{procedure_id(P, 's0')}").json()
    assert body["response"] == "wears-off"
    assert body["flags"] == ["under-dose", "form-fault:head-raised"]


def test_the_status_follows_the_hold_through_its_window(worsened: TestClient) -> None:
    before = status(worsened, -1)
    assert (before["status"], before["last_session"], before["hold"]) == ("no-sessions", None, None)
    window = {"since": str(day(0)), "retry_from": str(day(7)), "retry_until": str(day(14))}
    on_hold = status(worsened, 3)
    assert (on_hold["status"], on_hold["hold"]) == ("on-hold", window)
    assert on_hold["last_session"] == {
        "procedure": procedure_id(P, "s0"),
        "date": str(day(0)),
        "response": "worsening",
    }
    assert status(worsened, 7)["status"] == "retry-due"
    assert status(worsened, 14)["status"] == "retry-due"
    assert status(worsened, 15)["status"] == "retry-overdue"

    post(worsened, *session_entries(P, "retry", 9, WEARS_OFF))
    resumed = status(worsened, 9)
    assert (resumed["status"], resumed["hold"], resumed["failed_retries"]) == ("resumed", None, 0)
    assert status(worsened, 8)["status"] == "retry-due"  # as of a past date: what it said then


def test_a_session_before_the_window_counts_as_a_premature_retry(worsened: TestClient) -> None:
    post(worsened, *session_entries(P, "early", 3, WEARS_OFF))
    body = status(worsened, 4)
    assert (body["status"], body["premature_retries"]) == ("on-hold", 1)
    assert "premature-retry" in body["flags"]


def test_two_failed_retries_need_clinician_review(worsened: TestClient) -> None:
    post(worsened, *session_entries(P, "r1", 7, WORSENING))
    post(worsened, *session_entries(P, "r2", 14, WORSENING))
    body = status(worsened, 15)
    assert (body["status"], body["failed_retries"]) == ("clinician-review", 2)
    assert "max_failed_retries=2" in body["explanation"]


def test_readiness_and_started_before_ready_come_from_the_pain_diary(client: TestClient) -> None:
    in_pain = {offset: 5 for offset in range(-13, 1)}
    post(client, *patient_entries(P), *pain_report_entries(P, in_pain))
    assert status(client, 0)["readiness"] == "not-ready"
    post(client, *session_entries(P, "s0", 0, WEARS_OFF))
    assert "started-before-ready" in status(client, 0)["flags"]


def test_more_sessions_than_the_daily_maximum_are_flagged_over_sessions(
    client: TestClient,
) -> None:
    times = ("07:00", "10:00", "13:00", "16:00", "19:00")
    entries = [
        e for i, t in enumerate(times) for e in session_entries(P, f"s{i}", 0, WEARS_OFF, hhmm=t)
    ]
    post(client, *patient_entries(P), *entries)
    assert "over-sessions" in status(client, 0)["flags"]


def test_as_of_defaults_to_the_injected_today(worsened: TestClient) -> None:
    worsened.app.dependency_overrides[today] = lambda: day(8)  # type: ignore[attr-defined]
    body = status(worsened)
    assert (body["as_of"], body["status"]) == (str(day(8)), "retry-due")


def test_unknown_ids_answer_404_and_a_malformed_as_of_400_as_operation_outcomes(
    worsened: TestClient,
) -> None:
    for path in [
        "/analytics/sessions/no-such-session",
        "/analytics/patients/nobody/protocols/flexion-in-lying/status?as_of=2026-03-10",
        f"/analytics/patients/{P}/protocols/no-such-exercise/status?as_of=2026-03-10",
    ]:
        response = worsened.get(path)
        assert response.status_code == 404, path
        assert response.json()["resourceType"] == "OperationOutcome"
    malformed = worsened.get(f"/analytics/patients/{P}/protocols/flexion-in-lying/status?as_of=x")
    assert malformed.status_code == 400
    assert malformed.json()["resourceType"] == "OperationOutcome"


def test_the_openapi_document_describes_both_responses(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "/analytics/sessions/{procedure_id}" in document["paths"]
    assert "/analytics/patients/{patient_id}/protocols/{code}/status" in document["paths"]
    schemas = document["components"]["schemas"]
    assert {"SessionResponse", "StatusResponse", "HoldWindow", "LastSession"} <= set(schemas)
    assert set(schemas["ProtocolStatus"]["enum"]) == {
        "no-sessions",
        "active",
        "on-hold",
        "retry-due",
        "retry-overdue",
        "resumed",
        "clinician-review",
    }
