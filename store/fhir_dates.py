"""FHIR date, dateTime and instant values as UTC ranges (for the date search index)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


def parse_instant(value: str) -> datetime:
    """A FHIR dateTime with a time part as an aware datetime (UTC when no offset is given)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_date(value: str) -> date:
    """The calendar date as written: '2026-03-10T23:30:00-05:00' is 10 March, whatever UTC says."""
    return date.fromisoformat(value[:10])


def utc_offset_minutes(value: str) -> int | None:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    offset = parsed.utcoffset()
    return None if offset is None else int(offset.total_seconds() // 60)


def value_range(value: str) -> tuple[datetime, datetime]:
    """The inclusive UTC range a FHIR date/dateTime/instant covers, at its own precision.

    '2026' covers the whole year; '2026-03-10' the whole day; a time to the second covers that
    second. Partial dates carry no zone, so they are read as UTC.
    """
    match = _PARTIAL.match(value)
    if match:
        year, month, day = match.groups()
        low = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        if day:
            high = low + timedelta(days=1)
        elif month:
            high = datetime(low.year + low.month // 12, low.month % 12 + 1, 1, tzinfo=UTC)
        else:
            high = datetime(low.year + 1, 1, 1, tzinfo=UTC)
        return low, high - _TICK
    instant = parse_instant(value)
    if instant.microsecond:
        return instant, instant
    return instant, instant + timedelta(seconds=1) - _TICK


def period_range(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """A Period's range; a missing end means ongoing, a missing start means unknown."""
    low = value_range(start)[0] if start else EARLIEST
    high = value_range(end)[1] if end else LATEST
    return low, high
