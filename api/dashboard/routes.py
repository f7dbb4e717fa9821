"""The clinic outcome dashboard at /dashboard (HTML, SVG charts, assets served locally).

Pages: `/dashboard` (cohort picker, status tiles, charts, worklist) and
`/dashboard/patients/{id}` (sessions and hold windows). Their scripts read the cohort report
(`/analytics/cohorts/report`), the status endpoint and the two JSON endpoints here:
`/dashboard/api/worklist` and `/dashboard/api/patients/{id}`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse

from api.analytics.clinical_routes import Today
from api.analytics.cohort_query import CohortFilter, KnownCohort
from api.dashboard.assets import SECURITY_HEADERS, static_response
from api.dashboard.data import patient_detail, patient_name, picker_choices, worklist
from api.dashboard.pages import cohort_page, cohort_query, not_found_page, patient_page
from api.deps import CurrentClient, EngineDep, ReadUow
from store.errors import ResourceGone, ResourceNotFound

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

AsOf = Annotated[
    dt.date | None, Query(description="YYYY-MM-DD; only data dated on or before it counts")
]


def _html(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=dict(SECURITY_HEADERS))


def _json(content: dict[str, Any]) -> JSONResponse:
    return JSONResponse(content, headers=dict(SECURITY_HEADERS))


@router.get("", response_class=HTMLResponse)
def dashboard(
    uow: ReadUow,
    now: Today,
    cohort: CohortFilter,
    as_of: AsOf = None,
) -> HTMLResponse:
    return _html(cohort_page(picker_choices(uow.resources), cohort.as_dict(), as_of or now))


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient(
    patient_id: str,
    uow: ReadUow,
    now: Today,
    cohort: CohortFilter,
    as_of: AsOf = None,
) -> HTMLResponse:
    day = as_of or now
    try:
        stored = uow.resources.read("Patient", patient_id)
    except (ResourceNotFound, ResourceGone):
        return _html(not_found_page("There is no such patient in this clinic's records."), 404)
    back = cohort_query(cohort.as_dict(), day)
    return _html(patient_page(patient_id, patient_name(stored.body), day, back))


@router.get("/static/{name}")
def static(name: str) -> Any:
    return static_response(name)


@router.get("/api/worklist")
def worklist_json(
    uow: ReadUow,
    engine: EngineDep,
    client: CurrentClient,
    now: Today,
    cohort: KnownCohort,
    as_of: AsOf = None,
) -> JSONResponse:
    """Patients on hold, retry-due, retry-overdue or in clinician review, most urgent first."""
    return _json(worklist(engine, uow.resources, client.tenant, cohort, as_of or now))


@router.get("/api/patients/{patient_id}")
def patient_json(patient_id: str, uow: ReadUow, now: Today, as_of: AsOf = None) -> JSONResponse:
    """Each protocol of one patient: every session's pain per repetition and every hold."""
    return _json(patient_detail(uow.resources, patient_id, as_of or now))
