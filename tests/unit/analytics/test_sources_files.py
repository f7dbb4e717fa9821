"""analytics.sources on files: a directory of fact files (Parquet or NDJSON) and a FHIR bulk
export (NDJSON), no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from analytics.cohorts import Cohort
from analytics.facts import (
    KEYED_REPETITION_SCHEMA,
    KEYED_SESSION_SCHEMA,
    REPETITION_SCHEMA,
    SESSION_SCHEMA,
)
from analytics.report import cohort_report
from analytics.sources import STAR_SESSION, SourceNotFound, read_source
from domain.pain_response import Repetition
from domain.protocols import CATALOG, StopRuleMode
from store.protocol_catalog import with_parameters
from tests.unit.analytics import fhir
from tests.unit.analytics.builders import (
    EXTENSION,
    FLEXION,
    ROCKING,
    Session,
    Tenant,
    at,
    repetition_frame,
    reps,
    session_frame,
)


def _write_facts(directory: Path, suffix: str) -> None:
    sessions = [
        Session("s1", "p1", FLEXION, at(0), reps(1, 2, 3)),
        Session("s9", "p9", FLEXION, at(0), reps(4)),
    ]
    session_rows = session_frame(sessions).with_columns(tenant=pl.Series(["mine", "theirs"]))
    rep_rows = repetition_frame(sessions).with_columns(
        tenant=pl.Series(["mine"] * 3 + ["theirs"]),
        # What an export of the table holds besides what analytics reads.
        observation_id=pl.Series(["o1", "o2", "o3", "o9"]),
    )
    if suffix == "parquet":
        session_rows.write_parquet(directory / "exercise_session.parquet")
        rep_rows.write_parquet(directory / "session_fact.parquet")
    else:
        session_rows.write_ndjson(directory / "exercise_session.ndjson")
        rep_rows.write_ndjson(directory / "session_fact.ndjson")


@pytest.mark.parametrize("suffix", ["parquet", "ndjson"])
def test_fact_files_are_read_for_one_tenant_in_the_fact_schemas(
    tmp_path: Path, suffix: str
) -> None:
    _write_facts(tmp_path, suffix)
    facts = read_source(str(tmp_path), "mine")
    sessions = facts.sessions.collect()
    assert sessions.schema == SESSION_SCHEMA
    assert sessions["procedure_id"].to_list() == ["s1"]
    assert sessions["started_at"].to_list() == [datetime(2026, 3, 2, 7, 0, tzinfo=UTC)]
    repetitions = facts.repetitions.collect()
    assert repetitions.schema == REPETITION_SCHEMA
    assert repetitions["pain"].to_list() == [1, 2, 3]
    assert facts.patients.collect().height == 0  # absent files are empty frames


def _star_tenant() -> Tenant:
    """Sessions on the fast path, on the general path (a gap, rows out of order, a repeated
    index), without repetitions, with faults and distances, over two tenants' worth of ids."""
    gap = (Repetition(1, 2), Repetition(3, 4), Repetition(4, 5))
    doubled = (Repetition(1, 1), Repetition(2, 3), Repetition(2, 6), Repetition(3, 2))
    faulty = (
        Repetition(1, 3, distance_cm=40.0, form_faults=("head-raised",)),
        Repetition(2, 2, distance_cm=38.0),
        Repetition(3, 1, distance_cm=35.0, peripheral_symptoms=False),
    )
    sessions = [
        Session("a1", "ann", FLEXION, at(0), reps(1, 2, 3, 4, 5), at(0, 8, 3)),
        Session("x1", "ann", EXTENSION, at(0, 8, 5)),
        Session("a2", "ann", FLEXION, at(2), gap, row_order=(2, 0, 1)),
        Session("a3", "ann", FLEXION, at(9), faulty),
        Session("b1", "bob", FLEXION, at(1), doubled),
        Session("b2", "bob", ROCKING, at(1, 9), reps(0, 0, 1)),
        Session("b3", "bob", FLEXION, at(3), reps(*([1] * 18))),
    ]
    return Tenant(
        sessions=sessions,
        pain_reports=[("ann", at(-k).date(), k % 3) for k in range(12)],
        patients=[("ann", "c1"), ("bob", "c2"), ("cy", "c1")],
        group_members=[("g", "ann")],
        prescriptions=[("ann", FLEXION), ("bob", FLEXION), ("cy", FLEXION)],
    )


def _write_tenant(directory: Path, tenant: Tenant, star: bool) -> None:
    facts = tenant.facts()
    sessions = facts.sessions.collect()
    repetitions = facts.repetitions.collect()
    if star:
        numbers = sessions.select("procedure_id").with_row_index(STAR_SESSION)
        repetitions = repetitions.join(
            numbers, on="procedure_id", how="left", maintain_order="left"
        )
        repetitions = repetitions.drop("procedure_id")
    sessions.write_parquet(directory / "exercise_session.parquet")
    repetitions.write_parquet(directory / "session_fact.parquet")
    facts.pain_reports.collect().write_parquet(directory / "pain_report.parquet")
    facts.patients.collect().write_parquet(directory / "patient.parquet")
    facts.group_members.collect().write_parquet(directory / "group_member.parquet")
    facts.prescriptions.collect().write_parquet(directory / "prescription.parquet")


def test_the_star_layout_numbers_sessions_by_their_row(tmp_path: Path) -> None:
    _write_tenant(tmp_path, _star_tenant(), star=True)
    facts = read_source(str(tmp_path), "default")
    sessions = facts.sessions.collect()
    repetitions = facts.repetitions.collect()
    assert sessions.schema == KEYED_SESSION_SCHEMA
    assert repetitions.schema == KEYED_REPETITION_SCHEMA
    number = dict(sessions.select("procedure_id", "session_key").iter_rows())
    assert repetitions.filter(pl.col("session_key") == number["a2"])["pain"].to_list() == [5, 2, 4]


def _regular_star_tenant() -> Tenant:
    """`_star_tenant` without the sessions off the fast path: the whole tenant's figures then
    come in session order and meet the sessions without a hash join."""
    tenant = _star_tenant()
    tenant.sessions = [s for s in tenant.sessions if s.procedure_id not in ("a2", "b1", "b3")]
    return tenant


@pytest.mark.parametrize("make_tenant", [_star_tenant, _regular_star_tenant])
@pytest.mark.parametrize(
    "cohort", [Cohort(), Cohort(organization="c1"), Cohort(protocol=ROCKING)], ids=str
)
def test_the_star_layout_gives_the_report_of_the_table_layout(
    tmp_path: Path, cohort: Cohort, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    (tmp_path / "table").mkdir()
    (tmp_path / "star").mkdir()
    _write_tenant(tmp_path / "table", tenant, star=False)
    _write_tenant(tmp_path / "star", tenant, star=True)
    as_of = date(2026, 3, 30)
    table = cohort_report(read_source(str(tmp_path / "table"), "default"), cohort, as_of)
    star = cohort_report(read_source(str(tmp_path / "star"), "default"), cohort, as_of)
    assert star.summary == table.summary
    assert star.patients.equals(table.patients)
    assert table.summary["cohort"]["patients"] >= 1


def _export(directory: Path, *resources: dict[str, object]) -> None:
    by_type: dict[str, list[bytes]] = {}
    for resource in resources:
        by_type.setdefault(str(resource["resourceType"]), []).append(orjson.dumps(resource))
    for resource_type, lines in by_type.items():
        (directory / f"{resource_type}_1.ndjson").write_bytes(b"\n".join(lines) + b"\n")


def test_a_fhir_export_gives_the_facts_ingest_would_have_stored(tmp_path: Path) -> None:
    voided = fhir.procedure("s-void", "p1", FLEXION, "2026-03-11T08:00:00+01:00")
    voided["status"] = "entered-in-error"
    _export(
        tmp_path,
        fhir.patient("p1", "clinic-a"),
        fhir.group("g1", ["p1"]),
        fhir.prescription("rx", "p1", FLEXION),
        *(
            entry["resource"]
            for entry in fhir.session("s1", "p1", FLEXION, "2026-03-10T23:30:00-05:00", [2, 3, 4])
        ),
        fhir.compact("s2-c", "p1", "s2", [1, 0, 0], "2026-03-12T08:00:00+01:00"),
        fhir.procedure("s2", "p1", "rocking-knees-to-chest", "2026-03-12T08:00:00+01:00"),
        voided,
        fhir.pain_report("d1", "p1", "2026-03-09T21:00:00+01:00", 3),
        with_parameters(CATALOG[FLEXION], stop_rule_mode=StopRuleMode.STRICT),
    )
    facts = read_source(str(tmp_path), "ignored: an export is one tenant's")
    sessions = facts.sessions.collect().sort("procedure_id")
    assert sessions.select("procedure_id", "local_date").rows() == [
        ("s1", date(2026, 3, 10)),
        ("s2", date(2026, 3, 12)),
    ]
    assert sorted(facts.repetitions.collect().select("procedure_id", "pain").rows()) == [
        ("s1", 2),
        ("s1", 3),
        ("s1", 4),
        ("s2", 0),
        ("s2", 0),
        ("s2", 1),
    ]
    assert facts.pain_reports.collect().rows() == [("p1", date(2026, 3, 9), 3)]
    assert facts.patients.collect().rows() == [("p1", "clinic-a")]
    assert facts.group_members.collect().rows() == [("g1", "p1")]
    assert facts.prescriptions.collect().rows() == [("p1", FLEXION, None)]
    assert facts.parameters[FLEXION].stop_rule_mode is StopRuleMode.STRICT


def test_a_source_that_is_neither_a_url_nor_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound, match="neither a database URL nor a directory"):
        read_source(str(tmp_path / "missing"), "default")
