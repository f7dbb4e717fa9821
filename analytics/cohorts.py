"""Who is in a cohort (CLINICAL_RULES section 7): a FHIR Group's members, a managing
organization (clinic), a protocol, a start month, or any combination (all must hold).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Final

import polars as pl

from analytics.facts import Facts, prescribed_as_of
from store.errors import InvalidRequest

_MONTH: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Cohort:
    group: str | None = None  # Group id: its members
    organization: str | None = None  # Organization id: Patient.managingOrganization
    protocol: str | None = None  # exercise code: patients prescribed or doing it; only it
    start_month: str | None = None  # YYYY-MM of the patient's first session

    def __post_init__(self) -> None:
        if self.start_month is not None and not _MONTH.match(self.start_month):
            raise InvalidRequest(
                f"start_month must be YYYY-MM, not {self.start_month!r}", "start_month"
            )

    @property
    def everyone(self) -> bool:
        return (self.group, self.organization, self.protocol, self.start_month) == (None,) * 4

    def as_dict(self) -> dict[str, str | None]:
        return {
            "group": self.group,
            "organization": self.organization,
            "protocol": self.protocol,
            "start_month": self.start_month,
        }


def _month_bounds(month: str) -> tuple[date, date]:
    year, number = int(month[:4]), int(month[5:7])
    start = date(year, number, 1)
    end = date(year + number // 12, number % 12 + 1, 1)
    return start, end


def cohort_patients(
    facts: Facts, cohort: Cohort, as_of: date, sessions_listed: bool = False
) -> pl.LazyFrame:
    """`patient_id` and `organization_id` of every member, as of `as_of`.

    The tenant's patients are its Patient resources plus any patient that has facts without
    one (so no session is silently dropped from a whole-tenant report). `sessions_listed`:
    the caller knows every session's patient has one (and the sessions are not read).
    """
    sessions = facts.sessions.filter(pl.col("local_date") <= as_of)
    prescriptions = prescribed_as_of(facts.prescriptions, as_of)
    patients = facts.patients.unique("patient_id")
    # Patients without a Patient resource: few, so find them with anti-joins against the
    # (small) patient list before deduplicating, not by deduplicating every session row.
    unlisted = pl.concat(
        [
            *(
                []
                if sessions_listed
                else [sessions.select("patient_id").join(patients, on="patient_id", how="anti")]
            ),
            prescriptions.select("patient_id").join(patients, on="patient_id", how="anti"),
        ]
    ).unique()
    members = pl.concat([patients, unlisted.with_columns(organization_id=pl.lit(None, pl.String))])
    if cohort.group is not None:
        in_group = facts.group_members.filter(pl.col("group_id") == cohort.group)
        members = members.join(in_group.select("patient_id"), on="patient_id", how="semi")
    if cohort.organization is not None:
        members = members.filter(pl.col("organization_id") == cohort.organization)
    if cohort.protocol is not None:
        sessions = sessions.filter(pl.col("protocol") == cohort.protocol)
        doing = pl.concat(
            [
                sessions.select("patient_id"),
                prescriptions.filter(pl.col("protocol") == cohort.protocol).select("patient_id"),
            ]
        )
        members = members.join(doing, on="patient_id", how="semi")
    if cohort.start_month is not None:
        start, end = _month_bounds(cohort.start_month)
        starters = (
            sessions.group_by("patient_id")
            .agg(first=pl.col("local_date").min())
            .filter((pl.col("first") >= start) & (pl.col("first") < end))
        )
        members = members.join(starters, on="patient_id", how="semi")
    return members.select("patient_id", "organization_id")
