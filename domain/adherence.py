"""Dosage, sequence and form flags (CLINICAL_RULES section 6).

Seed 001: "Do only 5 - 6 repetitions per session, and repeat the sessions three or four times
per day" and "all other flexion exercises must always be followed immediately by a Cobra
(Extension in Lying)". Flags record what happened; nothing here blocks a session.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

from domain.pain_response import PainResponse, Repetition, SessionAssessment
from domain.protocols import ProtocolParameters
from domain.readiness import Readiness
from domain.stop_rule import Hold


class SessionFlag(StrEnum):
    STARTED_BEFORE_READY = "started-before-ready"
    PREMATURE_RETRY = "premature-retry"
    UNDER_DOSE = "under-dose"
    OVER_DOSE = "over-dose"
    MISSING_EXTENSION = "missing-extension"


class DayFlag(StrEnum):
    UNDER_SESSIONS = "under-sessions"
    OVER_SESSIONS = "over-sessions"


FORM_FAULT_FLAG_PREFIX: Final = "form-fault:"


def form_fault_flag(code: str) -> str:
    return f"{FORM_FAULT_FLAG_PREFIX}{code}"


def form_fault_counts(reps: Iterable[Repetition]) -> dict[str, int]:
    """Repetitions showing each form fault in one session, by fault code (sorted)."""
    counts = Counter(code for rep in reps for code in set(rep.form_faults))
    return dict(sorted(counts.items()))


def dosage_flag(
    rep_count: int, response: PainResponse, params: ProtocolParameters
) -> SessionFlag | None:
    """`under-dose` / `over-dose` against min_reps..max_reps, for protocols with dosage checked.

    A `worsening` session is never under-dose: stopping when pain rises is what the patient
    was told to do.
    """
    if not params.dosage_checked:
        return None
    if rep_count < params.min_reps and response is not PainResponse.WORSENING:
        return SessionFlag.UNDER_DOSE
    if rep_count > params.max_reps:
        return SessionFlag.OVER_DOSE
    return None


def session_flags(
    assessment: SessionAssessment,
    *,
    readiness: Readiness | None = None,
    premature_retry: bool = False,
    extension_missing: bool = False,
) -> tuple[str, ...]:
    """Every per-session flag, in the order of section 6, form faults last by code.

    `readiness` is the entry-criteria assessment as of the session's day (None when not
    assessed): only `not-ready` flags, `unknown` does not. The parameters are the ones the
    assessment was made with. `premature_retry` comes from `ProtocolState` and
    `extension_missing` from `missing_extension`.
    """
    params = assessment.parameters
    flags: list[str] = []
    if params.requires_readiness and readiness is Readiness.NOT_READY:
        flags.append(SessionFlag.STARTED_BEFORE_READY)
    if premature_retry:
        flags.append(SessionFlag.PREMATURE_RETRY)
    dosage = dosage_flag(len(assessment.pain), assessment.response, params)
    if dosage is not None:
        flags.append(dosage)
    if extension_missing:
        flags.append(SessionFlag.MISSING_EXTENSION)
    flags.extend(form_fault_flag(code) for code in form_fault_counts(assessment.repetitions))
    return tuple(flags)


class InvalidTiming(ValueError):
    """A session period without UTC offsets, or ending before it starts."""


@dataclass(frozen=True, slots=True)
class TimedSession:
    """When a session was performed: Procedure.performedPeriod (or start twice)."""

    procedure_id: str
    started_at: datetime  # aware
    ended_at: datetime  # aware; equal to started_at when only performedDateTime is known

    def __post_init__(self) -> None:
        if self.started_at.utcoffset() is None or self.ended_at.utcoffset() is None:
            raise InvalidTiming(f"session {self.procedure_id}: times need a UTC offset")
        if self.ended_at < self.started_at:
            raise InvalidTiming(f"session {self.procedure_id}: ends before it starts")


def missing_extension(
    flexion_sessions: Iterable[TimedSession],
    extension_starts: Iterable[datetime],
    within: timedelta,
) -> frozenset[str]:
    """Procedure ids of flexion sessions not followed by an extension-in-lying session.

    Followed means an extension session starts at or after the flexion session's end and at
    most `within` later (both ends inclusive). One extension session may follow several
    flexion sessions (e.g. rocking, then flexion in lying, then one Cobra). Instants are
    compared, so sessions written with different offsets are handled.
    """
    starts = sorted(extension_starts)
    missing = set()
    for session in flexion_sessions:
        at = bisect_left(starts, session.ended_at)
        if at == len(starts) or starts[at] > session.ended_at + within:
            missing.add(session.procedure_id)
    return frozenset(missing)


def on_hold(day: date, holds: Iterable[Hold]) -> bool:
    return any(hold.covers(day) for hold in holds)


def active_days(session_days: Iterable[date]) -> list[date]:
    """The days a protocol is judged on: every day from its first session to its latest, so a
    day in between without any session is `under-sessions`. Days after the latest session are
    not judged: a finished programme and a lapse look the same from the sessions alone (the
    worklist's status and last session tell them apart)."""
    days = sorted(set(session_days))
    if not days:
        return []
    return [days[0] + timedelta(days=k) for k in range((days[-1] - days[0]).days + 1)]


def daily_flags(
    session_days: Iterable[date],
    holds: Iterable[Hold],
    params: ProtocolParameters,
    days: Iterable[date] | None = None,
) -> dict[date, DayFlag]:
    """`under-sessions` / `over-sessions` per local day on days the protocol is active.

    `session_days` holds one local start date per session of the protocol. The days judged
    are `days` when given (e.g. every day of the prescription up to as_of, so a day without
    any session counts as under-sessions), else the days with at least one session. Days a
    hold covers (see `Hold.covers`) are not judged. Only protocols with dosage checked.
    """
    if not params.dosage_checked:
        return {}
    per_day = Counter(session_days)
    hold_list = tuple(holds)
    judged = sorted(set(per_day) if days is None else set(days))
    flags: dict[date, DayFlag] = {}
    for day in judged:
        if on_hold(day, hold_list):
            continue
        count = per_day.get(day, 0)
        if count < params.min_sessions_per_day:
            flags[day] = DayFlag.UNDER_SESSIONS
        elif count > params.max_sessions_per_day:
            flags[day] = DayFlag.OVER_SESSIONS
    return flags
