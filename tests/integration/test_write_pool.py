"""The write engine's pool: a pooled connection the server has dropped (a restart, an
administrator, an idle timeout) is replaced at checkout, without a ping round trip, so no
client write fails for it."""

from __future__ import annotations

import time

import psycopg
import pytest

from store.database import create_engine
from store.resource_store import Method, Write
from store.schema import upgrade
from store.statement_pool import libpq_conninfo
from store.unit_of_work import UnitOfWork


def _backend_pid(uow: UnitOfWork) -> int:
    return int(uow.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


@pytest.mark.postgres
def test_a_write_on_a_pooled_connection_the_server_dropped_succeeds_on_a_new_one(
    postgres_url: str,
) -> None:
    upgrade(postgres_url)
    engine = create_engine(postgres_url, pool_size=1)
    try:
        with UnitOfWork(engine, write=True) as uow:
            first = _backend_pid(uow)
        with psycopg.connect(libpq_conninfo(postgres_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        # The server's goodbye reaches the pooled socket asynchronously.
        time.sleep(0.2)
        with UnitOfWork(engine, write=True) as uow:
            replaced = _backend_pid(uow)
            body = {"resourceType": "Patient", "id": "after-drop"}
            uow.resources.write([Write(Method.UPDATE, "Patient", "after-drop", body)])
            uow.commit()
        with UnitOfWork(engine) as uow:
            assert uow.resources.read("Patient", "after-drop").version_id == 1
        assert replaced != first
    finally:
        engine.dispose()
