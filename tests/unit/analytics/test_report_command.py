"""`reptrend report` arguments (cli.report)."""

from __future__ import annotations

import argparse

import pytest

from analytics.cohorts import Cohort
from cli.report import parse_cohort


@pytest.mark.parametrize(
    ("text", "cohort"),
    [
        ("all", Cohort()),
        ("organization=clinic-a", Cohort(organization="clinic-a")),
        ("group=g1,protocol=flexion-in-lying", Cohort(group="g1", protocol="flexion-in-lying")),
        ("start-month=2026-03", Cohort(start_month="2026-03")),
    ],
)
def test_a_cohort_is_all_or_filters_joined_by_commas(text: str, cohort: Cohort) -> None:
    assert parse_cohort(text) == cohort


@pytest.mark.parametrize("text", ["clinic-a", "ward=3", "group=", "start_month=2026-13"])
def test_a_cohort_that_cannot_be_read_is_an_argument_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_cohort(text)
