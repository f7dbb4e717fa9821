"""GET /analytics/cohorts/report(.csv) on a slice of the demo data, as of its anchor day, and
`reptrend report` on the same data giving the same numbers.

The slice (one patient per flexion-in-lying status, plus knee rocking) is posted once per
backend through the write path clients use, in a database of this module's own.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from analytics.report import PATIENT_TABLE_COLUMNS
from analytics.sources import SourceNotFound, read_directory
from api.analytics.clinical_routes import today
from api.app import create_app
from api.settings import Settings
from cli.demo_data import demo_bundles, demo_patients, expected_statuses
from cli.demo_loader import load_bundles
from cli.export_import import add_export_import_parsers, run_export
from cli.report import add_report_parser, run_report
from store.database import create_engine
from store.schema import upgrade
from tests.conftest import scratch_postgres_schema

ANCHOR = date(2026, 11, 21)
ROCKING = "rocking-knees-to-chest"


def _chosen() -> dict[str, str | None]:
    """Patient id -> intended flexion-in-lying status: the first patient of each status, and
    the first knee-rocking patient (None: another protocol)."""
    expected = expected_statuses(ANCHOR)
    chosen: dict[str, str | None] = {}
    for p in demo_patients():
        status = expected.get(p.id)
        if status is not None and status not in chosen.values():
            chosen[p.id] = status
        elif p.scenario.protocol == ROCKING and ROCKING not in {
            demo.scenario.protocol for demo in demo_patients() if demo.id in chosen
        }:
            chosen[p.id] = None
    return chosen


CHOSEN = _chosen()


def _owner(bundle: dict[str, Any]) -> str | None:
    first = bundle["entry"][0]["resource"]
    if first["resourceType"] in ("Organization", "Group"):
        return None
    return "-".join(first["id"].split("-")[:2])


@functools.cache
def _slice() -> tuple[dict[str, Any], ...]:
    """The organizations, the chosen patients' Bundles and the clinic Groups."""
    return tuple(b for b in demo_bundles(ANCHOR) if _owner(b) in (None, *CHOSEN))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def demo_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('cohort') / 'reptrend.db'}"
        else:
            url = stack.enter_context(scratch_postgres_schema())
        upgrade(url)
        engine = create_engine(url)
        load_bundles(engine, "default", _slice())
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def api(demo_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=demo_url))
    app.dependency_overrides[today] = lambda: ANCHOR
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def report(api: TestClient) -> dict[str, Any]:
    response = api.get("/analytics/cohorts/report", params={"as_of": ANCHOR.isoformat()})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_patients_are_counted_by_the_status_their_scenario_intends(report: dict[str, Any]) -> None:
    intended = Counter(status for status in CHOSEN.values() if status is not None)
    assert report["patients_by_status"] == {
        status: intended.get(status, 0) for status in report["patients_by_status"]
    }
    assert set(intended) == set(expected_statuses(ANCHOR).values())  # every status is there
    assert report["cohort"]["patients"] == len(CHOSEN)


def test_the_report_carries_every_section_7_metric(report: dict[str, Any]) -> None:
    assert set(report["sessions_by_response"]) == {
        "insufficient",
        "worsening",
        "pain-free",
        "wears-off",
        "no-change",
        "fluctuating",
    }
    assert report["sessions_by_response"]["worsening"] >= 1
    curve = report["pain_per_repetition"]
    assert {point["week"] for point in curve} >= {0, 1}
    assert all(0 <= point["mean_pain"] <= 10 and 0 <= point["median_pain"] <= 10 for point in curve)
    assert report["slope_by_week"] and report["responses_by_week"]
    assert report["hold_to_resume_days"]["episodes"] >= 1  # the resumed patient
    for name in (
        "retry_success",
        "premature_retry",
        "retry_overdue",
        "extension_adherence",
        "started_before_ready",
        "progression",
    ):
        share = report[name]
        assert 0 <= share["count"] <= share["of"], name
    assert report["retry_overdue"] == {"count": 1, "of": 3, "rate": 1 / 3}
    assert report["dosage_adherence"]["sessions"]["of"] > 0
    assert report["form_faults"]["sessions"]["of"] == sum(report["sessions_by_response"].values())
    outcome = report["pain_outcome"]
    assert outcome["patients"] >= 1 and outcome["responders"]["of"] == outcome["patients"]


def test_a_clinic_and_its_group_are_the_same_cohort(api: TestClient) -> None:
    clinic = next(p.clinic.id for p in demo_patients() if p.id in CHOSEN)
    members = {p.id for p in demo_patients() if p.id in CHOSEN and p.clinic.id == clinic}
    by_clinic = api.get("/analytics/cohorts/report", params={"organization": clinic}).json()
    by_group = api.get("/analytics/cohorts/report", params={"group": f"{clinic}-patients"}).json()
    assert by_clinic["cohort"]["patients"] == len(members)
    assert {k: v for k, v in by_clinic.items() if k != "cohort"} == {
        k: v for k, v in by_group.items() if k != "cohort"
    }


@pytest.mark.parametrize(
    "path",
    ["/analytics/cohorts/report", "/analytics/cohorts/report.csv", "/dashboard/api/worklist"],
)
@pytest.mark.parametrize("parameter", ["group", "organization"])
def test_an_unknown_group_or_clinic_is_a_400_naming_it_not_an_empty_cohort(
    api: TestClient, path: str, parameter: str
) -> None:
    response = api.get(path, params={parameter: "no-such-id"})
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == [parameter] and "no-such-id" in issue["diagnostics"]


def test_a_clinic_known_only_from_its_patients_is_a_cohort(api: TestClient) -> None:
    # A Patient may name an Organization the records do not hold: that clinic is known.
    patient = {
        "resourceType": "Patient",
        "id": "unstored-clinic-patient",
        "managingOrganization": {"reference": "Organization/unstored-clinic"},
    }
    assert api.put(f"/fhir/Patient/{patient['id']}", json=patient).status_code == 201
    try:
        report = api.get("/analytics/cohorts/report", params={"organization": "unstored-clinic"})
        assert report.status_code == 200, report.text
        assert report.json()["cohort"]["patients"] == 1
    finally:
        api.delete(f"/fhir/Patient/{patient['id']}")


def test_a_protocol_cohort_counts_only_that_protocol(api: TestClient) -> None:
    rocking = api.get("/analytics/cohorts/report", params={"protocol": ROCKING}).json()
    assert rocking["cohort"]["patients"] == 1
    assert [p["protocol"] for p in rocking["protocols"]] == [ROCKING]
    assert rocking["patients_by_status"]["active"] == 0  # knee rocking has no stop rule


def test_a_start_month_without_starters_is_an_empty_cohort(api: TestClient) -> None:
    body = api.get("/analytics/cohorts/report", params={"start_month": "2020-01"}).json()
    assert body["cohort"]["patients"] == 0
    assert sum(body["sessions_by_response"].values()) == 0


def test_an_unknown_protocol_or_a_bad_month_is_a_400_operation_outcome(api: TestClient) -> None:
    unknown = api.get("/analytics/cohorts/report", params={"protocol": "yoga"})
    assert unknown.status_code == 400
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert (
        api.get("/analytics/cohorts/report", params={"start_month": "2026-13"}).status_code == 400
    )


def test_as_of_defaults_to_today(api: TestClient, report: dict[str, Any]) -> None:
    assert api.get("/analytics/cohorts/report").json() == report


def test_the_csv_is_the_patient_table_one_row_per_patient_and_protocol(api: TestClient) -> None:
    response = api.get("/analytics/cohorts/report.csv", params={"as_of": ANCHOR.isoformat()})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(rows[0]) == PATIENT_TABLE_COLUMNS
    flexion = {r["patient_id"]: r["status"] for r in rows if r["protocol"] == "flexion-in-lying"}
    assert flexion == {pid: status for pid, status in CHOSEN.items() if status is not None}


def test_the_report_is_described_in_openapi(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    schema = paths["/analytics/cohorts/report"]["get"]["responses"]["200"]["content"]
    assert schema["application/json"]["schema"]["$ref"].endswith("CohortReportResponse")
    assert "/analytics/cohorts/report.csv" in paths


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="reptrend")
    add_report_parser(parser.add_subparsers(dest="command"))
    return run_report(parser.parse_args(["report", *argv]))


def test_the_report_command_gives_the_endpoints_numbers_from_the_database(
    demo_url: str, report: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    assert _cli("--source", demo_url, "--as-of", ANCHOR.isoformat(), "--output", str(out)) == 0
    assert json.loads(out.read_text()) == report


def test_the_report_command_gives_the_same_numbers_from_a_fhir_export(
    demo_url: str, report: dict[str, Any], tmp_path: Path
) -> None:
    if not demo_url.startswith("sqlite"):
        pytest.skip("the files are the same whatever the database: once is enough")
    by_type: dict[str, list[bytes]] = {}
    for bundle in _slice():
        for entry in bundle["entry"]:
            resource = entry["resource"]
            by_type.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    export = tmp_path / "export"
    export.mkdir()
    for resource_type, lines in by_type.items():
        (export / f"{resource_type}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "report.json"
    assert _cli("--source", str(export), "--as-of", ANCHOR.isoformat(), "--output", str(out)) == 0
    assert json.loads(out.read_text()) == report


def test_the_report_command_reads_the_export_commands_own_files(
    demo_url: str, api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `reptrend export` names its files `Type.001.ndjson` (the bulk API `Type.1.001.ndjson`):
    # the report reads them as they come, not only hand-named `Type.ndjson`.
    clinic = next(p.clinic.id for p in demo_patients() if p.id in CHOSEN)
    monkeypatch.setenv("REPTREND_DATABASE_URL", demo_url)
    export = tmp_path / "export"
    parser = argparse.ArgumentParser(prog="reptrend")
    add_export_import_parsers(parser.add_subparsers(dest="command"))
    assert (
        run_export(parser.parse_args(["export", "--organization", clinic, "--out", str(export)]))
        == 0
    )
    assert not list(export.glob("*/")) and list(export.glob("Procedure.*.ndjson"))
    out = tmp_path / "report.json"
    cohort = f"organization={clinic}"
    argv = ["--source", str(export), "--cohort", cohort, "--as-of", ANCHOR.isoformat()]
    assert _cli(*argv, "--output", str(out)) == 0
    expected = api.get(
        "/analytics/cohorts/report", params={"organization": clinic, "as_of": ANCHOR.isoformat()}
    ).json()
    assert expected["cohort"]["patients"] > 0
    assert json.loads(out.read_text()) == expected


def test_a_directory_with_neither_fact_files_nor_fhir_ndjson_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a report source")
    with pytest.raises(SourceNotFound, match="no fact files and no FHIR NDJSON"):
        read_directory(tmp_path, "default")


def test_the_html_report_is_one_page_with_the_curve_drawn_inline(
    demo_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert (
        _cli(
            "--source",
            demo_url,
            "--as-of",
            ANCHOR.isoformat(),
            "--format",
            "html",
            "--output",
            str(out),
        )
        == 0
    )
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "<polyline" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert 'src="' not in page and "<link" not in page  # no asset from anywhere else
