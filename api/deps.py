"""Dependencies handlers declare: the current client and the unit of work for its tenant.

Authorization (SMART Backend Services) will replace `current_client`; everything downstream
already receives the tenant from here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from api.settings import Settings
from store.bulk_insert import StatementNeeded
from store.resource_reads import ResourceJson, read_resource_json, read_resource_json_async
from store.statement_pool import StatementPool
from store.unit_of_work import UnitOfWork, plan_write


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling, and for which clinic (tenant)."""

    client_id: str
    tenant: str


# The dependencies that do no I/O are async on purpose: FastAPI runs a sync dependency in its
# thread pool, and each hop there costs more than the work itself.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


async def current_client(request: Request) -> Client:
    # The settings straight from the app, not through SettingsDep: one dependency fewer to
    # solve on every request.
    settings: Settings = request.app.state.settings
    return Client(client_id="anonymous", tenant=settings.default_tenant)


CurrentClient = Annotated[Client, Depends(current_client)]


def read_unit_of_work(engine: EngineDep, client: CurrentClient) -> Iterator[UnitOfWork]:
    with UnitOfWork(engine, client.tenant) as uow:
        yield uow


def write_unit_of_work(engine: EngineDep, client: CurrentClient) -> Iterator[UnitOfWork]:
    with UnitOfWork(engine, client.tenant, write=True) as uow:
        yield uow


ReadUow = Annotated[UnitOfWork, Depends(read_unit_of_work)]
WriteUow = Annotated[UnitOfWork, Depends(write_unit_of_work)]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Database:
    """The client's tenant's data, for the async handlers of the hot paths (read, create, ...).

    `ReadUow`/`WriteUow` cost three thread-pool hops a request (open, handler, close). Here a
    write runs its whole unit of work (open, the handler's work, commit, close) in one hop, and
    on PostgreSQL a read, and a write that is one statement, are awaited on the event loop
    (one statement in autocommit, no hop).
    """

    engine: Engine
    statement_pool: StatementPool | None
    planning_engine: Engine | None
    write_slots: anyio.CapacityLimiter
    tenant: str

    async def read_resource(
        self, resource_type: str, resource_id: str, version_id: int | None = None
    ) -> ResourceJson:
        if self.statement_pool is not None:
            return await self.statement_pool.run(
                lambda connection: read_resource_json_async(
                    connection, self.tenant, resource_type, resource_id, version_id
                )
            )

        def read() -> ResourceJson:
            with UnitOfWork(self.engine, self.tenant) as uow:
                return read_resource_json(
                    uow.connection, uow.tenant, resource_type, resource_id, version_id
                )

        return await run_in_threadpool(read)

    async def write(self, work: Callable[[UnitOfWork], T], *, plannable: bool = False) -> T:
        """`work(uow)` in a writing unit of work; `work` commits through `uow.commit()`.

        `plannable`: the work is likely one statement at its commit and nothing before (a
        create). On PostgreSQL it is then planned here, on the event loop, and its statement
        awaited: the hop to a worker thread and back cost about a third of a create's CPU. If
        it needs the database before its commit, it runs in a worker thread as any write."""
        if plannable and self.planning_engine is not None and self.statement_pool is not None:
            try:
                result, statement = plan_write(self.planning_engine, self.tenant, work)
            except StatementNeeded:
                pass
            else:
                await self.statement_pool.send(statement)
                return result

        def run() -> T:
            with UnitOfWork(self.engine, self.tenant, write=True) as uow:
                return work(uow)

        return await anyio.to_thread.run_sync(run, limiter=self.write_slots)


def _write_slots(state: State) -> anyio.CapacityLimiter:
    """The process's limiter of single-resource writes (`Settings.write_concurrency`), made
    on first use: it belongs to the running event loop."""
    slots: anyio.CapacityLimiter | None = getattr(state, "write_slots", None)
    if slots is None:
        slots = state.write_slots = anyio.CapacityLimiter(state.settings.write_concurrency)
    return slots


async def database(request: Request, client: CurrentClient) -> Database:
    state = request.app.state
    return Database(
        state.engine,
        state.statement_pool,
        state.planning_engine,
        _write_slots(state),
        client.tenant,
    )


DatabaseDep = Annotated[Database, Depends(database)]
