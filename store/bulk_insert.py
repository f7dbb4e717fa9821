"""Append-only bulk inserts below SQLAlchemy's per-row parameter processing.

PostgreSQL gets COPY FROM STDIN (the fastest load path it has), SQLite one executemany of
plain tuples. Both run on the unit of work's own DBAPI connection, inside its transaction.
Values are converted here exactly as the column types would: JSON to text, aware datetimes
to UTC, booleans to integers on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa

from store.tables import UTCDateTime

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


def bulk_insert(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (dicts keyed by column name; missing columns are NULL / autoincrement)."""
    if not rows:
        return
    dialect = connection.dialect.name
    # Every row of one batch has the same keys; absent columns take their defaults.
    names = [c.name for c in table.columns if c.name in rows[0]]
    converters = [(i, _converter(table.c[n], dialect)) for i, n in enumerate(names)]
    converters = [(i, convert) for i, convert in converters if convert is not _identity]
    pick = itemgetter(*names)
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
    raw: Any = connection.connection.dbapi_connection
    column_list = ", ".join(names)
    if dialect == "postgresql":
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({column_list}) FROM STDIN") as copy,
        ):
            for values in tuples:
                copy.write_row(values)
    else:
        placeholders = ", ".join("?" for _ in names)
        cursor = raw.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {table.name} ({column_list}) VALUES ({placeholders})", tuples
            )
        finally:
            cursor.close()
