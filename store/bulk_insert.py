"""Append-only bulk inserts below SQLAlchemy's per-row parameter processing.

PostgreSQL gets COPY FROM STDIN (the fastest load path it has) for large batches, SQLite one
executemany of plain tuples. Both run on the unit of work's own DBAPI connection, inside its
transaction. Values are converted here exactly as the column types would: JSON to text,
aware datetimes to UTC, booleans to integers on SQLite.

On PostgreSQL a writing unit of work defers its appends (`defer_appends`): they wait until
the next statement on the connection or the end of the store's write, and then go together,
small ones as one INSERT statement (one round trip). A single create was fifteen round trips
(a COPY is two) and is now one: when the transaction has sent nothing else by its commit, that
statement goes alone in autocommit (`send_appends_alone`), atomic as any single statement,
instead of BEGIN, the INSERT and COMMIT. Statement order is unchanged:
every other statement first sends what is waiting (`send_appends_first`, an engine event), so
no read misses a row written before it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.errors import VersionConflict
from store.tables import UTCDateTime

# From this many rows a table's batch goes by COPY; smaller ones join one INSERT statement.
# COPY's own round trips and setup cost more than they save on a few rows; a batch this
# large saves more by COPY than its round trips cost.
COPY_FROM_ROWS = 64
_PENDING = "reptrend.pending_appends"
_PLANNING = "reptrend.planning"
# Tables keyed by a resource's id (and version): a duplicate in any of them is another writer
# having written that resource first. One statement inserts into several of them at once,
# in no order PostgreSQL promises, so any may be the one that reports it.
_VERSIONED_TABLES = frozenset(
    {
        "resource_version",
        "resource",
        "search_token",
        "search_reference",
        "search_date",
        "search_quantity",
        "search_string",
        "exercise_session",
        "session_fact",
        "pain_report",
    }
)

Convert = Callable[[Any], Any]


def _json_text(value: Any) -> Any:
    return None if value is None else orjson.dumps(value).decode()


def _sqlite_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _identity(value: Any) -> Any:
    return value


def _converter(column: sa.Column[Any], dialect: str) -> Convert:
    kind = column.type
    if isinstance(kind, sa.JSON) or "JSON" in type(kind).__name__.upper():
        return _json_text
    if dialect == "sqlite":
        if isinstance(kind, UTCDateTime | sa.DateTime):
            return _sqlite_datetime
        if isinstance(kind, sa.Date):
            return _sqlite_date
        if isinstance(kind, sa.Boolean):
            return _sqlite_bool
    return _identity


class StatementNeeded(Exception):
    """A planning unit of work (`UnitOfWork(planning=True)`) reached a statement: the write
    needs the database before its commit and has to run on a real transaction instead."""


@dataclass(frozen=True, slots=True)
class OneStatement:
    """A write's rows as one INSERT statement (PostgreSQL `$n` placeholders), to be sent in
    autocommit: atomic, as any single statement, and durable once it returns."""

    sql: str
    params: list[Any]


@dataclass(frozen=True)
class _Batch:
    table: str
    names: tuple[str, ...]
    tuples: list[Any]


def bulk_insert(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (dicts keyed by column name; missing columns are NULL / autoincrement).

    Two writers of the same resource version collide here or, when appends are deferred, when
    they are sent (at the latest at the end of `ResourceStore.write`): either way as
    `VersionConflict`.
    """
    if not rows:
        return
    pending: list[_Batch] | None = connection.info.get(_PENDING)
    batch = _batch(connection.dialect.name, table, rows)
    if pending is not None:
        pending.append(batch)
        return
    raw: Any = connection.connection.dbapi_connection
    with version_conflicts():
        if connection.dialect.name == "postgresql":
            _copy(raw, batch)
        else:
            _sqlite_insert(raw, batch)


@lru_cache(maxsize=1024)
def _layout(
    dialect: str, table: sa.Table, keys: frozenset[str]
) -> tuple[tuple[str, ...], itemgetter[Any], tuple[tuple[int, Convert], ...]]:
    """The columns a batch with these row keys fills, in table order, and the converters
    its values need: the same for every batch of one shape, so worked out once."""
    names = tuple(c.name for c in table.columns if c.name in keys)
    converters = [(i, _converter(table.c[n], dialect)) for i, n in enumerate(names)]
    return (
        names,
        itemgetter(*names),
        tuple((i, convert) for i, convert in converters if convert is not _identity),
    )


def _batch(dialect: str, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> _Batch:
    # Every row of one batch has the same keys; absent columns take their defaults.
    names, pick, converters = _layout(dialect, table, frozenset(rows[0]))
    tuples: list[Any]
    tuples = [(pick(row),) for row in rows] if len(names) == 1 else [pick(row) for row in rows]
    if converters:
        converted = []
        for values in tuples:
            values = list(values)
            for i, convert in converters:
                values[i] = convert(values[i])
            converted.append(values)
        tuples = converted
    return _Batch(table.name, names, tuples)


def _copy(raw: Any, batch: _Batch) -> None:
    column_list = ", ".join(batch.names)
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {batch.table} ({column_list}) FROM STDIN") as copy,
    ):
        for values in batch.tuples:
            copy.write_row(values)


def _sqlite_insert(raw: Any, batch: _Batch) -> None:
    placeholders = ", ".join("?" for _ in batch.names)
    cursor = raw.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO {batch.table} ({', '.join(batch.names)}) VALUES ({placeholders})",
            batch.tuples,
        )
    finally:
        cursor.close()


@contextmanager
def version_conflicts() -> Iterator[None]:
    """Maps a duplicate first or next version (another writer was first) to
    `VersionConflict`. Only first versions go into `resource` by insert, so a duplicate
    there is the same race as one in `resource_version`; so is a duplicate of the facts
    keyed by the resource's id."""
    try:
        yield
    except (psycopg.IntegrityError, sqlite3.IntegrityError) as error:
        if _table_of(error) in _VERSIONED_TABLES:
            raise VersionConflict(
                "a concurrent write changed one of these resources first; retry the request"
            ) from None
        raise


def _table_of(error: psycopg.IntegrityError | sqlite3.IntegrityError) -> str | None:
    if isinstance(error, psycopg.Error):
        return error.diag.table_name
    # SQLite names the columns: "UNIQUE constraint failed: resource_version.tenant, ..."
    _, _, columns = str(error).partition("failed: ")
    return columns.partition(".")[0] or None


def defer_appends(connection: sa.Connection) -> None:
    """From now on, hold this connection's appends until its next statement or commit.

    Only on PostgreSQL, whose round trips are what deferring saves. `stop_deferring` when
    the unit of work ends: the setting lives on the pooled DBAPI connection."""
    if connection.dialect.name == "postgresql":
        connection.info[_PENDING] = []


def stop_deferring(connection: sa.Connection) -> None:
    connection.info.pop(_PENDING, None)
    connection.info.pop(_PLANNING, None)


def refuse_statements(connection: sa.Connection) -> None:
    """Until `stop_deferring`, any statement on this connection raises `StatementNeeded`
    before anything is sent (appends wait, as `defer_appends` makes them)."""
    if connection.dialect.name != "postgresql":
        raise StatementNeeded("only PostgreSQL writes are planned")
    connection.info[_PENDING] = []
    connection.info[_PLANNING] = True


def drop_appends(connection: sa.Connection) -> None:
    """Forget the waiting appends: the write that made them failed, and its transaction or
    savepoint is rolled back (sending them first would only roll them back too)."""
    pending: list[_Batch] | None = connection.info.get(_PENDING)
    if pending:
        pending.clear()


def send_appends(connection: sa.Connection) -> None:
    """Send what is waiting: large batches by COPY, the rest in one round trip."""
    pending: list[_Batch] | None = connection.info.get(_PENDING)
    if not pending:
        return
    batches = pending[:]
    pending.clear()
    raw: Any = connection.connection.dbapi_connection
    with version_conflicts():
        small = []
        for batch in batches:
            if len(batch.tuples) >= COPY_FROM_ROWS:
                _copy(raw, batch)
            else:
                small.append(batch)
        if small:
            _execute(raw, _statement_of(small))


def send_appends_alone(connection: sa.Connection) -> bool:
    """At commit: when the transaction has sent nothing yet and what waits makes one
    statement, send it in autocommit (its own transaction, committed durably as one) and
    return True. BEGIN and COMMIT would be two more round trips, and the COMMIT that follows
    has nothing left to do. False, sending nothing, otherwise."""
    pending: list[_Batch] | None = connection.info.get(_PENDING)
    if not pending or any(len(batch.tuples) >= COPY_FROM_ROWS for batch in pending):
        return False
    raw: Any = connection.connection.dbapi_connection
    if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    statement = take_one_statement(connection)
    assert statement is not None
    raw.autocommit = True
    try:
        with version_conflicts():
            _execute(raw, statement)
    finally:
        raw.autocommit = False
    return True


def take_one_statement(connection: sa.Connection) -> OneStatement | None:
    """What waits, taken off the connection as one statement; None (and nothing taken) when
    nothing waits or a batch is large enough for COPY."""
    pending: list[_Batch] | None = connection.info.get(_PENDING)
    if not pending or any(len(batch.tuples) >= COPY_FROM_ROWS for batch in pending):
        return None
    statement = _statement_of(pending)
    pending.clear()
    return statement


def _statement_of(batches: Sequence[_Batch]) -> OneStatement:
    """Every batch as one statement: a multi-row INSERT per table, all but the last in
    data-modifying CTEs. One round trip, and one prepared statement per write shape. Each
    batch is under `COPY_FROM_ROWS` rows, and a write makes a batch for a dozen tables at
    most: thousands of parameters, far below PostgreSQL's 65,535."""
    shape = tuple((b.table, b.names, len(b.tuples)) for b in batches)
    return OneStatement(
        _one_statement(shape), [v for b in batches for values in b.tuples for v in values]
    )


def _execute(raw: Any, statement: OneStatement) -> None:
    with psycopg.RawCursor(raw) as cursor:
        cursor.execute(statement.sql, statement.params)


@lru_cache(maxsize=512)
def _one_statement(shape: tuple[tuple[str, tuple[str, ...], int], ...]) -> str:
    # PostgreSQL's own $n placeholders (a raw cursor): psycopg re-parses a %s query with
    # more than 50 parameters on every execute.
    inserts = []
    number = 0
    for table, names, rows in shape:
        values = []
        for _ in range(rows):
            values.append("(" + ", ".join(f"${number + i + 1}" for i in range(len(names))) + ")")
            number += len(names)
        inserts.append(f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join(values)}")
    *leading, last = inserts
    ctes = ", ".join(f"_{i} AS ({insert})" for i, insert in enumerate(leading))
    return f"WITH {ctes} {last}" if ctes else last


def send_appends_first(engine: Engine) -> None:
    """Every statement on `engine` first sends its connection's waiting appends, so reads,
    deletes and upserts see them and statements run in the order they were made."""

    def before_statement(connection: sa.Connection, *_args: Any) -> None:
        if connection.info.get(_PLANNING):
            raise StatementNeeded("this write makes a statement before its commit")
        if connection.info.get(_PENDING):
            send_appends(connection)

    sa.event.listen(engine, "before_cursor_execute", before_statement)
