"""Each session's figures, stored with it (migration 0006): written by ingest, kept in step
with every change to its repetitions, filled by `reptrend reindex --session-figures`, and
giving the cohort report exactly what reading the repetitions gives. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics import sources
from analytics.cohorts import Cohort
from analytics.report import cohort_report
from analytics.sources import read_database
from cli.main import main
from domain.session_figures import RepetitionRow, pack_session, signed_64
from store import tables
from store.bundles import process_transaction
from store.database import create_engine
from store.reindex import fill_session_figures
from store.schema import upgrade
from store.unit_of_work import UnitOfWork
from tests.unit.analytics import fhir

AS_OF = date(2026, 4, 30)
DAY0 = date(2026, 3, 2)
FIGURES = ("rated_repetitions", "pain_code", "repetition_counts")


def _post(engine: Engine, *entries: dict[str, Any]) -> None:
    with UnitOfWork(engine, "default", write=True) as uow:
        process_transaction(uow.resources, fhir.transaction(*entries))
        uow.commit()


def _delete(resource: str) -> dict[str, Any]:
    return {"request": {"method": "DELETE", "url": resource}}


def _stored(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(f"SELECT procedure_id, {', '.join(FIGURES)} FROM exercise_session")
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _forget_figures(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE exercise_session SET {', '.join(f'{c} = NULL' for c in FIGURES)}")
        )


def _expected(*reps: tuple[int, int, float | None, bool, bool]) -> tuple[Any, ...]:
    """(rated, pain_code, repetition_counts) of repetitions (index, pain, cm, fault, tingling)."""
    packed = pack_session(RepetitionRow(*rep) for rep in reps)
    code = None if packed.code is None else signed_64(packed.code)
    return (packed.rated, code, packed.counts)


def _time(day: int, hour: int = 8) -> str:
    return f"{DAY0 + timedelta(days=day)}T{hour:02d}:00:00+01:00"


def _tenant(engine: Engine) -> set[str]:
    """Six patients' sessions over seven weeks, through the write path: worsening runs that
    open holds, distances, form faults, peripheral symptoms, compact Observations, extension
    sessions, and irregular sessions (a gap, 17 repetitions, and for knee rocking an index
    posted twice). Later
    bundles add, edit, void and delete repetitions of stored sessions. Returns the ids of the
    sessions whose repetitions the report must read (not regular)."""
    rng = random.Random(20261122)
    entries: list[dict[str, Any]] = [
        fhir.put(fhir.organization("clinic-a")),
        fhir.put(fhir.group("g1", ["p0", "p2", "p4"])),
    ]
    irregular: set[str] = set()
    later: dict[str, dict[str, Any]] = {}  # by resource: once each in the later bundle
    for p in range(6):
        patient = f"p{p}"
        entries.append(fhir.put(fhir.patient(patient, "clinic-a" if p % 2 else None)))
        entries.append(fhir.put(fhir.prescription(f"rx{p}", patient, "flexion-in-lying")))
        for day in range(0, 49, rng.choice([1, 1, 2])):
            sid = f"{patient}-d{day}"
            protocol = "flexion-in-lying" if p != 5 else "rocking-knees-to-chest"
            entries.append(fhir.put(fhir.procedure(sid, patient, protocol, _time(day))))
            n = rng.choice([0, 2, 3, 5, 6, 8, 10, 17])
            worsening = rng.random() < 0.15
            pains = sorted(rng.randint(0, 9) for _ in range(n))
            if not worsening:
                pains.reverse()
            compact = n > 0 and rng.random() < 0.2
            indices = list(range(1, n + 1))
            if n and not compact and rng.random() < 0.1:
                indices[-1] += 2  # a gap
            if n > 16 or indices != list(range(1, n + 1)):
                irregular.add(sid)
            if compact:
                entries.append(fhir.put(fhir.compact(f"{sid}-c", patient, sid, pains, _time(day))))
            else:
                distance = rng.choice([None, 30.0])
                for index, pain in zip(indices, pains, strict=True):
                    entries.append(
                        fhir.put(
                            fhir.repetition(
                                f"{sid}-r{index}",
                                patient,
                                sid,
                                index,
                                pain,
                                _time(day),
                                distance_cm=None if distance is None else distance - index,
                                faults=("head-raised",) if rng.random() < 0.1 else (),
                                peripheral=rng.random() < 0.03 or None,
                            )
                        )
                    )
                    if rng.random() < 0.04:  # posted again later, edited
                        later[f"{sid}-r{index}"] = fhir.put(
                            fhir.repetition(f"{sid}-r{index}", patient, sid, index, 9, _time(day))
                        )
                if protocol != "flexion-in-lying" and n >= 3 and sid not in irregular:
                    # The same index again in another Observation, later (the store refuses
                    # that for a protocol with the stop rule on).
                    later[f"{sid}-dup"] = fhir.put(
                        fhir.repetition(f"{sid}-dup", patient, sid, 2, 8, _time(day))
                    )
                    irregular.add(sid)
                elif n >= 3 and sid not in irregular and rng.random() < 0.05:
                    later.setdefault(f"{sid}-r{n}", _delete(f"Observation/{sid}-r{n}"))
            if p < 3:
                entries.append(
                    fhir.put(
                        fhir.procedure(
                            f"{sid}-x", patient, "extension-in-lying", _time(day, hour=9)
                        )
                    )
                )
    _post(engine, *entries)
    _post(engine, *later.values())
    return irregular


def _reports(engine: Engine) -> list[tuple[str, str]]:
    """The report's JSON and patient CSV for several cohorts."""
    facts = read_database(engine, "default")
    results = []
    for cohort in (
        Cohort(),
        Cohort(protocol="flexion-in-lying"),
        Cohort(organization="clinic-a"),
        Cohort(group="g1"),
    ):
        report = cohort_report(facts, cohort, AS_OF)
        results.append((json.dumps(report.summary, indent=2), report.patients.write_csv()))
    return results


def test_the_report_is_the_same_from_stored_figures_as_from_the_repetitions(
    engine: Engine,
) -> None:
    irregular = _tenant(engine)
    assert irregular  # the test data has sessions the report must read
    facts = read_database(engine, "default")
    assert facts.stored_figures is not None and facts.faulty_repetitions is not None
    stored = facts.stored_figures.collect()
    assert stored.height > 100
    # Only the irregular sessions' repetitions are read; faults come from their own frame.
    assert set(facts.repetitions.collect()["procedure_id"]) == irregular
    assert facts.faulty_repetitions.collect().height > 10
    with_figures = _reports(engine)

    _forget_figures(engine)
    assert read_database(engine, "default").stored_figures.collect().height == 0  # type: ignore[union-attr]
    assert _reports(engine) == with_figures


def test_the_backfill_fills_what_ingest_wrote(
    engine: Engine, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant(engine)
    written = _stored(engine)
    assert any(code is not None for _, code, _ in written.values())
    _forget_figures(engine)
    assert fill_session_figures(engine, "default", page=7) == len(written)
    assert _stored(engine) == written
    assert fill_session_figures(engine, "default") == 0  # nothing left to fill

    _forget_figures(engine)
    monkeypatch.setenv("REPTREND_DATABASE_URL", migrated_url)
    assert main(["reindex", "--session-figures"]) == 0
    assert _stored(engine) == written


def test_stored_figures_follow_every_change_to_the_repetitions(engine: Engine) -> None:
    start = _time(0)

    def rep(index: int, pain: int, **kwargs: Any) -> dict[str, Any]:
        return fhir.put(fhir.repetition(f"r{index}", "p1", "s1", index, pain, start, **kwargs))

    _post(
        engine,
        fhir.put(fhir.patient("p1")),
        fhir.put(fhir.procedure("s1", "p1", "flexion-in-lying", start)),
        rep(1, 2),
        rep(2, 3),
        rep(3, 4),
    )
    assert _stored(engine)["s1"] == (3, 2 + 3 * 16 + 4 * 256, 1 + (3 << 10))
    a, b, c = (1, 2, None, False, False), (2, 3, None, False, False), (3, 4, None, False, False)
    assert _stored(engine)["s1"] == _expected(a, b, c)

    # A new Observation for the stored Procedure.
    _post(engine, rep(4, 6, distance_cm=20.0, faults=("neck-strain",), peripheral=True))
    d = (4, 6, 20.0, True, True)
    assert _stored(engine)["s1"] == _expected(a, b, c, d)

    # An edited Observation.
    _post(engine, rep(2, 9))
    b = (2, 9, None, False, False)
    assert _stored(engine)["s1"] == _expected(a, b, c, d)

    # A voided one leaves a gap: not regular, the report reads the repetitions.
    voided = fhir.repetition("r3", "p1", "s1", 3, 4, start)
    _post(engine, fhir.put({**voided, "status": "entered-in-error"}))
    assert _stored(engine)["s1"] == (3, None, None)

    # A deleted one closes it again.
    _post(engine, _delete("Observation/r4"))
    assert _stored(engine)["s1"] == _expected(a, b)

    # An edited Procedure keeps its figures; a voided one has no row; restored, it has them.
    _post(engine, fhir.put(fhir.procedure("s1", "p1", "flexion-in-lying", _time(1))))
    assert _stored(engine)["s1"] == _expected(a, b)
    cancelled = fhir.procedure("s1", "p1", "flexion-in-lying", _time(1))
    _post(engine, fhir.put({**cancelled, "status": "entered-in-error"}))
    assert "s1" not in _stored(engine)
    _post(engine, fhir.put(fhir.procedure("s1", "p1", "flexion-in-lying", _time(1))))
    assert _stored(engine)["s1"] == _expected(a, b)

    # A session without rated repetitions, and one with more than 16.
    _post(
        engine,
        fhir.put(fhir.procedure("s2", "p1", "flexion-in-lying", _time(2))),
        fhir.put(fhir.procedure("s3", "p1", "flexion-in-lying", _time(3))),
        fhir.put(fhir.compact("c3", "p1", "s3", [1] * 17, _time(3))),
    )
    assert _stored(engine)["s2"] == (0, None, None)
    assert _stored(engine)["s3"] == (17, None, None)


def test_the_source_finds_unpacked_sessions_by_the_partial_index_condition() -> None:
    # Word for word, or PostgreSQL's planner does not use the index.
    assert sources.UNPACKED_SESSION == tables.UNPACKED_SESSION


@pytest.mark.postgres
def test_concurrent_new_repetitions_of_one_session_all_count_in_its_figures(
    postgres_url: str,
) -> None:
    # Each write recomputes the session's figures from the stored repetitions; it must see
    # the others' (the session row is locked first), or the last to commit loses some.
    upgrade(postgres_url)
    engine = create_engine(postgres_url)
    try:
        _post_concurrently(engine)
    finally:
        engine.dispose()


def _post_concurrently(engine: Engine) -> None:
    start = _time(0)

    def rep(index: int, pain: int) -> dict[str, Any]:
        return fhir.put(fhir.repetition(f"r{index}", "p1", "s1", index, pain, start))

    _post(
        engine,
        fhir.put(fhir.patient("p1")),
        fhir.put(fhir.procedure("s1", "p1", "flexion-in-lying", start)),
        rep(1, 2),
    )
    indices = range(2, 10)
    barrier = threading.Barrier(len(indices))
    errors: list[BaseException] = []

    def post_one(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            _post(engine, rep(index, index % 11))
        except BaseException as error:  # collected and asserted on below
            errors.append(error)

    threads = [threading.Thread(target=post_one, args=(i,)) for i in indices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [(1, 2, None, False, False)] + [(i, i % 11, None, False, False) for i in indices]
    assert _stored(engine)["s1"] == _expected(*every)
