"""Entry criteria for flexion-in-lying (CLINICAL_RULES section 4).

Seed 001: begin "when you have mostly recovered from an acute episode of lower back pain and
have had long pain-free periods for two to three weeks".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from domain.codes import PAIN_MAX, PAIN_MIN
from domain.protocols import ProtocolParameters


class Readiness(StrEnum):
    READY = "ready"
    NOT_READY = "not-ready"
    UNKNOWN = "unknown"


class InvalidPainReport(ValueError):
    """A general pain report off the 0-10 scale."""


@dataclass(frozen=True, slots=True)
class PainReport:
    """One general pain report (an Observation 72514-3 without `partOf`)."""

    day: date  # local calendar date of the report as written
    pain: int

    def __post_init__(self) -> None:
        if not PAIN_MIN <= self.pain <= PAIN_MAX:
            raise InvalidPainReport(f"pain {self.pain} on {self.day} is not 0..10")


@dataclass(frozen=True, slots=True)
class ReadinessAssessment:
    readiness: Readiness
    window_start: date
    window_end: date  # the as_of date, inclusive
    reported_days: int
    pain_free_days: int  # reported days whose worst pain was 0
    worst_pain: int | None  # worst report in the window; None without reports
    explanation: str


def readiness_window(as_of: date, params: ProtocolParameters) -> tuple[date, date]:
    """The `readiness_days` days ending on `as_of`, both ends inclusive."""
    return as_of - timedelta(days=params.readiness_days - 1), as_of


def assess_readiness(
    reports: Iterable[PainReport], as_of: date, params: ProtocolParameters
) -> ReadinessAssessment:
    """Readiness as of a date from each day's worst general pain report in the window.

    Reports outside the window, in particular after `as_of`, are ignored, so a past
    assessment is what the service would have said that day.
    """
    start, end = readiness_window(as_of, params)
    worst_by_day: dict[date, int] = {}
    for report in reports:
        if start <= report.day <= end:
            worst_by_day[report.day] = max(report.pain, worst_by_day.get(report.day, PAIN_MIN))
    reported = len(worst_by_day)
    pain_free = sum(1 for pain in worst_by_day.values() if pain == 0)
    worst = max(worst_by_day.values(), default=None)
    window = f"{start}..{end} (readiness_days={params.readiness_days})"

    if reported < params.readiness_min_reported_days:
        return ReadinessAssessment(
            Readiness.UNKNOWN,
            start,
            end,
            reported,
            pain_free,
            worst,
            f"{reported} of {params.readiness_days} days in {window} have a pain report, fewer "
            f"than readiness_min_reported_days={params.readiness_min_reported_days}: unknown",
        )
    assert worst is not None  # reported >= readiness_min_reported_days >= 1
    # The small epsilon keeps 0.7 * 10 from becoming 7.000000000000001 pain-free days needed.
    needed = math.ceil(params.readiness_pain_free_share * reported - 1e-9)
    low_enough = worst <= params.readiness_max_pain
    pain_free_enough = pain_free >= needed
    readiness = Readiness.READY if low_enough and pain_free_enough else Readiness.NOT_READY
    return ReadinessAssessment(
        readiness,
        start,
        end,
        reported,
        pain_free,
        worst,
        f"over {window}: {reported} reported days, worst pain {worst} "
        f"({'<=' if low_enough else '>'} readiness_max_pain={params.readiness_max_pain}), "
        f"{pain_free} pain-free days ({'at least' if pain_free_enough else 'fewer than'} "
        f"{needed} needed, readiness_pain_free_share={params.readiness_pain_free_share}): "
        f"{readiness}",
    )
