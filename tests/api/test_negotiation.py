"""Content negotiation and Prefer: JSON only, _format, _pretty, return preferences, big Bundles."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import FHIR

PATIENT = {"resourceType": "Patient", "id": "n1", "gender": "other"}


@pytest.mark.parametrize(
    ("accept", "format_", "status"),
    [
        ("application/fhir+json", None, 200),
        ("application/json", None, 200),
        ("text/html,application/xhtml+xml,*/*;q=0.8", None, 200),
        (None, "json", 200),
        (None, "application/fhir+json", 200),
        ("application/fhir+xml", None, 406),
        ("application/xml", None, 406),
        (None, "xml", 406),
    ],
    ids=[
        "fhir-json",
        "json",
        "browser",
        "format-json",
        "format-mime",
        "fhir-xml",
        "xml",
        "format-xml",
    ],
)
def test_only_json_is_offered(
    client: TestClient, accept: str | None, format_: str | None, status: int
) -> None:
    client.put("/fhir/Patient/n1", json=PATIENT, headers=FHIR)
    headers = {"Accept": accept} if accept else {}
    params = {"_format": format_} if format_ else {}
    response = client.get("/fhir/Patient/n1", headers=headers, params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/fhir+json")
    if status == 406:
        assert response.json()["issue"][0]["code"] == "not-supported"


def test_pretty_output_is_indented_and_compact_is_not(client: TestClient) -> None:
    client.put("/fhir/Patient/n1", json=PATIENT, headers=FHIR)
    assert "\n" not in client.get("/fhir/Patient/n1").text
    pretty = client.get("/fhir/Patient/n1", params={"_pretty": "true"}).text
    assert pretty.startswith('{\n  "resourceType": "Patient"')


def test_prefer_return_minimal_answers_without_a_body(client: TestClient) -> None:
    response = client.put(
        "/fhir/Patient/n1", json=PATIENT, headers={**FHIR, "Prefer": "return=minimal"}
    )
    assert (response.status_code, response.content) == (201, b"")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith("/fhir/Patient/n1/_history/1")


def test_prefer_return_operation_outcome_answers_an_informational_outcome(
    client: TestClient,
) -> None:
    response = client.put(
        "/fhir/Patient/n1", json=PATIENT, headers={**FHIR, "Prefer": "return=OperationOutcome"}
    )
    issue = response.json()["issue"][0]
    assert response.status_code == 201
    assert (issue["severity"], issue["code"]) == ("information", "informational")


def test_capability_statement_says_json_only(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    assert statement["fhirVersion"] == "4.0.1"
    assert all("xml" not in f for f in statement["format"])
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Patient", "Observation", "Procedure", "DetectedIssue", "Task", "Flag"} <= types


def test_a_transaction_of_10000_entries_is_accepted_in_one_piece(settings: Settings) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("one backend is enough to show there is no entry cap")
    roomy = settings.model_copy(update={"max_body_bytes": 64 * 1024 * 1024})
    entries = [
        {
            "resource": {"resourceType": "Patient", "identifier": [{"value": str(i)}]},
            "request": {"method": "POST", "url": "Patient"},
        }
        for i in range(10_000)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    with TestClient(create_app(roomy)) as client:
        response = client.post("/fhir", json=bundle, headers=FHIR)
        assert response.status_code == 200
        assert len(response.json()["entry"]) == 10_000
        count = client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"]
    assert count == 10_000
