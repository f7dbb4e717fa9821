"""The stop rule across a cohort (analytics.stop_rule), on small hand-built histories: each
decision of `domain.stop_rule` (section 5), including the ones the fold makes implicitly."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest

from analytics import classification, stop_rule
from analytics.protocol_table import protocol_table
from domain.protocols import DEFAULT_PARAMETERS
from tests.unit.analytics.builders import (
    DAY0,
    FLEXION,
    ROCKING,
    Session,
    at,
    repetition_frame,
    reps,
    session_frame,
)

W = (1, 2, 3)  # worsening: rises with each repetition
OK = (3, 2, 1)  # wears off


def _day(offset: int) -> date:
    return DAY0 + timedelta(days=offset)


def _s(pid: str, day: int, pain: tuple[int, ...], protocol: str = FLEXION, **when: Any) -> Session:
    return Session(pid, "p1", protocol, at(day, **when), reps(*pain))


def _run(
    sessions: list[Session], as_of: int, params: dict[str, Any] | None = None
) -> tuple[pl.DataFrame, dict[str, Any], pl.DataFrame]:
    figures = classification.session_figures(repetition_frame(sessions).lazy())
    assessed = classification.assess_sessions(
        session_frame(sessions).lazy(), figures, protocol_table(params)
    ).filter(pl.col("local_date") <= _day(as_of))
    roles = stop_rule.session_roles(assessed.filter("stop_rule")).collect()
    states = stop_rule.protocol_states(roles.lazy(), _day(as_of)).collect()
    state = states.row(0, named=True) if states.height else {}
    return roles, state, stop_rule.holds(roles.lazy()).collect()


@pytest.mark.parametrize(
    ("as_of", "status"),
    [(0, "on-hold"), (6, "on-hold"), (7, "retry-due"), (14, "retry-due"), (15, "retry-overdue")],
)
def test_a_worsening_session_puts_the_protocol_on_hold_with_a_one_to_two_week_window(
    as_of: int, status: str
) -> None:
    _, state, _ = _run([_s("a", 0, W)], as_of)
    assert state["status"] == status
    assert (state["hold_since"], state["retry_from"], state["retry_until"]) == (
        _day(0),
        _day(7),
        _day(14),
    )


def test_a_session_before_the_window_is_premature_and_restarts_the_hold_when_worsening() -> None:
    roles, state, holds = _run([_s("a", 0, W), _s("b", 3, OK), _s("c", 5, W)], 6)
    assert roles.filter("premature")["procedure_id"].to_list() == ["b", "c"]
    assert (state["status"], state["hold_since"], state["premature_retries"]) == (
        "on-hold",
        _day(5),
        2,
    )
    assert holds.select("opened_by", "closed_by", "outcome").rows() == [
        ("a", "c", "restarted"),
        ("c", None, None),
    ]


def test_the_first_session_on_or_after_the_window_is_the_retry_even_after_it_closed() -> None:
    roles, state, _ = _run([_s("a", 0, W), _s("r", 20, OK), _s("later", 21, OK)], 30)
    assert roles.filter("retry")["procedure_id"].to_list() == ["r"]
    assert state["status"] == "resumed"  # however many sessions follow


def test_failed_retries_are_never_reset_and_two_need_clinician_review() -> None:
    history = [_s("a", 0, W), _s("r1", 7, W), _s("r2", 14, OK), _s("b", 20, W), _s("r3", 27, W)]
    _, before, _ = _run(history, 26)
    _, after, _ = _run(history, 40)
    assert (before["status"], before["failed_retries"]) == ("on-hold", 1)
    assert (after["status"], after["failed_retries"]) == ("clinician-review", 2)


def test_the_local_day_decides_even_when_it_runs_against_the_start_instants() -> None:
    # With a one-day window: the retry on day 11 (at +14:00) is tolerated; the two sessions
    # written later but dated day 10 (at -11:00) meet no open hold, however early their day.
    one_day = replace(DEFAULT_PARAMETERS, retry_min_days=1, retry_max_days=3)
    history = [
        _s("w", 10, W, hour=0, minute=30, offset_hours=14),
        _s("r", 11, OK, hour=0, minute=30, offset_hours=14),
        _s("x", 10, OK, hour=23, minute=50, offset_hours=-11),
        _s("y", 10, OK, hour=23, minute=55, offset_hours=-11),
    ]
    roles, state, _ = _run(history, 12, params={FLEXION: one_day})
    assert roles["procedure_id"].to_list() == ["w", "r", "x", "y"]  # start instant order
    assert roles.filter("premature").height == 0
    assert state["status"] == "resumed"


def test_sessions_at_the_same_instant_are_ordered_by_procedure_id() -> None:
    roles, state, _ = _run([_s("h", 0, W), _s("b", 7, OK), _s("a", 7, W)], 7)
    assert roles["procedure_id"].to_list() == ["h", "a", "b"]
    assert roles.filter("failed")["procedure_id"].to_list() == ["a"]
    assert state["status"] == "on-hold"


def test_days_to_resume_run_from_the_start_of_the_hold_episode() -> None:
    roles, _, _ = _run([_s("a", 0, W), _s("p", 2, W), _s("f", 9, W), _s("r", 17, OK)], 20)
    resumed = stop_rule.days_to_resume(roles.lazy()).collect()
    assert resumed.select("procedure_id", "days").rows() == [("r", 17)]


def test_a_protocol_without_the_stop_rule_is_active_after_any_session() -> None:
    sessions = [_s("a", 0, W, protocol=ROCKING)]
    figures = classification.session_figures(repetition_frame(sessions).lazy())
    assessed = classification.assess_sessions(
        session_frame(sessions).lazy(), figures, protocol_table()
    )
    states = stop_rule.unchecked_states(assessed).collect()
    assert states.select("status", "holds", "sessions").rows() == [("active", 0, 1)]
