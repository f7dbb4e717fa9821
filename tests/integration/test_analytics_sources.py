"""analytics.sources reads back, for one tenant, what the store's write path wrote: on SQLite and
on PostgreSQL (through ADBC), in the frames every metric reads (`analytics.facts`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.facts import (
    GROUP_MEMBER_SCHEMA,
    PAIN_REPORT_SCHEMA,
    PATIENT_SCHEMA,
    PRESCRIPTION_SCHEMA,
    REPETITION_SCHEMA,
    SESSION_SCHEMA,
)
from analytics.sources import read_database, read_source
from domain.protocols import CATALOG, StopRuleMode
from store.bundles import process_transaction
from store.protocol_catalog import with_parameters
from store.unit_of_work import UnitOfWork
from tests.unit.analytics import fhir

CLINIC = "clinic-a"


def _post(engine: Engine, tenant: str, *entries: dict[str, object]) -> None:
    with UnitOfWork(engine, tenant, write=True) as uow:
        process_transaction(uow.resources, fhir.transaction(*entries))
        uow.commit()


def forget_figures(engine: Engine) -> None:
    """As a database migrated to 0006 and not backfilled: no session has figures, so the
    source reads every rated repetition."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE exercise_session SET rated_repetitions = NULL, pain_code = NULL, "
                "repetition_counts = NULL"
            )
        )


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    _post(
        engine,
        "default",
        fhir.put(fhir.organization(CLINIC)),
        fhir.put(fhir.patient("p1", CLINIC)),
        fhir.put(fhir.patient("p2")),
        fhir.put(fhir.group("g1", ["p1", "p-unknown"])),
        # Written late on 1 March at -05:00 (2 March in UTC): the day as written counts.
        fhir.put(
            fhir.prescription("rx1", "p1", "flexion-in-lying", authored="2026-03-01T21:00:00-05:00")
        ),
        fhir.put(fhir.prescription("rx3", "p2", "rocking-knees-to-chest")),
        fhir.put(fhir.prescription("rx2", "p2", "flexion-in-lying", status="entered-in-error")),
        # 23:30 at -05:00 is the next day in UTC: the local date as written counts.
        *fhir.session(
            "s1",
            "p1",
            "flexion-in-lying",
            "2026-03-10T23:30:00-05:00",
            [2, 3, 4],
            end="2026-03-10T23:34:00-05:00",
        ),
        fhir.put(
            fhir.repetition(
                "s1-r4",
                "p1",
                "s1",
                4,
                5,
                "2026-03-10T23:31:00-05:00",
                distance_cm=30.5,
                faults=("head-raised", "neck-strain"),
                peripheral=True,
            )
        ),
        fhir.put(fhir.procedure("x1", "p1", "extension-in-lying", "2026-03-10T23:35:00-05:00")),
        fhir.put(fhir.procedure("s2", "p2", "rocking-knees-to-chest", "2026-03-11T08:00:00+10:00")),
        fhir.put(fhir.compact("s2-c", "p2", "s2", [1, 0, 0], "2026-03-11T08:00:00+10:00")),
        fhir.put(fhir.pain_report("d1", "p1", "2026-03-09T21:00:00+01:00", 3)),
        # A clinic's own parameters for flexion-in-lying (as the catalog stores them).
        fhir.put(
            with_parameters(
                CATALOG["flexion-in-lying"], stop_rule_mode=StopRuleMode.SLOPE, retry_min_days=5
            )
        ),
    )
    _post(
        engine,
        "other-clinic",
        fhir.put(fhir.patient("p9")),
        *fhir.session("s9", "p9", "flexion-in-lying", "2026-03-10T08:00:00+01:00", [5, 5, 5]),
        fhir.put(fhir.pain_report("d9", "p9", "2026-03-09T21:00:00+01:00", 7)),
    )
    return engine


def test_sessions_come_back_with_their_local_date_as_written_and_the_instant_in_utc(
    loaded: Engine,
) -> None:
    sessions = read_database(loaded, "default").sessions.collect().sort("procedure_id")
    assert sessions.schema == SESSION_SCHEMA
    assert sessions.select("procedure_id", "patient_id", "protocol", "local_date").rows() == [
        ("s1", "p1", "flexion-in-lying", date(2026, 3, 10)),
        ("s2", "p2", "rocking-knees-to-chest", date(2026, 3, 11)),
        ("x1", "p1", "extension-in-lying", date(2026, 3, 10)),
    ]
    s1 = sessions.row(0, named=True)
    assert s1["started_at"] == datetime(2026, 3, 11, 4, 30, tzinfo=UTC)
    assert s1["ended_at"] == datetime(2026, 3, 11, 4, 34, tzinfo=UTC)
    assert sessions.row(2, named=True)["ended_at"] is None  # performedDateTime only


def test_rated_repetitions_keep_index_pain_distance_faults_and_symptoms(loaded: Engine) -> None:
    forget_figures(loaded)
    reps = read_database(loaded, "default").repetitions.collect()
    assert reps.schema == REPETITION_SCHEMA
    rows = reps.sort("procedure_id", "repetition_index").rows()
    assert rows == [
        ("s1", 1, 2, None, None, False),
        ("s1", 2, 3, None, None, False),
        ("s1", 3, 4, None, None, False),
        ("s1", 4, 5, 30.5, "head-raised neck-strain", True),
        ("s2", 1, 1, None, None, False),  # the compact form, one row per repetition
        ("s2", 2, 0, None, None, False),
        ("s2", 3, 0, None, None, False),
    ]


def test_patients_groups_prescriptions_and_pain_reports_are_the_tenants_own(
    loaded: Engine,
) -> None:
    facts = read_database(loaded, "default")
    patients = facts.patients.collect()
    assert patients.schema == PATIENT_SCHEMA
    assert sorted(patients.rows()) == [("p1", CLINIC), ("p2", None)]
    members = facts.group_members.collect()
    assert members.schema == GROUP_MEMBER_SCHEMA
    assert sorted(members.rows()) == [("g1", "p-unknown"), ("g1", "p1")]
    prescriptions = facts.prescriptions.collect()
    assert prescriptions.schema == PRESCRIPTION_SCHEMA
    assert sorted(prescriptions.rows(), key=str) == [  # rx2 is entered-in-error
        ("p1", "flexion-in-lying", date(2026, 3, 1)),
        ("p2", "rocking-knees-to-chest", None),
    ]
    reports = facts.pain_reports.collect()
    assert reports.schema == PAIN_REPORT_SCHEMA
    assert reports.rows() == [("p1", date(2026, 3, 9), 3)]


def test_another_tenants_facts_are_never_read(loaded: Engine) -> None:
    forget_figures(loaded)
    mine = read_database(loaded, "default")
    theirs = read_database(loaded, "other-clinic")
    assert "s9" not in mine.sessions.collect()["procedure_id"].to_list()
    assert theirs.sessions.collect()["procedure_id"].to_list() == ["s9"]
    assert theirs.repetitions.collect()["procedure_id"].unique().to_list() == ["s9"]
    assert theirs.pain_reports.collect()["patient_id"].to_list() == ["p9"]
    assert theirs.patients.collect()["patient_id"].to_list() == ["p9"]
    assert theirs.group_members.collect().height == 0


def test_a_tenant_id_is_a_value_never_sql(engine: Engine) -> None:
    # PostgreSQL's queries take the tenant from a setting bound once per read (so they can
    # stream by COPY): a quote in the id must neither break them nor widen them.
    tenant = "o'brien-clinic' OR 'x'='x"
    _post(
        engine,
        "default",
        *fhir.session("s1", "p1", "flexion-in-lying", "2026-03-10T08:00:00+01:00", [2, 3]),
    )
    _post(
        engine,
        tenant,
        *fhir.session("s9", "p9", "flexion-in-lying", "2026-03-10T08:00:00+01:00", [5, 5]),
    )
    forget_figures(engine)
    theirs = read_database(engine, tenant)
    assert theirs.sessions.collect()["procedure_id"].to_list() == ["s9"]
    assert theirs.repetitions.collect()["procedure_id"].unique().to_list() == ["s9"]


def test_the_tenants_stored_protocol_parameters_come_with_the_facts(loaded: Engine) -> None:
    parameters = read_database(loaded, "default").parameters
    assert parameters["flexion-in-lying"].stop_rule_mode is StopRuleMode.SLOPE
    assert parameters["flexion-in-lying"].retry_min_days == 5
    assert parameters["rocking-knees-to-chest"] == CATALOG["rocking-knees-to-chest"].parameters
    other = read_database(loaded, "other-clinic").parameters
    assert other["flexion-in-lying"] == CATALOG["flexion-in-lying"].parameters


def test_a_database_url_is_read_like_its_engine(loaded: Engine, migrated_url: str) -> None:
    forget_figures(loaded)
    by_url = read_source(migrated_url, "default")
    by_engine = read_database(loaded, "default")
    assert (
        by_url.sessions.collect()
        .sort("procedure_id")
        .equals(by_engine.sessions.collect().sort("procedure_id"))
    )
    assert by_url.repetitions.collect().height == 7


def test_a_stored_group_without_member_index_rows_gives_the_members_in_its_body(
    loaded: Engine,
) -> None:
    # An index written before `member` was a search parameter: only the body knows.
    with loaded.begin() as connection:
        connection.execute(
            sa.text(
                "DELETE FROM search_reference WHERE type = 'Group' AND resource_id = 'g1' "
                "AND param = 'member'"
            )
        )
    members = read_database(loaded, "default").group_members.collect()
    assert sorted(members.rows()) == [("g1", "p-unknown"), ("g1", "p1")]


def test_fact_values_come_back_exactly_whatever_their_range(engine: Engine) -> None:
    # Values the write path never produces but the tables can hold (the frames keep pain as
    # an Int8): PostgreSQL packs the integers and the symptoms flag on the way out and must
    # unpack every one exactly.
    facts = [
        ("o1", 1, 0, None, None, True),
        ("o2", 2, 10, 12.5, "head-raised", False),
        ("o3", 3, 7, None, "", False),
        ("o4", 2_147_483_647, -128, -1.0, "+odd:code neck-strain", True),
        ("o5", -2_147_483_648, 127, None, ":", True),
    ]
    reports = [("d1", date(1, 1, 1), -128), ("d2", date(9999, 12, 31), 127)]
    with engine.begin() as connection:
        # Their session, without figures: its repetitions are read.
        connection.execute(
            sa.text(
                "INSERT INTO exercise_session (tenant, procedure_id, patient_id, protocol, "
                "status, local_date, started_at) VALUES ('edge', 's1', 'p1', "
                "'flexion-in-lying', 'completed', :d, :t)"
            ),
            {"d": date(2026, 3, 10), "t": datetime(2026, 3, 10, 8, tzinfo=UTC)},
        )
        for observation, index, pain, distance, faults, peripheral in facts:
            connection.execute(
                sa.text(
                    "INSERT INTO session_fact (tenant, observation_id, repetition_index, "
                    "procedure_id, patient_id, protocol, local_date, started_at, pain, "
                    "distance_cm, form_faults, peripheral_symptoms) VALUES ('edge', :o, :i, "
                    "'s1', 'p1', 'flexion-in-lying', :d, :t, :p, :cm, :f, :s)"
                ),
                {
                    "o": observation,
                    "i": index,
                    "d": date(2026, 3, 10),
                    "t": datetime(2026, 3, 10, 8, tzinfo=UTC),
                    "p": pain,
                    "cm": distance,
                    "f": faults,
                    "s": peripheral,
                },
            )
        for observation, day, pain in reports:
            connection.execute(
                sa.text(
                    "INSERT INTO pain_report (tenant, observation_id, patient_id, local_date, "
                    "effective_at, pain) VALUES ('edge', :o, 'p1', :d, :t, :p)"
                ),
                {"o": observation, "d": day, "t": datetime(2026, 3, 10, tzinfo=UTC), "p": pain},
            )
    read = read_database(engine, "edge")
    repetitions = read.repetitions.collect()
    assert repetitions.schema == REPETITION_SCHEMA
    assert sorted(repetitions.rows(), key=lambda row: row[1]) == sorted(
        [("s1", i, p, cm, f, s) for _, i, p, cm, f, s in facts], key=lambda row: row[1]
    )
    assert sorted(read.pain_reports.collect().rows()) == [("p1", d, p) for _, d, p in reports]
