"""Entry criteria for flexion-in-lying across a cohort (CLINICAL_RULES section 4), vectorised.

Matches `domain.readiness.assess_readiness`: each day's worst general pain report, over the
`readiness_days` days ending on the date (both ends inclusive); `unknown` below
`readiness_min_reported_days` reported days, `ready` when every reported day's worst pain is
at most `readiness_max_pain` and enough of them are pain-free, else `not-ready`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import polars as pl

from domain.protocols import ProtocolParameters
from domain.readiness import Readiness

READINESS: Final = pl.Enum([r.value for r in Readiness])
# The domain's epsilon: 0.7 * 10 must need 7 pain-free days, not 7.000000000000001.
_EPSILON: Final = 1e-9


def daily_worst(pain_reports: pl.LazyFrame) -> pl.LazyFrame:
    """One row per patient and local day: the worst general pain reported that day."""
    return pain_reports.group_by("patient_id", "local_date").agg(worst=pl.col("pain").max())


def _verdict(params: ProtocolParameters) -> pl.Expr:
    reported = pl.col("reported_days")
    needed = (params.readiness_pain_free_share * reported - _EPSILON).ceil()
    return (
        pl.when(reported < params.readiness_min_reported_days)
        .then(pl.lit(Readiness.UNKNOWN.value))
        .when((pl.col("days_above_max") == 0) & (pl.col("pain_free_days") >= needed))
        .then(pl.lit(Readiness.READY.value))
        .otherwise(pl.lit(Readiness.NOT_READY.value))
        .cast(READINESS)
    )


def readiness_as_of(
    pain_reports: pl.LazyFrame, as_of: date, params: ProtocolParameters
) -> pl.LazyFrame:
    """Readiness of every patient with a report in the window; patients without one are
    `unknown` (the report fills them in)."""
    start = as_of - timedelta(days=params.readiness_days - 1)
    worst = pl.col("worst")
    return (
        daily_worst(pain_reports.filter(pl.col("local_date").is_between(start, as_of)))
        .group_by("patient_id")
        .agg(
            reported_days=pl.len().cast(pl.Int32),
            pain_free_days=(worst == 0).sum().cast(pl.Int32),
            days_above_max=(worst > params.readiness_max_pain).sum().cast(pl.Int32),
            worst_pain=worst.max(),
        )
        .with_columns(readiness=_verdict(params))
        .drop("days_above_max")
    )


def readiness_on_days(
    pain_reports: pl.LazyFrame, days: pl.LazyFrame, params: ProtocolParameters
) -> pl.LazyFrame:
    """Readiness of each (patient_id, local_date) of `days`, as the domain would have assessed
    it on that day (e.g. the day a patient started, for `started-before-ready`).

    Each queried day meets its patient's reports in its window (one join, then two group-bys),
    so the work grows with reports times queried days per patient: ask for the days needed.
    """
    span = timedelta(days=params.readiness_days - 1)
    queries = days.select("patient_id", "local_date").unique()
    in_window = (
        queries.join(
            pain_reports.select("patient_id", _day="local_date", pain="pain"),
            on="patient_id",
            how="inner",
        )
        .filter(pl.col("_day").is_between(pl.col("local_date") - span, pl.col("local_date")))
        .group_by("patient_id", "local_date", "_day")
        .agg(worst=pl.col("pain").max())
    )
    worst = pl.col("worst")
    counts = in_window.group_by("patient_id", "local_date").agg(
        reported_days=pl.len().cast(pl.Int32),
        pain_free_days=(worst == 0).sum().cast(pl.Int32),
        days_above_max=(worst > params.readiness_max_pain).sum().cast(pl.Int32),
    )
    return (
        queries.join(counts, on=["patient_id", "local_date"], how="left")
        .with_columns(pl.col("reported_days", "pain_free_days", "days_above_max").fill_null(0))
        .with_columns(readiness=_verdict(params))
        .select("patient_id", "local_date", "readiness")
    )
