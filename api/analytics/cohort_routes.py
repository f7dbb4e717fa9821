"""Cohort outcome reports: /analytics/cohorts/report (JSON) and /analytics/cohorts/report.csv.

Every metric of CLINICAL_RULES section 7 for a cohort (a Group's members, a clinic, a protocol,
a start month, or all of them combined) as of a date. The numbers come from
`analytics.report.cohort_report`, the same function `reptrend report` runs on files.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from analytics.cohorts import Cohort
from analytics.report import CohortReport, cohort_report
from analytics.sources import read_database
from api.analytics.clinical_routes import Today
from api.analytics.cohort_query import KnownCohort
from api.deps import CurrentClient, EngineDep

router = APIRouter(prefix="/analytics", tags=["analytics"])


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Rate(_Model):
    """A share with its numerator and denominator (`rate` is null when `of` is 0)."""

    count: int
    of: int
    rate: float | None


class CohortDescription(_Model):
    group: str | None
    organization: str | None
    protocol: str | None
    start_month: str | None
    patients: int = Field(description="members of the cohort")


class PatientsByStatus(_Model):
    """Patients (one per protocol they are prescribed or do) by stop-rule status."""

    no_sessions: int = Field(alias="no-sessions")
    active: int
    on_hold: int = Field(alias="on-hold")
    retry_due: int = Field(alias="retry-due")
    retry_overdue: int = Field(alias="retry-overdue")
    resumed: int
    clinician_review: int = Field(alias="clinician-review")


class ProtocolStatuses(_Model):
    protocol: str
    patients_by_status: PatientsByStatus


class SessionsByResponse(_Model):
    insufficient: int
    worsening: int
    pain_free: int = Field(alias="pain-free")
    wears_off: int = Field(alias="wears-off")
    no_change: int = Field(alias="no-change")
    fluctuating: int


class WeeklyResponses(_Model):
    week: int = Field(description="whole weeks since the patient's first session")
    sessions_by_response: SessionsByResponse


class CurvePoint(_Model):
    week: int
    repetition_index: int
    sessions: int = Field(description="sessions with a rated repetition at this index")
    mean_pain: float
    median_pain: float


class SlopePoint(_Model):
    week: int
    sessions: int
    mean_slope: float = Field(description="mean least-squares pain points per repetition")


class HoldToResume(_Model):
    episodes: int = Field(description="hold episodes that ended in a tolerated retry")
    median: float | None = Field(description="median days from the hold to the resume")
    mean: float | None


class DosageAdherence(_Model):
    sessions: Rate = Field(description="sessions within min_reps..max_reps")
    under_dose_sessions: int
    over_dose_sessions: int
    days: Rate = Field(description="days with sessions, not on hold, within the sessions a day")
    under_sessions_days: int
    over_sessions_days: int


class FormFaults(_Model):
    sessions: Rate = Field(description="sessions with at least one form fault")
    repetitions_by_code: dict[str, int]


class ReadinessCounts(_Model):
    """Readiness of the patients prescribed a protocol they have not started."""

    ready: int
    not_ready: int = Field(alias="not-ready")
    unknown: int


class ResponderRule(_Model):
    points: float
    share: float


class PainOutcome(_Model):
    patients: int = Field(description="patients with reports in a week after their first")
    mean_first_week_pain: float | None
    mean_latest_week_pain: float | None
    mean_change: float | None
    median_change: float | None
    responders: Rate
    responder_rule: ResponderRule


class CohortReportResponse(_Model):
    """Every cohort outcome of CLINICAL_RULES section 7 as of a date."""

    cohort: CohortDescription
    as_of: dt.date
    patients_by_status: PatientsByStatus = Field(
        description="over the protocols with the stop rule on"
    )
    protocols: list[ProtocolStatuses]
    sessions_by_response: SessionsByResponse = Field(
        description="flexion-category sessions with at least one rated repetition"
    )
    responses_by_week: list[WeeklyResponses]
    pain_per_repetition: list[CurvePoint]
    slope_by_week: list[SlopePoint]
    hold_to_resume_days: HoldToResume
    retry_success: Rate = Field(description="tolerated retries of all retries")
    premature_retry: Rate = Field(description="holds with a premature retry of all holds")
    retry_overdue: Rate = Field(description="retry-overdue of protocols with a hold open")
    dosage_adherence: DosageAdherence
    extension_adherence: Rate = Field(description="flexion sessions followed by the Cobra")
    started_before_ready: Rate = Field(description="protocols started while not-ready")
    form_faults: FormFaults
    progression: Rate = Field(description="progressing sessions of those with distances")
    readiness: ReadinessCounts
    pain_outcome: PainOutcome


def _report(
    engine: EngineDep, client: CurrentClient, as_of: dt.date, cohort: Cohort
) -> CohortReport:
    return cohort_report(read_database(engine, client.tenant), cohort, as_of)


AsOf = Annotated[dt.date | None, Query(description="the report's date (default: today)")]


@router.get("/cohorts/report", response_model=CohortReportResponse)
def cohort_report_json(
    engine: EngineDep,
    client: CurrentClient,
    today: Today,
    cohort: KnownCohort,
    as_of: AsOf = None,
) -> CohortReportResponse:
    """Patients by status, sessions by pain response, the pain-per-repetition trend, the stop
    rule's holds and retries, adherence, form, progression and the pain outcome."""
    report = _report(engine, client, as_of or today, cohort)
    return CohortReportResponse.model_validate(report.summary)


@router.get(
    "/cohorts/report.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "a row per patient and protocol, and one per member on no protocol",
        }
    },
)
def cohort_report_csv(
    engine: EngineDep,
    client: CurrentClient,
    today: Today,
    cohort: KnownCohort,
    as_of: AsOf = None,
) -> Response:
    """The patient-level table of the same report, as a CSV download."""
    day = as_of or today
    report = _report(engine, client, day, cohort)
    return Response(
        report.patients.write_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="cohort-report-{day}.csv"'},
    )
