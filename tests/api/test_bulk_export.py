"""FHIR Bulk Data $export over HTTP: kick-off, polling, manifest, download, cancel.

Most tests build the app without its lifespan (no background worker) and run the worker
synchronously, so every state is observed deterministically; one test leaves it to the worker
the lifespan starts.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import Client, current_client
from api.export_worker import (
    ExportConfig,
    ExportWorker,
)
from api.settings import Settings
from store.export_jobs import ExportJobs, JobStatus, claim_next
from store.unit_of_work import UnitOfWork
from tests.api.conftest import FHIR
from tests.session_examples import example

KICK_OFF = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
SMALL_FILES = 2048
LATER = datetime(2030, 1, 1, tzinfo=UTC)
# What `seed` writes (the service may add its own, such as the protocol catalog).
SEEDED = {"Group": 1, "Observation": 8, "Patient": 2, "Practitioner": 1, "Procedure": 1}


@pytest.fixture(autouse=True)
def export_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "exports"
    # Read by Settings (REPTREND_ prefix), as in production.
    monkeypatch.setenv("REPTREND_EXPORT_DIR", str(directory))
    monkeypatch.setenv("REPTREND_EXPORT_MAX_FILE_BYTES", str(SMALL_FILES))
    monkeypatch.setenv("REPTREND_EXPORT_LEASE_SECONDS", "30")
    return directory


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def api(app: FastAPI) -> TestClient:
    """A client of an app whose lifespan (and so its worker) is not started."""
    return TestClient(app)


def run_worker(app: FastAPI) -> int:
    return ExportWorker(
        app.state.engine, ExportConfig.from_settings(app.state.settings)
    ).run_pending()


def seed(api: TestClient) -> None:
    """Two patients; `example` has a session (Procedure + 6 Observations) and a pain report,
    `other` one pain report; Group `cohort` has `example` only; a Practitioner too."""
    for patient_id in ("example", "other"):
        body = {"resourceType": "Patient", "id": patient_id, "gender": "female"}
        assert api.put(f"/fhir/Patient/{patient_id}", json=body, headers=FHIR).status_code == 201
    assert api.post("/fhir", json=example("session-transaction.json"), headers=FHIR).is_success
    pain = example("daily-pain-observation.json")
    assert api.post("/fhir/Observation", json=pain, headers=FHIR).status_code == 201
    other = copy.deepcopy(pain)
    other["subject"] = {"reference": "Patient/other"}
    assert api.post("/fhir/Observation", json=other, headers=FHIR).status_code == 201
    group = {
        "resourceType": "Group",
        "id": "cohort",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": "Patient/example"}}],
    }
    assert api.put("/fhir/Group/cohort", json=group, headers=FHIR).status_code == 201
    doctor = {"resourceType": "Practitioner", "id": "doc", "active": True}
    assert api.put("/fhir/Practitioner/doc", json=doctor, headers=FHIR).status_code == 201


def kick_off(api: TestClient, path: str = "/fhir/$export", **headers: str) -> str:
    response = api.get(path, headers={**KICK_OFF, **headers})
    assert response.status_code == 202, response.text
    return str(response.headers["content-location"])


def manifest(api: TestClient, location: str) -> dict[str, Any]:
    response = api.get(location)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def download(api: TestClient, url: str) -> list[dict[str, Any]]:
    response = api.get(url, headers={"Accept": "application/fhir+ndjson"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in response.content.splitlines()]


def exported(api: TestClient, location: str) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for output in manifest(api, location)["output"]:
        by_type.setdefault(output["type"], []).extend(download(api, output["url"]))
    return by_type


def test_kick_off_without_prefer_respond_async_is_refused(api: TestClient) -> None:
    response = api.get("/fhir/$export", headers={"Accept": "application/fhir+json"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "respond-async" in response.json()["issue"][0]["diagnostics"]


def test_kick_off_without_accept_fhir_json_is_refused(api: TestClient) -> None:
    response = api.get("/fhir/$export", headers={"Prefer": "respond-async"})
    assert response.status_code == 400
    assert "Accept" in response.json()["issue"][0]["diagnostics"]


def test_a_queued_job_answers_202_with_x_progress_and_retry_after(api: TestClient) -> None:
    location = kick_off(api)
    assert "/fhir/$export-status/" in location
    response = api.get(location)
    assert response.status_code == 202
    assert response.headers["x-progress"] == "queued"
    assert int(response.headers["retry-after"]) > 0


def test_a_completed_system_export_has_a_manifest_and_one_type_per_file(
    api: TestClient, app: FastAPI
) -> None:
    seed(api)
    location = kick_off(api)
    assert run_worker(app) == 1
    body = manifest(api, location)
    assert body["request"] == "http://testserver/fhir/$export"
    assert body["requiresAccessToken"] is True
    assert body["error"] == []
    transaction_time = datetime.fromisoformat(body["transactionTime"].replace("Z", "+00:00"))
    assert transaction_time.tzinfo is not None
    counts: dict[str, int] = {}
    for output in body["output"]:
        lines = download(api, output["url"])
        assert {line["resourceType"] for line in lines} == {output["type"]}
        assert len(lines) == output["count"]
        counts[output["type"]] = counts.get(output["type"], 0) + output["count"]
    assert {t: counts.get(t) for t in SEEDED} == SEEDED


def test_files_are_split_at_the_size_limit_and_never_split_a_line(
    api: TestClient, app: FastAPI
) -> None:
    seed(api)
    location = kick_off(api, "/fhir/$export?_type=Observation")
    run_worker(app)
    outputs = manifest(api, location)["output"]
    assert len(outputs) > 1
    total = 0
    for output in outputs:
        content = api.get(output["url"]).content
        assert len(content) <= SMALL_FILES
        assert content.endswith(b"\n")
        total += len([orjson.loads(line) for line in content.splitlines()])
    assert total == 8


def test_every_ndjson_spelling_of_output_format_is_accepted_and_others_refused(
    api: TestClient,
) -> None:
    for spelling in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        kick_off(api, f"/fhir/$export?_outputFormat={spelling}")
    refused = api.get("/fhir/$export?_outputFormat=text/csv", headers=KICK_OFF)
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["code"] == "not-supported"


def test_an_unsupported_parameter_is_refused_unless_handling_is_lenient(
    api: TestClient, app: FastAPI
) -> None:
    strict = api.get("/fhir/$export?_elements=id", headers=KICK_OFF)
    assert strict.status_code == 400
    assert "_elements" in strict.json()["issue"][0]["diagnostics"]
    location = kick_off(api, "/fhir/$export?_elements=id", Prefer="respond-async, handling=lenient")
    run_worker(app)
    errors = manifest(api, location)["error"]
    assert [e["type"] for e in errors] == ["OperationOutcome"]
    (outcome,) = download(api, errors[0]["url"])
    assert outcome["issue"][0]["severity"] == "warning"
    assert "_elements" in outcome["issue"][0]["diagnostics"]


def test_patient_export_holds_only_patient_compartments(api: TestClient, app: FastAPI) -> None:
    seed(api)
    location = kick_off(api, "/fhir/Patient/$export")
    run_worker(app)
    found = exported(api, location)
    assert "Practitioner" not in found
    assert {p["id"] for p in found["Patient"]} == {"example", "other"}
    assert len(found["Observation"]) == 8


def test_group_export_holds_only_the_members_compartments(api: TestClient, app: FastAPI) -> None:
    seed(api)
    location = kick_off(api, "/fhir/Group/cohort/$export")
    run_worker(app)
    found = exported(api, location)
    assert {p["id"] for p in found["Patient"]} == {"example"}
    subjects = {o["subject"]["reference"] for o in found["Observation"]}
    assert subjects == {"Patient/example"}
    assert len(found["Observation"]) == 7
    assert [g["id"] for g in found["Group"]] == ["cohort"]


def test_group_export_of_an_unknown_group_answers_404(api: TestClient) -> None:
    response = api.get("/fhir/Group/nobody/$export", headers=KICK_OFF)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_type_and_type_filter_restrict_the_export(api: TestClient, app: FastAPI) -> None:
    seed(api)
    query = (
        "_type=Observation,Patient"
        "&_typeFilter=Observation%3Fsubject%3DPatient%2Fother"
        "&_typeFilter=Patient%3F_id%3Dexample"
    )
    location = kick_off(api, f"/fhir/$export?{query}")
    run_worker(app)
    found = exported(api, location)
    assert set(found) == {"Observation", "Patient"}
    assert [o["subject"]["reference"] for o in found["Observation"]] == ["Patient/other"]
    assert [p["id"] for p in found["Patient"]] == ["example"]


def test_a_token_type_filter_with_a_date_prefix_selects_matching_resources(
    api: TestClient, app: FastAPI
) -> None:
    seed(api)
    query = "_typeFilter=" + "Observation%3Fcode%3Dhttp://loinc.org%7C72514-3%26date%3Dle2026-03-05"
    location = kick_off(api, f"/fhir/$export?_type=Observation&{query}")
    run_worker(app)
    found = exported(api, location)
    # Only the two daily pain reports (1 March); the session is on 10 March.
    assert {o["effectiveDateTime"][:10] for o in found["Observation"]} == {"2026-03-01"}
    assert len(found["Observation"]) == 2


def test_an_unsupported_type_filter_is_refused_unless_lenient_which_exports_the_whole_type(
    api: TestClient, app: FastAPI
) -> None:
    seed(api)
    query = "_type=Observation&_typeFilter=Observation%3Fvalue-quantity%3Dgt5"
    refused = api.get(f"/fhir/$export?{query}", headers=KICK_OFF)
    assert refused.status_code == 400
    assert "value-quantity" in refused.json()["issue"][0]["diagnostics"]
    location = kick_off(
        api, f"/fhir/$export?{query}", Prefer="respond-async; handling=lenient".replace(";", ",")
    )
    run_worker(app)
    assert len(exported(api, location)["Observation"]) == 8


def test_since_leaves_out_resources_not_changed_after_it(api: TestClient, app: FastAPI) -> None:
    seed(api)
    location = kick_off(api, "/fhir/$export?_since=2999-01-01T00:00:00Z")
    run_worker(app)
    assert manifest(api, location)["output"] == []
    bad = api.get("/fhir/$export?_since=yesterday", headers=KICK_OFF)
    assert bad.status_code == 400


def test_delete_cancels_the_job_and_removes_its_files(
    api: TestClient, app: FastAPI, export_env: Path
) -> None:
    seed(api)
    location = kick_off(api)
    run_worker(app)
    assert any(export_env.rglob("*.ndjson"))
    url = manifest(api, location)["output"][0]["url"]
    cancelled = api.delete(location)
    assert cancelled.status_code == 202
    assert not any(export_env.rglob("*.ndjson"))
    assert api.get(location).status_code == 404
    assert api.get(url).status_code == 404
    assert api.delete(location).status_code == 404


def test_a_cancelled_queued_job_is_never_run(api: TestClient, app: FastAPI) -> None:
    location = kick_off(api)
    assert api.delete(location).status_code == 202
    assert run_worker(app) == 0


def test_another_client_can_neither_poll_nor_download_nor_cancel(
    api: TestClient, app: FastAPI
) -> None:
    seed(api)
    location = kick_off(api)
    run_worker(app)
    url = manifest(api, location)["output"][0]["url"]
    app.dependency_overrides[current_client] = lambda: Client("someone-else", "default")
    try:
        assert api.get(location).status_code == 404
        assert api.get(url).status_code == 404
        assert api.delete(location).status_code == 404
    finally:
        app.dependency_overrides.clear()
    assert api.get(url).status_code == 200


def test_a_file_that_is_not_in_the_manifest_is_not_served(api: TestClient, app: FastAPI) -> None:
    seed(api)
    location = kick_off(api)
    run_worker(app)
    url = manifest(api, location)["output"][0]["url"]
    sibling = url.rsplit("/", 1)[0] + "/.Patient.1.001.ndjson.partial"
    assert api.get(sibling).status_code == 404


def test_a_failed_job_answers_500_with_an_operation_outcome(api: TestClient, app: FastAPI) -> None:
    location = kick_off(api)
    engine = app.state.engine
    with UnitOfWork(engine, write=True) as uow:
        claim = claim_next(uow.resources, "test-worker", LATER, timedelta(seconds=30))
        assert claim is not None
        jobs = ExportJobs(uow.resources)
        progress = jobs.load(claim.job_id).progress
        jobs.finish(claim, JobStatus.FAILED, progress, LATER, "the export failed")
        uow.commit()
    response = api.get(location)
    assert response.status_code == 500
    assert response.json()["issue"][0]["diagnostics"] == "the export failed"


def test_the_worker_started_with_the_app_runs_the_job_by_itself(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        seed(client)
        location = kick_off(client)
        deadline = time.monotonic() + 30
        while (response := client.get(location)).status_code == 202:
            assert time.monotonic() < deadline, "the export did not finish within 30 s"
            time.sleep(0.02)
        assert response.status_code == 200
        counts: dict[str, int] = {}
        for output in response.json()["output"]:
            counts[output["type"]] = counts.get(output["type"], 0) + output["count"]
        assert {t: counts.get(t) for t in SEEDED} == SEEDED
