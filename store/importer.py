"""Bulk import of NDJSON and Bundle files through `ResourceStore.write`, resumable.

Each input is read as a sequence of items (an NDJSON line; a Bundle entry's resource; a whole
transaction Bundle, which stays all or nothing) and written in batches, one unit of work per
batch. The batch's progress row (`import_progress`, keyed by the file's content hash) commits
in the same transaction as its resources, so a re-run skips exactly what was committed. An item
with an id is written with PUT semantics (its own id: a replay changes nothing but the version),
one without gets a new id. When a batch fails, its items are retried one by one, each in a
savepoint, so a bad item is reported (with its line or entry and the error) and nothing else is
lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from store import tables
from store.bundles import process_transaction
from store.errors import InvalidRequest, InvalidResource, ReptrendError
from store.resource_store import (
    Clock,
    Method,
    ResourceStore,
    Write,
    new_resource_id,
    utc_now,
)
from store.unit_of_work import UnitOfWork
from store.validation import require_supported_type

_PROGRESS = tables.ImportProgress.__table__  # type: ignore[attr-defined]

DEFAULT_BATCH_SIZE = 1000
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
# Referenced types before the types referring to them (an Observation's partOf Procedure must
# exist when the Observation is written); anything else in between, Bundles last.
_TYPE_RANK = {
    name: rank
    for rank, name in enumerate(
        (
            "Organization",
            "Practitioner",
            "Patient",
            "Group",
            "PlanDefinition",
            "ActivityDefinition",
            "ServiceRequest",
            "CarePlan",
            "Procedure",
            "Observation",
        )
    )
}
_UNRANKED = len(_TYPE_RANK)
_BUNDLE_RANK = _UNRANKED + 1


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to write. `sequence` orders progress (1-based); `where` names it for people:
    'line 12' or 'Bundle.entry[3]'."""

    sequence: int
    where: str
    line: int | None
    resource: Any = None
    # A parse problem found before any write (bad JSON, no resourceType).
    problem: ReptrendError | None = None
    transaction: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    source: str
    where: str
    line: int | None
    error: ReptrendError


@dataclass(slots=True)
class FileReport:
    source: str
    items: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0  # committed by an earlier run
    rejections: list[Rejection] = field(default_factory=list)


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_ndjson(path: Path) -> bool:
    return path.name.lower().endswith(NDJSON_SUFFIXES)


def _first_type(path: Path) -> str | None:
    if not _is_ndjson(path):
        return None
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    value = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return None
                return value.get("resourceType") if isinstance(value, dict) else None
    return None


def import_order(paths: Sequence[Path]) -> list[Path]:
    """NDJSON files by the type of their first resource (referenced types first), then the
    Bundles, each group in the order given."""

    def rank(path: Path) -> int:
        if not _is_ndjson(path):
            return _BUNDLE_RANK
        kind = _first_type(path)
        return _TYPE_RANK.get(kind, _UNRANKED) if kind else _UNRANKED

    return sorted(paths, key=rank)


def _parsed(sequence: int, where: str, line: int | None, raw: bytes) -> Item:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        problem = InvalidRequest(f"not valid JSON (column {error.colno})")
        return Item(sequence, where, line, problem=problem)
    return Item(sequence, where, line, resource=value)


def _ndjson_items(path: Path) -> Iterator[Item]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield _parsed(number, f"line {number}", number, raw)


def _bundle_items(path: Path) -> Iterator[Item]:
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        problem = InvalidRequest(f"not valid JSON (line {error.lineno}, column {error.colno})")
        yield Item(1, "the file", None, problem=problem)
        return
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        yield Item(1, "the file", None, resource=document)
        return
    if document.get("type") == "transaction":
        yield Item(1, "the transaction Bundle", None, resource=document, transaction=True)
        return
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        problem = InvalidRequest("Bundle.entry must be an array", "Bundle.entry")
        yield Item(1, "Bundle.entry", None, problem=problem)
        return
    wanted: list[tuple[int, dict[str, Any]]] = [
        (index, entry["resource"])
        for index, entry in enumerate(entries)
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and (entry.get("search") or {}).get("mode") != "outcome"
    ]
    # Referenced types first, so an entry never waits for one later in the Bundle.
    wanted.sort(key=lambda pair: _TYPE_RANK.get(str(pair[1].get("resourceType")), _UNRANKED))
    for sequence, (index, resource) in enumerate(wanted, start=1):
        yield Item(sequence, f"Bundle.entry[{index}]", None, resource=resource)


def items_of(path: Path) -> Iterator[Item]:
    return _ndjson_items(path) if _is_ndjson(path) else _bundle_items(path)


def _write_for(item: Item) -> Write:
    resource = item.resource
    if not isinstance(resource, dict):
        raise InvalidResource("a resource must be a JSON object")
    resource_type = require_supported_type(resource.get("resourceType"))
    resource_id = resource.get("id")
    if isinstance(resource_id, str) and resource_id:
        return Write(Method.UPDATE, resource_type, resource_id, resource)
    new_id = new_resource_id()
    return Write(Method.CREATE, resource_type, new_id, {**resource, "id": new_id})


class Importer:
    def __init__(
        self,
        engine: Engine,
        tenant: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        clock: Clock = utc_now,
        on_reject: Callable[[Rejection], None] | None = None,
    ) -> None:
        self.engine = engine
        self.tenant = tenant
        self.batch_size = batch_size
        self.clock = clock
        self.on_reject = on_reject

    def import_file(self, path: Path, *, restart: bool = False) -> FileReport:
        """Import one file, skipping what an earlier run committed (unless `restart`)."""
        source = str(path)
        key = content_hash(path)
        report = FileReport(source)
        done = 0 if restart else self._committed(key)
        batch: list[Item] = []
        for item in items_of(path):
            report.items += 1
            if item.sequence <= done:
                report.skipped += 1
                continue
            batch.append(item)
            if item.transaction or len(batch) >= self.batch_size:
                self._commit_batch(key, source, batch, report)
                batch = []
        if batch:
            self._commit_batch(key, source, batch, report)
        return report

    def _committed(self, key: str) -> int:
        with UnitOfWork(self.engine, self.tenant, clock=self.clock) as uow:
            position = uow.resources.connection.execute(
                sa.select(_PROGRESS.c.position).where(
                    _PROGRESS.c.tenant == self.tenant, _PROGRESS.c.source_hash == key
                )
            ).scalar_one_or_none()
        return int(position or 0)

    def _commit_batch(self, key: str, source: str, batch: list[Item], report: FileReport) -> None:
        rejected: list[Rejection] = []
        with UnitOfWork(self.engine, self.tenant, write=True, clock=self.clock) as uow:
            store = uow.resources
            written = self._write_batch(store, source, batch, rejected)
            self._record(store, key, source, batch[-1].sequence, written, len(rejected))
            uow.commit()
        report.written += written
        report.rejected += len(rejected)
        for rejection in rejected:
            report.rejections.append(rejection)
            if self.on_reject is not None:
                self.on_reject(rejection)

    def _write_batch(
        self, store: ResourceStore, source: str, batch: list[Item], rejected: list[Rejection]
    ) -> int:
        """Try the batch as one write; on any error, item by item. Returns resources written."""
        if len(batch) == 1 and batch[0].transaction:
            return self._write_one(store, source, batch[0], rejected)
        writes: list[Write] = []
        try:
            for item in batch:
                if item.problem is not None:
                    raise item.problem
                writes.append(_write_for(item))
            savepoint = store.connection.begin_nested()
            try:
                store.write(writes)
            except BaseException:
                savepoint.rollback()
                raise
            savepoint.commit()
            return len(writes)
        except ReptrendError:
            return sum(self._write_one(store, source, item, rejected) for item in batch)

    def _write_one(
        self, store: ResourceStore, source: str, item: Item, rejected: list[Rejection]
    ) -> int:
        savepoint = store.connection.begin_nested()
        try:
            if item.problem is not None:
                raise item.problem
            if item.transaction:
                written = len(process_transaction(store, item.resource)["entry"])
            else:
                store.write([_write_for(item)])
                written = 1
        except ReptrendError as error:
            savepoint.rollback()
            rejected.append(Rejection(source, item.where, item.line, error))
            return 0
        savepoint.commit()
        return written

    def _record(
        self,
        store: ResourceStore,
        key: str,
        source: str,
        position: int,
        written: int,
        rejected: int,
    ) -> None:
        """Upsert the file's progress; counts add up over every run."""
        values = {
            "tenant": self.tenant,
            "source_hash": key,
            "source_name": source,
            "position": position,
            "written": written,
            "rejected": rejected,
            "updated_at": self.clock(),
        }
        dialect = store.connection.dialect.name
        statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_PROGRESS)
        statement = statement.values(values)
        store.connection.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant", "source_hash"],
                set_={
                    "source_name": statement.excluded.source_name,
                    "position": statement.excluded.position,
                    "written": _PROGRESS.c.written + statement.excluded.written,
                    "rejected": _PROGRESS.c.rejected + statement.excluded.rejected,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )
