"""Properties of the stored stop-rule side effects: they do not depend on the order sessions
arrive in, nor on whether ingest continued a stored fold state or refolded the history.

SQLite only and a few examples: each example posts the same sessions for two fresh patients,
one session per transaction, and compares every decision resource (DetectedIssue, Task, Flag,
ServiceRequest) with the patient id masked.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from store.bundles import process_transaction
from store.database import create_engine
from store.schema import upgrade
from store.stop_rule_folds import forget_folds
from store.unit_of_work import UnitOfWork
from tests.e2e.sessions import (
    FLEXION,
    PAIN_FREE,
    WEARS_OFF,
    WORSENING,
    patient_entries,
    procedure_id,
    session_entries,
    transaction,
)

PAINS = {"worsening": WORSENING, "wears-off": WEARS_OFF, "pain-free": PAIN_FREE}
_sessions = st.lists(
    st.tuples(st.integers(0, 30), st.sampled_from(sorted(PAINS))),
    min_size=2,
    max_size=6,
    unique_by=lambda s: s[0],
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: a few examples of many single-session transactions each."""
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    upgrade(url)
    engine = create_engine(url)
    yield engine
    engine.dispose()


def _examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def _post(engine: Engine, *entries: dict[str, Any], forget: str | None = None) -> None:
    """One transaction; `forget` drops that patient's stored fold state first."""
    with UnitOfWork(engine, write=True) as uow:
        if forget is not None:
            forget_folds(uow.resources, [(forget, FLEXION)])
        process_transaction(uow.resources, transaction(*entries))
        uow.commit()


def _decisions(engine: Engine, patient: str, names: list[str]) -> list[str]:
    """Every live decision resource of these sessions, without meta, the patient masked."""
    keys = [("ServiceRequest", f"{patient}-rx")] + [
        (t, f"hold-{procedure_id(patient, n)}")
        for n in names
        for t in ("DetectedIssue", "Task", "Flag")
    ]
    with UnitOfWork(engine) as uow:
        stored = [uow.resources.read(*k).body for k in keys if uow.resources.live_ids(k[0], [k[1]])]
    return [
        json.dumps({k: v for k, v in b.items() if k != "meta"}, sort_keys=True).replace(
            patient, "P"
        )
        for b in stored
        if b is not None
    ]


def test_posting_sessions_in_any_order_stores_the_same_decisions(engine: Engine) -> None:
    patients = (f"p{n}" for n in itertools.count())

    @_examples(6)
    @given(sessions=_sessions, order=st.randoms(use_true_random=False))
    def check(sessions: list[tuple[int, str]], order: Any) -> None:
        shuffled, in_order = next(patients), next(patients)
        _post(engine, *patient_entries(shuffled), *patient_entries(in_order))
        arrival = list(sessions)
        order.shuffle(arrival)
        for offset, kind in arrival:
            _post(engine, *session_entries(shuffled, f"s{offset}", offset, PAINS[kind]))
        for offset, kind in sorted(sessions):
            _post(engine, *session_entries(in_order, f"s{offset}", offset, PAINS[kind]))
        names = [f"s{offset}" for offset, _ in sessions]
        assert _decisions(engine, shuffled, names) == _decisions(engine, in_order, names)

    check()


_ACTIONS = st.lists(
    st.tuples(
        st.integers(0, 30),
        st.sampled_from(sorted(PAINS)),
        st.sampled_from(["completed", "completed", "entered-in-error"]),
    ),
    min_size=2,
    max_size=8,
)


def test_continuing_the_stored_fold_stores_what_refolding_every_time_stores(
    engine: Engine,
) -> None:
    """Differential: one patient's writes continue the stored fold state whenever they can;
    a twin's identical writes always refold the whole history (its state is forgotten before
    each write). New sessions, late older ones, re-rated ones and voided ones, in any mix,
    must leave the same decision resources."""
    patients = (f"p{n}" for n in itertools.count())

    @_examples(8)
    @given(actions=_ACTIONS)
    def check(actions: list[tuple[int, str, str]]) -> None:
        continued, refolded = next(patients), next(patients)
        _post(engine, *patient_entries(continued), *patient_entries(refolded))
        for offset, kind, status in actions:
            for patient, forget in ((continued, None), (refolded, refolded)):
                entries = session_entries(patient, f"s{offset}", offset, PAINS[kind], status=status)
                _post(engine, *entries, forget=forget)
        names = sorted({f"s{offset}" for offset, _, _ in actions})
        assert _decisions(engine, continued, names) == _decisions(engine, refolded, names)

    check()
