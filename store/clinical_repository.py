"""Clinical queries that return domain values, read from the narrow fact tables.

Every query filters by the store's tenant. Sessions come from `exercise_session` with their
rated repetitions from `session_fact`; general pain reports from `pain_report`. A session's
start keeps the UTC offset it was written with, and its day is the local date as written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from domain.adherence import (
    DayFlag,
    TimedSession,
    daily_flags,
    missing_extension,
    session_flags,
)
from domain.codes import ExerciseCode
from domain.pain_response import InvalidRepetition, Repetition, SessionAssessment, classify_session
from domain.protocols import ProtocolParameters
from domain.readiness import PainReport, ReadinessAssessment, assess_readiness
from domain.stop_rule import ProtocolState, SessionRecord, evaluate_protocol
from store import tables
from store.batching import chunks
from store.errors import InvalidResource, ResourceNotFound
from store.protocol_catalog import ProtocolDefinition, protocol_definitions
from store.resource_store import ResourceStore

Pair = tuple[str, str]  # (patient_id, protocol)

_SESSION = tables.ExerciseSession.__table__  # type: ignore[attr-defined]
_FACT = tables.SessionFact.__table__  # type: ignore[attr-defined]
_PAIN = tables.PainReport.__table__  # type: ignore[attr-defined]
_FACT_ORDER = itemgetter(0, 2, 1)  # procedure, repetition index, observation


@dataclass(frozen=True, slots=True)
class StoredSession:
    """One exercise session as stored: when, for whom, and its rated repetitions."""

    procedure_id: str
    patient_id: str
    protocol: str
    day: date  # local date of the start as written
    started_utc: datetime  # aware UTC, as stored: orders sessions
    ended_utc: datetime | None
    utc_offset_minutes: int | None  # the offset the start was written with
    based_on: str | None  # "ServiceRequest/<id>" when the session names its prescription
    repetitions: tuple[Repetition, ...]  # repetition-index order
    observation_ids: tuple[str, ...]  # the Observations the repetitions came from, sorted

    @property
    def started_at(self) -> datetime:
        """The start in the offset it was written with (converted on demand: ingest folds
        over whole histories and only needs the instant)."""
        return _local(self.started_utc, self.utc_offset_minutes)

    @property
    def ended_at(self) -> datetime | None:
        if self.ended_utc is None:
            return None
        return _local(self.ended_utc, self.utc_offset_minutes)

    def assess(self, params: ProtocolParameters) -> AssessedSession:
        try:
            assessment = classify_session(self.repetitions, params)
        except InvalidRepetition as error:
            raise InvalidResource(
                f"Procedure/{self.procedure_id}: {error}", "Observation.component"
            ) from None
        record = SessionRecord(self.procedure_id, self.day, self.started_utc, assessment.response)
        return AssessedSession(self, assessment, record)

    def timed(self) -> TimedSession:
        return TimedSession(self.procedure_id, self.started_utc, self.ended_utc or self.started_utc)


@dataclass(frozen=True, slots=True)
class AssessedSession:
    """A stored session with its pain response under one protocol's parameters."""

    session: StoredSession
    assessment: SessionAssessment
    record: SessionRecord


def assess_all(
    sessions: Iterable[StoredSession], params: ProtocolParameters
) -> list[AssessedSession]:
    return [s.assess(params) for s in sessions]


def _local(moment: datetime, offset_minutes: int | None) -> datetime:
    zone = UTC if offset_minutes is None else timezone(timedelta(minutes=offset_minutes))
    return moment.astimezone(zone)


class ClinicalRepository:
    def __init__(self, store: ResourceStore) -> None:
        self._store = store
        self._connection = store.connection
        self._tenant = store.tenant

    def histories(self, pairs: Iterable[Pair]) -> dict[Pair, list[StoredSession]]:
        """Every session of each (patient, protocol) pair, in start order; two queries per
        chunk of pairs (sessions, then their repetitions by the same pair key)."""
        wanted = sorted(set(pairs))
        result: dict[Pair, list[StoredSession]] = {pair: [] for pair in wanted}
        session_key = sa.tuple_(_SESSION.c.patient_id, _SESSION.c.protocol)
        fact_key = sa.tuple_(_FACT.c.patient_id, _FACT.c.protocol)
        for chunk in chunks(wanted):
            rows = list(
                self._connection.execute(
                    sa.select(_SESSION).where(
                        _SESSION.c.tenant == self._tenant, session_key.in_(chunk)
                    )
                )
            )
            for session in self._sessions(rows, fact_key.in_(chunk)):
                result[(session.patient_id, session.protocol)].append(session)
        return result

    def history(self, patient_id: str, protocol: str) -> list[StoredSession]:
        return self.histories([(patient_id, protocol)])[(patient_id, protocol)]

    def session(self, procedure_id: str) -> StoredSession | None:
        found = self.sessions([procedure_id])
        return found[0] if found else None

    def sessions(self, procedure_ids: Iterable[str]) -> list[StoredSession]:
        """The exercise sessions among these Procedure ids, in start order."""
        found: list[StoredSession] = []
        for chunk in chunks(sorted(set(procedure_ids))):
            rows = list(
                self._connection.execute(
                    sa.select(_SESSION).where(
                        _SESSION.c.tenant == self._tenant, _SESSION.c.procedure_id.in_(chunk)
                    )
                )
            )
            found.extend(self._sessions(rows, _FACT.c.procedure_id.in_(chunk)))
        found.sort(key=lambda s: (s.started_utc, s.procedure_id))
        return found

    def extension_sessions(self, patient_id: str) -> list[TimedSession]:
        """The patient's extension-in-lying sessions (what must follow each flexion session)."""
        rows = self._connection.execute(
            sa.select(
                _SESSION.c.procedure_id,
                _SESSION.c.started_at,
                _SESSION.c.ended_at,
                _SESSION.c.utc_offset_minutes,
            ).where(
                _SESSION.c.tenant == self._tenant,
                _SESSION.c.patient_id == patient_id,
                _SESSION.c.protocol == ExerciseCode.EXTENSION_IN_LYING.value,
            )
        )
        return [
            TimedSession(
                row.procedure_id,
                _local(row.started_at, row.utc_offset_minutes),
                _local(row.ended_at or row.started_at, row.utc_offset_minutes),
            )
            for row in rows
        ]

    def pain_reports(self, patient_id: str) -> list[PainReport]:
        """The patient's general pain reports (no partOf), by local date as written."""
        rows = self._connection.execute(
            sa.select(_PAIN.c.local_date, _PAIN.c.pain).where(
                _PAIN.c.tenant == self._tenant, _PAIN.c.patient_id == patient_id
            )
        )
        return [PainReport(row.local_date, row.pain) for row in rows]

    def _sessions(
        self, rows: Sequence[Any], facts_of: sa.ColumnElement[bool]
    ) -> list[StoredSession]:
        """Sessions for `exercise_session` rows, with the repetitions `facts_of` selects."""
        facts = self._connection.execute(
            sa.select(
                _FACT.c.procedure_id,
                _FACT.c.observation_id,
                _FACT.c.repetition_index,
                _FACT.c.pain,
                _FACT.c.distance_cm,
                _FACT.c.form_faults,
                _FACT.c.peripheral_symptoms,
            ).where(_FACT.c.tenant == self._tenant, facts_of)
        ).all()
        return build_sessions([row._mapping for row in rows], facts)


_FACT_COLUMNS = itemgetter(
    "procedure_id",
    "observation_id",
    "repetition_index",
    "pain",
    "distance_cm",
    "form_faults",
    "peripheral_symptoms",
)


def sessions_from_rows(
    session_rows: Iterable[Mapping[str, Any]], fact_rows: Iterable[Mapping[str, Any]]
) -> list[StoredSession]:
    """Sessions from `exercise_session` and `session_fact` rows as written (not read back):
    what ingest has in hand for the sessions it has just stored."""
    return build_sessions(session_rows, [_FACT_COLUMNS(row) for row in fact_rows])


def build_sessions(
    session_rows: Iterable[Mapping[str, Any]], facts: Iterable[Sequence[Any]]
) -> list[StoredSession]:
    """Sessions in start order from session rows and their repetition facts, each fact
    (procedure, observation, index, pain, distance, faults, peripheral)."""
    repetitions: dict[str, list[Repetition]] = defaultdict(list)
    observations: dict[str, set[str]] = defaultdict(set)
    # Sorted here, not in SQL: an ORDER BY procedure_id makes SQLite walk the tenant's whole
    # procedure index instead of the patient index. Plain tuples: this loop runs once per
    # repetition of a patient's whole history.
    for procedure_id, observation_id, index, pain, distance, faults, peripheral in sorted(
        facts, key=_FACT_ORDER
    ):
        observations[procedure_id].add(observation_id)
        if pain is not None:
            repetitions[procedure_id].append(
                Repetition(
                    index, pain, distance, tuple(faults.split()) if faults else (), peripheral
                )
            )
    sessions = [
        StoredSession(
            procedure_id=row["procedure_id"],
            patient_id=row["patient_id"],
            protocol=row["protocol"],
            day=row["local_date"],
            started_utc=row["started_at"].astimezone(UTC),
            ended_utc=row["ended_at"].astimezone(UTC) if row["ended_at"] is not None else None,
            utc_offset_minutes=row["utc_offset_minutes"],
            based_on=row["based_on"],
            repetitions=tuple(repetitions.get(row["procedure_id"], ())),
            observation_ids=tuple(sorted(observations.get(row["procedure_id"], ()))),
        )
        for row in session_rows
    ]
    sessions.sort(key=lambda s: (s.started_utc, s.procedure_id))
    return sessions


# --- views the API answers with: one session, one patient's protocol as of a date -------------


@dataclass(frozen=True, slots=True)
class SessionView:
    assessed: AssessedSession
    flags: tuple[str, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class ProtocolView:
    patient_id: str
    protocol: str
    as_of: date
    state: ProtocolState
    readiness: ReadinessAssessment
    last: AssessedSession | None
    flags: tuple[str, ...]
    explanation: str
    history: tuple[AssessedSession, ...]  # sessions dated on or before as_of, in start order

    def session(self, procedure_id: str) -> AssessedSession | None:
        return next((h for h in self.history if h.session.procedure_id == procedure_id), None)


def _flags(
    assessed: AssessedSession,
    params: ProtocolParameters,
    state: ProtocolState,
    reports: Sequence[PainReport],
    extensions: Sequence[TimedSession],
) -> tuple[str, ...]:
    """Section 6 flags of one session: readiness as of its day, its place in the stop-rule
    fold, dosage, the extension that must follow it and its form faults."""
    session = assessed.session
    readiness = (
        assess_readiness(reports, session.day, params).readiness
        if params.requires_readiness
        else None
    )
    extension_missing = params.requires_extension_after and bool(
        missing_extension(
            [session.timed()], (e.started_at for e in extensions), params.extension_within
        )
    )
    return session_flags(
        assessed.assessment,
        readiness=readiness,
        premature_retry=session.procedure_id in state.premature_procedure_ids,
        extension_missing=extension_missing,
    )


def session_view(store: ResourceStore, procedure_id: str) -> SessionView:
    """One stored session, classified with its protocol's parameters, with its flags.

    Raises `ResourceNotFound` when the Procedure is not an exercise session of this tenant or
    its protocol is unknown to the tenant.
    """
    repository = ClinicalRepository(store)
    session = repository.session(procedure_id)
    if session is None:
        raise ResourceNotFound(f"Procedure/{procedure_id} is not a known exercise session")
    definition = _definition_or_404(store, session.protocol)
    params = definition.parameters
    history = assess_all(repository.history(session.patient_id, session.protocol), params)
    state = evaluate_protocol(
        (h.record for h in history), max(h.session.day for h in history), params
    )
    assessed = next(h for h in history if h.session.procedure_id == procedure_id)
    flags = _flags(
        assessed,
        params,
        state,
        repository.pain_reports(session.patient_id),
        repository.extension_sessions(session.patient_id),
    )
    return SessionView(
        assessed, flags, f"{assessed.assessment.explanation}; {definition.description}"
    )


def protocol_view(
    store: ResourceStore, patient_id: str, protocol: str, as_of: date
) -> ProtocolView:
    """A patient's status on one protocol as of a date: only data dated on or before it counts.

    Raises `ResourceNotFound`/`ResourceGone` for an unknown or deleted Patient and
    `ResourceNotFound` for a protocol unknown to the tenant.
    """
    store.read("Patient", patient_id)
    definition = _definition_or_404(store, protocol)
    params = definition.parameters
    repository = ClinicalRepository(store)
    history = [
        h
        for h in assess_all(repository.history(patient_id, protocol), params)
        if h.session.day <= as_of
    ]
    reports = [r for r in repository.pain_reports(patient_id) if r.day <= as_of]
    state = evaluate_protocol((h.record for h in history), as_of, params)
    readiness = assess_readiness(reports, as_of, params)
    last = history[-1] if history else None
    flags: tuple[str, ...] = ()
    if last is not None:
        extensions = [
            e for e in repository.extension_sessions(patient_id) if e.started_at.date() <= as_of
        ]
        flags = _flags(last, params, state, reports, extensions) + _day_flags(
            last.session.day, history, state, params, as_of
        )
    explanation = (
        f"{state.explanation}; readiness {readiness.explanation}; {definition.description}"
    )
    return ProtocolView(
        patient_id, protocol, as_of, state, readiness, last, flags, explanation, tuple(history)
    )


def _day_flags(
    day: date,
    history: Sequence[AssessedSession],
    state: ProtocolState,
    params: ProtocolParameters,
    as_of: date,
) -> tuple[str, ...]:
    """Sessions-per-day flag of the last session's day: `over-sessions` as soon as it happens,
    `under-sessions` only once that day is over (before as_of)."""
    flags = daily_flags((h.session.day for h in history), state.holds, params, days=[day])
    flag = flags.get(day)
    if flag is None or (flag is DayFlag.UNDER_SESSIONS and day >= as_of):
        return ()
    return (str(flag),)


def _definition_or_404(store: ResourceStore, protocol: str) -> ProtocolDefinition:
    definition = protocol_definitions(store, [protocol]).get(protocol)
    if definition is None:
        raise ResourceNotFound(
            f"protocol '{protocol}' is neither built in nor defined as PlanDefinition/{protocol}"
        )
    return definition
