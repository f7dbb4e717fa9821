"""Dosage, sequence and form flags (CLINICAL_RULES section 6), written from seed 001."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from domain.adherence import (
    DayFlag,
    InvalidTiming,
    SessionFlag,
    TimedSession,
    active_days,
    daily_flags,
    dosage_flag,
    form_fault_counts,
    missing_extension,
    session_flags,
)
from domain.codes import FormFault
from domain.pain_response import PainResponse, Repetition, classify_session
from domain.protocols import DEFAULT_PARAMETERS, protocol
from domain.readiness import Readiness
from domain.stop_rule import HoldOutcome, evaluate_protocol
from tests.unit.domain.builders import at, day, reps, session

P = DEFAULT_PARAMETERS
ROCKING = protocol("rocking-knees-to-chest").parameters
FIFTEEN = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("count", "response", "expected"),
    [
        pytest.param(4, PainResponse.WEARS_OFF, SessionFlag.UNDER_DOSE, id="4 reps: under-dose"),
        pytest.param(2, PainResponse.INSUFFICIENT, SessionFlag.UNDER_DOSE, id="2 reps: under"),
        pytest.param(4, PainResponse.WORSENING, None, id="stopped because pain rose: no flag"),
        pytest.param(5, PainResponse.NO_CHANGE, None, id="5 reps: within 5-6"),
        pytest.param(6, PainResponse.NO_CHANGE, None, id="6 reps: within 5-6"),
        pytest.param(7, PainResponse.NO_CHANGE, SessionFlag.OVER_DOSE, id="7 reps: over-dose"),
        pytest.param(7, PainResponse.WORSENING, SessionFlag.OVER_DOSE, id="7 worsening: over"),
    ],
)
def test_do_only_five_to_six_repetitions_per_session(
    count: int, response: PainResponse, expected: SessionFlag | None
) -> None:
    assert dosage_flag(count, response, P) is expected


def test_dosage_is_not_checked_for_protocols_without_it() -> None:
    assert dosage_flag(1, PainResponse.NO_CHANGE, ROCKING) is None
    assert dosage_flag(12, PainResponse.NO_CHANGE, ROCKING) is None


def test_session_flags_come_in_section_6_order_with_form_faults_last() -> None:
    session_reps = (
        Repetition(1, 2, form_faults=(FormFault.NECK_STRAIN,)),
        Repetition(2, 2, form_faults=(FormFault.HEAD_RAISED, FormFault.NECK_STRAIN)),
        Repetition(3, 1),
    )
    assessment = classify_session(session_reps, P)
    flags = session_flags(
        assessment,
        readiness=Readiness.NOT_READY,
        premature_retry=True,
        extension_missing=True,
    )
    assert flags == (
        "started-before-ready",
        "premature-retry",
        "under-dose",
        "missing-extension",
        "form-fault:head-raised",
        "form-fault:neck-strain",
    )


@pytest.mark.parametrize(
    ("readiness", "flagged"),
    [
        pytest.param(Readiness.NOT_READY, True, id="not ready: started-before-ready"),
        pytest.param(Readiness.UNKNOWN, False, id="unknown readiness is not flagged"),
        pytest.param(Readiness.READY, False, id="ready: no flag"),
        pytest.param(None, False, id="not assessed: no flag"),
    ],
)
def test_a_flexion_session_started_while_not_ready_is_flagged_not_blocked(
    readiness: Readiness | None, flagged: bool
) -> None:
    flags = session_flags(classify_session(reps(2, 2, 1, 1, 0), P), readiness=readiness)
    assert (SessionFlag.STARTED_BEFORE_READY in flags) is flagged


def test_readiness_is_not_required_for_knee_rocking() -> None:
    flags = session_flags(classify_session(reps(2, 2, 1), ROCKING), readiness=Readiness.NOT_READY)
    assert flags == ()


def test_a_clean_session_of_the_right_dose_has_no_flag() -> None:
    assert session_flags(classify_session(reps(3, 2, 2, 1, 0), P), readiness=Readiness.READY) == ()


def test_form_faults_are_counted_per_session_by_repetition() -> None:
    session_reps = (
        Repetition(1, 2, form_faults=("head-raised", "head-raised")),
        Repetition(2, 2, form_faults=("head-raised", "legs-straightened-on-lowering")),
    )
    assert form_fault_counts(session_reps) == {"head-raised": 2, "legs-straightened-on-lowering": 1}


CET = timezone(timedelta(hours=1))


def _flexion(pid: str, end_hour: int, end_minute: int) -> TimedSession:
    return TimedSession(pid, at(0, end_hour, end_minute - 4), at(0, end_hour, end_minute))


@pytest.mark.parametrize(
    ("extension_minutes_after_end", "missing"),
    [
        pytest.param(0, False, id="Cobra straight after: followed"),
        pytest.param(15, False, id="Cobra 15 minutes after the end: followed"),
        pytest.param(16, True, id="Cobra 16 minutes after: missing-extension"),
        pytest.param(-1, True, id="Cobra before the flexion ended: missing-extension"),
    ],
)
def test_every_flexion_session_must_be_followed_immediately_by_extension_in_lying(
    extension_minutes_after_end: int, missing: bool
) -> None:
    flexion = _flexion("f", 8, 10)
    extension = flexion.ended_at + timedelta(minutes=extension_minutes_after_end)
    assert (missing_extension([flexion], [extension], FIFTEEN) == {"f"}) is missing


def test_no_extension_session_at_all_means_every_flexion_session_misses_it() -> None:
    assert missing_extension([_flexion("a", 8, 10), _flexion("b", 12, 10)], [], FIFTEEN) == {
        "a",
        "b",
    }


def test_one_extension_session_may_follow_several_flexion_sessions() -> None:
    rocking, flexion = _flexion("rock", 8, 10), _flexion("flex", 8, 15)
    assert missing_extension([rocking, flexion], [at(0, 8, 20)], FIFTEEN) == frozenset()


def test_extension_timing_compares_instants_across_utc_offsets() -> None:
    flexion = _flexion("f", 8, 10)  # ends 08:10 UTC
    assert missing_extension([flexion], [at(0, 9, 20, tz=CET)], FIFTEEN) == frozenset()
    assert missing_extension([flexion], [at(0, 8, 20, tz=CET)], FIFTEEN) == {"f"}


def test_a_session_period_must_have_offsets_and_not_end_before_it_starts() -> None:
    with pytest.raises(InvalidTiming, match="offset"):
        TimedSession("f", at(0, 8).replace(tzinfo=None), at(0, 9))
    with pytest.raises(InvalidTiming, match="before"):
        TimedSession("f", at(0, 9), at(0, 8))


@pytest.mark.parametrize(
    ("sessions_that_day", "expected"),
    [
        pytest.param(2, DayFlag.UNDER_SESSIONS, id="two sessions: under-sessions"),
        pytest.param(3, None, id="three sessions a day"),
        pytest.param(4, None, id="four sessions a day"),
        pytest.param(5, DayFlag.OVER_SESSIONS, id="five sessions: over-sessions"),
    ],
)
def test_repeat_the_sessions_three_or_four_times_per_day(
    sessions_that_day: int, expected: DayFlag | None
) -> None:
    flags = daily_flags([day(0)] * sessions_that_day, [], P)
    assert flags.get(day(0)) is expected


def test_days_on_hold_are_not_judged_for_sessions_per_day() -> None:
    history = [session("a", 0, PainResponse.WORSENING), session("b", 3), session("r", 8)]
    holds = evaluate_protocol(history, day(9), P).holds
    assert holds[0].outcome is HoldOutcome.TOLERATED
    judged = [day(0), day(3), day(8), day(9)]
    flags = daily_flags([s.day for s in history], holds, P, days=judged)
    # Day 0 (pain rose, stopped), day 3 (premature) and day 8 (the retry) are within the hold.
    assert flags == {day(9): DayFlag.UNDER_SESSIONS}


def test_an_open_hold_covers_every_day_from_its_start() -> None:
    holds = evaluate_protocol([session("a", 0, PainResponse.WORSENING)], day(30), P).holds
    assert daily_flags([day(20)], holds, P) == {}


def test_without_a_day_list_only_days_with_sessions_are_judged() -> None:
    assert daily_flags([day(0)] * 3 + [day(2)], [], P) == {day(2): DayFlag.UNDER_SESSIONS}
    assert daily_flags([day(0)] * 3, [], P, days=[day(0), day(1)]) == {
        day(1): DayFlag.UNDER_SESSIONS
    }


def test_the_active_days_run_from_the_first_session_to_the_latest() -> None:
    assert active_days([]) == []
    assert active_days([day(3), day(0), day(0)]) == [day(0), day(1), day(2), day(3)]
    # A skipped day in between is judged: no session is under the minimum.
    flags = daily_flags([day(0)] * 3 + [day(2)] * 3, [], P, days=active_days([day(0), day(2)]))
    assert flags == {day(1): DayFlag.UNDER_SESSIONS}


def test_sessions_per_day_are_not_checked_without_dosage() -> None:
    assert daily_flags([day(0)], [], ROCKING) == {}
