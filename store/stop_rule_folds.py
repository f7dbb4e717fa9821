"""The stored stop-rule fold state of each (patient, protocol): load, save and forget.

Ingest continues a pair's fold from here when its new sessions all come after the stored ones
(`store.decisions`). The state is JSON in `stop_rule_fold`; each hold also keeps the `basedOn`
of the session that opened it, which is what the prescription status rule needs from holds
that are not otherwise re-read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from domain.pain_response import PainResponse
from domain.stop_rule import FoldState, Hold, HoldOutcome, SessionRecord
from store import tables
from store.batching import chunks
from store.resource_store import ResourceStore

Pair = tuple[str, str]  # (patient_id, protocol)

_FOLD = tables.StopRuleFold.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StoredFold:
    key: str  # what the state was computed with; another key means fold again
    state: FoldState
    based_on: tuple[str | None, ...]  # per hold: the opening session's basedOn reference


def load_folds(store: ResourceStore, pairs: Iterable[Pair]) -> dict[Pair, StoredFold]:
    wanted = sorted(set(pairs))
    key = sa.tuple_(_FOLD.c.patient_id, _FOLD.c.protocol)
    found: dict[Pair, StoredFold] = {}
    for chunk in chunks(wanted):
        for row in store.connection.execute(
            sa.select(_FOLD.c.patient_id, _FOLD.c.protocol, _FOLD.c.key, _FOLD.c.state).where(
                _FOLD.c.tenant == store.tenant, key.in_(chunk)
            )
        ):
            found[(row.patient_id, row.protocol)] = _from_json(row.key, row.state)
    return found


def save_folds(store: ResourceStore, folds: Mapping[Pair, StoredFold]) -> None:
    rows = [
        {
            "tenant": store.tenant,
            "patient_id": patient,
            "protocol": protocol,
            "key": fold.key,
            "state": _to_json(fold),
        }
        for (patient, protocol), fold in sorted(folds.items())
    ]
    insert = postgresql.insert if store.connection.dialect.name == "postgresql" else sqlite.insert
    for chunk in chunks(rows):
        statement = insert(_FOLD)
        statement = statement.on_conflict_do_update(
            index_elements=["tenant", "patient_id", "protocol"],
            set_={"key": statement.excluded.key, "state": statement.excluded.state},
        )
        store.connection.execute(statement, list(chunk))


def forget_folds(store: ResourceStore, pairs: Iterable[Pair]) -> None:
    """Drop the stored state of pairs the rule no longer folds (stop rule turned off)."""
    key = sa.tuple_(_FOLD.c.patient_id, _FOLD.c.protocol)
    for chunk in chunks(sorted(set(pairs))):
        store.connection.execute(
            sa.delete(_FOLD).where(_FOLD.c.tenant == store.tenant, key.in_(chunk))
        )


# --- JSON form -------------------------------------------------------------------------------


def _record_json(record: SessionRecord | None) -> dict[str, str] | None:
    if record is None:
        return None
    return {
        "procedure": record.procedure_id,
        "day": record.day.isoformat(),
        "started": record.started_at.isoformat(),
        "response": record.response.value,
    }


def _record(value: Mapping[str, str] | None) -> SessionRecord | None:
    if value is None:
        return None
    return SessionRecord(
        value["procedure"],
        date.fromisoformat(value["day"]),
        datetime.fromisoformat(value["started"]),
        PainResponse(value["response"]),
    )


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _hold_json(hold: Hold, based_on: str | None) -> dict[str, Any]:
    return {
        "since": hold.since.isoformat(),
        "from": hold.retry_from.isoformat(),
        "until": hold.retry_until.isoformat(),
        "opened_by": hold.opened_by,
        "closed_by": hold.closed_by,
        "closed_on": hold.closed_on.isoformat() if hold.closed_on is not None else None,
        "outcome": hold.outcome.value if hold.outcome is not None else None,
        "based_on": based_on,
    }


def _hold(value: Mapping[str, Any]) -> Hold:
    return Hold(
        since=date.fromisoformat(value["since"]),
        retry_from=date.fromisoformat(value["from"]),
        retry_until=date.fromisoformat(value["until"]),
        opened_by=value["opened_by"],
        closed_by=value["closed_by"],
        closed_on=_day(value["closed_on"]),
        outcome=HoldOutcome(value["outcome"]) if value["outcome"] is not None else None,
    )


def _to_json(fold: StoredFold) -> dict[str, Any]:
    s = fold.state
    return {
        "holds": [_hold_json(h, b) for h, b in zip(s.holds, fold.based_on, strict=True)],
        "open": s.open,
        "resumed_by": _record_json(s.resumed_by),
        "failed": [_record_json(r) for r in s.failed],
        "premature": list(s.premature),
        "retries": list(s.retries),
        "last": _record_json(s.last),
        "count": s.count,
    }


def _from_json(key: str, value: Mapping[str, Any]) -> StoredFold:
    failed = tuple(r for r in (_record(v) for v in value["failed"]) if r is not None)
    state = FoldState(
        holds=tuple(_hold(h) for h in value["holds"]),
        open=value["open"],
        resumed_by=_record(value["resumed_by"]),
        failed=failed,
        premature=tuple(value["premature"]),
        retries=tuple(value["retries"]),
        last=_record(value["last"]),
        count=value["count"],
    )
    return StoredFold(key, state, tuple(h["based_on"] for h in value["holds"]))
