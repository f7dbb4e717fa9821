"""Streaming resources into NDJSON files: which rows (a `Selection`), how they are read (COPY on
PostgreSQL, a chunked cursor on SQLite), and how files become visible (only when complete).

Rows are never decoded: the stored body already carries `meta` (versionId, lastUpdated), so the
text the database holds is the line the file gets. On PostgreSQL the rows come from
`COPY (SELECT body::text ...) TO STDOUT` in CSV format with a quote and delimiter byte that JSON
text cannot contain (jsonb escapes every control character), so COPY adds nothing to unescape
and each row arrives as one finished line. Memory stays flat: one row and one file buffer.

A file is written under a temporary name, fsynced, renamed, and the directory fsynced before
the caller is told about it, so a crash never leaves a truncated file under a final name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import tables
from store.errors import InvalidRequest, NotSupported
from store.fhir_dates import value_range
from store.indexing import split_reference
from store.patient_compartment import PatientScope, in_compartment
from store.search_params import RESOURCE_SPECS, ParamType

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]
_VERSION = tables.ResourceVersion.__table__  # type: ignore[attr-defined]
_TOKEN = tables.SearchToken.__table__  # type: ignore[attr-defined]
_REFERENCE = tables.SearchReference.__table__  # type: ignore[attr-defined]
_DATE = tables.SearchDate.__table__  # type: ignore[attr-defined]

NDJSON_SUFFIX = ".ndjson"
# Rows between progress callbacks (the callback decides whether to touch the database).
PROGRESS_EVERY = 1024
_SQLITE_CHUNK = 2000
# CSV with quote \x01 and delimiter \x02: jsonb text never holds a raw control character, so
# no row is ever quoted or escaped.
_COPY_OPTIONS = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
# A line as read: bytes, or on PostgreSQL a view of the driver's buffer (valid until the next).
Line = bytes | memoryview


# --- _typeFilter: a documented subset of FHIR search on the index tables ----------------------

FILTER_KINDS = frozenset({ParamType.TOKEN, ParamType.URI, ParamType.REFERENCE, ParamType.DATE})
_DATE_PREFIXES = ("eq", "ge", "gt", "le", "lt")


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter of a filter; its comma-separated values are OR'ed."""

    name: str
    kind: ParamType | None  # None: _id
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TypeFilter:
    """`Observation?code=http://loinc.org|72514-3&date=ge2026-01-01`: criteria are AND'ed."""

    type: str
    criteria: tuple[Criterion, ...]
    text: str


def parse_type_filter(text: str) -> TypeFilter:
    """Parse one _typeFilter query. Supported: `_id`, and token, uri, reference and date
    parameters of the type (date prefixes eq, ge, gt, le, lt); no modifiers, no chains.
    Raises InvalidRequest for a malformed query, NotSupported for what is outside the subset."""
    resource_type, separator, query = text.partition("?")
    if not separator or not query:
        raise InvalidRequest(f"_typeFilter '{text}' must look like Type?param=value", "_typeFilter")
    spec = RESOURCE_SPECS.get(resource_type)
    if spec is None:
        raise NotSupported(f"_typeFilter names an unsupported type '{resource_type}'")
    criteria = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if ":" in name or "." in name:
            raise NotSupported(f"_typeFilter: modifiers and chains ('{name}') are not supported")
        values = tuple(v for v in value.split(",") if v)
        if not values:
            raise InvalidRequest(f"_typeFilter: '{name}' has no value", "_typeFilter")
        if name == "_id":
            criteria.append(Criterion(name, None, values))
            continue
        param = spec.params.get(name)
        if param is None:
            raise NotSupported(f"_typeFilter: {resource_type} has no search parameter '{name}'")
        if param.type not in FILTER_KINDS:
            raise NotSupported(
                f"_typeFilter: '{name}' is a {param.type} parameter; only token, uri, "
                "reference and date parameters are supported"
            )
        if param.type is ParamType.DATE:
            for item in values:
                _date_bounds(item)
        criteria.append(Criterion(name, param.type, values))
    return TypeFilter(resource_type, tuple(criteria), text)


def _date_bounds(value: str) -> tuple[str, datetime, datetime]:
    prefix = value[:2] if value[:2].isalpha() else "eq"
    text = value[2:] if value[:2].isalpha() else value
    if prefix not in _DATE_PREFIXES:
        raise NotSupported(f"_typeFilter: the date prefix '{prefix}' is not supported")
    try:
        low, high = value_range(text)
    except ValueError:
        raise InvalidRequest(f"_typeFilter: '{text}' is not a FHIR date", "_typeFilter") from None
    return prefix, low, high


def _value_condition(kind: ParamType, table: sa.Table, value: str) -> sa.ColumnElement[bool]:
    if kind in (ParamType.TOKEN, ParamType.URI):
        if kind is ParamType.URI or "|" not in value:
            return table.c.code == value
        system, _, code = value.partition("|")
        if not system:
            return sa.and_(table.c.system.is_(None), table.c.code == code)
        if not code:
            return table.c.system == system
        return sa.and_(table.c.system == system, table.c.code == code)
    if kind is ParamType.REFERENCE:
        target_type, target_id = split_reference(value)
        if target_type is None:
            return table.c.target_id == target_id
        return sa.and_(table.c.target_type == target_type, table.c.target_id == target_id)
    prefix, low, high = _date_bounds(value)
    return {
        "eq": lambda: sa.and_(table.c.low >= low, table.c.high <= high),
        "ge": lambda: table.c.high >= low,
        "gt": lambda: table.c.high > high,
        "le": lambda: table.c.low <= high,
        "lt": lambda: table.c.low < low,
    }[prefix]()


def _criterion_condition(
    rows: sa.FromClause, tenant: str, resource_type: str, criterion: Criterion
) -> sa.ColumnElement[bool]:
    if criterion.kind is None:
        return rows.c.id.in_(criterion.values)
    source = {
        ParamType.TOKEN: _TOKEN,
        ParamType.URI: _TOKEN,
        ParamType.REFERENCE: _REFERENCE,
        ParamType.DATE: _DATE,
    }[criterion.kind]
    index = source.alias(f"f_{criterion.name.replace('-', '_')}")
    return sa.exists(
        sa.select(sa.literal(1))
        .select_from(index)
        .where(
            index.c.tenant == tenant,
            index.c.type == resource_type,
            index.c.resource_id == rows.c.id,
            index.c.param == criterion.name,
            sa.or_(*(_value_condition(criterion.kind, index, v) for v in criterion.values)),
        )
    )


# --- which rows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """The resources of one type an export takes: as they were at `until` (the export's
    transactionTime), changed after `since`, in the compartments of `scope` (None: no
    compartment restriction), and matching any of `filters` (none: no filter)."""

    tenant: str
    type: str
    until: datetime
    since: datetime | None = None
    scope: PatientScope | None = None
    filters: tuple[TypeFilter, ...] = ()

    def _conditions(self, rows: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if self.scope is not None:
            conditions.append(in_compartment(rows, self.tenant, self.type, self.scope))
        if self.filters:
            conditions.append(
                sa.or_(
                    *(
                        sa.and_(
                            *(
                                _criterion_condition(rows, self.tenant, self.type, c)
                                for c in f.criteria
                            )
                        )
                        for f in self.filters
                    )
                )
            )
        return conditions

    def current_rows(self) -> sa.Select[Any]:
        """Live resources whose current version was written by `until`."""
        r = _RESOURCE
        query = sa.select(sa.cast(r.c.body, sa.Text())).where(
            r.c.tenant == self.tenant,
            r.c.type == self.type,
            r.c.deleted.is_(False),
            r.c.last_updated <= self.until,
            *self._conditions(r),
        )
        if self.since is not None:
            query = query.where(r.c.last_updated > self.since)
        return query

    def late_rows(self) -> sa.Select[Any]:
        """Resources changed after `until`, as they were at `until` (from their history), so a
        write during the export neither drops a resource nor leaks a newer version into it.
        Compartment and filters are judged on the current index rows."""
        r = _RESOURCE
        v = _VERSION
        older = _VERSION.alias("older")
        as_of_until = (
            sa.select(sa.func.max(older.c.version_id))
            .where(
                older.c.tenant == r.c.tenant,
                older.c.type == r.c.type,
                older.c.id == r.c.id,
                older.c.last_updated <= self.until,
            )
            .scalar_subquery()
        )
        query = (
            sa.select(sa.cast(v.c.body, sa.Text()))
            .select_from(
                r.join(v, sa.and_(v.c.tenant == r.c.tenant, v.c.type == r.c.type, v.c.id == r.c.id))
            )
            .where(
                r.c.tenant == self.tenant,
                r.c.type == self.type,
                r.c.last_updated > self.until,
                v.c.version_id == as_of_until,
                v.c.deleted.is_(False),
                *self._conditions(r),
            )
        )
        if self.since is not None:
            query = query.where(v.c.last_updated > self.since)
        return query


# --- how rows are read ---------------------------------------------------------------------


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[sa.Connection]:
    """A read-only transaction with one consistent view for every statement run in it
    (REPEATABLE READ on PostgreSQL; a WAL read transaction on SQLite). Always rolled back."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        transaction = connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.rollback()


def stream_lines(connection: sa.Connection, statement: sa.Select[Any]) -> Iterator[Line]:
    """The single text column of `statement`, one NDJSON line (newline included) per row."""
    if connection.dialect.name == "postgresql":
        yield from _copy_lines(connection, statement)
        return
    result = connection.execution_options(yield_per=_SQLITE_CHUNK).execute(statement)
    for (text,) in result:
        yield text.encode() + b"\n"


def _copy_lines(connection: sa.Connection, statement: sa.Select[Any]) -> Iterator[Line]:
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    raw: Any = connection.connection.driver_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY ({compiled}) TO STDOUT {_COPY_OPTIONS}", compiled.params) as copy,
    ):
        # One COPY data message per row, ending in its newline; written out before the next
        # row is read, so the buffer needs no copy.
        yield from copy


# --- how files become visible ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportedFile:
    type: str
    name: str
    count: int
    size: int


def fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def partial_name(name: str) -> str:
    return f".{name}.partial"


class NdjsonParts:
    """One type's lines, split into files of at most `max_bytes` (a line is never split: a
    single larger line gets a file of its own), named `{stem}.{part:03d}.ndjson`."""

    def __init__(
        self,
        directory: Path,
        stem: str,
        resource_type: str,
        max_bytes: int,
        on_file: Callable[[ExportedFile], None] | None = None,
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.type = resource_type
        self.max_bytes = max_bytes
        self.on_file = on_file
        self.count = 0
        self._files: list[ExportedFile] = []
        self._handle: Any = None
        self._name = ""
        self._part_count = 0
        self._part_size = 0

    def write(self, line: Line) -> None:
        if self._handle is not None and self._part_size + len(line) > self.max_bytes:
            self._close_part()
        if self._handle is None:
            self._open_part()
        self._handle.write(line)
        self._part_size += len(line)
        self._part_count += 1
        self.count += 1

    def _open_part(self) -> None:
        self._name = f"{self.stem}.{len(self._files) + 1:03d}{NDJSON_SUFFIX}"
        path = self.directory / partial_name(self._name)
        self._handle = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 (closed in _close_part)
        self._part_count = self._part_size = 0

    def _close_part(self) -> None:
        handle, self._handle = self._handle, None
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(self.directory / partial_name(self._name), self.directory / self._name)
        exported = ExportedFile(self.type, self._name, self._part_count, self._part_size)
        self._files.append(exported)
        if self.on_file is not None:
            self.on_file(exported)

    def finish(self) -> list[ExportedFile]:
        """Close the last file; once this returns every file is durable under its final name."""
        if self._handle is not None:
            self._close_part()
        fsync_directory(self.directory)
        return list(self._files)

    def abandon(self) -> None:
        """Remove everything this writer created (used when the export stops part-way)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            with contextlib.suppress(FileNotFoundError):
                (self.directory / partial_name(self._name)).unlink()
        for exported in self._files:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / exported.name).unlink()
        self._files.clear()


def export_selection(
    engine: Engine,
    selection: Selection,
    directory: Path,
    stem: str,
    max_bytes: int,
    *,
    progress: Callable[[int], None] | None = None,
    on_file: Callable[[ExportedFile], None] | None = None,
) -> list[ExportedFile]:
    """Stream one type into NDJSON files in one snapshot. `progress(rows_so_far)` is called
    every PROGRESS_EVERY rows and may raise to stop; then no file of this call is left behind."""
    parts = NdjsonParts(directory, stem, selection.type, max_bytes, on_file)
    try:
        with snapshot(engine) as connection:
            for statement in (selection.current_rows(), selection.late_rows()):
                for line in stream_lines(connection, statement):
                    parts.write(line)
                    if progress is not None and parts.count % PROGRESS_EVERY == 0:
                        progress(parts.count)
        return parts.finish()
    except BaseException:
        parts.abandon()
        raise


def write_ndjson_file(
    directory: Path, name: str, resource_type: str, lines: Iterable[bytes]
) -> ExportedFile:
    """A small NDJSON file from serialised lines (newline included), made visible atomically."""
    temporary = directory / partial_name(name)
    count = size = 0
    with open(temporary, "wb") as handle:
        for line in lines:
            handle.write(line)
            count += 1
            size += len(line)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, directory / name)
    fsync_directory(directory)
    return ExportedFile(resource_type, name, count, size)
