"""The stop rule (CLINICAL_RULES section 5).

Seed 001: "If this exercise causes pain that increases with each repetition, stop. ... wait
and try it in another week or two."
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.pain_response import PainResponse
from domain.protocols import DEFAULT_PARAMETERS, protocol
from domain.stop_rule import (
    FoldState,
    HoldOutcome,
    InvalidSessionRecord,
    ProtocolStatus,
    SessionRecord,
    TransitionKind,
    evaluate_protocol,
    resume_fold,
)
from tests.unit.domain.builders import day, session

P = DEFAULT_PARAMETERS
W = PainResponse.WORSENING
OK = PainResponse.WEARS_OFF
S = ProtocolStatus


def test_no_session_yet_is_no_sessions() -> None:
    state = evaluate_protocol([], day(0), P)
    assert state.status is S.NO_SESSIONS
    assert state.last_session is None and state.hold is None


def test_sessions_that_never_worsen_keep_the_protocol_active() -> None:
    state = evaluate_protocol([session("a", 0), session("b", 1, PainResponse.NO_CHANGE)], day(1), P)
    assert state.status is S.ACTIVE
    assert state.holds == () and state.events == ()
    assert state.last_session == session("b", 1, PainResponse.NO_CHANGE)


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        pytest.param(0, S.ON_HOLD, id="on the day pain rose: on hold"),
        pytest.param(6, S.ON_HOLD, id="day 6: the window has not opened"),
        pytest.param(7, S.RETRY_DUE, id="day 7 (retry_min_days): retry due"),
        pytest.param(14, S.RETRY_DUE, id="day 14 (retry_max_days): still due"),
        pytest.param(15, S.RETRY_OVERDUE, id="day 15: overdue"),
    ],
)
def test_a_worsening_session_puts_the_protocol_on_hold_with_a_one_to_two_week_window(
    as_of: int, expected: ProtocolStatus
) -> None:
    state = evaluate_protocol([session("a", 0, W)], day(as_of), P)
    assert state.status is expected
    assert state.hold is not None
    assert (state.hold.since, state.hold.retry_from, state.hold.retry_until) == (
        day(0),
        day(7),
        day(14),
    )
    assert state.hold.opened_by == "a"
    assert [(e.kind, e.procedure_id, e.day) for e in state.events] == [
        (TransitionKind.HOLD_OPENED, "a", day(0))
    ]


def test_retry_window_follows_the_retry_parameters() -> None:
    params = replace(P, retry_min_days=10, retry_max_days=12)
    state = evaluate_protocol([session("a", 0, W)], day(13), params)
    assert state.hold is not None
    assert (state.hold.retry_from, state.hold.retry_until) == (day(10), day(12))
    assert state.status is S.RETRY_OVERDUE


def test_a_tolerated_session_before_the_window_is_a_premature_retry_and_the_hold_stays() -> None:
    state = evaluate_protocol([session("a", 0, W), session("b", 3, OK)], day(4), P)
    assert state.status is S.ON_HOLD
    assert state.premature_retries == 1
    assert state.premature_procedure_ids == ("b",)
    assert state.retry_procedure_ids == ()
    assert state.hold is not None and state.hold.since == day(0)
    assert state.events[-1].kind is TransitionKind.PREMATURE_RETRY


def test_a_worsening_premature_retry_restarts_the_hold_from_its_date() -> None:
    sessions = [session("a", 0, W), session("b", 3, W)]
    assert evaluate_protocol(sessions, day(9), P).status is S.ON_HOLD
    state = evaluate_protocol(sessions, day(10), P)
    assert state.status is S.RETRY_DUE
    assert state.hold is not None
    assert (state.hold.since, state.hold.retry_from, state.hold.opened_by) == (day(3), day(10), "b")
    first = state.holds[0]
    assert (first.outcome, first.closed_by, first.closed_on) == (HoldOutcome.RESTARTED, "b", day(3))
    assert state.failed_retries == 0  # premature, so not a failed retry
    assert [e.kind for e in state.events] == [
        TransitionKind.HOLD_OPENED,
        TransitionKind.PREMATURE_RETRY,
        TransitionKind.HOLD_OPENED,
    ]


def test_a_second_session_on_the_day_pain_rose_is_premature() -> None:
    later_same_day = session("b", 0, OK, at=time(18, 0))
    state = evaluate_protocol([session("a", 0, W), later_same_day], day(0), P)
    assert state.premature_procedure_ids == ("b",)
    assert state.status is S.ON_HOLD


def test_a_tolerated_retry_resumes_the_protocol() -> None:
    state = evaluate_protocol([session("a", 0, W), session("r", 8, OK)], day(8), P)
    assert state.status is S.RESUMED
    assert state.hold is None
    assert state.retry_procedure_ids == ("r",)
    assert state.holds[0].outcome is HoldOutcome.TOLERATED
    assert state.events[-1].kind is TransitionKind.RETRY_TOLERATED
    assert state.events[-1].hold.closed_on == day(8)


def test_later_sessions_that_do_not_worsen_keep_the_protocol_resumed() -> None:
    sessions = [session("a", 0, W), session("r", 8, OK), session("c", 9, PainResponse.PAIN_FREE)]
    assert evaluate_protocol(sessions, day(30), P).status is S.RESUMED


def test_an_insufficient_retry_is_not_worsening_so_it_is_tolerated() -> None:
    state = evaluate_protocol(
        [session("a", 0, W), session("r", 7, PainResponse.INSUFFICIENT)], day(7), P
    )
    assert state.status is S.RESUMED


def test_a_retry_after_the_window_closed_is_still_the_retry() -> None:
    state = evaluate_protocol([session("a", 0, W), session("r", 20, OK)], day(20), P)
    assert state.status is S.RESUMED
    assert state.retry_procedure_ids == ("r",)


def test_a_worsening_retry_fails_and_a_new_hold_starts_from_its_date() -> None:
    state = evaluate_protocol([session("a", 0, W), session("r", 8, W)], day(8), P)
    assert state.status is S.ON_HOLD
    assert state.failed_retries == 1
    assert state.hold is not None
    assert (state.hold.since, state.hold.retry_from, state.hold.retry_until) == (
        day(8),
        day(15),
        day(22),
    )
    assert state.holds[0].outcome is HoldOutcome.FAILED
    assert [e.kind for e in state.events] == [
        TransitionKind.HOLD_OPENED,
        TransitionKind.RETRY_FAILED,
        TransitionKind.HOLD_OPENED,
    ]


def test_two_failed_retries_need_clinician_review() -> None:
    sessions = [session("a", 0, W), session("r1", 7, W), session("r2", 14, W)]
    state = evaluate_protocol(sessions, day(14), P)
    assert state.status is S.CLINICIAN_REVIEW
    assert state.failed_retries == 2
    assert state.hold is not None  # the hold still runs beside the review
    review = [e for e in state.events if e.kind is TransitionKind.CLINICIAN_REVIEW]
    assert [(e.procedure_id, e.day) for e in review] == [("r2", day(14))]
    assert "max_failed_retries=2" in state.explanation


def test_clinician_review_overrides_a_later_tolerated_retry() -> None:
    sessions = [
        session("a", 0, W),
        session("r1", 7, W),
        session("r2", 14, W),
        session("r3", 21, OK),
    ]
    state = evaluate_protocol(sessions, day(40), P)
    assert state.status is S.CLINICIAN_REVIEW
    assert sum(e.kind is TransitionKind.CLINICIAN_REVIEW for e in state.events) == 1


def test_failed_retries_are_counted_over_the_whole_history() -> None:
    # fail, tolerate, new hold, fail again: two failed retries in all.
    sessions = [
        session("a", 0, W),
        session("r1", 7, W),
        session("r2", 14, OK),
        session("b", 20, W),
        session("r3", 27, W),
    ]
    before_second_failure = evaluate_protocol(sessions, day(26), P)
    assert (before_second_failure.status, before_second_failure.failed_retries) == (S.ON_HOLD, 1)
    assert evaluate_protocol(sessions, day(27), P).status is S.CLINICIAN_REVIEW


def test_a_worsening_session_after_resuming_opens_an_ordinary_hold() -> None:
    sessions = [session("a", 0, W), session("r", 8, OK), session("b", 10, W)]
    state = evaluate_protocol(sessions, day(10), P)
    assert state.status is S.ON_HOLD
    assert state.failed_retries == 0
    assert len(state.holds) == 2


def test_max_failed_retries_is_a_parameter() -> None:
    params = replace(P, max_failed_retries=1)
    state = evaluate_protocol([session("a", 0, W), session("r", 7, W)], day(7), params)
    assert state.status is S.CLINICIAN_REVIEW


def test_status_as_of_a_past_date_ignores_later_sessions() -> None:
    sessions = [session("a", 0, W), session("r1", 7, W), session("r2", 14, W)]
    past = evaluate_protocol(sessions, day(10), P)
    assert past.status is S.ON_HOLD
    assert past.failed_retries == 1
    assert past.last_session is not None and past.last_session.procedure_id == "r1"
    assert evaluate_protocol(sessions, day(-1), P).status is S.NO_SESSIONS


def test_with_the_stop_rule_off_a_worsening_session_opens_no_hold() -> None:
    params = protocol("rocking-knees-to-chest").parameters
    state = evaluate_protocol([session("a", 0, W)], day(1), params)
    assert state.status is S.ACTIVE
    assert state.holds == () and state.events == ()
    assert "stop rule is off" in state.explanation


def test_dates_are_the_local_date_written_in_the_data_not_utc() -> None:
    # 00:30 at +01:00 on day 7 is still day 6 in UTC: the local date opens the window.
    plus_one = timezone(timedelta(hours=1))
    retry = SessionRecord.starting("r", datetime.combine(day(7), time(0, 30), tzinfo=plus_one), OK)
    assert retry.day == day(7)
    state = evaluate_protocol([session("a", 0, W), retry], day(7), P)
    assert state.status is S.RESUMED


def test_sessions_starting_at_the_same_instant_are_ordered_by_procedure_id() -> None:
    same_time = [session("b", 7, OK), session("a", 7, W), session("h", 0, W)]
    state = evaluate_protocol(same_time, day(7), P)
    # "a" (worsening) is the retry and fails; "b" comes after it, before the new window.
    assert state.retry_procedure_ids == ("a",)
    assert state.premature_procedure_ids == ("b",)
    assert state.status is S.ON_HOLD


def test_a_procedure_seen_twice_is_rejected() -> None:
    with pytest.raises(InvalidSessionRecord, match="twice"):
        evaluate_protocol([session("a", 0), session("a", 1)], day(2), P)


def test_a_session_time_without_offset_is_rejected() -> None:
    with pytest.raises(InvalidSessionRecord, match="offset"):
        SessionRecord("a", day(0), datetime(2026, 3, 1, 8, 0), OK)


@pytest.mark.parametrize(
    ("as_of", "fragment"),
    [
        pytest.param(3, "2026-03-08..2026-03-15 (retry_min_days=7, retry_max_days=14)", id="hold"),
        pytest.param(3, "2026-03-04 is before the window: on-hold", id="on-hold"),
        pytest.param(10, "is within the window: retry-due", id="retry-due"),
        pytest.param(16, "is after the window: retry-overdue", id="retry-overdue"),
    ],
)
def test_explanation_names_the_dates_and_parameters(as_of: int, fragment: str) -> None:
    assert fragment in evaluate_protocol([session("a", 0, W)], day(as_of), P).explanation


# --- resuming the fold from a stored state (what ingest does for a session later than all) ---

_histories = st.lists(
    st.tuples(st.integers(0, 60), st.sampled_from(list(PainResponse))),
    min_size=1,
    max_size=14,
    unique_by=lambda s: s[0],
)


@given(history=_histories, split=st.integers(0, 14))
def test_resuming_from_any_prefix_gives_the_state_of_folding_everything(
    history: list[tuple[int, PainResponse]], split: int
) -> None:
    records = [session(f"s{offset:02d}", offset, response) for offset, response in history]
    records.sort(key=lambda r: r.started_at)
    whole = resume_fold(FoldState(), records, P)
    prefix = resume_fold(FoldState(), records[:split], P)
    assert resume_fold(prefix, records[split:], P) == whole
    expected = evaluate_protocol(records, records[-1].day, P)
    assert whole.holds == expected.holds and whole.hold == expected.hold
    assert len(whole.failed) == expected.failed_retries
    assert whole.premature == expected.premature_procedure_ids
    assert whole.retries == expected.retry_procedure_ids
    assert (whole.last, whole.count) == (expected.last_session, len(records))


def test_resuming_with_a_session_not_after_the_stored_ones_is_rejected() -> None:
    state = resume_fold(FoldState(), [session("a", 0, W), session("b", 3)], P)
    assert state.comes_after(session("c", 4)) and not state.comes_after(session("c", 2))
    with pytest.raises(InvalidSessionRecord, match="not after session b"):
        resume_fold(state, [session("c", 2)], P)
