"""Single-resource writes a process runs at once are capped (`write_concurrency`): the rest
wait their turn on the event loop instead of taking turns on the GIL in more threads."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest
from sqlalchemy.engine import Engine

from api.deps import Database
from store.unit_of_work import UnitOfWork


@pytest.mark.postgres
def test_no_more_writes_run_at_once_than_the_process_has_slots_for(
    postgres_url: str,
) -> None:
    # PostgreSQL only: SQLite's writers queue on its one write lock whatever the cap.
    from store.database import create_engine
    from store.schema import upgrade

    upgrade(postgres_url)
    engine: Engine = create_engine(postgres_url)
    running = 0
    most = 0
    lock = threading.Lock()

    def work(uow: UnitOfWork) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)  # long enough for every waiting write to try to start meanwhile
        with lock:
            running -= 1
        return uow.tenant

    async def main() -> list[str]:
        database = Database(engine, None, None, anyio.CapacityLimiter(2), "clinic-a")
        return await asyncio.gather(*(database.write(work) for _ in range(8)))

    try:
        tenants = asyncio.run(main())
    finally:
        engine.dispose()
    assert tenants == ["clinic-a"] * 8
    assert most == 2
