"""The resource store through its public interface, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import tables
from store.bundles import process_transaction
from store.errors import (
    InvalidResource,
    PreconditionFailed,
    ResourceGone,
    ResourceNotFound,
    VersionConflict,
)
from store.resource_store import Method, Write, new_resource_id
from store.unit_of_work import UnitOfWork
from tests.session_examples import example

FIXED_NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


def _clock() -> datetime:
    return FIXED_NOW


def patient(resource_id: str = "p1", family: str = "Testperson") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": "urn:test:mrn", "value": f"mrn-{resource_id}"}],
        "name": [{"family": family, "given": ["Ada"]}],
        "birthDate": "1970-05-01",
    }


def put(engine: Engine, body: dict[str, Any], tenant: str = "default", **kw: Any) -> Any:
    with UnitOfWork(engine, tenant, write=True, clock=_clock) as uow:
        outcome = uow.resources.write(
            [Write(Method.UPDATE, body["resourceType"], body["id"], body, **kw)]
        )[0]
        uow.commit()
    return outcome


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(table.__table__)).mappings())


def test_update_as_create_then_read_returns_the_body_with_server_metadata(engine: Engine) -> None:
    outcome = put(engine, patient())
    assert outcome.created
    with UnitOfWork(engine) as uow:
        stored = uow.resources.read("Patient", "p1")
    assert stored.version_id == 1
    assert stored.body is not None
    assert stored.body["meta"] == {"versionId": "1", "lastUpdated": "2026-03-12T09:00:00.000Z"}
    assert stored.body["name"] == [{"family": "Testperson", "given": ["Ada"]}]


def test_each_update_adds_a_version_and_old_versions_stay_readable(engine: Engine) -> None:
    put(engine, patient(family="First"))
    second = put(engine, patient(family="Second"))
    assert (second.created, second.resource.version_id) == (False, 2)
    with UnitOfWork(engine) as uow:
        history = uow.resources.history("Patient", "p1")
        first = uow.resources.vread("Patient", "p1", 1)
    assert [h.version_id for h in history] == [2, 1]
    assert first.body is not None and first.body["name"][0]["family"] == "First"


def test_if_match_with_a_stale_version_is_refused_and_changes_nothing(engine: Engine) -> None:
    put(engine, patient(family="First"))
    put(engine, patient(family="Second"))
    with pytest.raises(PreconditionFailed, match="version 2, not 1"):
        put(engine, patient(family="Third"), if_match=1)
    with UnitOfWork(engine) as uow:
        assert uow.resources.read("Patient", "p1").version_id == 2


def test_a_deleted_resource_reads_as_gone_and_keeps_its_history(engine: Engine) -> None:
    put(engine, patient())
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([Write(Method.DELETE, "Patient", "p1")])
        uow.commit()
    with UnitOfWork(engine) as uow:
        with pytest.raises(ResourceGone):
            uow.resources.read("Patient", "p1")
        assert [h.deleted for h in uow.resources.history("Patient", "p1")] == [True, False]
        assert uow.resources.count("Patient") == 0


def test_reading_an_unknown_resource_is_not_found(engine: Engine) -> None:
    with UnitOfWork(engine) as uow, pytest.raises(ResourceNotFound):
        uow.resources.read("Patient", "nobody")


def test_an_invalid_resource_is_rejected_naming_the_element(engine: Engine) -> None:
    bad = patient()
    bad["birthDate"] = "1970-13-45"
    with pytest.raises(InvalidResource) as raised:
        put(engine, bad)
    assert raised.value.expression == "Patient.birthDate"


def test_a_put_whose_body_id_differs_from_the_url_is_rejected(engine: Engine) -> None:
    with (
        UnitOfWork(engine, write=True) as uow,
        pytest.raises(InvalidResource, match="does not match"),
    ):
        uow.resources.write([Write(Method.UPDATE, "Patient", "other", patient("p1"))])


def test_one_invalid_resource_in_a_batch_leaves_no_trace_of_the_others(engine: Engine) -> None:
    bad = patient("p3")
    bad["gender"] = ["not", "a", "code"]
    writes = [
        Write(Method.UPDATE, "Patient", p["id"], p) for p in (patient("p1"), patient("p2"), bad)
    ]
    with UnitOfWork(engine, write=True) as uow, pytest.raises(InvalidResource):
        uow.resources.write(writes)
        uow.commit()
    assert rows(engine, tables.Resource) == []
    assert rows(engine, tables.ResourceVersion) == []
    assert rows(engine, tables.SearchToken) == []


def test_leaving_a_unit_of_work_without_commit_rolls_back(engine: Engine) -> None:
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([Write(Method.UPDATE, "Patient", "p1", patient())])
    assert rows(engine, tables.Resource) == []


def test_every_write_fills_the_search_index_and_an_update_replaces_it(engine: Engine) -> None:
    put(engine, patient(family="First"))
    put(engine, patient(family="Second"))
    strings = {(r["param"], r["value"]) for r in rows(engine, tables.SearchString)}
    assert ("family", "second") in strings
    assert ("family", "first") not in strings
    tokens = {(r["param"], r["system"], r["code"]) for r in rows(engine, tables.SearchToken)}
    assert ("identifier", "urn:test:mrn", "mrn-p1") in tokens
    dates = [r for r in rows(engine, tables.SearchDate) if r["param"] == "birthdate"]
    assert [(d["low"].date().isoformat(), d["high"].date().isoformat()) for d in dates] == [
        ("1970-05-01", "1970-05-01")
    ]


def test_tenants_never_see_each_others_resources(engine: Engine) -> None:
    put(engine, patient(), tenant="clinic-a")
    with UnitOfWork(engine, "clinic-b") as uow, pytest.raises(ResourceNotFound):
        uow.resources.read("Patient", "p1")
    put(engine, patient(family="Other"), tenant="clinic-b")
    with UnitOfWork(engine, "clinic-a") as uow:
        body = uow.resources.read("Patient", "p1").body
    assert body is not None and body["name"][0]["family"] == "Testperson"


def _post_session(engine: Engine, bundle: dict[str, Any]) -> dict[str, Any]:
    with UnitOfWork(engine, write=True, clock=_clock) as uow:
        response = process_transaction(uow.resources, bundle)
        uow.commit()
    return response


def test_a_session_transaction_stores_the_session_and_one_fact_per_repetition(
    engine: Engine,
) -> None:
    put(engine, patient("example"))
    response = _post_session(engine, example("session-transaction.json"))
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 7
    procedure_id = response["entry"][0]["fullUrl"].split("/")[1]
    sessions = rows(engine, tables.ExerciseSession)
    assert [(s["procedure_id"], s["protocol"], s["local_date"].isoformat()) for s in sessions] == [
        (procedure_id, "flexion-in-lying", "2026-03-10")
    ]
    facts = sorted(rows(engine, tables.SessionFact), key=lambda f: f["repetition_index"])
    assert [f["pain"] for f in facts] == [4, 4, 3, 3, 2, 1]
    assert {f["procedure_id"] for f in facts} == {procedure_id}
    with UnitOfWork(engine) as uow:
        observation = uow.resources.read(
            "Observation", response["entry"][1]["fullUrl"].split("/")[1]
        )
    assert observation.body is not None
    assert observation.body["partOf"] == [{"reference": f"Procedure/{procedure_id}"}]


def test_the_compact_form_gives_the_same_facts_as_one_observation_per_repetition(
    engine: Engine,
) -> None:
    put(engine, patient("example"))
    session = example("session-transaction.json")
    procedure = copy.deepcopy(session["entry"][0]["resource"])
    procedure["id"] = "example-session"
    put(engine, procedure)
    compact = example("session-compact-observation.json")
    compact["id"] = "compact-1"
    put(engine, compact)
    facts = sorted(rows(engine, tables.SessionFact), key=lambda f: f["repetition_index"])
    assert [(f["repetition_index"], f["pain"]) for f in facts] == [
        (1, 2),
        (2, 3),
        (3, 4),
        (4, 5),
        (5, 6),
    ]
    assert {f["observation_id"] for f in facts} == {"compact-1"}


def test_an_observation_that_is_part_of_a_missing_procedure_is_rejected(engine: Engine) -> None:
    put(engine, patient("example"))
    compact = example("session-compact-observation.json")
    compact["id"] = "compact-1"
    with pytest.raises(InvalidResource, match="does not exist") as raised:
        put(engine, compact)
    assert raised.value.expression == "Observation.partOf"
    assert rows(engine, tables.Resource) != [] and rows(engine, tables.SessionFact) == []


def test_an_observation_part_of_a_procedure_deleted_in_the_same_write_is_rejected(
    engine: Engine,
) -> None:
    put(engine, patient("example"))
    procedure = copy.deepcopy(example("session-transaction.json")["entry"][0]["resource"])
    procedure = {k: v for k, v in procedure.items() if k != "basedOn"}
    put(engine, {**procedure, "id": "gone-session"})
    compact = example("session-compact-observation.json")
    compact = {**compact, "id": "compact-1", "partOf": [{"reference": "Procedure/gone-session"}]}
    writes = [
        Write(Method.DELETE, "Procedure", "gone-session"),
        Write(Method.UPDATE, "Observation", "compact-1", compact),
    ]
    with (
        pytest.raises(InvalidResource, match="does not exist"),
        UnitOfWork(engine, write=True, clock=_clock) as uow,
    ):
        uow.resources.write(writes)
        uow.commit()
    stored = {(r["type"], r["id"]): r["deleted"] for r in rows(engine, tables.Resource)}
    assert stored[("Procedure", "gone-session")] is False  # the write left no trace
    assert ("Observation", "compact-1") not in stored


def test_a_pain_score_outside_0_to_10_is_rejected_naming_the_value(engine: Engine) -> None:
    bundle = example("session-transaction.json")
    bundle["entry"][3]["resource"]["valueInteger"] = 11
    with pytest.raises(InvalidResource) as raised:
        _post_session(engine, bundle)
    assert raised.value.expression == "Observation.valueInteger"
    assert rows(engine, tables.Resource) == []


def test_a_general_pain_report_is_recorded_for_readiness(engine: Engine) -> None:
    report = example("daily-pain-observation.json")
    report["id"] = "daily-1"
    put(engine, report)
    reports = rows(engine, tables.PainReport)
    assert [(r["observation_id"], r["pain"]) for r in reports] == [
        ("daily-1", report["valueInteger"])
    ]


def test_concurrent_writers_all_succeed(engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                body = patient(f"w{n}-{i}")
                with UnitOfWork(engine, write=True) as uow:
                    uow.resources.write([Write(Method.CREATE, "Patient", new_resource_id(), body)])
                    uow.commit()
        except BaseException as error:  # collected and asserted on below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with UnitOfWork(engine) as uow:
        assert uow.resources.count("Patient") == 30


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    from store.database import create_engine

    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    engine.dispose()
    assert (mode, timeout) == ("wal", 30000)


def test_concurrent_updates_of_one_resource_never_lose_a_version(engine: Engine) -> None:
    put(engine, patient())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def update(family: str) -> None:
        # Start together; on SQLite the second writer then queues at BEGIN IMMEDIATE, on
        # PostgreSQL both read version 1 and race to write version 2.
        barrier.wait(timeout=10)
        try:
            with UnitOfWork(engine, write=True) as uow:
                uow.resources.write([Write(Method.UPDATE, "Patient", "p1", patient(family=family))])
                uow.commit()
            outcomes.append("ok")
        except VersionConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=update, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with UnitOfWork(engine) as uow:
        versions = [h.version_id for h in uow.resources.history("Patient", "p1")]
    # Either both applied one after the other, or the loser was told to retry: never two
    # writers both believing they made version 2.
    assert versions == list(range(len(versions), 0, -1))
    assert len(versions) == 1 + outcomes.count("ok")
