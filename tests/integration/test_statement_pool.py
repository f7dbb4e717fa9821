"""The async statement pool: connections are kept and reused, one the server dropped is not
handed out again, and a read through `run` does not fail for one it dropped mid-use."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from store.database import normalize_url
from store.statement_pool import StatementPool, create_statement_pool, libpq_conninfo


async def _backend_pid(pool: StatementPool) -> int:
    async with pool.connection() as connection:
        row = await (await connection.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.postgres
def test_connections_are_reused_and_one_the_server_dropped_is_not_handed_out(
    postgres_url: str,
) -> None:
    conninfo = libpq_conninfo(postgres_url)
    pool = StatementPool(conninfo, size=2)

    async def scenario() -> tuple[int, int, int]:
        try:
            first = await _backend_pid(pool)
            again = await _backend_pid(pool)
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            await asyncio.sleep(0.2)  # the server's goodbye reaches the idle socket
            return first, again, await _backend_pid(pool)
        finally:
            await pool.close()

    first, again, replaced = asyncio.run(scenario())
    assert again == first
    assert replaced != first


@pytest.mark.postgres
def test_a_read_on_a_dropped_connection_is_retried_on_a_new_one(postgres_url: str) -> None:
    conninfo = libpq_conninfo(postgres_url)
    pool = StatementPool(conninfo, size=1)

    async def pid(connection: psycopg.AsyncConnection[tuple[object, ...]]) -> int:
        row = await (await connection.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        return int(row[0])

    async def scenario() -> tuple[int, int]:
        try:
            first = await pool.run(pid)
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            return first, await pool.run(pid)
        finally:
            await pool.close()

    first, second = asyncio.run(scenario())
    assert second != first


@pytest.mark.postgres
def test_the_pool_reads_in_the_urls_schema(postgres_url: str) -> None:
    pool = create_statement_pool(postgres_url, size=1)
    assert pool is not None

    async def search_path() -> str:
        try:
            async with pool.connection() as connection:
                row = await (await connection.execute("SHOW search_path")).fetchone()
                assert row is not None
                return str(row[0])
        finally:
            await pool.close()

    schema = normalize_url(postgres_url).rpartition("search_path%3D")[2]
    assert asyncio.run(search_path()).strip('"') == schema


def test_sqlite_reads_need_no_pool(sqlite_url: str) -> None:
    assert create_statement_pool(sqlite_url, size=1) is None


def test_conninfo_keeps_the_options_and_names_the_application() -> None:
    url = "postgresql://u:secret@db:5432/rt?options=-csearch_path%3Dclinic_a"
    conninfo = libpq_conninfo(url)
    assert conninfo.startswith("postgresql://u:secret@db:5432/rt?")
    assert "search_path" in conninfo and "application_name=reptrend" in conninfo
    named = libpq_conninfo(url + "&application_name=mine")
    assert "application_name=mine" in named and "application_name=reptrend" not in named
