"""FHIR R4 JSON over HTTP: wrong JSON types, nulls and empty values are refused, never stored.

The store keeps the body as sent, so anything pydantic merely coerces ("active": "yes") would be
read back as invalid FHIR JSON and disagree with the search index.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import FHIR
from tests.session_examples import example

REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, body, expression, diagnostic fragment)
    (
        "boolean_yes",
        {"resourceType": "Patient", "active": "yes"},
        "Patient.active",
        "expected a JSON boolean (true or false, without quotes), got a JSON string",
    ),
    ("boolean_string", {"resourceType": "Patient", "active": "true"}, "Patient.active", "boolean"),
    ("boolean_number", {"resourceType": "Patient", "active": 1}, "Patient.active", "boolean"),
    (
        "integer_string",
        {"resourceType": "Patient", "multipleBirthInteger": "3"},
        "Patient.multipleBirthInteger",
        "expected a JSON integer",
    ),
    (
        "choice_boolean_string",
        {"resourceType": "Patient", "deceasedBoolean": "no"},
        "Patient.deceasedBoolean",
        "boolean",
    ),
    ("empty_array", {"resourceType": "Patient", "name": []}, "Patient.name", "empty array"),
    (
        "required_null",
        {"resourceType": "Observation", "status": "final", "code": None},
        "Observation.code",
        "null is not allowed",
    ),
    (
        "required_empty",
        {"resourceType": "Observation", "status": "final", "code": {}},
        "Observation.code",
        "empty object",
    ),
    (
        "decimal_string",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "pain"},
            "valueQuantity": {"value": "2.5"},
        },
        "Observation.valueQuantity.value",
        "expected a JSON number",
    ),
]


@pytest.mark.parametrize(
    ("body", "expression", "says"),
    [pytest.param(b, e, s, id=case) for case, b, e, s in REFUSED],
)
def test_a_create_with_wrong_json_is_refused_with_an_outcome_naming_the_element(
    client: TestClient, body: dict[str, Any], expression: str, says: str
) -> None:
    resource_type = body["resourceType"]
    response = client.post(f"/fhir/{resource_type}", json=body, headers=FHIR)
    assert response.status_code in (400, 422), response.json()
    issue = response.json()["issue"][0]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert (issue["severity"], issue["code"]) == ("error", "invalid")
    assert issue["expression"] == [expression]
    assert says in issue["diagnostics"]
    assert client.get(f"/fhir/{resource_type}").json().get("total", 0) == 0


@pytest.mark.parametrize(
    ("body", "expression", "says"),
    [pytest.param(b, e, s, id=case) for case, b, e, s in REFUSED],
)
def test_an_update_with_wrong_json_is_refused_and_the_stored_version_stays(
    client: TestClient, body: dict[str, Any], expression: str, says: str
) -> None:
    resource_type = body["resourceType"]
    url = f"/fhir/{resource_type}/x"
    good = {"resourceType": resource_type, "id": "x"}
    if resource_type == "Observation":
        good |= {"status": "final", "code": {"text": "pain"}}
    assert client.put(url, json=good, headers=FHIR).status_code == 201
    response = client.put(url, json={**body, "id": "x"}, headers=FHIR)
    assert response.status_code in (400, 422)
    assert response.json()["issue"][0]["expression"] == [expression]
    assert client.get(url).json()["meta"]["versionId"] == "1"


def test_a_search_never_sees_a_coerced_boolean(client: TestClient) -> None:
    for active in ["yes", "true", 1]:
        client.post(
            "/fhir/Patient", json={"resourceType": "Patient", "active": active}, headers=FHIR
        )
    client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True}, headers=FHIR)
    found = client.get("/fhir/Patient?active=true").json()
    assert found["total"] == 1
    assert [e["resource"]["active"] for e in found["entry"]] == [True]


def transaction(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


def test_a_transaction_entry_with_wrong_json_names_the_entry_and_stores_nothing(
    client: TestClient,
) -> None:
    bundle = transaction(
        {"resourceType": "Patient", "active": True},
        {"resourceType": "Patient", "active": "yes"},
    )
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code in (400, 422)
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.active"]
    assert "expected a JSON boolean" in issue["diagnostics"]
    assert client.get("/fhir/Patient").json().get("total", 0) == 0


def test_a_session_transaction_with_a_quoted_pain_score_is_refused(client: TestClient) -> None:
    assert client.put(
        "/fhir/Patient/example", json={"resourceType": "Patient", "id": "example"}, headers=FHIR
    ).is_success
    bundle = example("session-transaction.json")
    repetition = bundle["entry"][2]["resource"]
    value_key = next(k for k in repetition if k.startswith("value"))
    if value_key == "valueInteger":
        repetition["valueInteger"] = str(repetition["valueInteger"])
        expected = "Bundle.entry[2].resource.valueInteger"
    else:
        repetition[value_key]["value"] = str(repetition[value_key]["value"])
        expected = f"Bundle.entry[2].resource.{value_key}.value"
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code in (400, 422)
    assert response.json()["issue"][0]["expression"] == [expected]
    assert client.get("/fhir/Procedure").json().get("total", 0) == 0
    # the same transaction, untouched, is stored
    assert client.post("/fhir", json=example("session-transaction.json"), headers=FHIR).is_success


def test_a_batch_entry_with_wrong_json_fails_alone(client: TestClient) -> None:
    bundle = transaction(
        {"resourceType": "Patient", "active": True},
        {"resourceType": "Observation", "status": "final", "code": None},
    )
    bundle["type"] = "batch"
    response = client.post("/fhir", json=bundle, headers=FHIR)
    entries = response.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["201", "400"]
    outcome = entries[1]["response"]["outcome"]
    # Named as in a transaction: the entry, then the element in its resource.
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.code"]
    assert "null is not allowed" in outcome["issue"][0]["diagnostics"]
    assert client.get("/fhir/Observation").json().get("total", 0) == 0
