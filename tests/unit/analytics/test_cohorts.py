"""Who is in a cohort (analytics.cohorts): Group members, clinic, protocol, start month."""

from __future__ import annotations

from datetime import date

import pytest

from analytics.cohorts import Cohort, cohort_patients
from store.errors import InvalidRequest
from tests.unit.analytics.builders import DAY0, FLEXION, ROCKING, Session, Tenant, at

AS_OF = date(2026, 6, 1)


def _tenant() -> Tenant:
    return Tenant(
        sessions=[
            Session("s1", "ann", FLEXION, at(0)),  # March 2026
            Session("s2", "bob", ROCKING, at(40)),  # April 2026
            Session("s3", "cy", FLEXION, at(40)),  # no Patient resource
            Session("s4", "ann", ROCKING, at(100)),  # after AS_OF
        ],
        patients=[("ann", "clinic-a"), ("bob", "clinic-b"), ("dee", "clinic-a")],
        group_members=[("g1", "bob"), ("g1", "dee"), ("g1", "not-a-patient")],
        prescriptions=[("dee", FLEXION)],
    )


def _members(cohort: Cohort) -> list[str]:
    return sorted(cohort_patients(_tenant().facts(), cohort, AS_OF).collect()["patient_id"])


def test_everyone_includes_patients_with_facts_but_no_patient_resource() -> None:
    assert _members(Cohort()) == ["ann", "bob", "cy", "dee"]


def test_a_group_is_its_members_that_are_patients_of_the_tenant() -> None:
    assert _members(Cohort(group="g1")) == ["bob", "dee"]


def test_an_organization_is_the_patients_it_manages() -> None:
    assert _members(Cohort(organization="clinic-a")) == ["ann", "dee"]


def test_a_protocol_is_the_patients_doing_or_prescribed_it_by_as_of() -> None:
    assert _members(Cohort(protocol=FLEXION)) == ["ann", "cy", "dee"]
    assert _members(Cohort(protocol=ROCKING)) == ["bob"]  # ann's rocking is after as_of


def test_a_start_month_is_the_patients_whose_first_session_fell_in_it() -> None:
    assert DAY0.month == 3
    assert _members(Cohort(start_month="2026-03")) == ["ann"]
    assert _members(Cohort(start_month="2026-04")) == ["bob", "cy"]


def test_filters_combine() -> None:
    assert _members(Cohort(organization="clinic-a", protocol=FLEXION)) == ["ann", "dee"]
    assert _members(Cohort(group="g1", start_month="2026-04")) == ["bob"]


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "march"])
def test_a_start_month_must_be_year_and_month(month: str) -> None:
    with pytest.raises(InvalidRequest, match="YYYY-MM"):
        Cohort(start_month=month)
