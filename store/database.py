"""Engine construction: URL normalisation and per-backend connection settings."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from store.bulk_insert import send_appends_first

DEFAULT_SQLITE_PATH = Path("var") / "reptrend.db"
APPLICATION_NAME = "reptrend"


def default_database_url() -> str:
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalize_url(url: str) -> str:
    """Accept the plain `postgresql://` form every PostgreSQL tool prints.

    SQLAlchemy reads it as psycopg2, which we do not ship; map it to psycopg 3.
    """
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_postgres(url: str) -> bool:
    return make_url(normalize_url(url)).get_backend_name() == "postgresql"


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite file (./var/ on a fresh clone) so it can be opened."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with WAL + busy timeout on SQLite and a named, pooled client on PostgreSQL."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_directory(url)
        engine = sa.create_engine(
            url,
            json_serializer=_dump_json,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    return _postgres_engine(url, pool_size=pool_size, max_overflow=pool_size)


def create_planning_engine(url: str) -> Engine | None:
    """On PostgreSQL, an engine of one connection that planned writes run on
    (`store.unit_of_work.plan_write`) and that sends nothing: they refuse every statement,
    and their one statement goes out on an async connection. Checking it out never waits
    for a pool. Used from one thread (the event loop's); None on SQLite."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "postgresql":
        return None
    return _postgres_engine(url, poolclass=sa.pool.StaticPool)


def _postgres_engine(url: str, **pool: Any) -> Engine:
    engine = sa.create_engine(
        url,
        json_serializer=_dump_json,
        json_deserializer=orjson.loads,
        # A URL may name its own application_name (tests do, to find their server's backends).
        connect_args={}
        if "application_name" in make_url(url).query
        else {"application_name": APPLICATION_NAME},
        **pool,
    )
    # After a PostgreSQL restart no client write may fail on a dead pooled connection. A
    # pre-ping would cost a round trip per checkout (a fifth of a single create's); the
    # socket tells the same without one.
    sa.event.listen(engine, "checkout", _refuse_closed_connection)
    send_appends_first(engine)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Make the pool replace a pooled connection the server has closed.

    An idle connection has nothing to read: when its socket is readable, the server has
    hung up (a restart, `pg_terminate_backend`, an idle timeout) and sent its goodbye. The
    pool then opens a fresh connection (`DisconnectionError`)."""
    if dbapi_connection.closed:
        raise sa.exc.DisconnectionError("the pooled connection is closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise sa.exc.DisconnectionError("the server closed the pooled connection")


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy own transaction boundaries (pysqlite's implicit BEGIN is deferred and
    # would upgrade read locks to write locks mid-transaction, which deadlocks writers).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; the busy timeout queues concurrent writers
    # instead of failing them with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


WRITE_TRANSACTION = "reptrend_write"


def _begin_immediate(connection: sa.Connection) -> None:
    # A writing unit of work takes the write lock up front so two writers queue on the busy
    # timeout instead of deadlocking when both try to upgrade a shared lock; readers use a
    # deferred BEGIN and never wait for writers under WAL.
    if connection.get_execution_options().get(WRITE_TRANSACTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def refresh_statistics(engine: Engine) -> None:
    """ANALYZE after a bulk load, so the query planner picks the search indexes (SQLite has
    no statistics until asked; without them one search took 20 s on 100k resources)."""
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
