"""GET /fhir/Patient/{id}/$everything: the patient compartment as a searchset Bundle."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import FHIR
from tests.session_examples import example


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    """Patient `example`: a session (1 Procedure, 6 Observations) and a pain report; Patient
    `other`: a pain report; a Practitioner (in nobody's compartment)."""
    for patient_id in ("example", "other"):
        body = {"resourceType": "Patient", "id": patient_id}
        assert client.put(f"/fhir/Patient/{patient_id}", json=body, headers=FHIR).is_success
    assert client.post("/fhir", json=example("session-transaction.json"), headers=FHIR).is_success
    pain = example("daily-pain-observation.json")
    assert client.post("/fhir/Observation", json=pain, headers=FHIR).is_success
    other = copy.deepcopy(pain)
    other["subject"] = {"reference": "Patient/other"}
    assert client.post("/fhir/Observation", json=other, headers=FHIR).is_success
    doctor = {"resourceType": "Practitioner", "id": "doc"}
    assert client.put("/fhir/Practitioner/doc", json=doctor, headers=FHIR).is_success
    return client


def keys(bundle: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]


def test_everything_is_a_searchset_of_the_patient_and_what_refers_to_it(
    seeded: TestClient,
) -> None:
    response = seeded.get("/fhir/Patient/example/$everything")
    assert response.status_code == 200
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 9)
    found = keys(bundle)
    assert found[0] == "Patient/example"
    assert sorted({k.split("/")[0] for k in found}) == ["Observation", "Patient", "Procedure"]
    assert all(
        e["resource"].get("subject", {"reference": "Patient/example"})["reference"]
        == "Patient/example"
        for e in bundle["entry"]
    )
    assert all(e["fullUrl"].endswith(k) for e, k in zip(bundle["entry"], found, strict=True))


def test_count_pages_with_next_links_that_visit_every_resource_once(seeded: TestClient) -> None:
    everything = keys(seeded.get("/fhir/Patient/example/$everything").json())
    url: str | None = "/fhir/Patient/example/$everything?_count=2"
    paged: list[str] = []
    pages = 0
    while url is not None:
        bundle = seeded.get(url).json()
        assert len(bundle["entry"]) <= 2
        paged.extend(keys(bundle))
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        pages += 1
    assert paged == everything
    assert pages == 5


def test_type_restricts_the_types_returned(seeded: TestClient) -> None:
    bundle = seeded.get("/fhir/Patient/example/$everything?_type=Procedure,Patient").json()
    assert keys(bundle)[0] == "Patient/example"
    assert {k.split("/")[0] for k in keys(bundle)} == {"Patient", "Procedure"}
    assert bundle["total"] == 2


def test_since_leaves_out_what_has_not_changed_since(seeded: TestClient) -> None:
    bundle = seeded.get("/fhir/Patient/example/$everything?_since=2999-01-01T00:00:00Z").json()
    assert (bundle["total"], bundle.get("entry")) == (0, [])


def test_an_unknown_patient_answers_404_and_a_deleted_one_410(seeded: TestClient) -> None:
    assert seeded.get("/fhir/Patient/nobody/$everything").status_code == 404
    assert seeded.delete("/fhir/Patient/other").status_code == 204
    assert seeded.get("/fhir/Patient/other/$everything").status_code == 410


def test_unsupported_parameters_are_refused_unless_handling_is_lenient(
    seeded: TestClient,
) -> None:
    strict = seeded.get("/fhir/Patient/example/$everything?start=2026-01-01")
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"
    lenient = seeded.get(
        "/fhir/Patient/example/$everything?start=2026-01-01",
        headers={"Prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    outcome = lenient.json()["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert "start" in outcome["resource"]["issue"][0]["diagnostics"]


def test_a_bad_count_or_cursor_is_a_400(seeded: TestClient) -> None:
    assert seeded.get("/fhir/Patient/example/$everything?_count=0").status_code == 400
    assert seeded.get("/fhir/Patient/example/$everything?_cursor=nonsense").status_code == 400
