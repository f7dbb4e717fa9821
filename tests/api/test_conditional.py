"""Conditional create and update: retries never create duplicates."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from store.database import create_engine
from store.schema import upgrade
from tests.api.conftest import FHIR
from tests.live_server import serve_in_subprocess

SYSTEM = "urn:test:mrn"


def patient(mrn: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": mrn}], **extra}


def test_if_none_exist_creates_once_then_answers_with_the_existing_resource(
    client: TestClient,
) -> None:
    headers = {**FHIR, "If-None-Exist": f"identifier={SYSTEM}|m1"}
    first = client.post("/fhir/Patient", json=patient("m1"), headers=headers)
    again = client.post("/fhir/Patient", json=patient("m1", gender="male"), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert "gender" not in again.json(), "the existing resource is returned unchanged"


def test_if_none_exist_matching_several_resources_is_a_412(client: TestClient) -> None:
    for _ in range(2):
        client.post("/fhir/Patient", json=patient("dup"), headers=FHIR)
    response = client.post(
        "/fhir/Patient",
        json=patient("dup"),
        headers={**FHIR, "If-None-Exist": f"identifier={SYSTEM}|dup"},
    )
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_conditional_update_creates_then_updates_the_one_match(client: TestClient) -> None:
    url = f"/fhir/Patient?identifier={SYSTEM}|u1"
    created = client.put(url, json=patient("u1"), headers=FHIR)
    updated = client.put(url, json=patient("u1", gender="female"), headers=FHIR)
    assert (created.status_code, updated.status_code) == (201, 200)
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


def test_conditional_update_matching_several_is_a_412(client: TestClient) -> None:
    for _ in range(2):
        client.post("/fhir/Patient", json=patient("many"), headers=FHIR)
    response = client.put(
        f"/fhir/Patient?identifier={SYSTEM}|many", json=patient("many"), headers=FHIR
    )
    assert response.status_code == 412


def _session_bundle(mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001",
                "resource": patient(mrn),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SYSTEM}|{mrn}",
                },
            },
            {
                "fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000002",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "identifier": [{"system": "urn:test:obs", "value": f"{mrn}-pain"}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                    "subject": {"reference": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001"},
                    "effectiveDateTime": "2026-03-01T08:00:00+01:00",
                    "valueInteger": 2,
                },
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": f"identifier=urn:test:obs|{mrn}-pain",
                },
            },
        ],
    }


def test_a_retried_transaction_with_if_none_exist_creates_nothing_new(client: TestClient) -> None:
    first = client.post("/fhir", json=_session_bundle("t1"), headers=FHIR).json()
    again = client.post("/fhir", json=_session_bundle("t1"), headers=FHIR).json()
    assert [e["response"]["status"] for e in first["entry"]] == ["201 Created"] * 2
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 2
    assert [e["fullUrl"] for e in again["entry"]] == [e["fullUrl"] for e in first["entry"]]
    observation = client.get("/fhir/" + first["entry"][1]["fullUrl"]).json()
    assert observation["subject"] == {"reference": first["entry"][0]["fullUrl"]}


@pytest.mark.postgres
def test_32_clients_retrying_the_same_conditional_creates_make_one_resource_each(
    postgres_url: str,
) -> None:
    upgrade(postgres_url)
    mrns = [f"race-{uuid.uuid4().hex[:6]}" for _ in range(8)]
    with serve_in_subprocess(postgres_url, workers=2) as server:

        def client_run(seed: int) -> list[int]:
            order = list(mrns)
            random.Random(seed).shuffle(order)
            statuses = []
            with httpx.Client(base_url=server.base_url, timeout=60) as http:
                for mrn in order:
                    response = http.post(
                        "/fhir/Patient",
                        json=patient(mrn),
                        headers={**FHIR, "If-None-Exist": f"identifier={SYSTEM}|{mrn}"},
                    )
                    statuses.append(response.status_code)
            return statuses

        with ThreadPoolExecutor(32) as pool:
            results = [s for statuses in pool.map(client_run, range(32)) for s in statuses]
    assert sorted(set(results)) == [200, 201]
    assert results.count(201) == len(mrns)
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        per_identifier = connection.execute(
            sa.text(
                "SELECT code, count(*) FROM search_token "
                "WHERE type = 'Patient' AND param = 'identifier' GROUP BY code"
            )
        ).all()
    engine.dispose()
    assert sorted(per_identifier) == sorted((mrn, 1) for mrn in mrns)
