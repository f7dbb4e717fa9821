"""The cohort filter shared by the report endpoints and the dashboard pages."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query

from analytics.cohorts import Cohort
from api.deps import ReadUow
from store.errors import InvalidRequest
from store.search import matching_ids

Group = Annotated[str | None, Query(description="Group id: its members", max_length=128)]
Organization = Annotated[
    str | None, Query(description="Organization id (managing clinic)", max_length=128)
]
Protocol = Annotated[
    str | None, Query(description="exercise code; only that protocol", max_length=128)
]
StartMonth = Annotated[
    str | None,
    Query(description="YYYY-MM of the patient's first session", pattern=r"^(\d{4}-\d{2})?$"),
]


def cohort_filter(
    group: Group = None,
    organization: Organization = None,
    protocol: Protocol = None,
    start_month: StartMonth = None,
) -> Cohort:
    """Empty values (an HTML form's unselected fields) mean "no filter"."""
    return Cohort(
        group=group or None,
        organization=organization or None,
        protocol=protocol or None,
        start_month=start_month or None,
    )


CohortFilter = Annotated[Cohort, Depends(cohort_filter)]


def known_cohort(cohort: CohortFilter, uow: ReadUow) -> Cohort:
    """The cohort, once its Group and clinic are known here: a mistyped id is a 400 naming
    the parameter, not a report of nobody. A clinic is known by its Organization resource
    or, when a Patient names an Organization that is not stored, by that Patient."""
    store = uow.resources
    if cohort.group is not None and not store.live_ids("Group", [cohort.group]):
        raise InvalidRequest(f"there is no Group '{cohort.group}' in these records", "group")
    organization = cohort.organization
    if (
        organization is not None
        and not store.live_ids("Organization", [organization])
        and not matching_ids(store, "Patient", urlencode({"organization": organization}))
    ):
        raise InvalidRequest(
            f"there is no Organization '{organization}' in these records, and no Patient "
            "names it as managing organization",
            "organization",
        )
    return cohort


KnownCohort = Annotated[Cohort, Depends(known_cohort)]
