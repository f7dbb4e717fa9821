"""Properties of the stop rule that must hold for any history (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from domain.pain_response import PainResponse
from domain.protocols import DEFAULT_PARAMETERS
from domain.stop_rule import Hold, ProtocolState, SessionRecord, evaluate_protocol

DAY0 = date(2026, 1, 5)
P = DEFAULT_PARAMETERS

responses = st.sampled_from(list(PainResponse))
offsets = st.integers(min_value=-11 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@st.composite
def histories(draw: st.DrawFn, max_size: int = 25) -> list[SessionRecord]:
    """Sessions over ~two months, each written in its own UTC offset, ids unique."""
    raw = draw(
        st.lists(
            st.tuples(st.integers(0, 60), st.integers(0, 24 * 60 - 1), offsets, responses),
            max_size=max_size,
        )
    )
    sessions = []
    for n, (day_offset, minute, tz, response) in enumerate(raw):
        start = datetime.combine(DAY0 + timedelta(days=day_offset), datetime.min.time(), tz)
        sessions.append(
            SessionRecord.starting(f"p{n:03d}", start + timedelta(minutes=minute), response)
        )
    return sessions


def _shift(record: SessionRecord, days: int) -> SessionRecord:
    delta = timedelta(days=days)
    return replace(record, day=record.day + delta, started_at=record.started_at + delta)


def _shift_hold(hold: Hold, days: int) -> Hold:
    delta = timedelta(days=days)
    return replace(
        hold,
        since=hold.since + delta,
        retry_from=hold.retry_from + delta,
        retry_until=hold.retry_until + delta,
        closed_on=None if hold.closed_on is None else hold.closed_on + delta,
    )


as_of_days = st.integers(-1, 80).map(lambda k: DAY0 + timedelta(days=k))


@given(histories(), as_of_days)
def test_every_hold_is_opened_by_a_worsening_session_and_every_worsening_session_opens_one(
    sessions: list[SessionRecord], as_of: date
) -> None:
    state = evaluate_protocol(sessions, as_of, P)
    worsening = sorted(
        (s for s in sessions if s.day <= as_of and s.response is PainResponse.WORSENING),
        key=lambda s: (s.started_at, s.procedure_id),
    )
    assert [h.opened_by for h in state.holds] == [s.procedure_id for s in worsening]


@given(histories(), responses.filter(lambda r: r is not PainResponse.WORSENING), st.integers(0, 30))
def test_a_non_worsening_session_never_opens_a_hold(
    sessions: list[SessionRecord], response: PainResponse, days_later: int
) -> None:
    latest = max((s.started_at for s in sessions), default=datetime(2026, 1, 5, tzinfo=UTC))
    start = latest + timedelta(days=days_later, minutes=1)
    extra = SessionRecord.starting("zzz-last", start, response)
    as_of = max([extra.day, *(s.day for s in sessions)])
    before = evaluate_protocol(sessions, as_of, P)
    after = evaluate_protocol([*sessions, extra], as_of, P)
    assert len(after.holds) == len(before.holds)
    assert all(e.procedure_id != "zzz-last" or e.kind != "hold-opened" for e in after.events)
    assert after.failed_retries == before.failed_retries


@given(histories(), as_of_days, st.integers(-400, 400))
def test_shifting_every_date_by_k_days_shifts_every_window_by_k_days(
    sessions: list[SessionRecord], as_of: date, k: int
) -> None:
    before = evaluate_protocol(sessions, as_of, P)
    after = evaluate_protocol([_shift(s, k) for s in sessions], as_of + timedelta(days=k), P)
    assert after.status is before.status
    assert after.holds == tuple(_shift_hold(h, k) for h in before.holds)
    assert (after.failed_retries, after.premature_procedure_ids, after.retry_procedure_ids) == (
        before.failed_retries,
        before.premature_procedure_ids,
        before.retry_procedure_ids,
    )


@given(histories(), as_of_days, st.randoms(use_true_random=False))
def test_the_state_does_not_depend_on_input_order(
    sessions: list[SessionRecord], as_of: date, rng: random.Random
) -> None:
    shuffled = list(sessions)
    rng.shuffle(shuffled)
    assert evaluate_protocol(shuffled, as_of, P) == evaluate_protocol(sessions, as_of, P)


@given(histories(), as_of_days)
def test_the_state_as_of_a_date_is_the_state_of_the_sessions_known_that_day(
    sessions: list[SessionRecord], as_of: date
) -> None:
    known = [s for s in sessions if s.day <= as_of]
    assert evaluate_protocol(sessions, as_of, P) == evaluate_protocol(known, as_of, P)


@given(histories(), as_of_days)
def test_status_matches_the_section_5_table(sessions: list[SessionRecord], as_of: date) -> None:
    state: ProtocolState = evaluate_protocol(sessions, as_of, P)
    if state.failed_retries >= P.max_failed_retries:
        assert state.status == "clinician-review"
    elif state.hold is not None:
        assert state.status in {"on-hold", "retry-due", "retry-overdue"}
        assert (state.status == "on-hold") == (as_of < state.hold.retry_from)
        assert (state.status == "retry-overdue") == (as_of > state.hold.retry_until)
    elif state.last_session is None:
        assert state.status == "no-sessions"
    else:
        assert state.last_session.response is not PainResponse.WORSENING
        assert state.status in {"active", "resumed"}
    assert sum(h.is_open for h in state.holds) == (state.hold is not None)
