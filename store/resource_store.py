"""The FHIR resource store: current versions, history and the search index, batched.

Every write goes through `ResourceStore.write`, whatever its origin (REST interaction,
transaction Bundle, demo loader, importer): validation, versioning, index rows and session facts
are computed for the whole batch and sent as one executemany per table, inside the caller's
unit of work. Nothing here commits.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store import tables
from store.batching import chunks
from store.bulk_insert import bulk_insert, drop_appends, send_appends
from store.errors import (
    InvalidRequest,
    InvalidResource,
    PreconditionFailed,
    ReptrendError,
    ResourceGone,
    ResourceNotFound,
)
from store.fact_writer import write_facts
from store.indexing import IndexRows, index_resource, index_tables_of
from store.validation import validate_resource

Clock = Callable[[], datetime]

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]
_VERSION = tables.ResourceVersion.__table__  # type: ignore[attr-defined]
_INDEX_TABLES = {
    "token": tables.SearchToken.__table__,  # type: ignore[attr-defined]
    "reference": tables.SearchReference.__table__,  # type: ignore[attr-defined]
    "date": tables.SearchDate.__table__,  # type: ignore[attr-defined]
    "quantity": tables.SearchQuantity.__table__,  # type: ignore[attr-defined]
    "string": tables.SearchString.__table__,  # type: ignore[attr-defined]
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_resource_id(unix_ms: int | None = None) -> str:
    """A server-minted id: a UUID version 7 (RFC 9562), the creation time in milliseconds then
    74 random bits. Ids minted later sort later, so every index keyed by id (the resource and
    version keys, the search rows, the session facts) grows at its end instead of splitting
    pages at random places: about 10% faster COPY into a search table than random UUIDs,
    more once the indexes outgrow memory. The time it reveals is meta.lastUpdated's."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, of which 74 are used
    value = (ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (1 << 62) - 1
    return str(uuid.UUID(int=value))


def instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Method(StrEnum):
    CREATE = "POST"
    UPDATE = "PUT"
    DELETE = "DELETE"


def version_from_etag(value: Any, where: str) -> int | None:
    """The version in an If-Match / ifMatch ETag (W/"3", "3" or 3); None when absent."""
    if value is None:
        return None
    digits = str(value).removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise InvalidRequest(f'{where} must be a version ETag such as W/"3"', where)
    return int(digits)


@dataclass(frozen=True, slots=True)
class StoredResource:
    type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    body: dict[str, Any] | None

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


@dataclass(frozen=True, slots=True)
class Write:
    """One write in a batch. POST writes carry an id from `new_resource_id()`."""

    method: Method
    type: str
    id: str
    body: dict[str, Any] | None = None
    if_match: int | None = None
    # Built by the server itself from values it has already checked (the stop rule's
    # decisions): not run through fhir.resources again, which would cost about 1 ms a
    # resource. Tests validate what those builders produce.
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    resource: StoredResource
    created: bool
    # False when the write changed nothing (deleting what is already gone or never was).
    changed: bool = True


_LEADING_KEYS = ("resourceType", "id", "meta")
# FHIR R4 id syntax (datatypes.html#id); server-assigned ids are UUIDs, which match it.
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def in_fhir_key_order(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """resourceType, id and meta first, as FHIR JSON is conventionally written. PostgreSQL's
    JSONB keeps keys shortest first, which would put resourceType last."""
    if body is None or next(iter(body), None) == "resourceType":
        return body
    leading = {key: body[key] for key in _LEADING_KEYS if key in body}
    return {**leading, **{k: v for k, v in body.items() if k not in leading}}


def stored_from_row(row: Any) -> StoredResource:
    """A `resource` or `resource_version` row as a StoredResource."""
    return StoredResource(
        type=row.type,
        id=row.id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        deleted=row.deleted,
        body=in_fhir_key_order(row.body),
    )


class ResourceStore:
    """Resource reads and batched writes for one tenant on one connection (one transaction)."""

    def __init__(self, connection: sa.Connection, tenant: str, clock: Clock = utc_now) -> None:
        self.connection = connection
        self.tenant = tenant
        self.clock = clock
        self._dialect = connection.dialect.name

    # --- reads -----------------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> StoredResource:
        row = self.connection.execute(
            sa.select(_RESOURCE).where(
                _RESOURCE.c.tenant == self.tenant,
                _RESOURCE.c.type == resource_type,
                _RESOURCE.c.id == resource_id,
            )
        ).first()
        if row is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        stored = stored_from_row(row)
        if stored.deleted:
            raise ResourceGone(f"{resource_type}/{resource_id} was deleted")
        return stored

    def vread(self, resource_type: str, resource_id: str, version_id: int) -> StoredResource:
        row = self.connection.execute(
            sa.select(_VERSION).where(
                _VERSION.c.tenant == self.tenant,
                _VERSION.c.type == resource_type,
                _VERSION.c.id == resource_id,
                _VERSION.c.version_id == version_id,
            )
        ).first()
        if row is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} has no version {version_id}")
        stored = stored_from_row(row)
        if stored.deleted:
            raise ResourceGone(f"version {version_id} of {resource_type}/{resource_id} is a delete")
        return stored

    def history(self, resource_type: str, resource_id: str) -> list[StoredResource]:
        rows = self.connection.execute(
            sa.select(_VERSION)
            .where(
                _VERSION.c.tenant == self.tenant,
                _VERSION.c.type == resource_type,
                _VERSION.c.id == resource_id,
            )
            .order_by(_VERSION.c.version_id.desc())
        ).all()
        if not rows:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        return [stored_from_row(row) for row in rows]

    def count(self, resource_type: str) -> int:
        return int(
            self.connection.execute(
                sa.select(sa.func.count())
                .select_from(_RESOURCE)
                .where(
                    _RESOURCE.c.tenant == self.tenant,
                    _RESOURCE.c.type == resource_type,
                    _RESOURCE.c.deleted.is_(False),
                )
            ).scalar_one()
        )

    def live_ids(self, resource_type: str, resource_ids: Iterable[str]) -> set[str]:
        """The subset of ids that exist and are not deleted."""
        wanted = sorted(set(resource_ids))
        found: set[str] = set()
        for chunk in chunks(wanted):
            found.update(
                self.connection.execute(
                    sa.select(_RESOURCE.c.id).where(
                        _RESOURCE.c.tenant == self.tenant,
                        _RESOURCE.c.type == resource_type,
                        _RESOURCE.c.id.in_(chunk),
                        _RESOURCE.c.deleted.is_(False),
                    )
                ).scalars()
            )
        return found

    def reindex_page(self, resource_type: str, after_id: str, limit: int) -> list[str]:
        """Rebuild the search rows of the next `limit` live resources of a type (by id, after
        `after_id`) from their stored bodies; returns their ids, in order (none: all done).

        For a release whose search parameters changed: old rows are deleted from every search
        table, not only from those the type's parameters fill now.
        """
        rows = self.connection.execute(
            sa.select(_RESOURCE.c.id, _RESOURCE.c.body)
            .where(
                _RESOURCE.c.tenant == self.tenant,
                _RESOURCE.c.type == resource_type,
                _RESOURCE.c.deleted.is_(False),
                _RESOURCE.c.id > after_id,
            )
            .order_by(_RESOURCE.c.id)
            .limit(limit)
        ).all()
        if not rows:
            return []
        index = IndexRows()
        for row in rows:
            index.extend(index_resource(self.tenant, resource_type, row.id, row.body))
        ids = [str(row.id) for row in rows]
        self._replace_index([(resource_type, i) for i in ids], index, every_table=True)
        return ids

    def _current_versions(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        by_type: dict[str, list[str]] = defaultdict(list)
        for resource_type, resource_id in keys:
            by_type[resource_type].append(resource_id)
        found: dict[tuple[str, str], Any] = {}
        for resource_type, ids in by_type.items():
            for chunk in chunks(ids):
                rows = self.connection.execute(
                    sa.select(_RESOURCE.c.id, _RESOURCE.c.version_id, _RESOURCE.c.deleted).where(
                        _RESOURCE.c.tenant == self.tenant,
                        _RESOURCE.c.type == resource_type,
                        _RESOURCE.c.id.in_(chunk),
                    )
                )
                for row in rows:
                    found[(resource_type, row.id)] = row
        return found

    # --- writes ----------------------------------------------------------------------------

    def write(self, writes: Sequence[Write], *, commit_next: bool = False) -> list[WriteOutcome]:
        """Validate, version, index and persist a batch; returns one outcome per write, in order.

        `commit_next`: the caller commits straight after, with no statement in between. The
        rows then wait for the commit, so a write that made no statement of its own (a create
        of a resource the decisions do not read around) commits as one statement in one
        round trip (`UnitOfWork.commit`); a conflict then surfaces from the commit."""
        keys = [(w.type, w.id) for w in writes]
        if len(set(keys)) != len(keys):
            duplicate = next(k for k in keys if keys.count(k) > 1)
            raise InvalidRequest(
                f"{duplicate[0]}/{duplicate[1]} appears more than once in one transaction"
            )
        for position, write in enumerate(writes):
            try:
                self._check(write)
            except ReptrendError as error:
                error.batch_index = position
                raise
        existing = self._current_versions(
            k for w, k in zip(writes, keys, strict=True) if w.method is not Method.CREATE
        )
        now = self.clock()
        stamp = instant_text(now)
        outcomes: list[WriteOutcome] = []
        for position, (write, key) in enumerate(zip(writes, keys, strict=True)):
            try:
                outcomes.append(self._version(write, existing.get(key), now, stamp))
            except ReptrendError as error:
                error.batch_index = position
                raise
        try:
            self._persist(writes, outcomes, replaced=set(existing))
            if not commit_next:
                # Sent here, so a conflict surfaces in the write that caused it (inside the
                # caller's savepoint), not at some later statement.
                send_appends(self.connection)
        except BaseException as error:
            drop_appends(self.connection)
            if isinstance(error, ReptrendError) and error.resource_key in keys:
                error.batch_index = keys.index(error.resource_key)
            raise
        return outcomes

    def _check(self, write: Write) -> None:
        if write.method is Method.DELETE:
            return
        if write.body is None:
            raise InvalidRequest(f"{write.method} {write.type} needs a resource body")
        if not write.trusted:
            validate_resource(write.body, write.type)
        body_id = write.body.get("id")
        if write.method is Method.UPDATE and not _FHIR_ID.fullmatch(write.id):
            raise InvalidRequest(
                f"'{write.id[:80]}' is not a FHIR id: 1 to 64 letters, digits, '-' or '.'",
                f"{write.type}.id",
            )
        if write.method is Method.UPDATE and body_id != write.id:
            raise InvalidResource(
                f"the resource id '{body_id}' does not match the id '{write.id}' in the URL",
                f"{write.type}.id",
            )

    def _version(self, write: Write, current: Any, now: datetime, stamp: str) -> WriteOutcome:
        label = f"{write.type}/{write.id}"
        current_version = current.version_id if current is not None else 0
        if write.if_match is not None and write.if_match != current_version:
            raise PreconditionFailed(
                f"{label} is at version {current_version}, not {write.if_match}", "If-Match"
            )
        alive = current is not None and not current.deleted
        if write.method is Method.DELETE:
            if not alive:
                stored = StoredResource(write.type, write.id, current_version, now, True, None)
                return WriteOutcome(stored, created=False, changed=False)
            body = None
        else:
            assert write.body is not None
            meta = {
                **{
                    k: v
                    for k, v in write.body.get("meta", {}).items()
                    if k not in ("versionId", "lastUpdated")
                },
                "versionId": str(current_version + 1),
                "lastUpdated": stamp,
            }
            rest = {k: v for k, v in write.body.items() if k not in ("resourceType", "id", "meta")}
            body = {"resourceType": write.type, "id": write.id, "meta": meta, **rest}
        stored = StoredResource(
            write.type, write.id, current_version + 1, now, write.method is Method.DELETE, body
        )
        return WriteOutcome(stored, created=not alive and write.method is not Method.DELETE)

    def _persist(
        self,
        writes: Sequence[Write],
        outcomes: Sequence[WriteOutcome],
        replaced: set[tuple[str, str]],
    ) -> None:
        changed = [(w, o) for w, o in zip(writes, outcomes, strict=True) if o.changed]
        if not changed:
            return
        # A first version (a create, or an update that creates) has no current row, index row
        # or fact to replace: it skips the upsert and the deletes and goes in by COPY. Two
        # writers creating the same id collide on the version key first (VersionConflict).
        new_rows: list[dict[str, Any]] = []
        current_rows: list[dict[str, Any]] = []
        version_rows = []
        index = IndexRows()
        for write, outcome in changed:
            r = outcome.resource
            row = {
                "tenant": self.tenant,
                "type": r.type,
                "id": r.id,
                "version_id": r.version_id,
                "last_updated": r.last_updated,
                "deleted": r.deleted,
                "body": r.body,
            }
            (new_rows if r.version_id == 1 else current_rows).append(row)
            version_rows.append({**row, "method": write.method.value})
            if r.body is not None:
                index.extend(index_resource(self.tenant, r.type, r.id, r.body))
        # Another transaction writing the same version first is a VersionConflict: the
        # database's key on the version table decides, not a read.
        bulk_insert(self.connection, _VERSION, version_rows)
        bulk_insert(self.connection, _RESOURCE, new_rows)
        self._upsert_current(current_rows)
        stale = sorted(k for k in replaced if k in {(w.type, w.id) for w, _ in changed})
        self._replace_index(stale, index)
        facts = write_facts(self, [o.resource for _, o in changed])
        # Imported here: the decisions write through this store, so they import this module.
        from store.decisions import apply_decisions

        apply_decisions(self, facts)

    def _upsert_current(self, rows: list[dict[str, Any]]) -> None:
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        for chunk in chunks(rows):
            statement = insert(_RESOURCE)
            statement = statement.on_conflict_do_update(
                index_elements=["tenant", "type", "id"],
                set_={
                    "version_id": statement.excluded.version_id,
                    "last_updated": statement.excluded.last_updated,
                    "deleted": statement.excluded.deleted,
                    "body": statement.excluded.body,
                },
            )
            self.connection.execute(statement, list(chunk))

    def _replace_index(
        self, stale: Sequence[tuple[str, str]], rows: IndexRows, *, every_table: bool = False
    ) -> None:
        by_type: dict[str, list[str]] = defaultdict(list)
        for resource_type, resource_id in stale:
            by_type[resource_type].append(resource_id)
        for name, table in _INDEX_TABLES.items():
            for resource_type, ids in by_type.items():
                # A type only has rows in the tables its search parameters fill.
                if not every_table and name not in index_tables_of(resource_type):
                    continue
                for chunk in chunks(ids):
                    self.connection.execute(
                        sa.delete(table).where(
                            table.c.tenant == self.tenant,
                            table.c.type == resource_type,
                            table.c.resource_id.in_(chunk),
                        )
                    )
        for name, table in _INDEX_TABLES.items():
            new_rows: list[dict[str, Any]] = getattr(rows, name)
            bulk_insert(self.connection, table, new_rows)
