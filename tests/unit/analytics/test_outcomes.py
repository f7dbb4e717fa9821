"""Pain outcome (analytics.outcomes), section 7: first week to latest, responders at >= 2
points or >= 30%."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from analytics.facts import PAIN_REPORT_SCHEMA
from analytics.outcomes import pain_outcomes

DAY0 = date(2026, 1, 5)


def _outcome(
    first_week: list[int], latest_week: list[int], weeks_later: int = 3
) -> dict[str, object]:
    rows = [("p", DAY0 + timedelta(days=d), pain) for d, pain in enumerate(first_week)]
    start = 7 * weeks_later
    rows += [("p", DAY0 + timedelta(days=start + d), pain) for d, pain in enumerate(latest_week)]
    reports = pl.DataFrame(rows, schema=PAIN_REPORT_SCHEMA, orient="row").lazy()
    return pain_outcomes(reports, DAY0 + timedelta(days=60)).collect().row(0, named=True)


@pytest.mark.parametrize(
    ("first", "latest", "responder"),
    [
        pytest.param([6, 6], [4, 4], True, id="2 points better: responder"),
        pytest.param([3, 3], [2, 2], True, id="1 point of 3 is 33%: responder"),
        pytest.param([10, 10], [7, 7], True, id="exactly 30%: responder"),
        pytest.param([8, 8], [7, 7], False, id="1 point of 8: not"),
        pytest.param([0, 0], [0, 0], False, id="no pain to improve on: not"),
        pytest.param([4, 4], [6, 6], False, id="worse: not"),
    ],
)
def test_a_responder_improved_by_two_points_or_thirty_percent(
    first: list[int], latest: list[int], responder: bool
) -> None:
    outcome = _outcome(first, latest)
    assert outcome["responder"] is responder
    assert outcome["pain_change"] == pytest.approx(latest[0] - first[0])


def test_the_outcome_needs_a_week_after_the_first() -> None:
    outcome = _outcome([5, 5], [], weeks_later=0)
    assert (outcome["pain_change"], outcome["responder"]) == (None, None)


def test_a_day_counts_with_its_worst_report() -> None:
    outcome = _outcome([5, 3], [1])
    assert outcome["first_week_pain"] == 4.0
