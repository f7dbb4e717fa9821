"""Planned writes (`plan_write` + `StatementPool.send`): a create that makes no statement
before its commit is planned without touching the database and sent as one statement in
autocommit. It stores exactly what the same create stores in an ordinary unit of work;
anything that needs the database first is refused before a statement is sent; a conflict
writes nothing. PostgreSQL only: SQLite has no planned writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import tables
from store.bulk_insert import StatementNeeded
from store.database import create_engine, create_planning_engine
from store.errors import VersionConflict
from store.resource_store import Method, Write, WriteOutcome
from store.schema import upgrade
from store.statement_pool import StatementPool, libpq_conninfo
from store.unit_of_work import UnitOfWork, plan_write

pytestmark = pytest.mark.postgres

PAIN = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"code": "survey"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-01T08:00:00+01:00",
    "valueInteger": 4,
}
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:mrn", "value": "42"}],
    "name": [{"family": "Planned", "given": ["Ada"]}],
    "birthDate": "1970-01-01",
}
# Every table a create can fill, with the columns that do not carry the id or the time.
_TABLES = [
    tables.ResourceVersion,
    tables.Resource,
    tables.SearchToken,
    tables.SearchReference,
    tables.SearchDate,
    tables.SearchString,
    tables.SearchQuantity,
    tables.PainReport,
]


@pytest.fixture
def engines(postgres_url: str) -> Iterator[tuple[Engine, Engine, StatementPool]]:
    upgrade(postgres_url)
    engine = create_engine(postgres_url)
    planning = create_planning_engine(postgres_url)
    assert planning is not None
    yield engine, planning, StatementPool(libpq_conninfo(postgres_url), size=2)
    engine.dispose()
    planning.dispose()


def _create(resource_id: str, body: dict[str, Any]) -> Write:
    return Write(Method.CREATE, body["resourceType"], resource_id, {**body, "id": resource_id})


def _work(write: Write) -> Any:
    def work(uow: UnitOfWork) -> WriteOutcome:
        outcome = uow.resources.write([write], commit_next=True)[0]
        uow.commit()
        return outcome

    return work


def _planned(engine: Engine, pool: StatementPool, write: Write) -> WriteOutcome:
    outcome, statement = plan_write(engine, "default", _work(write))
    asyncio.run(pool.send(statement))
    return outcome


def _rows(engine: Engine, resource_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the resource has, its id and times left out, in a stable order."""
    found = {}
    with engine.connect() as connection:
        for model in _TABLES:
            table = model.__table__  # type: ignore[attr-defined]
            key = table.c.id if "id" in table.c else None
            key = table.c.resource_id if "resource_id" in table.c else key
            key = table.c.observation_id if key is None else key
            skip = {"id", "resource_id", "observation_id", "last_updated", "row", "body"}
            columns = [c for c in table.c if c.name not in skip]
            rows = connection.execute(sa.select(*columns).where(key == resource_id)).all()
            found[table.name] = sorted(tuple(map(str, row)) for row in rows)
    return found


@pytest.mark.parametrize("body", [PAIN, PATIENT], ids=["pain-report", "patient"])
def test_a_planned_create_stores_what_the_same_create_stores_in_a_unit_of_work(
    engines: tuple[Engine, Engine, StatementPool], body: dict[str, Any]
) -> None:
    engine, planning, pool = engines
    planned = _planned(planning, pool, _create("planned", body))
    with UnitOfWork(engine, write=True) as uow:
        _work(_create("ordinary", body))(uow)
    assert (planned.created, planned.resource.version_id) == (True, 1)
    with UnitOfWork(engine) as uow:
        stored = uow.resources.read(body["resourceType"], "planned")
        ordinary = uow.resources.read(body["resourceType"], "ordinary")
    assert stored.body == {**ordinary.body, "id": "planned", "meta": stored.body["meta"]}
    assert _rows(engine, "planned") == _rows(engine, "ordinary")
    assert any(_rows(engine, "planned")["search_token"])


def test_planning_sends_nothing_on_its_connection(
    engines: tuple[Engine, Engine, StatementPool], tmp_path: Path
) -> None:
    _, planning, _ = engines
    with planning.connect() as connection:
        pgconn = connection.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
    trace_file = tmp_path / "libpq.trace"
    with trace_file.open("w") as trace:
        pgconn.trace(trace.fileno())
        try:
            plan_write(planning, "default", _work(_create("quiet", PAIN)))
        finally:
            pgconn.untrace()
    assert trace_file.read_text() == ""


def test_a_write_that_needs_the_database_first_is_refused_before_anything_is_sent(
    engines: tuple[Engine, Engine, StatementPool],
) -> None:
    engine, planning, pool = engines
    _planned(planning, pool, _create("existing", PATIENT))
    # An update reads the current version first; a repetition reads its session.
    update = Write(Method.UPDATE, "Patient", "existing", {**PATIENT, "id": "existing"})
    with pytest.raises(StatementNeeded):
        plan_write(planning, "default", _work(update))
    repetition = {
        **PAIN,
        "partOf": [{"reference": "Procedure/nowhere"}],
        "component": [
            {
                "code": {
                    "coding": [
                        {
                            "system": "https://reptrend.dev/fhir/CodeSystem/session-measure",
                            "code": "repetition-index",
                        }
                    ]
                },
                "valueInteger": 1,
            }
        ],
    }
    with pytest.raises(StatementNeeded):
        plan_write(planning, "default", _work(_create("repetition", repetition)))
    with UnitOfWork(engine) as uow:
        assert uow.resources.read("Patient", "existing").version_id == 1
        assert uow.resources.live_ids("Observation", ["repetition"]) == set()


def test_a_planned_create_of_an_id_that_exists_is_a_conflict_and_writes_nothing(
    engines: tuple[Engine, Engine, StatementPool],
) -> None:
    engine, planning, pool = engines
    _planned(planning, pool, _create("twice", PAIN))
    with pytest.raises(VersionConflict):
        _planned(planning, pool, _create("twice", {**PAIN, "valueInteger": 9}))
    with UnitOfWork(engine) as uow:
        assert uow.resources.read("Observation", "twice").body["valueInteger"] == 4
    assert len(_rows(engine, "twice")["pain_report"]) == 1


def test_a_planned_write_is_not_sent_on_a_connection_the_server_dropped(
    engines: tuple[Engine, Engine, StatementPool], postgres_url: str
) -> None:
    engine, planning, pool = engines

    async def backend_pid() -> int:
        async with pool.connection() as connection:
            row = await (await connection.execute("SELECT pg_backend_pid()")).fetchone()
            assert row is not None
            return int(row[0])

    async def scenario() -> None:
        first = await backend_pid()
        with psycopg.connect(libpq_conninfo(postgres_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        time.sleep(0.2)  # the server's goodbye reaches the idle socket asynchronously
        _, statement = plan_write(planning, "default", _work(_create("after-drop", PAIN)))
        await pool.send(statement)
        assert await backend_pid() != first
        await pool.close()

    asyncio.run(scenario())
    with UnitOfWork(engine) as uow:
        assert uow.resources.read("Observation", "after-drop").version_id == 1
