"""Sessions built once and handed to both implementations: `domain/` objects and the frames
`analytics/` reads (the shape every source produces, `analytics.facts`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

import polars as pl

from analytics.facts import (
    GROUP_MEMBER_SCHEMA,
    KEYED_REPETITION_SCHEMA,
    KEYED_SESSION_SCHEMA,
    PAIN_REPORT_SCHEMA,
    PATIENT_SCHEMA,
    PRESCRIPTION_SCHEMA,
    REPETITION_SCHEMA,
    SESSION_SCHEMA,
    Facts,
)
from domain.pain_response import Repetition

DAY0 = date(2026, 3, 2)
FLEXION = "flexion-in-lying"
EXTENSION = "extension-in-lying"
ROCKING = "rocking-knees-to-chest"


@dataclass(frozen=True)
class Session:
    procedure_id: str
    patient_id: str
    protocol: str
    started_at: datetime  # aware, in the offset it was written with
    repetitions: tuple[Repetition, ...] = ()
    ended_at: datetime | None = None
    # The order the repetition rows are stored in (indices into `repetitions`).
    row_order: tuple[int, ...] | None = None

    @property
    def day(self) -> date:
        return self.started_at.date()


@dataclass
class Tenant:
    sessions: list[Session] = field(default_factory=list)
    pain_reports: list[tuple[str, date, int]] = field(default_factory=list)
    patients: list[tuple[str, str | None]] = field(default_factory=list)
    group_members: list[tuple[str, str]] = field(default_factory=list)
    # (patient, protocol) or (patient, protocol, authored_on)
    prescriptions: list[tuple[str, str] | tuple[str, str, date | None]] = field(
        default_factory=list
    )

    def facts(self) -> Facts:
        return Facts(
            sessions=session_frame(self.sessions).lazy(),
            repetitions=repetition_frame(self.sessions).lazy(),
            pain_reports=pl.DataFrame(
                self.pain_reports, schema=PAIN_REPORT_SCHEMA, orient="row"
            ).lazy(),
            patients=pl.DataFrame(self.patients, schema=PATIENT_SCHEMA, orient="row").lazy(),
            group_members=pl.DataFrame(
                self.group_members, schema=GROUP_MEMBER_SCHEMA, orient="row"
            ).lazy(),
            prescriptions=pl.DataFrame(
                [(*p, None)[:3] for p in self.prescriptions],
                schema=PRESCRIPTION_SCHEMA,
                orient="row",
            ).lazy(),
        )


def at(day_offset: int, hour: int = 8, minute: int = 0, offset_hours: float = 1.0) -> datetime:
    zone = timezone(timedelta(hours=offset_hours))
    return datetime.combine(DAY0 + timedelta(days=day_offset), datetime.min.time(), zone) + (
        timedelta(hours=hour, minutes=minute)
    )


def reps(*pain: int) -> tuple[Repetition, ...]:
    return tuple(Repetition(i, p) for i, p in enumerate(pain, start=1))


def session_frame(sessions: Iterable[Session]) -> pl.DataFrame:
    rows = [
        (
            s.procedure_id,
            s.patient_id,
            s.protocol,
            s.day,
            s.started_at.astimezone(UTC),
            None if s.ended_at is None else s.ended_at.astimezone(UTC),
        )
        for s in sessions
    ]
    return pl.DataFrame(rows, schema=SESSION_SCHEMA, orient="row")


def repetition_frame(sessions: Sequence[Session]) -> pl.DataFrame:
    rows = []
    for s in sessions:
        order = s.row_order if s.row_order is not None else range(len(s.repetitions))
        for i in order:
            r = s.repetitions[i]
            rows.append(
                (
                    s.procedure_id,
                    r.index,
                    r.pain,
                    r.distance_cm,
                    " ".join(r.form_faults) or None,
                    r.peripheral_symptoms,
                )
            )
    return pl.DataFrame(rows, schema=REPETITION_SCHEMA, orient="row")


def numbered_frames(sessions: Sequence[Session]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sessions and repetitions as a star-layout source gives them: each session numbered by
    its row, each repetition naming its session by that number instead of its id."""
    numbers = {s.procedure_id: k for k, s in enumerate(sessions)}
    numbered = session_frame(sessions).with_row_index("session_key")
    repetitions = repetition_frame(sessions).with_columns(
        session_key=pl.col("procedure_id").replace_strict(numbers)
    )
    return (
        numbered.select(list(KEYED_SESSION_SCHEMA)).cast(dict(KEYED_SESSION_SCHEMA)),
        repetitions.select(list(KEYED_REPETITION_SCHEMA)).cast(dict(KEYED_REPETITION_SCHEMA)),
    )
