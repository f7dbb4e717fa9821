"""Dosage, sequence and form across a cohort (analytics.adherence), section 6."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from analytics import adherence, classification, stop_rule
from analytics.protocol_table import protocol_table
from domain.pain_response import Repetition
from tests.unit.analytics.builders import (
    EXTENSION,
    FLEXION,
    ROCKING,
    Session,
    at,
    repetition_frame,
    reps,
    session_frame,
)


def _assessed(*sessions: Session) -> pl.DataFrame:
    figures = classification.session_figures(repetition_frame(list(sessions)).lazy())
    return adherence.dosage_flags(
        classification.assess_sessions(session_frame(sessions).lazy(), figures, protocol_table())
    ).collect()


def test_five_to_six_repetitions_unless_the_session_stopped_because_pain_rose() -> None:
    found = dict(
        _assessed(
            Session("four", "p", FLEXION, at(0), reps(3, 2, 2, 1)),
            Session("five", "p", FLEXION, at(0), reps(3, 2, 2, 1, 0)),
            Session("seven", "p", FLEXION, at(0), reps(1, 1, 1, 1, 1, 1, 1)),
            Session("stopped", "p", FLEXION, at(0), reps(1, 2, 3)),
            Session("rocking", "p", ROCKING, at(0), reps(1)),
        )
        .select("procedure_id", "dosage")
        .iter_rows()
    )
    assert found == {
        "four": "under-dose",
        "five": None,
        "seven": "over-dose",
        "stopped": None,  # worsening: stopping is right
        "rocking": None,  # dosage not checked
    }


def test_days_with_three_or_four_sessions_are_adherent_and_days_on_hold_are_not_judged() -> None:
    sessions = [
        Session("w", "p", FLEXION, at(0, 8), reps(1, 2, 3)),  # hold from day 0
        *(Session(f"d2-{k}", "p", FLEXION, at(20, 8 + k), reps(2, 1, 1, 0, 0)) for k in range(2)),
        *(Session(f"d3-{k}", "p", FLEXION, at(21, 8 + k), reps(2, 1, 1, 0, 0)) for k in range(5)),
    ]
    assessed = _assessed(*sessions)
    roles = stop_rule.session_roles(assessed.lazy().filter("stop_rule"))
    days = (
        adherence.daily_flags(assessed.lazy(), stop_rule.holds(roles)).collect().sort("local_date")
    )
    assert days.select("sessions", "on_hold", "day_flag").rows() == [
        (1, True, None),  # the day pain rose
        (2, True, None),  # day 20 is the retry day: the hold covers its closing day
        (5, False, "over-sessions"),
    ]


@pytest.mark.parametrize("enum_keys", [False, True], ids=["text ids", "Enum ids (the report's)"])
@pytest.mark.parametrize(
    ("minutes_after_end", "missing"),
    [(0, False), (15, False), (16, True), (-1, True)],
)
def test_every_flexion_session_must_be_followed_by_the_cobra_within_fifteen_minutes(
    minutes_after_end: int, missing: bool, enum_keys: bool
) -> None:
    end = at(0, 8, 10)
    flexion = Session("f", "p", FLEXION, at(0, 8), reps(1, 1, 1), ended_at=end)
    cobra = Session("x", "p", EXTENSION, end + timedelta(minutes=minutes_after_end))
    other_patient = Session("y", "q", EXTENSION, end)
    ends = _assessed(flexion).lazy()
    starts = session_frame([cobra, other_patient]).lazy()
    if enum_keys:
        patients = pl.Enum(["p", "q"])
        ends = ends.with_columns(pl.col("patient_id").cast(patients))
        starts = starts.with_columns(pl.col("patient_id").cast(patients))
    found = adherence.missing_extension(ends, starts).collect()
    assert found["extension_missing"].to_list() == [missing]


def test_a_form_fault_counts_once_per_repetition() -> None:
    session = Session(
        "s",
        "p",
        FLEXION,
        at(0),
        (
            Repetition(1, 1, form_faults=("head-raised", "head-raised")),
            Repetition(2, 1, form_faults=("head-raised", "neck-strain")),
            Repetition(3, 1),
        ),
    )
    counts = adherence.form_fault_counts(repetition_frame([session]).lazy()).collect()
    assert sorted(counts.select("fault", "reps").rows()) == [("head-raised", 2), ("neck-strain", 1)]
