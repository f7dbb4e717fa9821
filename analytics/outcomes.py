"""Pain outcome per patient (CLINICAL_RULES section 7): change in general pain from the first
week to the latest, and whether it is a clinically important improvement.

Weeks count from the patient's first general pain report on or before as_of (week 0 is its
first seven days). A week's pain is the mean of its days' worst reports, as readiness reads
them. The outcome needs a latest week after week 0. A responder improved by at least
`RESPONDER_POINTS` points or `RESPONDER_SHARE` of the first week's pain (the accepted minimal
important change for 0-10 pain scales).
"""

from __future__ import annotations

from datetime import date
from typing import Final

import polars as pl

from analytics.readiness import daily_worst

RESPONDER_POINTS: Final = 2.0
RESPONDER_SHARE: Final = 0.3
_EPSILON: Final = 1e-9  # 7 after 10 is an improvement of exactly 30%


def pain_outcomes(pain_reports: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """One row per patient with a report: first and latest week's pain, change, responder."""
    days = daily_worst(pain_reports.filter(pl.col("local_date") <= as_of)).with_columns(
        week=(
            (pl.col("local_date") - pl.col("local_date").min().over("patient_id")).dt.total_days()
            // 7
        ).cast(pl.Int32)
    )
    # Integer sums then one division: the same number whatever order the rows come in.
    weekly = days.group_by("patient_id", "week").agg(
        pain=pl.col("worst").cast(pl.Int64).sum() / pl.len()
    )
    outcome = weekly.group_by("patient_id").agg(
        first_week_pain=pl.col("pain").filter(pl.col("week") == 0).first(),
        latest_week=pl.col("week").max(),
        latest_week_pain=pl.col("pain").sort_by("week").last(),
    )
    improvement = pl.col("first_week_pain") - pl.col("latest_week_pain")
    evaluable = pl.col("latest_week") >= 1
    return outcome.with_columns(
        latest_week_pain=pl.when(evaluable).then("latest_week_pain"),
        pain_change=pl.when(evaluable).then(-improvement),
        responder=pl.when(evaluable).then(
            (improvement >= RESPONDER_POINTS - _EPSILON)
            | (
                (pl.col("first_week_pain") > 0)
                & (improvement >= RESPONDER_SHARE * pl.col("first_week_pain") - _EPSILON)
            )
        ),
    )
