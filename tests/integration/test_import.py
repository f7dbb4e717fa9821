"""Bulk import through the store's write path, on SQLite and PostgreSQL: batches, rejected
lines, resumption after a crash, and Bundles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from store.importer import Importer, Rejection, import_order
from store.unit_of_work import UnitOfWork
from tests.session_examples import example

NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


def patient(i: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{i}", "birthDate": "1970-01-01"}


def ndjson(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(
        b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)
    )
    return path


def versions(engine: Engine, resource_type: str, resource_id: str) -> int:
    with UnitOfWork(engine) as uow:
        return len(uow.resources.history(resource_type, resource_id))


def count(engine: Engine, resource_type: str) -> int:
    with UnitOfWork(engine) as uow:
        return uow.resources.count(resource_type)


def test_a_bad_line_is_reported_with_its_number_and_the_rest_of_its_batch_is_written(
    engine: Engine, tmp_path: Path
) -> None:
    rows: list[Any] = [patient(i) for i in range(1, 8)]
    rows[2] = b'{"resourceType": "Patient", "id": '  # line 3: not JSON
    rows[4] = {"resourceType": "Patient", "id": "p5", "birthDate": "yesterday"}  # line 5
    rows[5] = {"resourceType": "Spaceship", "id": "s1"}  # line 6
    rejected: list[Rejection] = []
    importer = Importer(
        engine, "default", batch_size=4, clock=lambda: NOW, on_reject=rejected.append
    )
    report = importer.import_file(ndjson(tmp_path / "patients.ndjson", rows))
    assert (report.items, report.written, report.rejected) == (7, 4, 3)
    assert [(r.line, r.error.code) for r in rejected] == [
        (3, "invalid"),
        (5, "invalid"),
        (6, "not-supported"),
    ]
    assert "birthDate" in (rejected[1].error.expression or "")
    assert count(engine, "Patient") == 4


def test_re_running_an_import_skips_what_was_committed(engine: Engine, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "patients.ndjson", [patient(i) for i in range(10)])
    first = Importer(engine, "default", batch_size=3).import_file(path)
    again = Importer(engine, "default", batch_size=3).import_file(path)
    assert (first.written, again.written, again.skipped) == (10, 0, 10)
    assert versions(engine, "Patient", "p0") == 1


def test_an_import_killed_part_way_resumes_after_the_last_committed_batch(
    engine: Engine, tmp_path: Path
) -> None:
    path = ndjson(tmp_path / "patients.ndjson", [patient(i) for i in range(10)])

    class Crash(Exception):
        pass

    def dies_once_two_batches_are_committed() -> datetime:
        if count(engine, "Patient") >= 8:
            raise Crash
        return NOW

    crashing = Importer(engine, "default", batch_size=4, clock=dies_once_two_batches_are_committed)
    with pytest.raises(Crash):
        crashing.import_file(path)
    assert count(engine, "Patient") == 8
    resumed = Importer(engine, "default", batch_size=4).import_file(path)
    assert (resumed.skipped, resumed.written) == (8, 2)
    assert count(engine, "Patient") == 10
    # Exactly once: no resource was written twice.
    assert all(versions(engine, "Patient", f"p{i}") == 1 for i in range(10))


def test_restart_forgets_progress_and_writes_again(engine: Engine, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "patients.ndjson", [patient(1)])
    Importer(engine, "default").import_file(path)
    report = Importer(engine, "default").import_file(path, restart=True)
    assert report.written == 1
    assert versions(engine, "Patient", "p1") == 2


def test_a_line_without_an_id_is_created_with_a_new_one(engine: Engine, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "p.ndjson", [{"resourceType": "Patient", "gender": "male"}])
    assert Importer(engine, "default").import_file(path).written == 1
    assert count(engine, "Patient") == 1


def test_a_transaction_bundle_is_all_or_nothing(engine: Engine, tmp_path: Path) -> None:
    session = example("session-transaction.json")
    good = tmp_path / "session.json"
    good.write_text(json.dumps(session))
    report = Importer(engine, "default").import_file(good)
    assert (report.written, report.rejected) == (7, 0)

    broken = json.loads(json.dumps(session))
    broken["entry"][3]["resource"]["valueInteger"] = 11
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    rejected: list[Rejection] = []
    report = Importer(engine, "default", on_reject=rejected.append).import_file(bad)
    assert (report.written, report.rejected) == (0, 1)
    assert (rejected[0].where, rejected[0].error.code) == ("the transaction Bundle", "invalid")
    assert count(engine, "Procedure") == 1


def test_a_collection_bundle_is_imported_entry_by_entry_referenced_types_first(
    engine: Engine, tmp_path: Path
) -> None:
    procedure = {
        "resourceType": "Procedure",
        "id": "s1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "229065009"}]},
        "performedDateTime": "2026-03-10T08:00:00+01:00",
    }
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
        "subject": {"reference": "Patient/p1"},
        "partOf": [{"reference": "Procedure/s1"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": observation},
            {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "not a date"}},
            {"resource": procedure},
        ],
    }
    path = tmp_path / "collection.json"
    path.write_text(json.dumps(bundle))
    rejected: list[Rejection] = []
    report = Importer(engine, "default", batch_size=10, on_reject=rejected.append).import_file(path)
    assert (report.written, report.rejected) == (2, 1)
    assert [r.where for r in rejected] == ["Bundle.entry[1]"]
    assert count(engine, "Observation") == 1


def test_files_are_imported_referenced_types_first(tmp_path: Path) -> None:
    observations = ndjson(tmp_path / "a.ndjson", [{"resourceType": "Observation"}])
    procedures = ndjson(tmp_path / "b.ndjson", [{"resourceType": "Procedure"}])
    patients = ndjson(tmp_path / "c.ndjson", [{"resourceType": "Patient"}])
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}")
    assert import_order([bundle, observations, procedures, patients]) == [
        patients,
        procedures,
        observations,
        bundle,
    ]
