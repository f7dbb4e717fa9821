"""The cohort filter shared by the report endpoints and the dashboard pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from analytics.cohorts import Cohort

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
