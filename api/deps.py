"""Dependencies handlers declare: the current client and the unit of work for its tenant.

Authorization (SMART Backend Services) will replace `current_client`; everything downstream
already receives the tenant from here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from api.settings import Settings
from store.unit_of_work import UnitOfWork


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


async def current_client(settings: SettingsDep) -> Client:
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
