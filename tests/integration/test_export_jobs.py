"""Export jobs on SQLite and PostgreSQL: the worker, what a file holds, and what survives a crash.

The crash tests kill a forked worker process with os._exit (no cleanup, no finally blocks:
what SIGKILL does) at a chosen point, then let a new worker take the job over once its lease
has expired (its clock runs ahead instead of the test sleeping).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from api.export_worker import (
    Checkpoint,
    ExportConfig,
    ExportWorker,
    job_directory,
    remove_job_files,
)
from store.database import create_engine
from store.export_jobs import ExportJob, ExportJobs, ExportLevel, ExportRequest, JobStatus
from store.export_writer import Selection, export_selection
from store.resource_store import Method, Write, utc_now
from store.search_params import SUPPORTED_TYPES
from store.unit_of_work import UnitOfWork

LEASE = 30.0
SMALL_FILES = 600
KICK_OFF = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


def _at(moment: datetime) -> Any:
    return lambda: moment


def put(engine: Engine, *bodies: dict[str, Any], at: datetime = KICK_OFF) -> None:
    with UnitOfWork(engine, write=True, clock=_at(at - timedelta(hours=1))) as uow:
        uow.resources.write([Write(Method.UPDATE, b["resourceType"], b["id"], b) for b in bodies])
        uow.commit()


def patients(count: int) -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": f"p{i:03d}", "name": [{"family": f"Family{i:03d}"}]}
        for i in range(count)
    ]


def practitioners(count: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Practitioner", "id": f"d{i:03d}"} for i in range(count)]


def queue(engine: Engine, types: tuple[str, ...], client: str = "c") -> ExportJob:
    request = ExportRequest(ExportLevel.SYSTEM, types, "http://test/fhir/$export")
    with UnitOfWork(engine, write=True) as uow:
        job = ExportJobs(uow.resources).create(client, request, KICK_OFF)
        uow.commit()
    return job


def load(engine: Engine, job: ExportJob) -> ExportJob:
    with UnitOfWork(engine) as uow:
        return ExportJobs(uow.resources).load(job.id)


def config(tmp_path: Path) -> ExportConfig:
    return ExportConfig(tmp_path / "exports", SMALL_FILES, LEASE)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def assert_complete_and_exact(engine: Engine, job: ExportJob, directory: Path) -> None:
    """Every listed file is whole (its count of parseable lines) and nothing else is there."""
    job = load(engine, job)
    assert job.status is JobStatus.COMPLETED
    listed = {f.name for f in job.progress.files}
    assert {p.name for p in directory.iterdir()} == listed
    totals: dict[str, int] = {}
    for exported in job.progress.files:
        found = lines(directory / exported.name)
        assert len(found) == exported.count
        assert {r["resourceType"] for r in found} == {exported.type}
        totals[exported.type] = totals.get(exported.type, 0) + exported.count
    with UnitOfWork(engine) as uow:
        expected = {t: uow.resources.count(t) for t in job.request.types}
    assert totals == {t: n for t, n in expected.items() if n}


def test_a_job_exports_every_type_into_files_no_larger_than_the_limit(
    engine: Engine, tmp_path: Path
) -> None:
    put(engine, *patients(12), *practitioners(5))
    job = queue(engine, ("Patient", "Practitioner"))
    worker = ExportWorker(engine, config(tmp_path))
    assert worker.run_pending() == 1
    directory = job_directory(worker.config, "default", job.id)
    assert_complete_and_exact(engine, job, directory)
    assert all(p.stat().st_size <= SMALL_FILES for p in directory.iterdir())
    assert len(load(engine, job).progress.files) > 2


def test_exported_lines_are_the_stored_resources_byte_for_byte_in_meaning(
    engine: Engine, tmp_path: Path
) -> None:
    tricky = 'back\\slash "quoted" new\nline\ttab \u0001 \u00e9 \U0001f600 \u2028'
    body = {"resourceType": "Patient", "id": "odd", "name": [{"text": tricky}]}
    put(engine, body)
    selection = Selection(tenant="default", type="Patient", until=KICK_OFF)
    (exported,) = export_selection(engine, selection, tmp_path, "Patient", 1 << 20)
    (line,) = lines(tmp_path / exported.name)
    with UnitOfWork(engine) as uow:
        assert line == uow.resources.read("Patient", "odd").body
    assert line["name"][0]["text"] == tricky


def test_the_export_is_the_state_at_its_transaction_time(engine: Engine, tmp_path: Path) -> None:
    put(engine, *patients(3))
    job = queue(engine, ("Patient",))
    after = KICK_OFF + timedelta(minutes=5)
    changed = {"resourceType": "Patient", "id": "p000", "name": [{"family": "Changed"}]}
    put(engine, changed, at=after + timedelta(hours=1))
    put(engine, {"resourceType": "Patient", "id": "late"}, at=after + timedelta(hours=1))
    with UnitOfWork(engine, write=True, clock=_at(after)) as uow:
        uow.resources.write([Write(Method.DELETE, "Patient", "p001")])
        uow.commit()
    worker = ExportWorker(engine, config(tmp_path))
    worker.run_pending()
    directory = job_directory(worker.config, "default", job.id)
    found = {
        r["id"]: r for f in load(engine, job).progress.files for r in lines(directory / f.name)
    }
    # As they were at kick-off: p000 unchanged, p001 not yet deleted, `late` not yet there.
    assert sorted(found) == ["p000", "p001", "p002"]
    assert found["p000"]["name"] == [{"family": "Family000"}]
    assert found["p000"]["meta"]["versionId"] == "1"


def _crashing_worker(url: str, directory: str, crash_on: tuple[str, str]) -> None:
    def checkpoint(event: str, detail: str) -> None:
        if (event, detail) == crash_on:
            os._exit(137)  # like SIGKILL: no cleanup, no finally

    engine = create_engine(url)
    worker = ExportWorker(
        engine, ExportConfig(Path(directory), SMALL_FILES, LEASE), checkpoint=checkpoint
    )
    worker.run_pending()
    os._exit(0)


def run_until_crash(url: str, tmp_path: Path, crash_on: tuple[str, str]) -> int | None:
    child = multiprocessing.get_context("fork").Process(
        target=_crashing_worker, args=(url, str(tmp_path / "exports"), crash_on)
    )
    child.start()
    child.join(60)
    return child.exitcode


@pytest.fixture
def crash_url(migrated_url: str, engine: Engine) -> Iterator[str]:
    put(engine, *patients(12), *practitioners(12))
    engine.dispose()  # the forked child must not share pooled connections
    yield migrated_url


def test_a_worker_killed_mid_export_leaves_a_job_that_a_restart_completes_exactly(
    crash_url: str, engine: Engine, tmp_path: Path
) -> None:
    job = queue(engine, ("Patient", "Practitioner"))
    engine.dispose()
    # Killed after Patient is recorded and the second Practitioner file is renamed but not
    # recorded: the job still says running, Practitioner has unlisted files on disk.
    assert run_until_crash(crash_url, tmp_path, ("file", "Practitioner.1.002.ndjson")) == 137
    crashed = load(engine, job)
    assert crashed.status is JobStatus.RUNNING
    assert crashed.progress.done_types == ("Patient",)
    directory = job_directory(config(tmp_path), "default", job.id)
    on_disk = {p.name for p in directory.iterdir()}
    assert {"Practitioner.1.001.ndjson", "Practitioner.1.002.ndjson"} <= on_disk
    # What a kill in the middle of a write leaves: a truncated file under a temporary name.
    (directory / ".Practitioner.1.003.ndjson.partial").write_bytes(b'{"resourceType": "Pra')

    # Within the lease nobody takes the job over; after it, a new worker does.
    assert ExportWorker(engine, config(tmp_path), clock=_at(utc_now())).run_pending() == 0
    later = _at(utc_now() + timedelta(seconds=LEASE * 2))
    assert ExportWorker(engine, config(tmp_path), clock=later).run_pending() == 1
    done = load(engine, job)
    assert done.attempts == 2
    names = [f.name for f in done.progress.files]
    assert all(n.startswith("Patient.1.") for n in names if n.startswith("Patient"))
    assert all(n.startswith("Practitioner.2.") for n in names if n.startswith("Practitioner"))
    assert_complete_and_exact(engine, job, directory)


def test_a_worker_killed_before_recording_its_first_type_restarts_the_job(
    crash_url: str, engine: Engine, tmp_path: Path
) -> None:
    job = queue(engine, ("Patient", "Practitioner"))
    engine.dispose()
    assert run_until_crash(crash_url, tmp_path, ("file", "Patient.1.001.ndjson")) == 137
    assert load(engine, job).progress.files == ()
    later = _at(utc_now() + timedelta(seconds=LEASE * 2))
    ExportWorker(engine, config(tmp_path), clock=later).run_pending()
    assert_complete_and_exact(engine, job, job_directory(config(tmp_path), "default", job.id))


def test_a_stopping_worker_puts_its_job_back_and_the_next_one_resumes_it(
    engine: Engine, tmp_path: Path
) -> None:
    put(engine, *patients(5), *practitioners(5))
    job = queue(engine, ("Patient", "Practitioner"))

    def stop_after_first_type(event: str, _detail: str) -> None:
        if event == "type":
            first.request_stop()

    checkpoint: Checkpoint = stop_after_first_type
    first = ExportWorker(engine, config(tmp_path), checkpoint=checkpoint)
    first.run_pending()
    released = load(engine, job)
    assert (released.status, released.progress.done_types) == (JobStatus.QUEUED, ("Patient",))
    ExportWorker(engine, config(tmp_path)).run_pending()
    done = load(engine, job)
    names = [f.name for f in done.progress.files]
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in names} == {
        "Patient.1",
        "Practitioner.2",
    }
    assert_complete_and_exact(engine, job, job_directory(config(tmp_path), "default", job.id))


def test_cancelling_a_running_job_stops_it_and_leaves_no_files(
    engine: Engine, tmp_path: Path
) -> None:
    put(engine, *patients(5), *practitioners(5))
    job = queue(engine, ("Patient", "Practitioner"))

    def cancel_after_first_type(event: str, _detail: str) -> None:
        if event == "type":
            with UnitOfWork(engine, write=True) as uow:
                ExportJobs(uow.resources).cancel(job.id, "c", KICK_OFF)
                uow.commit()

    ExportWorker(engine, config(tmp_path), checkpoint=cancel_after_first_type).run_pending()
    assert load(engine, job).status is JobStatus.CANCELLED
    assert not job_directory(config(tmp_path), "default", job.id).exists()


def test_a_cancel_that_deletes_the_files_under_the_writer_is_not_a_failure(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    put(engine, *patients(12))
    job = queue(engine, ("Patient",))

    def cancel_like_the_api_after_the_first_file(event: str, _detail: str) -> None:
        if event == "file":
            with UnitOfWork(engine, write=True) as uow:
                ExportJobs(uow.resources).cancel(job.id, "c", KICK_OFF)
                uow.commit()
            remove_job_files(config(tmp_path), "default", job.id)

    checkpoint: Checkpoint = cancel_like_the_api_after_the_first_file
    ExportWorker(engine, config(tmp_path), checkpoint=checkpoint).run_pending()
    cancelled = load(engine, job)
    assert (cancelled.status, cancelled.error) == (JobStatus.CANCELLED, None)
    assert not job_directory(config(tmp_path), "default", job.id).exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_jobs_are_per_tenant_and_per_client(engine: Engine) -> None:
    job = queue(engine, ("Patient",), client="alice")
    with UnitOfWork(engine, "other-clinic") as uow, pytest.raises(Exception, match="not known"):
        ExportJobs(uow.resources).get(job.id, "alice")
    with UnitOfWork(engine) as uow:
        with pytest.raises(Exception, match="not known"):
            ExportJobs(uow.resources).get(job.id, "bob")
        assert ExportJobs(uow.resources).get(job.id, "alice").id == job.id


def test_every_supported_type_can_be_exported(engine: Engine, tmp_path: Path) -> None:
    put(engine, *patients(2))
    job = queue(engine, tuple(sorted(SUPPORTED_TYPES)))
    worker = ExportWorker(engine, config(tmp_path))
    worker.run_pending()
    assert_complete_and_exact(engine, job, job_directory(worker.config, "default", job.id))
