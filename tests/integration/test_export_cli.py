"""`reptrend export --group|--organization --format ndjson|bundle` and `reptrend import`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from cli.export_import import add_export_import_parsers, run_export, run_import
from store.resource_store import Method, Write
from store.unit_of_work import UnitOfWork


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reptrend")
    add_export_import_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def database(engine: Engine, migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Clinic `north` manages p1 and p2, `south` p3; Group `cohort` has p1 and p3; each patient
    has one pain report."""
    monkeypatch.setenv("REPTREND_DATABASE_URL", migrated_url)
    bodies: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": "north"},
        {"resourceType": "Organization", "id": "south"},
    ]
    for patient_id, clinic in (("p1", "north"), ("p2", "north"), ("p3", "south")):
        bodies.append(
            {
                "resourceType": "Patient",
                "id": patient_id,
                "managingOrganization": {"reference": f"Organization/{clinic}"},
            }
        )
        bodies.append(
            {
                "resourceType": "Observation",
                "id": f"pain-{patient_id}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": "2026-03-01T20:00:00+01:00",
                "valueInteger": 2,
            }
        )
    bodies.append(
        {
            "resourceType": "Group",
            "id": "cohort",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": "Patient/p1"}},
                {"entity": {"reference": "Patient/p3"}},
            ],
        }
    )
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([Write(Method.UPDATE, b["resourceType"], b["id"], b) for b in bodies])
        uow.commit()
    return engine


def ndjson_ids(directory: Path, resource_type: str) -> set[str]:
    return {
        orjson.loads(line)["id"]
        for path in directory.glob(f"{resource_type}.*.ndjson")
        for line in path.read_bytes().splitlines()
    }


def test_export_of_an_organization_as_ndjson_holds_its_patients_compartments(
    database: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "north"
    assert run_export(parse("export", "--organization", "north", "--out", str(out))) == 0
    assert ndjson_ids(out, "Patient") == {"p1", "p2"}
    assert ndjson_ids(out, "Observation") == {"pain-p1", "pain-p2"}


def test_export_of_a_group_as_bundles_writes_one_collection_per_member(
    database: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "cohort"
    args = parse("export", "--group", "cohort", "--format", "bundle", "--out", str(out))
    assert run_export(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Patient-p1.json", "Patient-p3.json"]
    bundle = json.loads((out / "Patient-p3.json").read_text())
    assert bundle["type"] == "collection"
    found = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert found == {"Patient/p3", "Observation/pain-p3", "Group/cohort"}


def test_export_of_an_unknown_group_fails_with_a_message(
    database: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_export(parse("export", "--group", "nobody", "--out", str(tmp_path))) == 2
    assert "Group/nobody" in capsys.readouterr().err


def test_import_writes_files_and_reports_rejected_lines_with_their_outcome(
    database: Engine, tmp_path: Path
) -> None:
    good = tmp_path / "patients.ndjson"
    good.write_text(
        '{"resourceType": "Patient", "id": "n1"}\n'
        '{"resourceType": "Patient", "id": "n2", "birthDate": "soon"}\n'
    )
    report = tmp_path / "rejected.ndjson"
    args = parse("import", str(good), "--report", str(report))
    assert run_import(args) == 1
    (rejected,) = [orjson.loads(line) for line in report.read_bytes().splitlines()]
    assert (rejected["file"], rejected["line"]) == (str(good), 2)
    assert rejected["outcome"]["resourceType"] == "OperationOutcome"
    assert rejected["outcome"]["issue"][0]["expression"] == ["Patient.birthDate"]
    with UnitOfWork(database) as uow:
        assert uow.resources.read("Patient", "n1").version_id == 1
    # A second run has nothing left to do.
    assert run_import(args) == 0
    assert len(report.read_bytes().splitlines()) == 1


def test_import_of_a_missing_file_fails_before_touching_the_database(
    database: Engine, tmp_path: Path
) -> None:
    assert run_import(parse("import", str(tmp_path / "nope.ndjson"))) == 2
