"""The HTTP edge: probes, OperationOutcome errors, request ids, and logs free of patient data."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from email.utils import parsedate_to_datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import FHIR

DISTINCTIVE_NAME = "Zebulonowicz"


def test_liveness_answers_without_touching_the_database(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readiness_answers_200_on_a_migrated_database(client: TestClient) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_readiness_answers_503_on_an_unmigrated_database(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "reptrend migrate" in response.json()["reason"]


def test_settings_refuse_an_unsupported_database_url() -> None:
    with pytest.raises(ValueError, match="REPTREND_DATABASE_URL"):
        Settings(database_url="mysql://root@localhost/x")


def test_export_settings_come_from_the_environment_and_are_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPTREND_EXPORT_MAX_FILE_BYTES", "4096")
    monkeypatch.setenv("REPTREND_EXPORT_DIR", "/srv/exports")
    settings = Settings(database_url="sqlite:///x.db")
    assert (settings.export_max_file_bytes, str(settings.export_dir)) == (4096, "/srv/exports")
    monkeypatch.setenv("REPTREND_EXPORT_LEASE_SECONDS", "0")
    with pytest.raises(ValueError, match="export_lease_seconds"):
        Settings(database_url="sqlite:///x.db")


def test_a_plain_postgresql_url_is_mapped_to_psycopg_3() -> None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:5432/test")
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_create_read_update_delete_round_trip(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR)
    assert created.status_code == 201
    assert created.headers["etag"] == 'W/"1"'
    resource_id = created.json()["id"]
    assert created.headers["location"].endswith(f"/fhir/Patient/{resource_id}/_history/1")
    updated = client.put(
        f"/fhir/Patient/{resource_id}",
        json={"resourceType": "Patient", "id": resource_id, "gender": "female"},
        headers={**FHIR, "If-Match": 'W/"1"'},
    )
    assert (updated.status_code, updated.headers["etag"]) == (200, 'W/"2"')
    assert client.get(f"/fhir/Patient/{resource_id}/_history/1").json()["meta"]["versionId"] == "1"
    assert client.delete(f"/fhir/Patient/{resource_id}").status_code == 204
    gone = client.get(f"/fhir/Patient/{resource_id}")
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"


def test_last_modified_is_an_http_date_of_the_versions_last_updated(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR)
    read = client.get(f"/fhir/Patient/{created.json()['id']}")
    for response in (created, read):
        header = response.headers["last-modified"]
        assert header.endswith(" GMT")
        updated = datetime.fromisoformat(read.json()["meta"]["lastUpdated"].replace("Z", "+00:00"))
        assert parsedate_to_datetime(header) == updated.replace(microsecond=0)


def test_a_client_id_longer_than_64_characters_is_refused(client: TestClient) -> None:
    long_id = "a" * 65
    response = client.put(
        f"/fhir/Patient/{long_id}", json={"resourceType": "Patient", "id": long_id}, headers=FHIR
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Patient.id"]
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 0
    ok = "a" * 64
    assert (
        client.put(f"/fhir/Patient/{ok}", json={"resourceType": "Patient", "id": ok}).status_code
        == 201
    )


def test_a_delete_with_a_stale_if_match_answers_412_and_deletes_nothing(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1", "active": True})
    stale = client.delete("/fhir/Patient/p1", headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["expression"] == ["If-Match"]
    assert client.get("/fhir/Patient/p1").json()["meta"]["versionId"] == "2"
    assert client.delete("/fhir/Patient/p1", headers={"If-Match": "garbage"}).status_code == 400
    assert client.delete("/fhir/Patient/p1", headers={"If-Match": 'W/"2"'}).status_code == 204
    assert client.get("/fhir/Patient/p1").status_code == 410


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "expression"),
    [
        ("post", "/fhir/Patient", b'{"resourceType": ', FHIR, 400, None),
        ("post", "/fhir/Patient", b"<Patient/>", {"content-type": "application/xml"}, 415, None),
        ("get", "/fhir/Starship/1", None, {}, 404, None),
        (
            "post",
            "/fhir/Patient",
            b'{"resourceType": "Patient", "birthDate": "yesterday"}',
            FHIR,
            400,
            "Patient.birthDate",
        ),
        (
            "post",
            "/fhir/Patient",
            b'{"resourceType": "Patient", "favouriteColour": "blue"}',
            FHIR,
            400,
            "Patient.favouriteColour",
        ),
        (
            "put",
            "/fhir/Patient/a",
            b'{"resourceType": "Patient", "id": "b"}',
            FHIR,
            400,
            "Patient.id",
        ),
        (
            "post",
            "/fhir/Patient",
            b'{"resourceType": "Observation"}',
            FHIR,
            400,
            "resourceType",
        ),
    ],
    ids=[
        "malformed-json",
        "xml-is-not-offered",
        "unknown-type",
        "invalid-date",
        "unknown-element",
        "id-differs-from-url",
        "wrong-resource-type",
    ],
)
def test_every_error_is_an_operation_outcome_with_status_and_element(
    client: TestClient,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    expression: str | None,
) -> None:
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    if expression is not None:
        assert issue["expression"] == [expression]


def test_a_body_over_the_limit_answers_413(client: TestClient) -> None:
    huge = json.dumps({"resourceType": "Patient", "text": {"div": "x" * 1_100_000}})
    response = client.post("/fhir/Patient", content=huge, headers=FHIR)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_the_request_id_is_echoed_or_created(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_logs_carry_route_templates_and_never_patient_data(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    patient = {"resourceType": "Patient", "id": "p-77", "name": [{"family": DISTINCTIVE_NAME}]}
    with caplog.at_level(logging.INFO):
        client.put("/fhir/Patient/p-77", json=patient, headers=FHIR)
        client.get("/fhir/Patient/p-77?name=" + DISTINCTIVE_NAME)
        client.put("/fhir/Patient/p-77", json={**patient, "birthDate": "bad"}, headers=FHIR)
    access = [r for r in caplog.records if r.name == "reptrend.access"]
    assert [getattr(r, "route", None) for r in access] == ["/fhir/{type}/{id}"] * 3
    # httpx is the test's own client logging what it sent; everything else is the server.
    server = [r for r in caplog.records if not r.name.startswith("httpx")]
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in server)
    assert DISTINCTIVE_NAME not in everything
    assert "p-77" not in everything


def test_a_transaction_bundle_is_all_or_nothing(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
                "resource": {"resourceType": "Patient", "gender": "male"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "x", "gender": 42},
                "request": {"method": "PUT", "url": "Patient/x"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.gender"]
    assert client.get("/fhir/Patient/x").status_code == 404


def test_a_batch_applies_good_entries_and_reports_bad_ones(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "ok"},
                "request": {"method": "PUT", "url": "Patient/ok"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "bad", "gender": 42},
                "request": {"method": "PUT", "url": "Patient/bad"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "400"]
    assert client.get("/fhir/Patient/ok").status_code == 200
    assert client.get("/fhir/Patient/bad").status_code == 404
