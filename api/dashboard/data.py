"""What the dashboard's own JSON endpoints answer: the cohort picker's choices, the worklist
and one patient's sessions with their hold windows.

Reads go through the store's public functions (`store.search`, `store.clinical_repository`)
and the analytics report; no SQL here. Decisions (status, holds, pain response) are the ones
the analytics and clinical endpoints make: this module only reshapes them for the charts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import polars as pl
from sqlalchemy.engine import Engine

from analytics.cohorts import Cohort
from analytics.report import stop_rule_statuses
from analytics.sources import read_database
from domain.codes import EXERCISE_SYSTEM
from domain.protocols import CATALOG
from domain.stop_rule import Hold, ProtocolStatus
from store.clinical_repository import AssessedSession, ProtocolView, protocol_view
from store.errors import ResourceGone, ResourceNotFound
from store.resource_store import ResourceStore, StoredResource
from store.search import search
from store.search_parameters import CURSOR, MAX_COUNT, parse_search

# Who needs a clinician's attention, most urgent first.
WORKLIST_STATUSES: Final = (
    ProtocolStatus.CLINICIAN_REVIEW.value,
    ProtocolStatus.RETRY_OVERDUE.value,
    ProtocolStatus.RETRY_DUE.value,
    ProtocolStatus.ON_HOLD.value,
)


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class PickerChoices:
    organizations: list[Choice]
    groups: list[Choice]
    protocols: list[Choice]


def _all(store: ResourceStore, resource_type: str, pairs: list[tuple[str, str]]) -> list[Any]:
    """Every match of a search (pages followed), as stored resources."""
    found: list[StoredResource] = []
    cursor: list[tuple[str, str]] = []
    while True:
        request = parse_search(resource_type, [*pairs, ("_count", str(MAX_COUNT)), *cursor])
        result = search(store, request)
        found.extend(result.matches)
        if result.next_cursor is None:
            return found
        cursor = [(CURSOR, result.next_cursor)]


def _label(resource: StoredResource) -> str:
    name = (resource.body or {}).get("name")
    return name if isinstance(name, str) and name else resource.id


def picker_choices(store: ResourceStore) -> PickerChoices:
    """Clinics (Organizations), Groups and protocols a cohort can be picked from."""
    organizations = [Choice(r.id, _label(r)) for r in _all(store, "Organization", [])]
    groups = [Choice(r.id, _label(r)) for r in _all(store, "Group", [])]
    protocols = [Choice(code, p.name) for code, p in CATALOG.items()]
    return PickerChoices(
        sorted(organizations, key=lambda c: c.label.lower()),
        sorted(groups, key=lambda c: c.label.lower()),
        protocols,
    )


def patient_name(body: Mapping[str, Any] | None) -> str | None:
    """ "Given Family" of the first name (the official one when there is one)."""
    names = [n for n in (body or {}).get("name", ()) if isinstance(n, dict)]
    if not names:
        return None
    name = next((n for n in names if n.get("use") == "official"), names[0])
    if isinstance(name.get("text"), str):
        return str(name["text"])
    parts = [*name.get("given", ()), name.get("family")]
    text = " ".join(str(p) for p in parts if p)
    return text or None


def _reference_id(reference: Any, resource_type: str) -> str | None:
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    prefix = f"{resource_type}/"
    if isinstance(text, str) and text.startswith(prefix):
        return text[len(prefix) :]
    return None


def _names(
    store: ResourceStore, resource_type: str, ids: Iterable[str]
) -> dict[str, StoredResource]:
    wanted = sorted(set(ids))
    found: dict[str, StoredResource] = {}
    for start in range(0, len(wanted), 200):
        chunk = ",".join(wanted[start : start + 200])
        found.update({r.id: r for r in _all(store, resource_type, [("_id", chunk)])})
    return found


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def worklist(
    engine: Engine, store: ResourceStore, tenant: str, cohort: Cohort, as_of: dt.date
) -> dict[str, Any]:
    """Patients of the cohort whose protocol is on hold, due or overdue for its retry, or
    waiting for clinician review, with their hold windows, most urgent first."""
    # Only the stop rule's statuses, not the whole report: the dashboard asks for the report
    # itself beside this, and computing it twice per page doubled the page's cost.
    statuses = stop_rule_statuses(read_database(engine, tenant), cohort, as_of)
    rows = (
        statuses.with_columns(pl.col("status").cast(pl.String))
        .filter(pl.col("status").is_in(WORKLIST_STATUSES))
        .to_dicts()
    )
    urgency = {status: rank for rank, status in enumerate(WORKLIST_STATUSES)}
    rows.sort(
        key=lambda r: (urgency[r["status"]], r["retry_until"] or dt.date.max, r["patient_id"])
    )
    patients = _names(store, "Patient", (r["patient_id"] for r in rows))
    clinics = _names(
        store, "Organization", (r["organization_id"] for r in rows if r["organization_id"])
    )
    entries = []
    for row in rows:
        patient = patients.get(row["patient_id"])
        clinic = clinics.get(row["organization_id"] or "")
        entries.append(
            {
                "patient": row["patient_id"],
                "name": patient_name(patient.body if patient else None),
                "organization": row["organization_id"],
                "organization_name": _label(clinic) if clinic else None,
                "protocol": row["protocol"],
                "status": row["status"],
                "hold_since": _iso(row["hold_since"]),
                "retry_from": _iso(row["retry_from"]),
                "retry_until": _iso(row["retry_until"]),
                "failed_retries": row["failed_retries"],
                "premature_retries": row["premature_retries"],
                "last_session": _iso(row["last_session"]),
            }
        )
    return {
        "as_of": as_of.isoformat(),
        "cohort": cohort.as_dict(),
        "statuses": list(WORKLIST_STATUSES),
        "patients": entries,
    }


# --- one patient ------------------------------------------------------------------------------


def _hold(hold: Hold) -> dict[str, Any]:
    return {
        "since": hold.since.isoformat(),
        "retry_from": hold.retry_from.isoformat(),
        "retry_until": hold.retry_until.isoformat(),
        "opened_by": hold.opened_by,
        "closed_by": hold.closed_by,
        "closed_on": _iso(hold.closed_on),
        "outcome": hold.outcome.value if hold.outcome is not None else None,
    }


def _session(assessed: AssessedSession, view: ProtocolView) -> dict[str, Any]:
    session, assessment = assessed.session, assessed.assessment
    state = view.state
    role = None
    if session.procedure_id in state.premature_procedure_ids:
        role = "premature-retry"
    elif session.procedure_id in state.retry_procedure_ids:
        role = "retry"
    return {
        "procedure": session.procedure_id,
        "date": session.day.isoformat(),
        "start": session.started_at.isoformat(),
        "repetitions": list(assessment.indices),
        "pain": list(assessment.pain),
        "response": assessment.response.value,
        "slope": assessment.slope,
        "role": role,
    }


def _prescribed(store: ResourceStore, patient_id: str) -> set[str]:
    requests = _all(store, "ServiceRequest", [("patient", f"Patient/{patient_id}")])
    codes: set[str] = set()
    for request in requests:
        body = request.body or {}
        if body.get("status") in ("entered-in-error", "revoked"):
            continue
        for coding in (body.get("code") or {}).get("coding", ()):
            if coding.get("system") == EXERCISE_SYSTEM and coding.get("code"):
                codes.add(str(coding["code"]))
    return codes


def patient_detail(store: ResourceStore, patient_id: str, as_of: dt.date) -> dict[str, Any]:
    """One patient as of a date: each protocol they do or are prescribed, with every session's
    pain per repetition and every hold window. Raises ResourceNotFound/ResourceGone."""
    patient = store.read("Patient", patient_id)
    organization_id = _reference_id(
        (patient.body or {}).get("managingOrganization"), "Organization"
    )
    organization_name = None
    if organization_id is not None:
        try:
            organization_name = _label(store.read("Organization", organization_id))
        except (ResourceNotFound, ResourceGone):
            organization_name = None
    prescribed = _prescribed(store, patient_id)
    protocols = []
    for code in [*CATALOG, *sorted(prescribed - set(CATALOG))]:
        try:
            view = protocol_view(store, patient_id, code, as_of)
        except ResourceNotFound:
            continue  # a prescribed protocol the tenant does not define
        if not view.history and code not in prescribed:
            continue
        definition = CATALOG.get(code)
        parameters = view.history[0].assessment.parameters if view.history else None
        stop_rule = (
            parameters.stop_rule
            if parameters
            else bool(definition and definition.parameters.stop_rule)
        )
        protocols.append(
            {
                "protocol": code,
                "name": definition.name if definition else code,
                "stop_rule": stop_rule,
                "prescribed": code in prescribed,
                "status": view.state.status.value,
                "holds": [_hold(h) for h in view.state.holds],
                "sessions": [_session(h, view) for h in view.history],
            }
        )
    protocols.sort(key=lambda p: (not p["stop_rule"], not p["sessions"], p["protocol"]))
    return {
        "patient": patient_id,
        "name": patient_name(patient.body),
        "organization": organization_id,
        "organization_name": organization_name,
        "as_of": as_of.isoformat(),
        "protocols": protocols,
    }
