"""A small pool of async PostgreSQL connections in autocommit, for single-statement reads.

The REST read path is one indexed SELECT. Through SQLAlchemy's async engine it cost about
1 ms of CPU (pool checkout and return, greenlet switches, result processing); on a psycopg
AsyncConnection it costs about 0.2 ms. Without a transaction it is one round trip (no BEGIN,
no ROLLBACK). Nothing that writes, or needs one snapshot across statements, may use it: those
go through a `UnitOfWork`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from sqlalchemy.engine import make_url

from store.database import APPLICATION_NAME, normalize_url

T = TypeVar("T")
AsyncConnection = psycopg.AsyncConnection[tuple[object, ...]]


def libpq_conninfo(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL (query options such as search_path kept)."""
    parsed = make_url(normalize_url(url))
    if "application_name" not in parsed.query:
        parsed = parsed.update_query_dict({"application_name": APPLICATION_NAME})
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class ReadPool:
    """At most `size` connections, opened on first need and kept; a broken one is dropped
    (its request fails once, as with the sync engine) and replaced on the next checkout."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._slots = asyncio.Semaphore(size)
        self._idle: list[psycopg.AsyncConnection[tuple[object, ...]]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
        async with self._slots:
            if self._idle:
                connection = self._idle.pop()
            else:
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

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def create_read_pool(url: str, size: int) -> ReadPool | None:
    """A ReadPool on PostgreSQL; None on SQLite, whose reads stay in a `UnitOfWork`."""
    if make_url(normalize_url(url)).get_backend_name() != "postgresql":
        return None
    return ReadPool(libpq_conninfo(url), size)
