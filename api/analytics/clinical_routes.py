"""Per-session and per-patient decisions as JSON: /analytics/sessions, /analytics/patients.

`as_of` defaults to today through the `today` dependency: the only place the service reads
the calendar, so tests (and a deployment that wants another zone) override it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.deps import ReadUow
from domain.pain_response import PainResponse
from domain.readiness import Readiness
from domain.stop_rule import ProtocolStatus
from store.clinical_repository import ProtocolView, SessionView, protocol_view, session_view

router = APIRouter(prefix="/analytics", tags=["analytics"])


def today() -> dt.date:
    """The server's calendar date (override in tests: app.dependency_overrides[today])."""
    return dt.date.today()


Today = Annotated[dt.date, Depends(today)]


class SessionResponse(BaseModel):
    """One session's pain per repetition, read against the stop rule (CLINICAL_RULES 3, 6)."""

    procedure: str = Field(description="Procedure logical id")
    patient: str = Field(description="Patient logical id")
    protocol: str = Field(description="exercise code")
    date: dt.date = Field(description="local date of the session start as written")
    pain: list[int] = Field(description="pain of each rated repetition, in repetition order")
    response: PainResponse
    slope: float | None = Field(description="least-squares pain points per repetition")
    first: int | None
    last: int | None
    peak: int | None
    rises: int
    falls: int
    progressing: bool | None = Field(
        description="knees closer every repetition; null unless every repetition has a distance"
    )
    flags: list[str] = Field(description="section 6 flags of this session")
    explanation: str


class HoldWindow(BaseModel):
    since: dt.date
    retry_from: dt.date
    retry_until: dt.date


class LastSession(BaseModel):
    procedure: str
    date: dt.date
    response: PainResponse


class StatusResponse(BaseModel):
    """A patient's status on one protocol as of a date (CLINICAL_RULES sections 4 to 6)."""

    patient: str
    protocol: str
    as_of: dt.date
    status: ProtocolStatus
    readiness: Readiness
    hold: HoldWindow | None = Field(description="the open hold and its retry window")
    failed_retries: int
    premature_retries: int
    last_session: LastSession | None
    flags: list[str] = Field(
        description="flags of the last session, and sessions-per-day of its day"
    )
    explanation: str


def session_response(view: SessionView) -> SessionResponse:
    a = view.assessed.assessment
    session = view.assessed.session
    return SessionResponse(
        procedure=session.procedure_id,
        patient=session.patient_id,
        protocol=session.protocol,
        date=session.day,
        pain=list(a.pain),
        response=a.response,
        slope=a.slope,
        first=a.first,
        last=a.last,
        peak=a.peak,
        rises=a.rises,
        falls=a.falls,
        progressing=a.progressing,
        flags=list(view.flags),
        explanation=view.explanation,
    )


def status_response(view: ProtocolView) -> StatusResponse:
    state = view.state
    hold = state.hold
    last = view.last
    return StatusResponse(
        patient=view.patient_id,
        protocol=view.protocol,
        as_of=view.as_of,
        status=state.status,
        readiness=view.readiness.readiness,
        hold=(
            HoldWindow(since=hold.since, retry_from=hold.retry_from, retry_until=hold.retry_until)
            if hold is not None
            else None
        ),
        failed_retries=state.failed_retries,
        premature_retries=state.premature_retries,
        last_session=(
            LastSession(
                procedure=last.session.procedure_id,
                date=last.session.day,
                response=last.assessment.response,
            )
            if last is not None
            else None
        ),
        flags=list(view.flags),
        explanation=view.explanation,
    )


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown procedure, patient or protocol (OperationOutcome)"}
}


@router.get(
    "/sessions/{procedure_id}",
    summary="Pain response of one session",
    response_model=SessionResponse,
    responses=_NOT_FOUND,
)
def session(procedure_id: str, uow: ReadUow) -> SessionResponse:
    return session_response(session_view(uow.resources, procedure_id))


@router.get(
    "/patients/{patient_id}/protocols/{code}/status",
    summary="A patient's stop-rule status on one protocol",
    response_model=StatusResponse,
    responses=_NOT_FOUND,
)
def status(
    patient_id: str,
    code: str,
    uow: ReadUow,
    now: Today,
    as_of: Annotated[
        dt.date | None, Query(description="YYYY-MM-DD; only data dated on or before it counts")
    ] = None,
) -> StatusResponse:
    return status_response(protocol_view(uow.resources, patient_id, code, as_of or now))
