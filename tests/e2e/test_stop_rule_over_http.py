"""End to end over HTTP: an app posts sessions as transaction Bundles, the EHR reads the status,
the FHIR decision resources and the CDS card of a real server."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.sessions import (
    WEARS_OFF,
    WORSENING,
    as_client_posts,
    day,
    patient_entries,
    session_entries,
    transaction,
)

FHIR = {"content-type": "application/fhir+json"}
P = "e2e-patient"
STATUS = f"/analytics/patients/{P}/protocols/flexion-in-lying/status"


def post_session(server: httpx.Client, offset: int, pains: tuple[int, ...]) -> str:
    """Posts one session as an app does (POST, urn:uuid); returns the server's Procedure id."""
    entries = as_client_posts(session_entries(P, f"s{offset}", offset, pains))
    response = server.post("/fhir", json=transaction(*entries), headers=FHIR)
    assert response.status_code == 200, response.text
    procedure = response.json()["entry"][0]["response"]["location"]
    return str(procedure.split("/")[1])


def fhir(server: httpx.Client, path: str) -> Any:
    response = server.get(f"/fhir/{path}")
    assert response.status_code == 200, response.text
    return response.json()


def test_worsening_then_a_tolerated_retry_over_http(server: httpx.Client) -> None:
    setup = server.post("/fhir", json=transaction(*patient_entries(P)), headers=FHIR)
    assert setup.status_code == 200, setup.text

    worsening = post_session(server, 0, WORSENING)
    held = server.get(STATUS, params={"as_of": str(day(2))}).json()
    assert held["status"] == "on-hold"
    assert held["hold"] == {
        "since": str(day(0)),
        "retry_from": str(day(7)),
        "retry_until": str(day(14)),
    }
    hold = f"hold-{worsening}"
    issue = fhir(server, f"DetectedIssue/{hold}")
    assert {"reference": f"Procedure/{worsening}"} in issue["implicated"]
    assert fhir(server, f"Task/{hold}")["status"] == "requested"
    assert fhir(server, f"Flag/{hold}")["status"] == "active"
    assert fhir(server, f"ServiceRequest/{P}-rx")["status"] == "on-hold"
    assert server.get(STATUS).json()["status"] == "retry-due"  # the server's today: day 10

    cds = server.post(
        "/cds-services/reptrend-flexion-status",
        json={
            "hook": "patient-view",
            "hookInstance": "0b6d3c5e-3e4f-4d55-9a4b-0f2a7c1e9d11",
            "context": {"userId": "Practitioner/e2e", "patientId": P},
        },
    ).json()
    assert [c["indicator"] for c in cds["cards"]] == ["warning"]

    post_session(server, 9, WEARS_OFF)
    resumed = server.get(STATUS, params={"as_of": str(day(9))}).json()
    assert (resumed["status"], resumed["hold"]) == ("resumed", None)
    assert fhir(server, f"Task/{hold}")["status"] == "completed"
    assert fhir(server, f"Flag/{hold}")["status"] == "inactive"
    assert fhir(server, f"Flag/{hold}")["period"]["end"] == str(day(9))
    assert fhir(server, f"ServiceRequest/{P}-rx")["status"] == "active"


def test_the_protocol_catalog_is_readable_as_fhir_once_a_session_arrived(
    server: httpx.Client,
) -> None:
    server.post("/fhir", json=transaction(*patient_entries(P)), headers=FHIR)
    post_session(server, 0, WEARS_OFF)
    plan = fhir(server, "PlanDefinition/flexion-in-lying")
    assert plan["url"] == "https://reptrend.dev/fhir/PlanDefinition/flexion-in-lying"
    assert plan["status"] == "active"
    parameters = {e["url"]: e for e in plan["extension"][0]["extension"]}
    assert parameters["retryMinDays"]["valueInteger"] == 7
    assert parameters["stopRuleMode"]["valueCode"] == "rising"
    activity = fhir(server, "ActivityDefinition/flexion-in-lying")
    assert activity["dosage"][0]["timing"]["repeat"]["frequency"] == 3
