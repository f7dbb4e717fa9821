"""Entry criteria for flexion-in-lying (CLINICAL_RULES section 4).

Seed 001: begin after "long pain-free periods for two to three weeks".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.protocols import DEFAULT_PARAMETERS, InvalidParameter, ProtocolParameters
from domain.readiness import InvalidPainReport, PainReport, Readiness, assess_readiness

AS_OF = date(2026, 3, 14)


def daily(*pain: int, as_of: date = AS_OF) -> list[PainReport]:
    """One report per day, the last one on as_of."""
    return [PainReport(as_of - timedelta(days=len(pain) - 1 - i), p) for i, p in enumerate(pain)]


@pytest.mark.parametrize(
    ("pain", "expected"),
    [
        pytest.param((0,) * 14, Readiness.READY, id="two pain-free weeks: ready"),
        pytest.param((0,) * 7 + (3,) * 3, Readiness.READY, id="ten days, 70% pain-free, max 3"),
        pytest.param((0,) * 6 + (1,) * 4, Readiness.NOT_READY, id="only 60% of days pain-free"),
        pytest.param((0,) * 13 + (4,), Readiness.NOT_READY, id="one day with pain 4"),
        pytest.param((0,) * 9, Readiness.UNKNOWN, id="nine reported days: unknown"),
        pytest.param((), Readiness.UNKNOWN, id="no report: unknown"),
    ],
)
def test_readiness_needs_enough_reports_low_pain_and_mostly_pain_free_days(
    pain: tuple[int, ...], expected: Readiness
) -> None:
    assert assess_readiness(daily(*pain), AS_OF, DEFAULT_PARAMETERS).readiness is expected


def test_the_worst_report_of_a_day_is_the_one_that_counts() -> None:
    reports = [*daily(*(0,) * 14), PainReport(AS_OF, 5)]
    result = assess_readiness(reports, AS_OF, DEFAULT_PARAMETERS)
    assert (result.readiness, result.worst_pain, result.reported_days) == (
        Readiness.NOT_READY,
        5,
        14,
    )
    assert result.pain_free_days == 13


@pytest.mark.parametrize("days", [14, 21], ids=["two weeks", "three weeks"])
def test_window_is_readiness_days_long_ending_on_as_of_inclusive(days: int) -> None:
    params = replace(DEFAULT_PARAMETERS, readiness_days=days)
    first_in = AS_OF - timedelta(days=days - 1)
    reports = [PainReport(first_in - timedelta(days=1), 9), *daily(*(0,) * days)]
    result = assess_readiness(reports, AS_OF, params)
    assert (result.window_start, result.window_end) == (first_in, AS_OF)
    assert result.reported_days == days
    assert result.readiness is Readiness.READY  # the pain 9 the day before is outside


def test_reports_after_as_of_are_ignored() -> None:
    reports = [*daily(*(0,) * 14), PainReport(AS_OF + timedelta(days=1), 8)]
    result = assess_readiness(reports, AS_OF, DEFAULT_PARAMETERS)
    assert result.readiness is Readiness.READY
    assert result.worst_pain == 0


@pytest.mark.parametrize("days", [13, 22], ids=["under two weeks", "over three weeks"])
def test_readiness_days_outside_two_to_three_weeks_is_rejected(days: int) -> None:
    with pytest.raises(InvalidParameter, match="readiness_days"):
        ProtocolParameters(readiness_days=days)


def test_explanation_names_window_counts_and_parameters() -> None:
    text = assess_readiness(daily(*(0,) * 6 + (1,) * 4), AS_OF, DEFAULT_PARAMETERS).explanation
    assert "2026-03-01..2026-03-14 (readiness_days=14)" in text
    assert "6 pain-free days (fewer than 7 needed, readiness_pain_free_share=0.7)" in text
    assert text.endswith(": not-ready")


def test_unknown_explanation_names_the_minimum_reported_days() -> None:
    text = assess_readiness(daily(0, 0), AS_OF, DEFAULT_PARAMETERS).explanation
    assert "readiness_min_reported_days=10" in text


def test_a_pain_report_off_the_scale_is_rejected() -> None:
    with pytest.raises(InvalidPainReport):
        PainReport(AS_OF, 11)


@given(
    st.lists(st.tuples(st.integers(-30, 30), st.integers(0, 10)), max_size=60),
    st.integers(-400, 400),
)
def test_shifting_every_date_by_k_days_shifts_the_window_by_k_days(
    raw: list[tuple[int, int]], k: int
) -> None:
    shift = timedelta(days=k)
    reports = [PainReport(AS_OF + timedelta(days=d), p) for d, p in raw]
    moved = [PainReport(r.day + shift, r.pain) for r in reports]
    before = assess_readiness(reports, AS_OF, DEFAULT_PARAMETERS)
    after = assess_readiness(moved, AS_OF + shift, DEFAULT_PARAMETERS)
    assert after.window_start == before.window_start + shift
    assert after.window_end == before.window_end + shift
    assert (after.readiness, after.reported_days, after.pain_free_days, after.worst_pain) == (
        before.readiness,
        before.reported_days,
        before.pain_free_days,
        before.worst_pain,
    )
