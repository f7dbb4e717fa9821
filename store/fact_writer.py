"""Keeps the narrow fact tables in step with the resources written in the same batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store import tables
from store.batching import chunks
from store.bulk_insert import bulk_insert
from store.errors import InvalidResource
from store.indexing import split_reference
from store.session_facts import (
    FIGURE_INPUTS,
    FIGURES_NOT_COMPUTED,
    SessionInfo,
    exercise_session_row,
    fact_rows,
    general_pain_report,
    session_figures,
    session_info,
    session_observation,
)

if TYPE_CHECKING:
    from store.resource_store import ResourceStore, StoredResource

_SESSION = tables.ExerciseSession.__table__  # type: ignore[attr-defined]
_FACT = tables.SessionFact.__table__  # type: ignore[attr-defined]
_PAIN = tables.PainReport.__table__  # type: ignore[attr-defined]

# Statuses that mean "this did not happen as recorded": no facts for them.
_VOID_STATUSES = frozenset({"entered-in-error", "not-done", "cancelled"})


def _live(resource: StoredResource) -> dict[str, Any] | None:
    body = resource.body
    if body is None or body.get("status") in _VOID_STATUSES:
        return None
    return body


Pair = tuple[str, str]  # (patient_id, protocol)


@dataclass
class FactChanges:
    """What a write changed in the session facts, for the stop-rule decisions.

    `touched`: every (patient, protocol) pair whose sessions or repetitions changed, before and
    after the write (a session moved to another patient touches both). `new_sessions` and
    `new_repetitions` are the rows of sessions whose Procedure this write stores for the first
    time, by Procedure id: no fact from before can name them, so these rows are all they have.
    `rewritten`: pairs with any other change (a stored session or repetition changed, moved or
    went away).
    """

    touched: set[Pair] = field(default_factory=set)
    rewritten: set[Pair] = field(default_factory=set)
    new_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_repetitions: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def appended(self) -> dict[Pair, list[str]]:
        """Pairs whose only change is new sessions, with those sessions' Procedure ids: their
        stored history is otherwise as it was, so the rule may go on from where it stood."""
        by_pair: dict[Pair, list[str]] = defaultdict(list)
        for procedure_id, row in self.new_sessions.items():
            by_pair[(row["patient_id"], row["protocol"])].append(procedure_id)
        return {pair: ids for pair, ids in by_pair.items() if pair not in self.rewritten}


def write_facts(store: ResourceStore, resources: Sequence[StoredResource]) -> FactChanges:
    """Keep the fact tables in step with `resources`; returns what changed.

    A resource at version 1 was never stored before (a create, or an update that creates), so
    no fact can name it yet: nothing is deleted for it, and a session it starts is new.

    Each session row carries its repetitions' figures (`session_facts.session_figures`): a
    new session's from the rows this write makes for it, any other session whose row or
    repetitions changed is computed again from its stored repetitions once they are written.
    """
    procedures = [r for r in resources if r.type == "Procedure"]
    observations = [r for r in resources if r.type == "Observation"]
    changes = FactChanges()
    # Sessions stored before whose figures this write may change.
    stale: set[str] = set()
    session_rows: list[dict[str, Any]] = []
    sessions: dict[str, SessionInfo] = {}
    if procedures:
        session_rows = _write_sessions(store, procedures, changes)
        sessions = {row["procedure_id"]: session_info(row) for row in session_rows}
    if observations:
        _write_observation_facts(
            # A Procedure this write deletes is not there for its repetitions to be part of.
            store,
            observations,
            sessions,
            {p.id for p in procedures if p.body},
            changes,
            stale,
        )
    if session_rows:
        # After the repetitions: a new session's figures come from the rows made for it.
        for row in session_rows:
            procedure_id = row["procedure_id"]
            if procedure_id in changes.new_sessions:
                row.update(session_figures(changes.new_repetitions.get(procedure_id, ())))
            else:
                row.update(FIGURES_NOT_COMPUTED)
                stale.add(procedure_id)
        bulk_insert(store.connection, _SESSION, session_rows)
    if stale:
        refresh_figures(store.connection, store.tenant, sorted(stale))
    return changes


def refresh_figures(connection: sa.Connection, tenant: str, procedure_ids: Sequence[str]) -> None:
    """Compute the figures of these sessions again from their stored repetitions (ids without
    a row in `exercise_session` are left alone). Give the ids sorted."""
    for chunk in chunks(procedure_ids):
        # The session rows are locked first, in id order: a concurrent write of the same
        # session's repetitions waits for this transaction and then reads them all (READ
        # COMMITTED), so the last writer's figures count every repetition. SQLite needs
        # nothing: its writers run one at a time.
        present = list(
            connection.execute(
                sa.select(_SESSION.c.procedure_id)
                .where(_SESSION.c.tenant == tenant, _SESSION.c.procedure_id.in_(chunk))
                .order_by(_SESSION.c.procedure_id)
                .with_for_update()
            ).scalars()
        )
        if not present:
            continue
        facts: dict[str, list[dict[str, Any]]] = {procedure_id: [] for procedure_id in present}
        for row in connection.execute(
            sa.select(*(_FACT.c[name] for name in FIGURE_INPUTS)).where(
                _FACT.c.tenant == tenant, _FACT.c.procedure_id.in_(present)
            )
        ).mappings():
            facts[row["procedure_id"]].append(dict(row))
        connection.execute(
            sa.update(_SESSION)
            .where(
                _SESSION.c.tenant == tenant,
                _SESSION.c.procedure_id == sa.bindparam("b_procedure_id"),
            )
            .values({name: sa.bindparam(f"b_{name}") for name in FIGURES_NOT_COMPUTED})
            .execution_options(synchronize_session=False),
            [
                {
                    "b_procedure_id": procedure_id,
                    **{f"b_{k}": v for k, v in session_figures(rows).items()},
                }
                for procedure_id, rows in facts.items()
            ],
        )


def _delete_where(store: ResourceStore, table: sa.Table, column: str, ids: list[str]) -> None:
    for chunk in chunks(ids):
        store.connection.execute(
            sa.delete(table).where(table.c.tenant == store.tenant, table.c[column].in_(chunk))
        )


def _delete_returning_pairs(
    store: ResourceStore, table: sa.Table, column: str, ids: list[str], changes: FactChanges
) -> set[str]:
    """Deletes the rows; returns the procedure ids they named."""
    procedure_ids: set[str] = set()
    for chunk in chunks(ids):
        deleted = store.connection.execute(
            sa.delete(table)
            .where(table.c.tenant == store.tenant, table.c[column].in_(chunk))
            .returning(table.c.patient_id, table.c.protocol, table.c.procedure_id)
        ).all()
        pairs = {(row.patient_id, row.protocol) for row in deleted}
        changes.touched |= pairs
        changes.rewritten |= pairs
        procedure_ids.update(row.procedure_id for row in deleted)
    return procedure_ids


def _write_sessions(
    store: ResourceStore,
    procedures: Sequence[StoredResource],
    changes: FactChanges,
) -> list[dict[str, Any]]:
    """Deletes the session rows of stored Procedures and returns the rows to insert (the
    caller adds their figures and inserts them)."""
    rows: list[dict[str, Any]] = []
    for procedure in procedures:
        body = _live(procedure)
        row = exercise_session_row(procedure.id, body) if body is not None else None
        if row is not None:
            rows.append({"tenant": store.tenant, **row})
    first_versions = {p.id for p in procedures if p.version_id == 1}
    stored = [p.id for p in procedures if p.id not in first_versions]
    _delete_returning_pairs(store, _SESSION, "procedure_id", stored, changes)
    for r in rows:
        pair = (r["patient_id"], r["protocol"])
        changes.touched.add(pair)
        if r["procedure_id"] in first_versions:
            changes.new_sessions[r["procedure_id"]] = r
        else:
            changes.rewritten.add(pair)
    # Only a Procedure stored before can have repetitions that arrived ahead of it.
    updated = [r for r in rows if r["procedure_id"] not in first_versions]
    if updated:
        # Repetitions already stored copy their session's protocol, date and patient.
        store.connection.execute(
            sa.update(_FACT)
            .where(
                _FACT.c.tenant == store.tenant,
                _FACT.c.procedure_id == sa.bindparam("b_procedure_id"),
            )
            .values(
                patient_id=sa.bindparam("b_patient_id"),
                protocol=sa.bindparam("b_protocol"),
                local_date=sa.bindparam("b_local_date"),
                started_at=sa.bindparam("b_started_at"),
            )
            .execution_options(synchronize_session=False),
            [
                {
                    f"b_{k}": r[k]
                    for k in ("procedure_id", "patient_id", "protocol", "local_date", "started_at")
                }
                for r in updated
            ],
        )
    # Copies: `changes.new_sessions` keeps the rows as they are now.
    return [dict(r) for r in rows]


def _stored_sessions(store: ResourceStore, procedure_ids: set[str]) -> dict[str, SessionInfo]:
    found: dict[str, SessionInfo] = {}
    for chunk in chunks(sorted(procedure_ids)):
        for row in store.connection.execute(
            sa.select(_SESSION).where(
                _SESSION.c.tenant == store.tenant, _SESSION.c.procedure_id.in_(chunk)
            )
        ).mappings():
            found[row["procedure_id"]] = session_info(dict(row))
    return found


def _write_observation_facts(
    store: ResourceStore,
    observations: Sequence[StoredResource],
    batch_sessions: dict[str, SessionInfo],
    batch_procedures: set[str],
    changes: FactChanges,
    stale: set[str],
) -> None:
    ids = [o.id for o in observations if o.version_id != 1]
    stale.update(_delete_returning_pairs(store, _FACT, "observation_id", ids, changes))
    _delete_where(store, _PAIN, "observation_id", ids)

    parsed = []
    referenced: dict[str, str] = {}  # Procedure id -> the first Observation part of it
    pain_rows: list[dict[str, Any]] = []
    for observation in observations:
        body = observation.body
        if body is None:
            continue
        for _i, part in enumerate(body.get("partOf", ())):
            target_type, target_id = split_reference(str(part.get("reference", "")))
            if target_type == "Procedure":
                referenced.setdefault(target_id, observation.id)
        if _live(observation) is None:
            continue
        session = session_observation(body)
        if session is not None:
            parsed.append((observation.id, session))
            continue
        report = general_pain_report(body)
        if report is not None:
            pain_rows.append(
                {
                    "tenant": store.tenant,
                    "observation_id": observation.id,
                    "patient_id": report.patient_id,
                    "local_date": report.local_date,
                    "effective_at": report.effective_at,
                    "pain": report.pain,
                }
            )

    unresolved = set(referenced) - batch_procedures
    sessions = {**_stored_sessions(store, unresolved), **batch_sessions}
    missing = unresolved - set(sessions) - store.live_ids("Procedure", unresolved - set(sessions))
    if missing:
        first = next(p for p in referenced if p in missing)  # in the batch's order
        error = InvalidResource(
            f"Observation.partOf points to Procedure/{first}, which does not exist",
            "Observation.partOf",
        )
        error.resource_key = ("Observation", referenced[first])
        raise error

    fact_table_rows: list[dict[str, Any]] = []
    for observation_id, session in parsed:
        info = sessions.get(session.procedure_id)
        if info is None:  # part of a Procedure that is not an exercise session
            continue
        fact_table_rows.extend(
            {"tenant": store.tenant, **row} for row in fact_rows(observation_id, session, info)
        )
    for r in fact_table_rows:
        pair = (r["patient_id"], r["protocol"])
        changes.touched.add(pair)
        if r["procedure_id"] in changes.new_sessions:
            changes.new_repetitions[r["procedure_id"]].append(r)
        else:  # a repetition of a session stored before changes that session's classification
            changes.rewritten.add(pair)
            stale.add(r["procedure_id"])
    if fact_table_rows:
        bulk_insert(store.connection, _FACT, fact_table_rows)
    if pain_rows:
        bulk_insert(store.connection, _PAIN, pain_rows)
