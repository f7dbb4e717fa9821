"""Entry criteria across a cohort (analytics.readiness), section 4."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from analytics.facts import PAIN_REPORT_SCHEMA
from analytics.readiness import readiness_as_of, readiness_on_days
from domain.protocols import DEFAULT_PARAMETERS

AS_OF = date(2026, 3, 14)


def _diary(patient: str, *pain: int, last: date = AS_OF) -> list[tuple[str, date, int]]:
    """One report a day, the last one on `last`."""
    return [(patient, last - timedelta(days=len(pain) - 1 - i), p) for i, p in enumerate(pain)]


def _reports(*diaries: list[tuple[str, date, int]]) -> pl.LazyFrame:
    rows = [row for diary in diaries for row in diary]
    return pl.DataFrame(rows, schema=PAIN_REPORT_SCHEMA, orient="row").lazy()


def test_ready_needs_enough_reported_days_low_pain_and_mostly_pain_free_days() -> None:
    reports = _reports(
        _diary("ready", *(0,) * 7, 3, 3, 3),
        _diary("too-few-pain-free", *(0,) * 6, 1, 1, 1, 1),
        _diary("one-day-at-4", *(0,) * 13, 4),
        _diary("sparse", *(0,) * 9),
    )
    verdicts = readiness_as_of(reports, AS_OF, DEFAULT_PARAMETERS).collect()
    found = dict(verdicts.select("patient_id", "readiness").iter_rows())
    assert found == {
        "ready": "ready",
        "too-few-pain-free": "not-ready",
        "one-day-at-4": "not-ready",
        "sparse": "unknown",
    }


def test_the_worst_report_of_a_day_counts_and_reports_after_the_date_do_not() -> None:
    reports = _reports(
        _diary("p", *(0,) * 14),
        [("p", AS_OF, 5), ("p", AS_OF + timedelta(days=1), 9)],
    )
    row = readiness_as_of(reports, AS_OF, DEFAULT_PARAMETERS).collect().row(0, named=True)
    assert (row["readiness"], row["worst_pain"], row["pain_free_days"]) == ("not-ready", 5, 13)


def test_readiness_on_a_day_is_what_the_window_ending_that_day_said() -> None:
    reports = _reports(_diary("p", *(6,) * 10, *(0,) * 14))
    days = pl.DataFrame(
        {
            "patient_id": ["p", "p", "nobody"],
            "local_date": [AS_OF, AS_OF - timedelta(days=10), AS_OF],
        }
    ).lazy()
    found = readiness_on_days(reports, days, DEFAULT_PARAMETERS).collect()
    assert sorted(found.rows()) == [
        ("nobody", AS_OF, "unknown"),
        ("p", AS_OF - timedelta(days=10), "not-ready"),
        ("p", AS_OF, "ready"),
    ]
