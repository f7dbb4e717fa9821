"""Stop-rule decisions at ingest: DetectedIssue, Task, Flag and ServiceRequest status in the
same transaction as the sessions that caused them (CLINICAL_RULES section 5).

`apply_decisions` runs once per write batch, for the (patient, protocol) pairs whose sessions
or repetitions changed. For each pair whose protocol has the stop rule on it recomputes the
state from the stored facts (the fold of `domain.stop_rule` over every session of the pair, in
start order), so arrival order never matters and a late, older session recomputes the rest.
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
from domain.stop_rule import Hold, HoldOutcome, ProtocolState, evaluate_protocol
from store import tables
from store.batching import chunks
from store.clinical_repository import (
    AssessedSession,
    ClinicalRepository,
    Pair,
    StoredSession,
    assess_all,
)
from store.indexing import split_reference
from store.protocol_catalog import (
    STOP_RULE_SYSTEM,
    ProtocolDefinition,
    plan_definition_url,
    protocol_definitions,
)
from store.resource_store import Method, ResourceStore, Write

HOLD_IDENTIFIER_SYSTEM: Final = f"{CANONICAL_BASE}/NamingSystem/stop-rule-hold"
DECISION_TYPES: Final = ("DetectedIssue", "Task", "Flag")
FLAG_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/flag-category"
VOID: Final = "entered-in-error"
_MAX_ID: Final = 64

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


def apply_decisions(store: ResourceStore, pairs: Set[Pair]) -> None:
    """Make the stored stop-rule side effects of `pairs` match their facts (see module doc)."""
    if not pairs:
        return
    _lock_pairs(store, pairs)
    definitions = protocol_definitions(store, {protocol for _, protocol in pairs}, ensure=True)
    ruled = sorted(
        p for p in pairs if p[1] in definitions and definitions[p[1]].parameters.stop_rule
    )
    histories = ClinicalRepository(store).histories(ruled)
    desired: dict[Key, dict[str, Any]] = {}
    open_requests: set[str] = set()  # ServiceRequest ids an open hold should keep on hold
    hold_requests: set[str] = set()  # ServiceRequest ids any hold of these pairs names
    for pair in ruled:
        plan = _plan_pair(pair, histories[pair], definitions[pair[1]])
        desired.update(plan.resources)
        open_requests |= plan.open_requests
        hold_requests |= plan.hold_requests
    existing = _load(store, _existing_hold_keys(store, pairs) | set(desired))
    writes = [
        Write(Method.UPDATE, key[0], key[1], body)
        for key, body in sorted(desired.items())
        if _differs(existing.get(key), body)
    ]
    for key, row in sorted(existing.items()):
        if key in desired or row.body is None:
            continue
        hold_requests |= _request_ids([row.body.get("focus", {})])
        if row.body.get("status") != VOID:
            writes.append(Write(Method.UPDATE, key[0], key[1], {**row.body, "status": VOID}))
    writes.extend(_request_writes(store, open_requests, hold_requests))
    if writes:
        store.write(writes)


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


def _plan_pair(
    pair: Pair, sessions: list[StoredSession], definition: ProtocolDefinition
) -> _PairPlan:
    if not sessions:
        return _PairPlan({}, set(), set())
    params = definition.parameters
    assessed = assess_all(sessions, params)
    as_of = max(s.session.day for s in assessed)
    state = evaluate_protocol((s.record for s in assessed), as_of, params)
    by_id = {s.session.procedure_id: s for s in assessed}
    resources: dict[Key, dict[str, Any]] = {}
    open_requests: set[str] = set()
    hold_requests: set[str] = set()
    for position, hold in enumerate(state.holds):
        opening = by_id[hold.opened_by]
        context = _HoldContext(pair, hold, opening, state, position, definition)
        for body in (context.detected_issue(), context.task(), context.flag()):
            resources[(body["resourceType"], body["id"])] = body
        requests = _request_ids([{"reference": opening.session.based_on}])
        hold_requests |= requests
        if hold.is_open:
            open_requests |= requests
    return _PairPlan(resources, open_requests, hold_requests)


@dataclass(frozen=True, slots=True)
class _HoldContext:
    pair: Pair
    hold: Hold
    opening: AssessedSession
    state: ProtocolState
    position: int  # index of the hold in state.holds
    definition: ProtocolDefinition

    @property
    def id(self) -> str:
        return hold_id(self.hold.opened_by)

    @property
    def failed_so_far(self) -> int:
        """Failed retries up to and including the one that opened this hold."""
        earlier = self.state.holds[: self.position]
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
        previous = self.state.holds[self.position - 1] if self.position else None
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
                Write(Method.UPDATE, "ServiceRequest", request_id, {**row.body, "status": wanted})
            )
    return writes
