"""The unit of work: one connection, one transaction, one commit point.

Everything a request (or a CLI command) does to the database happens inside one of these.
Leaving the block without `commit()`, or through an exception, rolls everything back, so an
error part-way through a batch leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.bulk_insert import (
    OneStatement,
    StatementNeeded,
    defer_appends,
    refuse_statements,
    send_appends,
    send_appends_alone,
    stop_deferring,
    take_one_statement,
)
from store.database import WRITE_TRANSACTION
from store.resource_store import Clock, ResourceStore, utc_now

T = TypeVar("T")

DEFAULT_TENANT = "default"


class UnitOfWork:
    def __init__(
        self,
        engine: Engine,
        tenant: str = DEFAULT_TENANT,
        *,
        write: bool = False,
        clock: Clock = utc_now,
        planning: bool = False,
    ) -> None:
        self._engine = engine
        self._tenant = tenant
        self._write = write or planning
        self._planning = planning
        self._planned: OneStatement | None = None
        self._clock = clock
        self._connection: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None
        self._resources: ResourceStore | None = None

    def __enter__(self) -> UnitOfWork:
        connection = self._engine.connect()
        if self._write:
            connection = connection.execution_options(**{WRITE_TRANSACTION: True})
            defer_appends(connection)
        if self._planning:
            refuse_statements(connection)
        self._connection = connection
        self._transaction = connection.begin()
        self._resources = ResourceStore(connection, self._tenant, self._clock)
        return self

    @property
    def resources(self) -> ResourceStore:
        if self._resources is None:
            raise RuntimeError("the unit of work is not open")
        return self._resources

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def connection(self) -> sa.Connection:
        """The unit of work's connection, for store functions outside `ResourceStore`."""
        if self._connection is None:
            raise RuntimeError("the unit of work is not open")
        return self._connection

    def commit(self) -> None:
        """The one commit point of the service."""
        if self._transaction is None:
            raise RuntimeError("the unit of work is not open")
        assert self._connection is not None
        if self._planning:
            # Nothing has been sent: what the commit would send is taken instead, for the
            # caller to send (`plan_write`).
            self._planned = take_one_statement(self._connection)
            if self._planned is None:
                raise StatementNeeded("this write's rows do not make one statement")
            return
        if not send_appends_alone(self._connection):
            send_appends(self._connection)
        self._transaction.commit()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()
        finally:
            if self._connection is not None:
                stop_deferring(self._connection)
                self._connection.close()
            self._connection = self._transaction = self._resources = None


def plan_write(
    engine: Engine, tenant: str, work: Callable[[UnitOfWork], T]
) -> tuple[T, OneStatement]:
    """Run `work(uow)` (which commits) without sending anything, and return its result with
    the one statement its commit would have sent. Sent in autocommit (`StatementPool.send`),
    that statement is the whole transaction; until it returns, nothing is written.

    For a write that makes no statement before its commit and whose rows make one INSERT (a
    create of a resource no rule reads around: a daily pain report, a Patient). Anything
    else raises `StatementNeeded` before a statement is sent, and is to be run in an
    ordinary unit of work. `engine` is one whose connections are never used otherwise
    (`store.database.create_planning_engine`)."""
    with UnitOfWork(engine, tenant, planning=True) as uow:
        result = work(uow)
        if uow._planned is None:
            raise StatementNeeded("the work did not commit")
        return result, uow._planned
