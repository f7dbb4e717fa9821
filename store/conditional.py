"""Conditional create and update, race-free.

A conditional create claims its normalised criteria in `conditional_key` (primary key per
tenant, type and criteria) inside the creating transaction. Concurrent retries of the same
If-None-Exist create collide on that key in the database: one inserts, the others wait for it
to commit and then answer with the resource it created. No read-then-write window remains.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store import tables
from store.errors import InvalidRequest, PreconditionFailed
from store.resource_store import Method, ResourceStore, StoredResource, Write, new_resource_id
from store.search import matching_ids

_KEY = tables.ConditionalKey.__table__  # type: ignore[attr-defined]
_MAX_CLAIMS = 3


@dataclass(frozen=True, slots=True)
class ConditionalOutcome:
    resource: StoredResource
    created: bool


def normalise_criteria(criteria: str) -> str:
    """The same search however its parameters are ordered: 'b=2&a=1' == 'a=1&b=2'."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise InvalidRequest("conditional criteria must name at least one search parameter")
    return urlencode(sorted(pairs))


def _criteria_hash(criteria: str) -> str:
    return hashlib.sha256(normalise_criteria(criteria).encode()).hexdigest()


def _single_match(store: ResourceStore, resource_type: str, criteria: str) -> str | None:
    matches = matching_ids(store, resource_type, criteria)
    if len(matches) > 1:
        raise PreconditionFailed(
            f"{len(matches)} {resource_type} resources match the conditional criteria; "
            "make them more selective"
        )
    return matches[0] if matches else None


def _claim(store: ResourceStore, resource_type: str, key: str, resource_id: str) -> str | None:
    """Insert the key for `resource_id`: None if we won it, else the id it already names.

    On PostgreSQL a concurrent claimant's uncommitted insert makes this statement wait; once
    that transaction commits, ours conflicts and reads the winner's id.
    """
    insert = postgresql.insert if store.connection.dialect.name == "postgresql" else sqlite.insert
    row = {
        "tenant": store.tenant,
        "type": resource_type,
        "criteria_hash": key,
        "resource_id": resource_id,
    }
    won = store.connection.execute(
        insert(_KEY).values(row).on_conflict_do_nothing().returning(_KEY.c.resource_id)
    ).first()
    if won is not None:
        return None
    return str(
        store.connection.execute(
            sa.select(_KEY.c.resource_id).where(
                _KEY.c.tenant == store.tenant,
                _KEY.c.type == resource_type,
                _KEY.c.criteria_hash == key,
            )
        ).scalar_one()
    )


def _take_over(
    store: ResourceStore, resource_type: str, key: str, stale_id: str, new_id: str
) -> bool:
    """Point a key whose resource no longer matches at a new resource (compare-and-set)."""
    result = store.connection.execute(
        sa.update(_KEY)
        .where(
            _KEY.c.tenant == store.tenant,
            _KEY.c.type == resource_type,
            _KEY.c.criteria_hash == key,
            _KEY.c.resource_id == stale_id,
        )
        .values(resource_id=new_id)
    )
    return result.rowcount == 1


def existing_or_claim(
    store: ResourceStore, resource_type: str, criteria: str, new_id: str
) -> str | None:
    """The id of the resource matching `criteria`, or None after claiming them for `new_id`
    (the caller then creates `new_id` in the same transaction)."""
    existing = _single_match(store, resource_type, criteria)
    if existing is not None:
        return existing
    key = _criteria_hash(criteria)
    for _ in range(_MAX_CLAIMS):
        holder = _claim(store, resource_type, key, new_id)
        if holder is None:
            return None
        # Someone else created for these criteria and has committed: theirs, if it still
        # matches (it may have been deleted or changed since).
        if holder in matching_ids(store, resource_type, criteria):
            return holder
        if _take_over(store, resource_type, key, holder, new_id):
            return None
    raise PreconditionFailed("the conditional create kept racing with others; retry it")


def conditional_create(
    store: ResourceStore, resource_type: str, criteria: str, body: Mapping[str, Any]
) -> ConditionalOutcome:
    """POST with If-None-Exist: create `body` unless one resource matches (412 if several)."""
    new_id = new_resource_id()
    existing = existing_or_claim(store, resource_type, criteria, new_id)
    if existing is not None:
        return ConditionalOutcome(store.read(resource_type, existing), created=False)
    created = store.write([Write(Method.CREATE, resource_type, new_id, {**body, "id": new_id})])
    return ConditionalOutcome(created[0].resource, created=True)


def conditional_update(
    store: ResourceStore,
    resource_type: str,
    criteria: str,
    body: Mapping[str, Any],
    if_match: int | None = None,
) -> ConditionalOutcome:
    """PUT Type?criteria: update the one match, create when none, 412 when several."""
    body_id = body.get("id")
    new_id = body_id if isinstance(body_id, str) else new_resource_id()
    existing = existing_or_claim(store, resource_type, criteria, new_id)
    target = existing or new_id
    if existing is not None and body_id not in (None, existing):
        raise InvalidRequest(
            f"the body's id does not match the {resource_type} the criteria found",
            f"{resource_type}.id",
        )
    outcome = store.write(
        [Write(Method.UPDATE, resource_type, target, {**body, "id": target}, if_match=if_match)]
    )[0]
    return ConditionalOutcome(outcome.resource, created=outcome.created)
