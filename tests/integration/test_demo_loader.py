"""The demo data goes in through the client write path and reads back through the store."""

from __future__ import annotations

import itertools
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cli.demo_data import demo_bundles
from cli.demo_loader import database_is_empty, load_bundles
from store import tables
from store.unit_of_work import UnitOfWork

ANCHOR = date(2026, 3, 11)


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(table.__table__)  # type: ignore[attr-defined]
            ).scalar_one()
        )


def test_demo_bundles_load_and_read_back_with_their_session_facts(engine: Engine) -> None:
    assert database_is_empty(engine, "default")
    # The clinics' bundle, then the first three patients who have done sessions.
    stream = demo_bundles(ANCHOR)
    clinics = next(stream)
    with_sessions = (
        b for b in stream if any(e["resource"]["resourceType"] == "Procedure" for e in b["entry"])
    )
    bundles = [clinics, *itertools.islice(with_sessions, 3)]
    written = load_bundles(engine, "default", bundles)
    assert written == sum(len(b["entry"]) for b in bundles)
    assert not database_is_empty(engine, "default")
    with UnitOfWork(engine) as uow:
        assert uow.resources.count("Organization") == 3
        assert uow.resources.count("Patient") == 3
        patient_id = bundles[1]["entry"][0]["resource"]["id"]
        patient = uow.resources.read("Patient", patient_id)
    assert patient.body is not None and patient.body["managingOrganization"]["reference"]
    repetitions = sum(
        1
        for b in bundles
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"].get("partOf")
    )
    assert repetitions > 0
    assert _count(engine, tables.SessionFact) >= repetitions
    assert _count(engine, tables.ExerciseSession) > 0
    assert _count(engine, tables.PainReport) > 0


def test_loading_the_same_demo_bundles_twice_changes_nothing_but_versions(engine: Engine) -> None:
    bundles = list(itertools.islice(demo_bundles(ANCHOR), 2))
    load_bundles(engine, "default", bundles)
    facts = _count(engine, tables.SessionFact)
    load_bundles(engine, "default", bundles)
    assert _count(engine, tables.SessionFact) == facts
    with UnitOfWork(engine) as uow:
        assert uow.resources.count("Patient") == 1
