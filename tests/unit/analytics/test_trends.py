"""The pain-per-repetition trend (analytics.trends), section 7."""

from __future__ import annotations

import math
import random
import statistics

import polars as pl

from analytics import classification, trends
from analytics.protocol_table import protocol_table
from tests.unit.analytics.builders import (
    FLEXION,
    Session,
    at,
    repetition_frame,
    reps,
    session_frame,
)


def _weekly(*sessions: Session) -> pl.DataFrame:
    figures = classification.session_figures(repetition_frame(list(sessions)).lazy())
    assessed = classification.assess_sessions(
        session_frame(sessions).lazy(), figures, protocol_table()
    )
    return trends.session_weeks(assessed).collect()


def test_weeks_count_from_each_patients_first_session() -> None:
    weekly = _weekly(
        Session("a0", "a", FLEXION, at(0), reps(1, 1, 1)),
        Session("a1", "a", FLEXION, at(13), reps(1, 1, 1)),
        Session("b0", "b", FLEXION, at(10), reps(1, 1, 1)),
    )
    assert dict(weekly.select("procedure_id", "week").iter_rows()) == {"a0": 0, "a1": 1, "b0": 0}


def test_mean_and_median_pain_at_each_repetition_by_week() -> None:
    pains = [(4, 3, 2), (2, 2, 2), (5, 1, 0), (1, 1, 1)]
    weekly = _weekly(
        *(Session(f"s{k}", f"p{k}", FLEXION, at(0), reps(*p)) for k, p in enumerate(pains))
    )
    empty = pl.LazyFrame(
        schema={"session_key": pl.UInt64, "repetition_index": pl.Int32, "pain": pl.Int8}
    )
    curve = trends.pain_curve(weekly.lazy(), empty).collect()
    for index in (1, 2, 3):
        at_index = [p[index - 1] for p in pains]
        row = curve.filter(pl.col("repetition_index") == index).row(0, named=True)
        assert (row["week"], row["sessions"]) == (0, 4)
        assert row["mean_pain"] == statistics.mean(at_index)
        assert row["median_pain"] == statistics.median(at_index)  # even count: middle two


def test_sessions_off_the_fast_path_bring_their_own_repetitions_to_the_curve() -> None:
    long = Session("long", "p", FLEXION, at(0), reps(*([1] * 17), 9))
    weekly = _weekly(long)
    general = classification.ordered_repetitions(repetition_frame([long]).lazy()).select(
        classification.session_key(), "repetition_index", "pain"
    )
    curve = trends.pain_curve(weekly.lazy(), general).collect()
    assert curve.filter(pl.col("repetition_index") == 18)["mean_pain"].to_list() == [9.0]


def test_mean_slope_by_week_is_over_sessions_with_at_least_two_repetitions() -> None:
    weekly = _weekly(
        Session("rising", "p", FLEXION, at(0), reps(1, 2, 3)),
        Session("falling", "q", FLEXION, at(0), reps(3, 2, 1, 0)),
        Session("single", "r", FLEXION, at(0), reps(5)),
    )
    assert trends.slope_by_week(weekly.lazy()) == [{"week": 0, "sessions": 2, "mean_slope": 0.0}]


def test_the_mean_slope_is_the_correctly_rounded_sum_over_the_count_whatever_the_order() -> None:
    rng = random.Random(7)
    # Slopes as the rules make them (small integer ratios), many repeated, and some large
    # and small enough that a naive float sum loses digits.
    slopes = [rng.randint(-40, 40) / rng.choice([2, 10, 17.5, 70]) for _ in range(5_000)]
    slopes += [1e16, 1.0, -1e16, 3.0] * 3
    rng.shuffle(slopes)
    weekly = pl.DataFrame(
        {"week": [k % 3 for k in range(len(slopes))], "slope": slopes},
        schema={"week": pl.Int32, "slope": pl.Float64},
    )
    found = trends.slope_by_week(weekly.lazy())
    expected = [
        {
            "week": week,
            "sessions": len(values),
            "mean_slope": math.fsum(values) / len(values),
        }
        for week in range(3)
        for values in [slopes[week::3]]
    ]
    assert found == expected
