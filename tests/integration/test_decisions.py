"""Stop-rule decisions at ingest (store/decisions.py), on SQLite and PostgreSQL.

Sessions go in as transaction Bundles through the store's write path; the DetectedIssue, Task,
Flag and ServiceRequest the rule writes are read back by their deterministic ids.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy.engine import Engine

from domain.protocols import CATALOG, StopRuleMode
from domain.stop_rule import FoldState
from store.bundles import process_transaction
from store.database import create_engine
from store.errors import InvalidResource, ResourceNotFound
from store.protocol_catalog import (
    PARAMETERS_EXTENSION,
    catalog_resources,
    code_systems,
    ensure_catalog,
    parameters_from_plan,
    plan_definition,
    with_parameters,
)
from store.resource_store import Method, Write
from store.schema import upgrade
from store.stop_rule_folds import StoredFold, load_folds, save_folds
from store.unit_of_work import UnitOfWork
from tests.e2e.sessions import (
    FLEXION,
    PAIN_FREE,
    WEARS_OFF,
    WORSENING,
    day,
    hold_ids,
    patient_entries,
    procedure_id,
    session_entries,
    transaction,
)

P = "p1"
HOLD = hold_ids(P, "s0")


def post(engine: Engine, *entries: dict[str, Any]) -> None:
    with UnitOfWork(engine, write=True) as uow:
        process_transaction(uow.resources, transaction(*entries))
        uow.commit()


def read(engine: Engine, resource_type: str, resource_id: str) -> dict[str, Any]:
    with UnitOfWork(engine) as uow:
        body = uow.resources.read(resource_type, resource_id).body
    assert body is not None
    return body


def versions(engine: Engine, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    with UnitOfWork(engine) as uow:
        return {k: uow.resources.read(*k).version_id for k in keys}


def decision_keys(patient: str, *names: str) -> list[tuple[str, str]]:
    keys = [(t, i) for name in names for t, i in hold_ids(patient, name).items()]
    return [*keys, ("ServiceRequest", f"{patient}-rx")]


@pytest.fixture
def worsened(engine: Engine) -> Engine:
    """p1 with a prescription and one worsening session on day 0."""
    post(engine, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING))
    return engine


def test_a_worsening_session_opens_a_hold_issue_task_flag_and_puts_the_prescription_on_hold(
    worsened: Engine,
) -> None:
    issue = read(worsened, "DetectedIssue", HOLD["DetectedIssue"])
    task = read(worsened, "Task", HOLD["Task"])
    flag = read(worsened, "Flag", HOLD["Flag"])
    request = read(worsened, "ServiceRequest", f"{P}-rx")
    session = procedure_id(P, "s0")

    assert issue["status"] == "final"
    assert issue["patient"] == {"reference": f"Patient/{P}"}
    assert {"reference": f"Procedure/{session}"} in issue["implicated"]
    assert issue["evidence"][0]["detail"] == [
        {"reference": f"Observation/{session}-r{i}"} for i in range(1, 5)
    ]
    assert "pain 2,3,4,5" in issue["detail"]
    assert f"try again between {day(7)} and {day(14)}" in issue["detail"]
    assert "retry_min_days=7" in issue["detail"]

    assert (task["status"], task["intent"]) == ("requested", "plan")
    assert task["focus"] == {"reference": f"ServiceRequest/{P}-rx"}
    assert task["for"] == {"reference": f"Patient/{P}"}
    assert task["restriction"]["period"] == {"start": str(day(7)), "end": str(day(14))}

    assert flag["status"] == "active"
    assert flag["period"] == {"start": str(day(0)), "end": str(day(14))}
    assert request["status"] == "on-hold"


def test_the_decisions_are_part_of_the_sessions_transaction(engine: Engine) -> None:
    post(engine, *patient_entries(P))
    with UnitOfWork(engine, write=True) as uow:
        process_transaction(uow.resources, transaction(*session_entries(P, "s0", 0, WORSENING)))
        assert uow.resources.read("DetectedIssue", HOLD["DetectedIssue"]).body is not None
        # leaving without commit: the session and its decisions roll back together
    with UnitOfWork(engine) as uow:
        assert uow.resources.live_ids("DetectedIssue", HOLD.values()) == set()
        assert uow.resources.read("ServiceRequest", f"{P}-rx").body["status"] == "active"  # type: ignore[index]


def test_a_tolerated_retry_in_the_window_ends_the_flag_completes_the_task_and_reactivates(
    worsened: Engine,
) -> None:
    post(worsened, *session_entries(P, "retry", 8, WEARS_OFF))
    task = read(worsened, "Task", HOLD["Task"])
    flag = read(worsened, "Flag", HOLD["Flag"])
    assert task["status"] == "completed"
    assert task["output"][0]["valueReference"] == {
        "reference": f"Procedure/{procedure_id(P, 'retry')}"
    }
    assert (flag["status"], flag["period"]["end"]) == ("inactive", str(day(8)))
    assert read(worsened, "ServiceRequest", f"{P}-rx")["status"] == "active"
    assert read(worsened, "DetectedIssue", HOLD["DetectedIssue"])["status"] == "final"


def test_reposting_the_same_sessions_writes_no_new_version_of_any_decision(
    worsened: Engine,
) -> None:
    post(worsened, *session_entries(P, "retry", 8, WEARS_OFF))
    post(worsened, *session_entries(P, "again", 20, WORSENING))
    keys = decision_keys(P, "s0", "again")
    before = versions(worsened, keys)
    post(worsened, *session_entries(P, "s0", 0, WORSENING))
    post(
        worsened,
        *session_entries(P, "retry", 8, WEARS_OFF),
        *session_entries(P, "again", 20, WORSENING),
    )
    assert versions(worsened, keys) == before


def test_a_late_older_session_recomputes_the_hold_as_if_posted_in_order(engine: Engine) -> None:
    # p1 gets the sessions out of order, p2 in order: the stored decisions must agree.
    sessions = [("a", 0, WORSENING), ("c", 10, WEARS_OFF), ("b", 5, WORSENING)]
    post(engine, *patient_entries("p1"), *patient_entries("p2"))
    for name, offset, pains in sessions:
        post(engine, *session_entries("p1", name, offset, pains))
    for name, offset, pains in sorted(sessions, key=lambda s: s[1]):
        post(engine, *session_entries("p2", name, offset, pains))

    for patient in ("p1", "p2"):
        first, second = hold_ids(patient, "a"), hold_ids(patient, "b")
        # b worsened before a's window opened: a's hold restarted from b; c is premature.
        assert read(engine, "Task", first["Task"])["status"] == "cancelled"
        assert read(engine, "Flag", first["Flag"])["period"] == {
            "start": str(day(0)),
            "end": str(day(5)),
        }
        assert read(engine, "Task", second["Task"])["status"] == "requested"
        assert read(engine, "Flag", second["Flag"])["status"] == "active"
        assert read(engine, "ServiceRequest", f"{patient}-rx")["status"] == "on-hold"
    assert _normalised(engine, "p1", "abc") == _normalised(engine, "p2", "abc")


def test_a_later_session_continues_the_stored_fold_and_an_older_one_refolds_the_history(
    worsened: Engine,
) -> None:
    # Replace p1's stored fold state (a hold open since s0) with "no session yet": a session
    # that continues the stored state then sees no hold, which is how this test can tell the
    # two paths apart. Nothing but this test ever writes such a state.
    with UnitOfWork(worsened, write=True) as uow:
        stored = load_folds(uow.resources, [(P, FLEXION)])[(P, FLEXION)]
        assert stored.state.hold is not None and stored.state.count == 1
        save_folds(uow.resources, {(P, FLEXION): StoredFold(stored.key, FoldState(), ())})
        uow.commit()

    post(worsened, *session_entries(P, "retry", 8, WEARS_OFF))
    assert read(worsened, "Task", HOLD["Task"])["status"] == "requested"  # continued: no hold

    # A session earlier than the stored ones cannot continue the fold: the whole history is
    # folded again, and the retry on day 8 is seen for what it is.
    post(worsened, *session_entries(P, "earlier", -3, PAIN_FREE))
    assert read(worsened, "Task", HOLD["Task"])["status"] == "completed"
    with UnitOfWork(worsened) as uow:
        state = load_folds(uow.resources, [(P, FLEXION)])[(P, FLEXION)].state
    assert (state.count, state.open, state.retries) == (3, False, (procedure_id(P, "retry"),))


def test_a_pair_whose_clinic_turns_the_stop_rule_off_forgets_its_fold(worsened: Engine) -> None:
    own = with_parameters(CATALOG[FLEXION], stop_rule=False)
    with UnitOfWork(worsened, write=True) as uow:
        uow.resources.write([Write(Method.UPDATE, "PlanDefinition", own["id"], own)])
        uow.commit()
    post(worsened, *session_entries(P, "later", 3, WORSENING))
    with UnitOfWork(worsened) as uow:
        assert load_folds(uow.resources, [(P, FLEXION)]) == {}


def test_every_decision_resource_is_valid_fhir(worsened: Engine) -> None:
    # The decisions skip fhir.resources at write time (the server built them): check here.
    post(worsened, *session_entries(P, "failed", 8, WORSENING))
    post(worsened, *session_entries(P, "retry", 16, WEARS_OFF))
    keys = decision_keys(P, "s0", "failed")
    assert len(keys) == 7
    for resource_type, resource_id in keys:
        get_fhir_model_class(resource_type).model_validate(
            read(worsened, resource_type, resource_id)
        )


def _normalised(engine: Engine, patient: str, names: str) -> list[str]:
    bodies = []
    for t, i in decision_keys(patient, *[n for n in names if n != "c"]):
        body = {k: v for k, v in read(engine, t, i).items() if k != "meta"}
        bodies.append(json.dumps(body, sort_keys=True).replace(patient, "P"))
    return bodies


def test_a_rejected_transaction_leaves_no_decision_and_no_catalog_behind(engine: Engine) -> None:
    post(engine, *patient_entries(P))
    entries = session_entries(P, "s0", 0, WORSENING)
    entries[-1]["resource"]["valueInteger"] = 11  # off the 0-10 scale: the Bundle is refused
    with pytest.raises(InvalidResource):
        post(engine, *entries)
    with UnitOfWork(engine) as uow:
        assert uow.resources.live_ids("DetectedIssue", HOLD.values()) == set()
        assert uow.resources.count("Task") == uow.resources.count("Flag") == 0
        assert uow.resources.count("PlanDefinition") == 0
        assert uow.resources.read("ServiceRequest", f"{P}-rx").body["status"] == "active"  # type: ignore[index]


def test_voiding_the_worsening_session_marks_its_decisions_entered_in_error(
    worsened: Engine,
) -> None:
    post(worsened, *session_entries(P, "s0", 0, WORSENING, status="entered-in-error"))
    for resource_type, resource_id in HOLD.items():
        assert read(worsened, resource_type, resource_id)["status"] == "entered-in-error"
    assert read(worsened, "ServiceRequest", f"{P}-rx")["status"] == "active"


def test_a_prescription_the_clinic_completed_is_never_put_on_hold(engine: Engine) -> None:
    post(engine, *patient_entries(P, rx_status="completed"))
    post(engine, *session_entries(P, "s0", 0, WORSENING))
    assert read(engine, "ServiceRequest", f"{P}-rx")["status"] == "completed"
    assert read(engine, "Task", HOLD["Task"])["status"] == "requested"


def test_without_a_prescription_the_task_focuses_on_the_procedure(engine: Engine) -> None:
    post(engine, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING, based_on=False))
    task = read(engine, "Task", HOLD["Task"])
    assert task["focus"] == {"reference": f"Procedure/{procedure_id(P, 's0')}"}
    assert read(engine, "ServiceRequest", f"{P}-rx")["status"] == "active"


def test_the_first_session_writes_the_catalog_and_a_clinics_own_version_is_kept(
    engine: Engine,
) -> None:
    own = with_parameters(CATALOG["flexion-in-lying"], retry_min_days=3, retry_max_days=5)
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([Write(Method.UPDATE, "PlanDefinition", own["id"], own)])
        uow.commit()
    post(engine, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING))

    plan = read(engine, "PlanDefinition", "flexion-in-lying")
    assert plan["meta"]["versionId"] == "1"  # the clinic's version, not overwritten
    assert read(engine, "PlanDefinition", "spinal-rolling")["status"] == "active"
    activity = read(engine, "ActivityDefinition", "flexion-in-lying")
    assert activity["url"] == "https://reptrend.dev/fhir/ActivityDefinition/flexion-in-lying"
    task = read(engine, "Task", HOLD["Task"])
    assert task["restriction"]["period"] == {"start": str(day(3)), "end": str(day(5))}
    assert (
        "PlanDefinition/flexion-in-lying/_history/1"
        in read(engine, "DetectedIssue", HOLD["DetectedIssue"])["detail"]
    )


def test_a_clinic_that_turns_the_stop_rule_off_gets_no_hold(engine: Engine) -> None:
    own = with_parameters(CATALOG["flexion-in-lying"], stop_rule=False)
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([Write(Method.UPDATE, "PlanDefinition", own["id"], own)])
        uow.commit()
    post(engine, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING))
    with UnitOfWork(engine) as uow, pytest.raises(ResourceNotFound):
        uow.resources.read("DetectedIssue", HOLD["DetectedIssue"])
    assert read(engine, "ServiceRequest", f"{P}-rx")["status"] == "active"


def test_an_unusable_clinic_definition_falls_back_to_the_built_in_parameters(
    engine: Engine,
) -> None:
    own = with_parameters(CATALOG["flexion-in-lying"])
    own["extension"][0]["extension"].append({"url": "retryMinDayz", "valueInteger": 1})
    assert own["extension"][0]["url"] == PARAMETERS_EXTENSION
    with UnitOfWork(engine, write=True) as uow:
        uow.resources.write([Write(Method.UPDATE, "PlanDefinition", own["id"], own)])
        uow.commit()
    post(engine, *patient_entries(P), *session_entries(P, "s0", 0, WORSENING))
    issue = read(engine, "DetectedIssue", HOLD["DetectedIssue"])
    assert "retryMinDayz: not a protocol parameter" in issue["detail"]
    assert read(engine, "Task", HOLD["Task"])["restriction"]["period"]["start"] == str(day(7))


def test_a_pain_free_session_opens_no_hold(engine: Engine) -> None:
    post(engine, *patient_entries(P), *session_entries(P, "s0", 0, PAIN_FREE))
    with UnitOfWork(engine) as uow:
        assert uow.resources.count("DetectedIssue") == 0
        assert uow.resources.read("ServiceRequest", f"{P}-rx").body["status"] == "active"  # type: ignore[index]


@pytest.mark.postgres
def test_concurrent_sessions_of_one_patient_decide_on_both(postgres_url: str) -> None:
    """T1 posts the worsening session and holds its transaction open; T2 posts the tolerated
    retry meanwhile. T2 must decide after T1 commits, seeing both sessions."""
    upgrade(postgres_url)
    engine = create_engine(postgres_url)
    try:
        post(engine, *patient_entries(P))
        with UnitOfWork(engine, write=True) as seed:
            ensure_catalog(seed.resources)
            seed.commit()
        retried = threading.Event()

        def retry() -> None:
            post(engine, *session_entries(P, "retry", 8, WEARS_OFF))
            retried.set()

        with UnitOfWork(engine, write=True) as first:
            process_transaction(
                first.resources, transaction(*session_entries(P, "s0", 0, WORSENING))
            )
            second = threading.Thread(target=retry)
            second.start()
            assert not retried.wait(1.0)  # T2 waits for T1's decisions lock
            first.commit()
        second.join(timeout=30)
        assert retried.is_set()
        assert read(engine, "Task", HOLD["Task"])["status"] == "completed"
        assert read(engine, "ServiceRequest", f"{P}-rx")["status"] == "active"
    finally:
        engine.dispose()


def test_every_catalog_resource_is_valid_fhir_and_carries_every_parameter() -> None:
    for resource in [*catalog_resources(), *code_systems()]:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    for protocol in CATALOG.values():
        assert parameters_from_plan(plan_definition(protocol)) == protocol.parameters
    changed = with_parameters(
        CATALOG["flexion-in-lying"],
        stop_rule_mode=StopRuleMode.SLOPE,
        severe_pain=8,
        readiness_pain_free_share=0.75,
        readiness_days=21,
    )
    read_back = parameters_from_plan(changed)
    assert (read_back.stop_rule_mode, read_back.severe_pain) == (StopRuleMode.SLOPE, 8)
    assert (read_back.readiness_pain_free_share, read_back.readiness_days) == (0.75, 21)
