"""The stop rule as a fold over one patient's sessions of one protocol (CLINICAL_RULES section 5).

Seed 001: "If this exercise causes pain that increases with each repetition, stop. ... you
should wait and try it in another week or two."

Transitions, in session start order (ties broken by procedure id):

- no hold open, `worsening` session on day d: a hold opens from d with the retry window
  [d + retry_min_days, d + retry_max_days].
- hold open, session before the window opens: a premature retry (counted). If it is
  `worsening` the hold is closed as `restarted` and a new hold opens from its day.
- hold open, first session on or after the window opens (also after the window has closed):
  the retry. Not `worsening` (even `insufficient`): the hold closes as `tolerated` and the
  protocol is resumed. `worsening`: a failed retry; the hold closes as `failed` and a new hold
  opens from its day.
- sessions after a tolerated retry are ordinary sessions again; a later `worsening` opens a
  new hold (not a failed retry).

Status as of D, from the sessions dated on or before D:

- `no-sessions`: none.
- `clinician-review`: failed retries (counted over the whole history, never reset) have
  reached `max_failed_retries`; overrides everything below and so stays once reached.
- `on-hold` / `retry-due` / `retry-overdue`: a hold is open and D is before / within
  (both ends inclusive) / after its retry window.
- `resumed`: the last retry was tolerated and no hold has opened since, however many
  non-worsening sessions followed.
- `active`: no hold open and no tolerated retry since the last hold (there never was one).

With `stop_rule` off the status is only `no-sessions` or `active`, and no hold ever opens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from domain.pain_response import PainResponse
from domain.protocols import ProtocolParameters


class ProtocolStatus(StrEnum):
    NO_SESSIONS = "no-sessions"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    RETRY_DUE = "retry-due"
    RETRY_OVERDUE = "retry-overdue"
    RESUMED = "resumed"
    CLINICIAN_REVIEW = "clinician-review"


class HoldOutcome(StrEnum):
    TOLERATED = "tolerated"  # the retry was not worsening
    FAILED = "failed"  # the retry was worsening; a new hold follows
    RESTARTED = "restarted"  # a premature retry was worsening; a new hold follows


class TransitionKind(StrEnum):
    HOLD_OPENED = "hold-opened"
    PREMATURE_RETRY = "premature-retry"
    RETRY_TOLERATED = "retry-tolerated"
    RETRY_FAILED = "retry-failed"
    CLINICIAN_REVIEW = "clinician-review"


class InvalidSessionRecord(ValueError):
    """A session that cannot be placed in time, or a procedure id seen twice."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    procedure_id: str
    day: date  # local calendar date of the session start as written (offset kept, not UTC)
    started_at: datetime  # aware; orders sessions
    response: PainResponse

    def __post_init__(self) -> None:
        if self.started_at.utcoffset() is None:
            raise InvalidSessionRecord(
                f"session {self.procedure_id}: started_at {self.started_at} has no UTC offset"
            )

    @classmethod
    def starting(
        cls, procedure_id: str, started_at: datetime, response: PainResponse
    ) -> SessionRecord:
        """A record whose day is the local date of `started_at` as written."""
        return cls(procedure_id, started_at.date(), started_at, response)


@dataclass(frozen=True, slots=True)
class Hold:
    since: date  # day of the worsening session that opened it
    retry_from: date  # retry window, both ends inclusive
    retry_until: date
    opened_by: str  # procedure id
    closed_by: str | None = None  # procedure id of the retry or restarting session
    closed_on: date | None = None
    outcome: HoldOutcome | None = None

    @classmethod
    def opened(cls, by: SessionRecord, params: ProtocolParameters) -> Hold:
        return cls(
            since=by.day,
            retry_from=by.day + timedelta(days=params.retry_min_days),
            retry_until=by.day + timedelta(days=params.retry_max_days),
            opened_by=by.procedure_id,
        )

    @property
    def is_open(self) -> bool:
        return self.closed_on is None

    def covers(self, day: date) -> bool:
        """Whether the protocol is on hold that day.

        The opening and closing days both count: stopping, and then a single cautious retry,
        is the correct behaviour on those days, so they are not judged for sessions per day.
        """
        return self.since <= day and (self.closed_on is None or day <= self.closed_on)

    def window_status(self, as_of: date) -> ProtocolStatus:
        if as_of < self.retry_from:
            return ProtocolStatus.ON_HOLD
        if as_of <= self.retry_until:
            return ProtocolStatus.RETRY_DUE
        return ProtocolStatus.RETRY_OVERDUE

    def closed(self, by: SessionRecord, outcome: HoldOutcome) -> Hold:
        return replace(self, closed_by=by.procedure_id, closed_on=by.day, outcome=outcome)


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change that ingest turns into FHIR side effects (DetectedIssue, Task, Flag).

    `hold` is the hold opened (hold-opened) or the hold the session was a retry of, as
    closed by it if it was closed.
    """

    kind: TransitionKind
    procedure_id: str
    day: date
    hold: Hold


@dataclass(frozen=True, slots=True)
class ProtocolState:
    status: ProtocolStatus
    as_of: date
    hold: Hold | None  # the open hold
    holds: tuple[Hold, ...]  # every hold opened, oldest first; only the last can be open
    failed_retries: int
    premature_procedure_ids: tuple[str, ...]
    retry_procedure_ids: tuple[str, ...]
    last_session: SessionRecord | None
    events: tuple[Transition, ...]
    explanation: str

    @property
    def premature_retries(self) -> int:
        return len(self.premature_procedure_ids)


def _order(record: SessionRecord) -> tuple[datetime, str, date, str]:
    # A total order over every field: the fold never depends on input order.
    return record.started_at, record.procedure_id, record.day, record.response


def evaluate_protocol(
    sessions: Iterable[SessionRecord], as_of: date, params: ProtocolParameters
) -> ProtocolState:
    """Status of one patient's protocol as of a date; only sessions dated <= as_of count."""
    ordered = sorted((s for s in sessions if s.day <= as_of), key=_order)
    _reject_duplicates(ordered)
    if not ordered:
        return ProtocolState(
            ProtocolStatus.NO_SESSIONS,
            as_of,
            None,
            (),
            0,
            (),
            (),
            None,
            (),
            f"no session on or before {as_of}: no-sessions",
        )
    last = ordered[-1]
    if not params.stop_rule:
        return ProtocolState(
            ProtocolStatus.ACTIVE,
            as_of,
            None,
            (),
            0,
            (),
            (),
            last,
            (),
            f"{len(ordered)} sessions on or before {as_of}, last {last.procedure_id} on "
            f"{last.day} ({last.response}); the stop rule is off for this protocol: active",
        )
    fold = _Fold(params)
    for session in ordered:
        fold.step(session)
    return fold.state(as_of, last, len(ordered))


@dataclass(frozen=True, slots=True)
class FoldState:
    """Where the stop-rule fold stands after a protocol's sessions up to `last`: everything it
    needs to go on with later sessions, so ingest can continue from a stored state instead of
    re-folding the whole history (`resume_fold`). The transitions are not kept."""

    holds: tuple[Hold, ...] = ()
    open: bool = False
    resumed_by: SessionRecord | None = None
    failed: tuple[SessionRecord, ...] = ()
    premature: tuple[str, ...] = ()
    retries: tuple[str, ...] = ()
    last: SessionRecord | None = None
    count: int = 0

    @property
    def hold(self) -> Hold | None:
        return self.holds[-1] if self.open else None

    def comes_after(self, record: SessionRecord) -> bool:
        """Whether `record` would be folded after every session already in this state."""
        return self.last is None or _order(self.last) < _order(record)


def resume_fold(
    start: FoldState, sessions: Iterable[SessionRecord], params: ProtocolParameters
) -> FoldState:
    """The fold of `start`'s sessions followed by `sessions` (in any order), with the stop rule
    on. `resume_fold(FoldState(), all)` folds a whole history; resuming from a prefix's state
    gives the same state as folding everything at once.

    Raises `InvalidSessionRecord` if a session is not later than every session of `start` or
    a procedure appears twice.
    """
    ordered = sorted(sessions, key=_order)
    _reject_duplicates(ordered)
    if ordered and not start.comes_after(ordered[0]):
        last = start.last.procedure_id if start.last is not None else None
        raise InvalidSessionRecord(
            f"session {ordered[0].procedure_id} is not after session {last}: "
            "fold the whole history instead"
        )
    fold = _Fold(params, start)
    for session in ordered:
        fold.step(session)
    return fold.snapshot(ordered[-1] if ordered else start.last, start.count + len(ordered))


def _reject_duplicates(ordered: list[SessionRecord]) -> None:
    seen: set[str] = set()
    for record in ordered:
        if record.procedure_id in seen:
            raise InvalidSessionRecord(f"procedure {record.procedure_id} appears twice")
        seen.add(record.procedure_id)


class _Fold:
    """Mutable accumulator private to one `evaluate_protocol` call."""

    def __init__(self, params: ProtocolParameters, start: FoldState | None = None) -> None:
        start = start or FoldState()
        self.params = params
        self.holds: list[Hold] = list(start.holds)
        self.open = start.open
        self.resumed_by: SessionRecord | None = start.resumed_by
        self.failed: list[SessionRecord] = list(start.failed)
        self.premature: list[str] = list(start.premature)
        self.retries: list[str] = list(start.retries)
        self.events: list[Transition] = []

    def snapshot(self, last: SessionRecord | None, count: int) -> FoldState:
        return FoldState(
            tuple(self.holds),
            self.open,
            self.resumed_by,
            tuple(self.failed),
            tuple(self.premature),
            tuple(self.retries),
            last,
            count,
        )

    def step(self, session: SessionRecord) -> None:
        worsening = session.response is PainResponse.WORSENING
        if not self.open:
            if worsening:
                self._open(session)
            return
        hold = self.holds[-1]
        if session.day < hold.retry_from:
            self.premature.append(session.procedure_id)
            if worsening:
                restarted = self._close(session, HoldOutcome.RESTARTED)
                self._event(TransitionKind.PREMATURE_RETRY, session, restarted)
                self._open(session)
            else:
                self._event(TransitionKind.PREMATURE_RETRY, session, hold)
            return
        self.retries.append(session.procedure_id)
        if not worsening:
            tolerated = self._close(session, HoldOutcome.TOLERATED)
            self._event(TransitionKind.RETRY_TOLERATED, session, tolerated)
            self.resumed_by = session
            return
        failed = self._close(session, HoldOutcome.FAILED)
        self.failed.append(session)
        self._event(TransitionKind.RETRY_FAILED, session, failed)
        self._open(session)
        if len(self.failed) == self.params.max_failed_retries:
            self._event(TransitionKind.CLINICIAN_REVIEW, session, failed)

    def _open(self, session: SessionRecord) -> None:
        hold = Hold.opened(session, self.params)
        self.holds.append(hold)
        self.open = True
        self.resumed_by = None
        self._event(TransitionKind.HOLD_OPENED, session, hold)

    def _close(self, session: SessionRecord, outcome: HoldOutcome) -> Hold:
        closed = self.holds[-1].closed(session, outcome)
        self.holds[-1] = closed
        self.open = False
        return closed

    def _event(self, kind: TransitionKind, session: SessionRecord, hold: Hold) -> None:
        self.events.append(Transition(kind, session.procedure_id, session.day, hold))

    def state(self, as_of: date, last: SessionRecord, count: int) -> ProtocolState:
        p = self.params
        hold = self.holds[-1] if self.open else None
        reasons = [
            f"as of {as_of}: {count} sessions, last {last.procedure_id} on {last.day} "
            f"({last.response})"
        ]
        if hold is not None:
            status = hold.window_status(as_of)
            where = {
                ProtocolStatus.ON_HOLD: "before the window",
                ProtocolStatus.RETRY_DUE: "within the window",
                ProtocolStatus.RETRY_OVERDUE: "after the window",
            }[status]
            reasons.append(
                f"on hold since {hold.since} (worsening session {hold.opened_by}), retry window "
                f"{hold.retry_from}..{hold.retry_until} (retry_min_days={p.retry_min_days}, "
                f"retry_max_days={p.retry_max_days}); {as_of} is {where}"
            )
        elif self.resumed_by is not None:
            status = ProtocolStatus.RESUMED
            tolerated = self.holds[-1]
            reasons.append(
                f"retry {self.resumed_by.procedure_id} on {self.resumed_by.day} "
                f"({self.resumed_by.response}) tolerated after the hold from {tolerated.since}, "
                "no hold since"
            )
        else:
            status = ProtocolStatus.ACTIVE
            reasons.append("no hold open")
        if self.premature:
            reasons.append(
                f"{len(self.premature)} premature retr{'y' if len(self.premature) == 1 else 'ies'}"
                f" ({', '.join(self.premature)})"
            )
        if len(self.failed) >= p.max_failed_retries:
            status = ProtocolStatus.CLINICIAN_REVIEW
            failed = ", ".join(f"{s.procedure_id} on {s.day}" for s in self.failed)
            reasons.append(
                f"{len(self.failed)} failed retries ({failed}) reached "
                f"max_failed_retries={p.max_failed_retries}"
            )
        return ProtocolState(
            status,
            as_of,
            hold,
            tuple(self.holds),
            len(self.failed),
            tuple(self.premature),
            tuple(self.retries),
            last,
            tuple(self.events),
            "; ".join(reasons) + f": {status}",
        )
