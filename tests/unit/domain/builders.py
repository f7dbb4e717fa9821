"""Small constructors that keep the rule tables readable."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from domain.pain_response import PainResponse, Repetition
from domain.stop_rule import SessionRecord

DAY0 = date(2026, 3, 1)
CET = timezone(timedelta(hours=1))


def reps(*pain: int) -> tuple[Repetition, ...]:
    """Repetitions 1..n with the given pain."""
    return tuple(Repetition(i, p) for i, p in enumerate(pain, start=1))


def day(offset: int) -> date:
    return DAY0 + timedelta(days=offset)


def session(
    procedure_id: str,
    offset: int,
    response: PainResponse = PainResponse.WEARS_OFF,
    at: time = time(8, 0),
) -> SessionRecord:
    """A session on DAY0 + offset, started at a local time in CET."""
    started = datetime.combine(day(offset), at, tzinfo=CET)
    return SessionRecord.starting(procedure_id, started, response)


def at(offset: int, hour: int, minute: int = 0, tz: timezone = UTC) -> datetime:
    return datetime.combine(day(offset), time(hour, minute), tzinfo=tz)
