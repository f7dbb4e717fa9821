"""Appends a write defers (PostgreSQL sends them together) behave as if sent at once:
later statements see them, conflicts surface in the write that caused them, and a failed
write inside a savepoint leaves nothing behind. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import tables
from store.bulk_insert import bulk_insert, defer_appends, stop_deferring
from store.errors import VersionConflict
from store.resource_store import Method, Write
from store.unit_of_work import UnitOfWork


def _patient(resource_id: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": resource_id, "name": [{"family": resource_id}]}


def _create(resource_id: str) -> Write:
    return Write(Method.CREATE, "Patient", resource_id, _patient(resource_id))


def _version_ids(engine: Engine, resource_id: str) -> list[int]:
    table = tables.ResourceVersion.__table__
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(table.c.version_id).where(table.c.id == resource_id)
            ).scalars()
        )


def test_statements_after_a_write_see_its_rows_before_the_commit(engine: Engine) -> None:
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([_create("seen")])
        index = tables.SearchString.__table__
        indexed = uow.connection.execute(
            sa.select(sa.func.count()).select_from(index).where(index.c.resource_id == "seen")
        ).scalar_one()
        assert uow.resources.read("Patient", "seen").version_id == 1
        assert indexed > 0
        uow.commit()
    assert _version_ids(engine, "seen") == [1]


def test_a_version_conflict_surfaces_from_the_write_and_its_savepoint_leaves_no_trace(
    engine: Engine,
) -> None:
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([_create("taken")])
        uow.commit()
    with UnitOfWork(engine, write=True) as uow:
        savepoint = uow.connection.begin_nested()
        # A create of an id that exists collides on the version key: the database decides.
        with pytest.raises(VersionConflict):
            uow.resources.write([_create("fresh-in-failed-write"), _create("taken")])
        savepoint.rollback()
        uow.resources.write([_create("after")])
        uow.commit()
    assert _version_ids(engine, "taken") == [1]
    assert _version_ids(engine, "fresh-in-failed-write") == []
    assert _version_ids(engine, "after") == [1]
    with UnitOfWork(engine) as uow:
        assert uow.resources.read("Patient", "taken").body["name"] == [{"family": "taken"}]


def test_the_next_statement_sends_the_appends_waiting_before_it(engine: Engine) -> None:
    table = tables.PainReport.__table__
    row = {
        "tenant": "default",
        "observation_id": "o1",
        "patient_id": "p1",
        "local_date": date(2026, 3, 1),
        "effective_at": datetime(2026, 3, 1, 8, tzinfo=UTC),
        "pain": 4,
    }
    with engine.connect() as connection, connection.begin():
        defer_appends(connection)
        try:
            bulk_insert(connection, table, [row, {**row, "observation_id": "o2"}])
            count = sa.select(sa.func.count()).select_from(table)
            assert connection.execute(count).scalar_one() == 2
        finally:
            stop_deferring(connection)


def _frontend_messages(trace: str) -> list[str]:
    """The kinds of message the client sent, from a libpq trace ("F 31 Query ...")."""
    return [line.split("\t")[2].split(" ")[0] for line in trace.splitlines() if line[:1] == "F"]


@pytest.mark.postgres
def test_a_create_that_makes_no_statement_of_its_own_commits_in_one_round_trip(
    postgres_url: str, tmp_path: Any
) -> None:
    from store.database import create_engine
    from store.schema import upgrade

    upgrade(postgres_url)
    engine = create_engine(postgres_url)
    trace_file = tmp_path / "libpq.trace"
    try:
        with UnitOfWork(engine, write=True) as uow, trace_file.open("w") as trace:
            pgconn = uow.connection.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
            pgconn.trace(trace.fileno())
            pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                uow.resources.write([_create("alone")], commit_next=True)
                uow.commit()
            finally:
                pgconn.untrace()
        # One statement (Parse, Bind, Describe, Execute, Sync: one flush, one reply): no
        # BEGIN and no COMMIT of their own.
        sent = _frontend_messages(trace_file.read_text())
        assert sent.count("Sync") == 1, sent
        assert "Query" not in sent, sent
        assert _version_ids(engine, "alone") == [1]
        with UnitOfWork(engine) as uow:
            assert uow.resources.read("Patient", "alone").version_id == 1
    finally:
        engine.dispose()


def test_a_conflict_left_for_the_commit_surfaces_there_and_leaves_no_trace(
    engine: Engine,
) -> None:
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([_create("first")], commit_next=True)
        uow.commit()
    with UnitOfWork(engine, write=True) as uow, pytest.raises(VersionConflict):
        # On PostgreSQL the rows wait for the commit; SQLite sends them in the write.
        uow.resources.write([_create("second"), _create("first")], commit_next=True)
        uow.commit()
    assert _version_ids(engine, "first") == [1]
    assert _version_ids(engine, "second") == []
    # The pooled connection is back in its usual mode: a write it sends and never commits
    # is rolled back.
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([_create("rolled-back")])
    assert _version_ids(engine, "rolled-back") == []
