"""Stop-rule decisions at ingest: DetectedIssue, Task, Flag and ServiceRequest status in the
same transaction as the sessions that caused them (CLINICAL_RULES section 5).

`apply_decisions` runs once per write batch, for the (patient, protocol) pairs whose sessions
or repetitions changed. For each pair whose protocol has the stop rule on it computes the state
from the stored facts: the fold of `domain.stop_rule` over every session of the pair, in start
order, so arrival order never matters and a late, older session recomputes the rest. The state
after the pair's latest session is kept in `stop_rule_fold`; when a write only adds sessions
later than all stored ones (the usual case) the fold continues from there instead of
re-reading the whole history, and only the holds the new sessions open or close are rebuilt.
Then it makes the stored side effects match that state and writes only what differs: posting
the same session again writes no new version of any of them.

The state written is the state as of the pair's latest session date; it never reads the wall
clock. Side effects depend only on the holds, which do not change with the date: whether an
open hold is on-hold, retry-due or overdue is a question for the status query (`as_of`).

Per hold (one per worsening session, keyed by that session's Procedure id):
- `DetectedIssue/<hold id>`: status final; evidence the session's Observations; detail the
  explanation; implicated the Procedure and the protocol's PlanDefinition.
- `Task/<hold id>`: intent plan; focus the session's `basedOn` ServiceRequest (else the
  Procedure); restriction.period the retry window; status requested while the hold is open,
  then completed (retry tolerated), failed (retry worsened) or cancelled (a premature retry
  worsened and restarted the hold).
- `Flag/<hold id>`: period hold start to window end (to the closing session's day once
  closed); active while open, inactive once closed.
- the `basedOn` ServiceRequest of the session that opened the open hold goes from active to
  on-hold; a ServiceRequest this rule put on hold goes back to active once no hold is open.
A hold that no longer exists (its session was deleted, voided or re-rated, or the clinic turned
the stop rule off) marks its three resources entered-in-error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from domain.codes import CANONICAL_BASE, PAIN_RESPONSE_SYSTEM
from domain.pain_response import PainResponse
from domain.protocols import CATALOG
from domain.stop_rule import FoldState, Hold, HoldOutcome, resume_fold
from store import tables
from store.batching import chunks
from store.clinical_repository import (
    AssessedSession,
    ClinicalRepository,
    Pair,
    StoredSession,
    assess_all,
    sessions_from_rows,
)
from store.fact_writer import FactChanges
from store.indexing import split_reference
from store.protocol_catalog import (
    STOP_RULE_SYSTEM,
    ProtocolDefinition,
    plan_definition_url,
    protocol_definitions,
)
from store.resource_store import Method, ResourceStore, Write
from store.stop_rule_folds import StoredFold, forget_folds, load_folds, save_folds

HOLD_IDENTIFIER_SYSTEM: Final = f"{CANONICAL_BASE}/NamingSystem/stop-rule-hold"
DECISION_TYPES: Final = ("DetectedIssue", "Task", "Flag")
FLAG_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/flag-category"
VOID: Final = "entered-in-error"
_MAX_ID: Final = 64
# Part of every stored fold's key: bump it when a change here alters what a hold's resources
# say, so the next session of each pair refolds its history and rewrites them all.
_FOLD_FORMAT: Final = "1"

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]
_TOKEN = tables.SearchToken.__table__  # type: ignore[attr-defined]
_REFERENCE = tables.SearchReference.__table__  # type: ignore[attr-defined]

_TASK_STATUS: Final = {
    None: "requested",
    HoldOutcome.TOLERATED: "completed",
    HoldOutcome.FAILED: "failed",
    HoldOutcome.RESTARTED: "cancelled",
}

Key = tuple[str, str]  # (resource type, id)


def hold_id(procedure_id: str) -> str:
    """`hold-<procedure id>`, or a hashed form when that would exceed FHIR's 64 characters."""
    plain = f"hold-{procedure_id}"
    if len(plain) <= _MAX_ID:
        return plain
    digest = hashlib.sha256(procedure_id.encode()).hexdigest()[:32]
    return f"hold-{procedure_id[:26]}-{digest}"


def hold_identifier(patient_id: str, protocol: str, procedure_id: str) -> str:
    return f"{patient_id}/{protocol}/{procedure_id}"


def apply_decisions(store: ResourceStore, changes: FactChanges) -> None:
    """Make the stored stop-rule side effects of the changed pairs match their facts (see
    module doc)."""
    pairs = changes.touched
    if not pairs:
        return
    _lock_pairs(store, pairs)
    definitions = protocol_definitions(store, {protocol for _, protocol in pairs}, ensure=True)
    ruled = sorted(
        p for p in pairs if p[1] in definitions and definitions[p[1]].parameters.stop_rule
    )
    stored = load_folds(store, pairs)
    forget_folds(store, set(stored) - set(ruled))
    repository = ClinicalRepository(store)
    resumable = {
        pair: stored[pair]
        for pair in ruled
        if pair in stored and stored[pair].key == _fold_key(definitions[pair[1]])
    }
    plans = _resumed_plans(repository, resumable, changes, definitions)
    refold = [pair for pair in ruled if pair not in plans]
    histories = repository.histories(refold)
    for pair in refold:
        plans[pair] = _plan_history(pair, histories[pair], definitions[pair[1]])
    desired: dict[Key, dict[str, Any]] = {}
    open_requests: set[str] = set()  # ServiceRequest ids an open hold should keep on hold
    hold_requests: set[str] = set()  # ServiceRequest ids any hold of these pairs names
    for pair in ruled:
        plan = plans[pair]
        desired.update(plan.resources)
        open_requests |= plan.open_requests
        hold_requests |= plan.hold_requests
    # A refolded pair may have lost holds (a session deleted or re-rated): what is stored for
    # it is voided below. A resumed pair only gains or closes holds.
    existing = _load(store, _existing_hold_keys(store, refold) | set(desired))
    writes = [
        Write(Method.UPDATE, key[0], key[1], body, trusted=True)
        for key, body in sorted(desired.items())
        if _differs(existing.get(key), body)
    ]
    for key, row in sorted(existing.items()):
        if key in desired or row.body is None:
            continue
        hold_requests |= _request_ids([row.body.get("focus", {})])
        if row.body.get("status") != VOID:
            writes.append(
                Write(Method.UPDATE, key[0], key[1], {**row.body, "status": VOID}, trusted=True)
            )
    writes.extend(_request_writes(store, open_requests, hold_requests))
    folds = {pair: fold for pair in ruled if (fold := plans[pair].fold) is not None}
    forget_folds(store, set(stored) & (set(ruled) - set(folds)))  # no session left
    save_folds(store, folds)
    if writes:
        store.write(writes)


def _fold_key(definition: ProtocolDefinition) -> str:
    """What a stored fold was computed with: the parameters, the definition's wording (it is in
    every hold's text) and the format of the hold resources."""
    text = f"{_FOLD_FORMAT}|{definition.parameters!r}|{definition.description}"
    return hashlib.sha256(text.encode()).hexdigest()


def _lock_pairs(store: ResourceStore, pairs: Set[Pair]) -> None:
    """Serialise decisions per (tenant, patient, protocol) on PostgreSQL until commit.

    Two transactions posting sessions of one pair at once would each fold without the other's
    uncommitted session and both write a stale state. Under the lock the second one reads after
    the first commits (READ COMMITTED: each statement sees what is committed when it starts).
    Sorted order: no deadlock between transactions locking several pairs. SQLite needs nothing:
    its writers already run one at a time (BEGIN IMMEDIATE).
    """
    if store.connection.dialect.name != "postgresql":
        return
    keys = [
        f"reptrend-decisions/{store.tenant}/{patient}/{protocol}"
        for patient, protocol in sorted(pairs)
    ]
    # One round trip for all of them: unnest yields the sorted array in its order.
    store.connection.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(hashtextextended(key, 0)) "
            "FROM unnest(CAST(:keys AS text[])) AS key"
        ),
        {"keys": keys},
    ).all()


# --- what the state says should be stored ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PairPlan:
    resources: dict[Key, dict[str, Any]]
    open_requests: set[str]
    hold_requests: set[str]
    fold: StoredFold | None  # the state to store; None for a pair without sessions


def _plan_history(
    pair: Pair, sessions: list[StoredSession], definition: ProtocolDefinition
) -> _PairPlan:
    """Fold the pair's whole history; every hold's resources are desired."""
    if not sessions:
        return _PairPlan({}, set(), set(), None)
    assessed = assess_all(sessions, definition.parameters)
    state = resume_fold(FoldState(), (s.record for s in assessed), definition.parameters)
    by_id = {s.session.procedure_id: s for s in assessed}
    based_on = tuple(by_id[h.opened_by].session.based_on for h in state.holds)
    fold = StoredFold(_fold_key(definition), state, based_on)
    return _plan(pair, fold, definition, by_id, first=0)


def _resumed_plans(
    repository: ClinicalRepository,
    stored: Mapping[Pair, StoredFold],
    changes: FactChanges,
    definitions: Mapping[str, ProtocolDefinition],
) -> dict[Pair, _PairPlan]:
    """Continue the stored fold of pairs whose only change is sessions created in this write
    and later than all their stored ones (the usual case: today's sessions arrive). Only the
    holds those sessions open or close are rebuilt; the others cannot have changed. Pairs
    that do not qualify are left out, to be refolded from their whole history."""
    appended = changes.appended()
    by_pair: dict[Pair, list[AssessedSession]] = {}
    for pair, ids in appended.items():
        if pair not in stored:
            continue
        new = sessions_from_rows(
            (changes.new_sessions[i] for i in ids),
            (row for i in ids for row in changes.new_repetitions.get(i, ())),
        )
        params = definitions[pair[1]].parameters
        by_pair[pair] = [session.assess(params) for session in new]
    resumed: dict[Pair, tuple[StoredFold, list[AssessedSession], int]] = {}
    for pair, sessions in by_pair.items():
        before = stored[pair]
        if not before.state.comes_after(sessions[0].record):
            continue
        params = definitions[pair[1]].parameters
        state = resume_fold(before.state, (s.record for s in sessions), params)
        by_id = {s.session.procedure_id: s for s in sessions}
        based_on = before.based_on + tuple(
            by_id[h.opened_by].session.based_on for h in state.holds[len(before.based_on) :]
        )
        first = _first_changed(before.state, state)
        resumed[pair] = (StoredFold(before.key, state, based_on), sessions, first)
    # The one earlier hold a new session can change is the one that was open: fetch the
    # sessions that opened such holds in one go.
    reopened = [
        stored[pair].state.holds[-1].opened_by
        for pair, (_, _, first) in resumed.items()
        if first < len(stored[pair].state.holds)
    ]
    openers = {
        s.procedure_id: s.assess(definitions[s.protocol].parameters)
        for s in repository.sessions(reopened)
    }
    plans: dict[Pair, _PairPlan] = {}
    for pair, (fold, sessions, first) in resumed.items():
        by_id = {**openers, **{s.session.procedure_id: s for s in sessions}}
        plans[pair] = _plan(pair, fold, definitions[pair[1]], by_id, first=first)
    return plans


def _first_changed(before: FoldState, after: FoldState) -> int:
    """Position of the first hold that differs (or is new) between two states."""
    for position, hold in enumerate(before.holds):
        if position >= len(after.holds) or after.holds[position] != hold:
            return position
    return len(before.holds)


def _plan(
    pair: Pair,
    fold: StoredFold,
    definition: ProtocolDefinition,
    openers: Mapping[str, AssessedSession],
    first: int,
) -> _PairPlan:
    """The resources of holds from position `first` on, and the prescriptions every hold of
    the pair names (and which the open hold keeps on hold)."""
    holds = fold.state.holds
    resources: dict[Key, dict[str, Any]] = {}
    for position in range(first, len(holds)):
        opening = openers[holds[position].opened_by]
        context = _HoldContext(pair, holds, opening, position, definition)
        for body in (context.detected_issue(), context.task(), context.flag()):
            resources[(body["resourceType"], body["id"])] = body
    hold_requests = _request_ids([{"reference": b} for b in fold.based_on])
    open_requests = _request_ids([{"reference": fold.based_on[-1]}]) if fold.state.open else set()
    return _PairPlan(resources, open_requests, hold_requests, fold)


@dataclass(frozen=True, slots=True)
class _HoldContext:
    pair: Pair
    holds: tuple[Hold, ...]  # every hold of the pair, oldest first
    opening: AssessedSession
    position: int  # index of this hold in `holds`
    definition: ProtocolDefinition

    @property
    def hold(self) -> Hold:
        return self.holds[self.position]

    @property
    def id(self) -> str:
        return hold_id(self.hold.opened_by)

    @property
    def failed_so_far(self) -> int:
        """Failed retries up to and including the one that opened this hold."""
        earlier = self.holds[: self.position]
        return sum(1 for h in earlier if h.outcome is HoldOutcome.FAILED)

    @property
    def needs_review(self) -> bool:
        return self.failed_so_far >= self.definition.parameters.max_failed_retries

    @property
    def name(self) -> str:
        protocol = CATALOG.get(self.pair[1])
        return protocol.name if protocol is not None else self.pair[1]

    def _common(self, resource_type: str) -> dict[str, Any]:
        patient, protocol = self.pair
        return {
            "resourceType": resource_type,
            "id": self.id,
            "identifier": [
                {
                    "system": HOLD_IDENTIFIER_SYSTEM,
                    "value": hold_identifier(patient, protocol, self.hold.opened_by),
                }
            ],
        }

    def explanation(self) -> str:
        p = self.definition.parameters
        h = self.hold
        session = self.opening.session
        why = self.opening.assessment.explanation
        text = f"Session {session.procedure_id} on {session.day}: {why}."
        previous = self.holds[self.position - 1] if self.position else None
        if previous is not None and previous.outcome is HoldOutcome.RESTARTED:
            text += (
                f" It was a premature retry (before the window {previous.retry_from}.."
                f"{previous.retry_until} of the hold from {previous.since} opened) and worsened: "
                "the hold restarts."
            )
        elif previous is not None and previous.outcome is HoldOutcome.FAILED:
            text += (
                f" It was the retry of the hold from {previous.since} and worsened: failed retry "
                f"{self.failed_so_far} of max_failed_retries={p.max_failed_retries}."
            )
        text += (
            f" Stop {self.pair[1]}: on hold from {h.since}; try again between {h.retry_from} "
            f"and {h.retry_until} (retry_min_days={p.retry_min_days}, "
            f"retry_max_days={p.retry_max_days})."
        )
        if self.needs_review:
            text += (
                f" {self.failed_so_far} failed retries reached max_failed_retries="
                f"{p.max_failed_retries}: clinician review needed."
            )
        return f"{text} Decided with the {self.definition.description}."

    def detected_issue(self) -> dict[str, Any]:
        session = self.opening.session
        evidence: dict[str, Any] = {
            "code": [
                {
                    "coding": [
                        {
                            "system": PAIN_RESPONSE_SYSTEM,
                            "code": PainResponse.WORSENING.value,
                            "display": "Worsening",
                        }
                    ]
                }
            ]
        }
        if session.observation_ids:
            evidence["detail"] = [
                {"reference": f"Observation/{o}"} for o in session.observation_ids
            ]
        return {
            **self._common("DetectedIssue"),
            "status": "final",
            "code": {
                "coding": [
                    {
                        "system": STOP_RULE_SYSTEM,
                        "code": "hold",
                        "display": "Pain increased with each repetition: stop and wait",
                    }
                ],
                "text": f"{self.name}: pain increased with each repetition",
            },
            "severity": "high" if self.needs_review else "moderate",
            "patient": {"reference": f"Patient/{self.pair[0]}"},
            "identifiedDateTime": session.started_at.isoformat(),
            "implicated": [
                {"reference": f"Procedure/{session.procedure_id}"},
                {"reference": f"PlanDefinition/{self.pair[1]}"},
            ],
            "evidence": [evidence],
            "detail": self.explanation(),
            "reference": plan_definition_url(self.pair[1]),
        }

    def task(self) -> dict[str, Any]:
        h = self.hold
        session = self.opening.session
        description = (
            f"Try {self.name} again between {h.retry_from} and {h.retry_until}: on hold since "
            f"{h.since} after session {session.procedure_id}."
        )
        if self.needs_review:
            description += " Clinician review needed first."
        body: dict[str, Any] = {
            **self._common("Task"),
            "status": _TASK_STATUS[h.outcome],
            "intent": "plan",
            "priority": "urgent" if self.needs_review else "routine",
            "code": {
                "coding": [
                    {
                        "system": STOP_RULE_SYSTEM,
                        "code": "retry",
                        "display": "Try the exercise again within the retry window",
                    }
                ]
            },
            "description": description,
            "focus": {"reference": session.based_on or f"Procedure/{session.procedure_id}"},
            "for": {"reference": f"Patient/{self.pair[0]}"},
            "authoredOn": session.started_at.isoformat(),
            "reasonReference": {"reference": f"DetectedIssue/{self.id}"},
            "restriction": {
                "period": {"start": h.retry_from.isoformat(), "end": h.retry_until.isoformat()}
            },
        }
        if h.closed_by is not None:
            body["statusReason"] = {"text": self._closing_reason()}
            body["output"] = [
                {
                    "type": {"text": "retry session"},
                    "valueReference": {"reference": f"Procedure/{h.closed_by}"},
                }
            ]
        return body

    def _closing_reason(self) -> str:
        h = self.hold
        if h.outcome is HoldOutcome.TOLERATED:
            return f"retry {h.closed_by} on {h.closed_on} tolerated: {self.pair[1]} resumed"
        if h.outcome is HoldOutcome.FAILED:
            return f"retry {h.closed_by} on {h.closed_on} worsened: a new hold starts"
        return (
            f"premature retry {h.closed_by} on {h.closed_on} (before {h.retry_from}) worsened: "
            "the hold restarts"
        )

    def flag(self) -> dict[str, Any]:
        h = self.hold
        end = h.closed_on if h.closed_on is not None else h.retry_until
        return {
            **self._common("Flag"),
            "status": "active" if h.is_open else "inactive",
            "category": [
                {"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}
            ],
            "code": {
                "coding": [
                    {
                        "system": STOP_RULE_SYSTEM,
                        "code": "on-hold",
                        "display": "Exercise on hold (stop rule)",
                    }
                ],
                "text": (
                    f"{self.name} on hold since {h.since}: retry {h.retry_from} to {h.retry_until}"
                ),
            },
            "subject": {"reference": f"Patient/{self.pair[0]}"},
            "period": {"start": h.since.isoformat(), "end": end.isoformat()},
        }


# --- what is stored, and the writes that make it match ---------------------------------------


def _existing_hold_keys(store: ResourceStore, pairs: Iterable[Pair]) -> set[Key]:
    """The decision resources already stored for these pairs.

    Found through their patient reference (an index lookup bounded by the patients' own
    decisions, however many the tenant has) and told apart by their hold identifier,
    `<patient>/<protocol>/<procedure>`.
    """
    wanted = {f"{patient}/{protocol}" for patient, protocol in pairs}
    patients = sorted({patient for patient, _ in pairs})
    found: set[Key] = set()
    same_resource = sa.and_(
        _REFERENCE.c.tenant == _TOKEN.c.tenant,
        _REFERENCE.c.type == _TOKEN.c.type,
        _REFERENCE.c.resource_id == _TOKEN.c.resource_id,
    )
    for chunk in chunks(patients):
        rows = store.connection.execute(
            sa.select(_TOKEN.c.type, _TOKEN.c.resource_id, _TOKEN.c.code)
            .join(_REFERENCE, same_resource)
            .where(
                _REFERENCE.c.tenant == store.tenant,
                _REFERENCE.c.type.in_(DECISION_TYPES),
                _REFERENCE.c.param == "patient",
                _REFERENCE.c.target_id.in_(chunk),
                _TOKEN.c.param == "identifier",
                _TOKEN.c.system == HOLD_IDENTIFIER_SYSTEM,
            )
        )
        found.update(
            (row.type, row.resource_id) for row in rows if row.code.rpartition("/")[0] in wanted
        )
    return found


def _load(store: ResourceStore, keys: Iterable[Key]) -> dict[Key, Any]:
    by_type: dict[str, list[str]] = {}
    for resource_type, resource_id in keys:
        by_type.setdefault(resource_type, []).append(resource_id)
    found: dict[Key, Any] = {}
    for resource_type, ids in sorted(by_type.items()):
        for chunk in chunks(sorted(ids)):
            for row in store.connection.execute(
                sa.select(_RESOURCE.c.id, _RESOURCE.c.deleted, _RESOURCE.c.body).where(
                    _RESOURCE.c.tenant == store.tenant,
                    _RESOURCE.c.type == resource_type,
                    _RESOURCE.c.id.in_(chunk),
                )
            ):
                found[(resource_type, row.id)] = row
    return found


def _content(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


def _differs(row: Any, desired: Mapping[str, Any]) -> bool:
    if row is None or row.deleted or row.body is None:
        return True
    return _content(row.body) != _content(desired)


def _request_ids(references: Iterable[Mapping[str, Any]]) -> set[str]:
    ids = set()
    for reference in references:
        text = reference.get("reference")
        if isinstance(text, str):
            target_type, target_id = split_reference(text)
            if target_type == "ServiceRequest":
                ids.add(target_id)
    return ids


def _request_writes(
    store: ResourceStore, open_requests: set[str], hold_requests: set[str]
) -> list[Write]:
    """ServiceRequest status: active -> on-hold while a hold is open on it; on-hold -> active
    once none is, for prescriptions a hold named (others' on-hold is not this rule's to lift).
    Other statuses (draft, completed, revoked, ...) are the clinic's and stay as they are."""
    rows = _load(store, (("ServiceRequest", i) for i in open_requests | hold_requests))
    writes = []
    for (_, request_id), row in sorted(rows.items()):
        if row.deleted or row.body is None:
            continue
        status = row.body.get("status")
        wanted = status
        if request_id in open_requests and status == "active":
            wanted = "on-hold"
        elif request_id not in open_requests and status == "on-hold":
            wanted = "active"
        if wanted != status:
            writes.append(
                Write(
                    Method.UPDATE,
                    "ServiceRequest",
                    request_id,
                    {**row.body, "status": wanted},
                    trusted=True,
                )
            )
    return writes
