"""The cohort report (analytics.report) on a tenant small enough to count by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import polars as pl
import pytest

from analytics.cohorts import Cohort
from analytics.report import (
    PATIENT_TABLE_COLUMNS,
    STATUS_COLUMNS,
    cohort_report,
    stop_rule_statuses,
)
from domain.protocols import DEFAULT_PARAMETERS
from store.errors import InvalidRequest
from tests.unit.analytics.builders import (
    DAY0,
    EXTENSION,
    FLEXION,
    ROCKING,
    Session,
    Tenant,
    at,
    numbered_frames,
    reps,
)

AS_OF = DAY0 + timedelta(days=20)
W = (1, 2, 3, 4, 5)
OK = (3, 2, 2, 1, 0)


def _tenant() -> Tenant:
    def s(
        pid: str, patient: str, day: int, pain: tuple[int, ...], protocol: str = FLEXION
    ) -> Session:
        start = at(day, 8)
        return Session(
            pid, patient, protocol, start, reps(*pain), ended_at=start + timedelta(minutes=3)
        )

    sessions = [
        s("a1", "ann", 0, W),
        s("a2", "ann", 3, OK),  # premature
        s("a3", "ann", 8, OK),  # the retry, tolerated: resumed after 8 days
        s("b1", "bob", 0, W),  # never retried: overdue as of day 20
        s("d1", "dee", 1, (1, 1), ROCKING),  # two repetitions: insufficient
        Session("x1", "ann", EXTENSION, at(0, 8, 5)),  # follows a1 (ends 08:03)
        Session("x2", "dee", EXTENSION, at(1, 9)),  # too late for d1
    ]
    diary = [("cy", AS_OF - timedelta(days=k), 0) for k in range(14)]  # ready to start
    diary += [("ann", DAY0 + timedelta(days=d), p) for d, p in [(0, 6), (1, 6), (14, 3), (15, 3)]]
    return Tenant(
        sessions=sessions,
        pain_reports=diary,
        patients=[("ann", "c1"), ("bob", "c1"), ("cy", "c2"), ("dee", "c2")],
        group_members=[("g", "ann")],
        prescriptions=[("ann", FLEXION), ("bob", FLEXION), ("cy", FLEXION), ("dee", ROCKING)],
    )


def test_patients_by_status_include_the_prescribed_patient_who_has_not_started() -> None:
    summary = cohort_report(_tenant().facts(), Cohort(), AS_OF).summary
    assert summary["cohort"]["patients"] == 4
    assert {k: v for k, v in summary["patients_by_status"].items() if v} == {
        "no-sessions": 1,
        "retry-overdue": 1,
        "resumed": 1,
    }
    assert summary["readiness"] == {"ready": 1, "not-ready": 0, "unknown": 0}
    rocking = next(p for p in summary["protocols"] if p["protocol"] == ROCKING)
    assert rocking["patients_by_status"]["active"] == 1


def test_a_report_as_of_a_past_day_does_not_know_of_a_prescription_written_later() -> None:
    tenant = _tenant()
    tenant.patients.append(("eve", "c1"))
    tenant.prescriptions.append(("eve", FLEXION, AS_OF))  # written on the report's day
    cy = next(p for p in tenant.prescriptions if p[0] == "cy")
    tenant.prescriptions[tenant.prescriptions.index(cy)] = ("cy", FLEXION, AS_OF + timedelta(1))
    on_the_day = cohort_report(tenant.facts(), Cohort(), AS_OF)
    assert on_the_day.summary["patients_by_status"]["no-sessions"] == 1
    rows = on_the_day.patients.filter(pl.col("status") == "no-sessions")["patient_id"].to_list()
    assert rows == ["eve"]  # cy's prescription is dated the day after
    before = cohort_report(tenant.facts(), Cohort(), AS_OF - timedelta(1))
    assert before.summary["patients_by_status"]["no-sessions"] == 0
    eve = before.patients.filter(pl.col("patient_id") == "eve")
    assert eve.select("protocol", "status").rows() == [(None, None)]  # a member, on no protocol
    by_protocol = cohort_report(tenant.facts(), Cohort(protocol=FLEXION), AS_OF - timedelta(1))
    assert by_protocol.summary["cohort"]["patients"] == 2  # ann and bob have sessions


def test_a_day_without_sessions_between_two_sessions_is_under_the_daily_minimum() -> None:
    three = [
        Session(f"g{d}{k}", "gus", FLEXION, at(d, 8 + 3 * k), reps(1, 1, 0, 0, 0))
        for d in (0, 3)
        for k in range(3)
    ]
    tenant = Tenant(sessions=three, patients=[("gus", "c1")], prescriptions=[("gus", FLEXION)])
    dosage = cohort_report(tenant.facts(), Cohort(), DAY0 + timedelta(days=10)).summary[
        "dosage_adherence"
    ]
    # Days 0 and 3 have their three sessions; 1 and 2 none; after day 3 nothing is judged.
    assert dosage["days"] == {"count": 2, "of": 4, "rate": 0.5}
    assert (dosage["under_sessions_days"], dosage["over_sessions_days"]) == (2, 0)


def test_the_patient_table_lists_every_member_even_on_no_protocol() -> None:
    tenant = _tenant()
    tenant.patients.append(("fay", "c1"))
    tenant.pain_reports += [("fay", DAY0, 8), ("fay", AS_OF, 2)]
    report = cohort_report(tenant.facts(), Cohort(), AS_OF)
    assert report.summary["cohort"]["patients"] == report.patients["patient_id"].n_unique() == 5
    fay = report.patients.filter(pl.col("patient_id") == "fay").row(0, named=True)
    assert (fay["protocol"], fay["status"], fay["sessions"]) == (None, None, 0)
    assert (fay["pain_change"], fay["responder"]) == (-6.0, True)
    without = cohort_report(_tenant().facts(), Cohort(), AS_OF).summary
    assert report.summary["patients_by_status"] == without["patients_by_status"]
    assert report.summary["protocols"] == without["protocols"]
    assert report.summary["pain_outcome"]["patients"] == without["pain_outcome"]["patients"] + 1


def test_sessions_by_response_count_flexion_category_sessions_with_rated_repetitions() -> None:
    summary = cohort_report(_tenant().facts(), Cohort(), AS_OF).summary
    assert summary["sessions_by_response"] == {
        "insufficient": 1,
        "worsening": 2,
        "pain-free": 0,
        "wears-off": 2,
        "no-change": 0,
        "fluctuating": 0,
    }


def test_retries_holds_and_adherence_are_rates_with_their_counts() -> None:
    summary = cohort_report(_tenant().facts(), Cohort(), AS_OF).summary
    assert summary["retry_success"] == {"count": 1, "of": 1, "rate": 1.0}
    assert summary["premature_retry"] == {"count": 1, "of": 2, "rate": 0.5}
    assert summary["retry_overdue"] == {"count": 1, "of": 1, "rate": 1.0}
    assert summary["hold_to_resume_days"] == {"episodes": 1, "median": 8, "mean": 8.0}
    assert summary["extension_adherence"] == {"count": 1, "of": 5, "rate": 0.2}
    assert summary["dosage_adherence"]["sessions"] == {"count": 4, "of": 4, "rate": 1.0}


def test_the_pain_outcome_compares_the_first_week_with_the_latest() -> None:
    outcome = cohort_report(_tenant().facts(), Cohort(), AS_OF).summary["pain_outcome"]
    # ann: 6 -> 3 (a responder); cy: 0 -> 0 over her two weeks of diary.
    assert (outcome["patients"], outcome["mean_change"]) == (2, -1.5)
    assert outcome["responders"] == {"count": 1, "of": 2, "rate": 0.5}


def test_the_tenants_own_parameters_change_the_statuses() -> None:
    facts = replace(
        _tenant().facts(),
        parameters={FLEXION: replace(DEFAULT_PARAMETERS, retry_min_days=2, retry_max_days=30)},
    )
    summary = cohort_report(facts, Cohort(), AS_OF).summary
    assert summary["patients_by_status"]["retry-due"] == 1  # bob's window now runs to day 30
    assert summary["premature_retry"]["count"] == 0  # ann's day-3 session was her retry


def test_the_patient_table_has_one_row_per_patient_and_protocol() -> None:
    table = cohort_report(_tenant().facts(), Cohort(group="g"), AS_OF).patients
    assert table.columns == list(PATIENT_TABLE_COLUMNS)
    assert table.select("patient_id", "protocol", "status").rows() == [
        ("ann", EXTENSION, "active"),
        ("ann", FLEXION, "resumed"),
    ]
    row = table.row(1, named=True)
    assert (row["patient_id"], row["protocol"], row["status"], row["sessions"]) == (
        "ann",
        FLEXION,
        "resumed",
        3,
    )
    assert (row["holds"], row["premature_retries"], row["tolerated_retries"]) == (1, 1, 1)
    assert row["missing_extension_sessions"] == 2


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="unknown protocol 'yoga'"):
        cohort_report(_tenant().facts(), Cohort(protocol="yoga"), AS_OF)


def test_a_tenant_without_data_gives_an_empty_report() -> None:
    summary = cohort_report(Tenant().facts(), Cohort(), date(2026, 1, 1)).summary
    assert summary["cohort"]["patients"] == 0
    assert sum(summary["patients_by_status"].values()) == 0
    assert summary["pain_per_repetition"] == [] and summary["retry_success"]["rate"] is None


@pytest.mark.parametrize(
    "cohort", [Cohort(), Cohort(organization="c1"), Cohort(group="g"), Cohort(protocol=ROCKING)]
)
def test_the_stop_rule_statuses_alone_are_the_report_tables_rows(cohort: Cohort) -> None:
    facts = _tenant().facts()
    table = cohort_report(facts, cohort, AS_OF).patients
    checked = [FLEXION]  # the tenant's only protocol with the stop rule on and sessions
    expected = table.filter(
        pl.col("protocol").is_in(checked) & (pl.col("status") != "no-sessions")
    ).select(STATUS_COLUMNS)
    found = stop_rule_statuses(facts, cohort, AS_OF)
    assert found.equals(expected)
    assert found.height == (0 if cohort.protocol == ROCKING else expected.height)


def test_numbered_sessions_at_the_same_instant_keep_the_order_of_their_procedure_ids() -> None:
    # Star-layout sessions carry no procedure id until two start at the same instant: then
    # "a" (tolerated) comes before "b" (worsening), as the domain orders them, although "b"
    # is the earlier row. The other order would make "a" a premature retry.
    start = at(0, 8)
    tenant = Tenant(
        sessions=[
            Session("b", "ann", FLEXION, start, reps(*W), ended_at=start),
            Session("a", "ann", FLEXION, start, reps(*OK), ended_at=start),
            Session("c", "ann", FLEXION, at(2, 8), reps(*OK), ended_at=at(2, 8)),
        ],
        patients=[("ann", "c1")],
    )
    plain = tenant.facts()
    sessions, repetitions = numbered_frames(tenant.sessions)
    star = replace(plain, sessions=sessions.lazy(), repetitions=repetitions.lazy())
    expected = cohort_report(plain, Cohort(), AS_OF)
    found = cohort_report(star, Cohort(), AS_OF)
    assert found.summary == expected.summary
    assert found.patients.equals(expected.patients)
    row = found.patients.row(0, named=True)
    assert (row["holds"], row["premature_retries"]) == (1, 1)


def test_a_patient_with_sessions_and_no_patient_resource_is_in_the_whole_tenant_report() -> None:
    # The whole-tenant report takes the listed patients as its members unless a session's
    # patient is not among them: then that patient is a member too, sessions and all.
    tenant = _tenant()
    tenant.sessions.append(
        Session("z1", "zed", FLEXION, at(2, 8), reps(*W), ended_at=at(2, 8) + timedelta(minutes=3))
    )
    listed = cohort_report(_tenant().facts(), Cohort(), AS_OF)
    found = cohort_report(tenant.facts(), Cohort(), AS_OF)
    assert found.summary["cohort"]["patients"] == listed.summary["cohort"]["patients"] + 1
    zed = found.patients.filter(pl.col("patient_id") == "zed").row(0, named=True)
    assert (zed["organization_id"], zed["protocol"], zed["sessions"], zed["status"]) == (
        None,
        FLEXION,
        1,
        "retry-overdue",
    )
    assert found.summary["sessions_by_response"]["worsening"] == 3
