"""A small pool of async PostgreSQL connections in autocommit, for single-statement work.

The REST read path is one indexed SELECT. Through SQLAlchemy's async engine it cost about
1 ms of CPU (pool checkout and return, greenlet switches, result processing); on a psycopg
AsyncConnection it costs about 0.2 ms. Without a transaction it is one round trip (no BEGIN,
no ROLLBACK). A planned write (`store.unit_of_work.plan_write`) is one INSERT statement,
which in autocommit is its own transaction: it is sent here too (`send`), awaited on the
event loop instead of a worker thread. Anything that needs more than one statement, or one
snapshot across statements, goes through a `UnitOfWork`.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from sqlalchemy.engine import make_url

from store.bulk_insert import OneStatement, version_conflicts
from store.database import APPLICATION_NAME, normalize_url

T = TypeVar("T")
AsyncConnection = psycopg.AsyncConnection[tuple[object, ...]]


def libpq_conninfo(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL (query options such as search_path kept)."""
    parsed = make_url(normalize_url(url))
    if "application_name" not in parsed.query:
        parsed = parsed.update_query_dict({"application_name": APPLICATION_NAME})
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class StatementPool:
    """At most `size` connections, opened on first need and kept; a broken one is dropped
    (its request fails once, as with the sync engine) and replaced on the next checkout."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._slots = asyncio.Semaphore(size)
        self._idle: list[psycopg.AsyncConnection[tuple[object, ...]]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
        async with self._slots:
            connection = await self._live_idle()
            if connection is None:
                connection = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                yield connection
            finally:
                # Idle means the statement completed; anything else (a cancelled request mid
                # query, a dropped server) and the connection is not reused.
                if connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self._idle.append(connection)
                else:
                    await connection.close()

    async def run(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`read(connection)`, tried once more on a new connection if the first one turns out
        dead (PostgreSQL restarted, an idle connection was cut): reads are safe to repeat, so
        no client request fails for a pooled connection the server dropped."""
        try:
            async with self.connection() as connection:
                return await read(connection)
        except psycopg.OperationalError:
            async with self.connection() as connection:
                return await read(connection)

    async def _live_idle(self) -> AsyncConnection | None:
        """An idle connection the server has not hung up on. An idle connection has nothing
        to read: a readable socket means the server closed it (a restart, an idle timeout),
        and it is dropped before anything is sent on it."""
        while self._idle:
            connection = self._idle.pop()
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
            if not readable:
                return connection
            await connection.close()
        return None

    async def send(self, statement: OneStatement) -> None:
        """A planned write's one statement, in autocommit: when it returns, the write is
        committed; a duplicate version raises `VersionConflict` and writes nothing. Never
        retried: a connection lost mid-statement leaves unknown whether it committed."""
        async with self.connection() as connection:
            with version_conflicts():
                async with psycopg.AsyncRawCursor(connection) as cursor:
                    await cursor.execute(statement.sql, statement.params)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def create_statement_pool(url: str, size: int) -> StatementPool | None:
    """A StatementPool on PostgreSQL; None on SQLite, whose reads stay in a `UnitOfWork`."""
    if make_url(normalize_url(url)).get_backend_name() != "postgresql":
        return None
    return StatementPool(libpq_conninfo(url), size)
