"""The pain-per-repetition trend (CLINICAL_RULES section 7): pain at each repetition index and
the within-session slope, by week since the patient's first session.

Works on sessions that carry `code` (the packed pain per repetition of
`analytics.classification`): sessions with the same week and code are counted once with a
weight, so 10M repetitions become a few hundred thousand distinct (week, code) rows before
they are unpacked. Sessions of the general path (code null) bring their own repetitions.
"""

from __future__ import annotations

import math
from itertools import chain, repeat
from typing import Final

import polars as pl

from analytics.classification import PACKED_SLOTS

CURVE_SCHEMA: Final = pl.Schema(
    {
        "week": pl.Int32,
        "repetition_index": pl.Int32,
        "sessions": pl.Int64,
        "mean_pain": pl.Float64,
        "median_pain": pl.Float64,
    }
)


def session_weeks(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `week`: whole weeks from the patient's first session among `sessions`."""
    # A group-by of the patients and a join: a third of the CPU of `min().over(...)` here.
    first = sessions.group_by("patient_id").agg(_first=pl.col("local_date").min())
    return (
        sessions.join(first, on="patient_id", how="left")
        .with_columns(
            week=((pl.col("local_date") - pl.col("_first")).dt.total_days() // 7).cast(pl.Int32)
        )
        .drop("_first")
    )


def _pain_histogram(weekly: pl.LazyFrame, general_reps: pl.LazyFrame) -> pl.LazyFrame:
    """Rows (week, repetition_index, pain, count) over every rated repetition."""
    packed = (
        weekly.filter(pl.col("code").is_not_null())
        .group_by("week", "n", "code")
        .agg(count=pl.len())
    )
    slots = [
        packed.filter(pl.col("n") >= k).select(
            "week",
            repetition_index=pl.lit(k, pl.Int32),
            pain=((pl.col("code") // (1 << (4 * (k - 1)))) % 16).cast(pl.Int8),
            count="count",
        )
        for k in range(1, PACKED_SLOTS + 1)
    ]
    general = (
        weekly.filter(pl.col("code").is_null())
        .select("session_key", "week")
        .join(general_reps, on="session_key")
        .select(
            "week",
            pl.col("repetition_index").cast(pl.Int32),
            pl.col("pain").cast(pl.Int8),
            count=pl.lit(1, pl.UInt32),
        )
    )
    return (
        pl.concat([*slots, general], how="vertical_relaxed")
        .group_by("week", "repetition_index", "pain")
        .agg(count=pl.col("count").sum().cast(pl.Int64))
    )


def pain_curve(weekly: pl.LazyFrame, general_reps: pl.LazyFrame) -> pl.LazyFrame:
    """Mean and median pain at each repetition index by week.

    `weekly`: sessions with `week`, `n`, `code` and `session_key`; `general_reps`: the
    ordered repetitions (`session_key`, `repetition_index`, `pain`) of sessions without a
    code. The median is read from the pain histogram (pain is a whole number 0-10), the mean
    of the middle two values when the count is even, as `statistics.median`.
    """
    histogram = _pain_histogram(weekly, general_reps).sort("week", "repetition_index", "pain")
    group = ["week", "repetition_index"]
    count = pl.col("count")
    total = count.sum().over(group)
    running = count.cum_sum().over(group)
    with_position = histogram.with_columns(_total=total, _running=running)
    lower = pl.col("pain").filter(pl.col("_running") > (pl.col("_total") - 1) // 2).first()
    upper = pl.col("pain").filter(pl.col("_running") > pl.col("_total") // 2).first()
    return (
        with_position.group_by(group)
        .agg(
            sessions=count.sum(),
            mean_pain=(pl.col("pain").cast(pl.Int64) * count).sum() / count.sum(),
            median_pain=(lower.cast(pl.Float64) + upper.cast(pl.Float64)) / 2,
        )
        .sort(group)
        .select(list(CURVE_SCHEMA))
        .cast(dict(CURVE_SCHEMA))  # type: ignore[arg-type]
    )


def slope_by_week(weekly: pl.LazyFrame) -> list[dict[str, float | int]]:
    """Mean within-session slope (sessions with at least two rated repetitions) by week.

    The mean is `math.fsum` (correctly rounded) over each week's slopes, so it does not depend
    on the order sessions are read in (a parallel float sum would differ in the last bit).
    Slopes repeat (1,277 distinct (week, slope) pairs among 1.7M sessions in the benchmark):
    fsum reads each distinct value repeated by its count, not a Python float per session.
    """
    return mean_slopes(slope_counts(weekly).collect())


def slope_counts(weekly: pl.LazyFrame) -> pl.LazyFrame:
    """Per week, its distinct slopes and how many sessions have each (`mean_slopes` reads
    them): the lazy half of `slope_by_week`."""
    return (
        weekly.filter(pl.col("slope").is_not_null())
        .group_by("week", "slope")
        .agg(count=pl.len())
        .group_by("week")
        .agg("slope", "count")
        .sort("week")
    )


def mean_slopes(slopes: pl.DataFrame) -> list[dict[str, float | int]]:
    """`slope_by_week` from collected `slope_counts`."""
    result: list[dict[str, float | int]] = []
    for week, values, counts in slopes.iter_rows():
        sessions = sum(counts)
        total = math.fsum(chain.from_iterable(map(repeat, values, counts)))
        result.append({"week": week, "sessions": sessions, "mean_slope": total / sessions})
    return result
