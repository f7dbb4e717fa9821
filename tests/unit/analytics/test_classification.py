"""Pain response of every session at once (analytics.classification), on small hand-built
frames: each rule of CLINICAL_RULES section 3 and each way rows can arrive."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl

from analytics import classification
from analytics.protocol_table import protocol_table
from domain.pain_response import Repetition
from domain.protocols import DEFAULT_PARAMETERS, StopRuleMode
from tests.unit.analytics.builders import (
    FLEXION,
    Session,
    at,
    numbered_frames,
    repetition_frame,
    reps,
    session_frame,
)


def _assess(*sessions: Session, params: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    figures = classification.session_figures(repetition_frame(list(sessions)).lazy())
    assessed = classification.assess_sessions(
        session_frame(sessions).lazy(), figures, protocol_table(params)
    ).collect()
    return {row["procedure_id"]: row for row in assessed.iter_rows(named=True)}


def _session(
    pid: str, *pain: int, protocol: str = FLEXION, order: tuple[int, ...] | None = None
) -> Session:
    return Session(pid, "p1", protocol, at(0), reps(*pain), row_order=order)


def test_pain_that_rises_with_each_repetition_is_worsening_whatever_order_the_rows_come_in() -> (
    None
):
    found = _assess(_session("a", 2, 3, 4, 5), _session("b", 2, 3, 4, 5, order=(3, 1, 0, 2)))
    assert found["a"]["response"] == found["b"]["response"] == "worsening"
    assert (found["b"]["first"], found["b"]["last"], found["b"]["rises"]) == (2, 5, 3)


def test_every_class_of_section_3_in_one_cohort() -> None:
    found = _assess(
        _session("insufficient", 3, 5),
        _session("pain-free", 0, 0, 0),
        _session("wears-off", 4, 4, 3, 2),
        _session("no-change", 2, 2, 3),
        _session("fluctuating", 1, 4, 2, 5),
        _session("worsening", 1, 2, 3),
    )
    assert {pid: row["response"] for pid, row in found.items()} == {pid: pid for pid in found}


def test_each_protocol_is_judged_with_its_own_worsening_mode() -> None:
    strict = replace(DEFAULT_PARAMETERS, stop_rule_mode=StopRuleMode.STRICT)
    found = _assess(
        _session("rising", 2, 2, 3, 4),
        _session("strict", 2, 2, 3, 4, protocol="strict-flexion"),
        params={"strict-flexion": strict},
    )
    assert found["rising"]["response"] == "worsening"  # a plateau on the way up still rises
    assert found["strict"]["response"] == "fluctuating"  # strict: every step must rise


def test_the_slope_is_the_exact_least_squares_slope_with_a_threshold_hit_exactly() -> None:
    slope_mode = replace(DEFAULT_PARAMETERS, stop_rule_mode=StopRuleMode.SLOPE)
    found = _assess(_session("a", 0, 1, 0, 2), params={FLEXION: slope_mode})
    assert found["a"]["slope"] == 0.5
    assert found["a"]["response"] == "worsening"


def test_a_session_without_a_rated_repetition_is_insufficient() -> None:
    found = _assess(_session("empty"))
    assert (found["empty"]["n"], found["empty"]["response"], found["empty"]["slope"]) == (
        0,
        "insufficient",
        None,
    )


def test_indices_with_gaps_and_more_than_sixteen_repetitions_follow_the_same_rules() -> None:
    gapped = Session(
        "gapped", "p1", FLEXION, at(0), (Repetition(1, 1), Repetition(2, 2), Repetition(4, 4))
    )
    long = _session("long", *([3] * 17), 5)
    found = _assess(gapped, long)
    assert found["gapped"]["slope"] == 1.0  # the index, not the position, is the x
    assert found["gapped"]["response"] == "worsening"
    assert (found["long"]["n"], found["long"]["last"], found["long"]["response"]) == (
        18,
        5,
        "fluctuating",
    )


def test_a_repetition_posted_twice_keeps_the_worse_report() -> None:
    twice = Session(
        "twice",
        "p1",
        FLEXION,
        at(0),
        (Repetition(1, 2), Repetition(2, 3), Repetition(2, 5), Repetition(3, 4)),
    )
    found = _assess(twice)
    assert (found["twice"]["n"], found["twice"]["peak"]) == (3, 5)


def test_a_repetition_posted_twice_keeps_the_one_with_a_form_fault_whatever_the_row_order() -> None:
    plain, faulty = Repetition(2, 3), Repetition(2, 3, form_faults=("hip-lift",))
    rows = (Repetition(1, 2), plain, faulty, Repetition(3, 4))
    found = _assess(
        Session("fault-last", "p1", FLEXION, at(0), rows),
        Session("fault-first", "p1", FLEXION, at(1), rows, row_order=(0, 2, 1, 3)),
    )
    assert found["fault-last"]["faulty_reps"] == found["fault-first"]["faulty_reps"] == 1


def test_progressing_needs_a_distance_on_every_repetition_read_in_index_order() -> None:
    def with_distances(
        pid: str, distances: list[float | None], order: tuple[int, ...] | None = None
    ) -> Session:
        return Session(
            pid,
            "p1",
            FLEXION,
            at(0),
            tuple(Repetition(i, 1, distance_cm=d) for i, d in enumerate(distances, start=1)),
            row_order=order,
        )

    found = _assess(
        with_distances("closer", [30.0, 28.0, 28.0, 25.0], order=(2, 0, 3, 1)),
        with_distances("drifting", [30.0, 28.0, 29.0]),
        with_distances("flat", [30.0, 30.0]),
        with_distances("partial", [30.0, None, 25.0]),
    )
    assert {pid: row["progressing"] for pid, row in found.items()} == {
        "closer": True,
        "drifting": False,
        "flat": False,
        "partial": None,
    }


def test_peripheral_symptoms_make_a_session_worsening_but_two_repetitions_are_insufficient() -> (
    None
):
    flat = Session(
        "flat",
        "p1",
        FLEXION,
        at(0),
        (Repetition(1, 2), Repetition(2, 2, peripheral_symptoms=True), Repetition(3, 2)),
    )
    short = Session(
        "short",
        "p1",
        FLEXION,
        at(0),
        (Repetition(1, 2), Repetition(2, 6, peripheral_symptoms=True)),
    )
    found = _assess(flat, short)
    assert (found["flat"]["response"], found["short"]["response"]) == ("worsening", "insufficient")


def test_sessions_of_a_protocol_without_parameters_are_left_out() -> None:
    assert set(_assess(_session("known", 1, 1, 1), _session("yoga", 1, 1, 1, protocol="yoga"))) == {
        "known"
    }


def test_pain_off_the_scale_in_a_file_is_not_a_rated_repetition() -> None:
    rows = repetition_frame([_session("a", 1, 1, 1)]).vstack(
        pl.DataFrame(
            [("a", 4, 42, None, None, False)], schema=repetition_frame([]).schema, orient="row"
        )
    )
    figures = classification.session_figures(rows.lazy())
    assert figures["n"].to_list() == [3]


def test_two_procedure_ids_sharing_a_key_are_detected() -> None:
    figures = classification.session_figures(repetition_frame([_session("a", 1, 2, 3)]).lazy())
    # Pretend "b" hashed to "a"'s key: its own check does not add up to a's sum.
    other_key = session_frame([_session("b")]).select(classification.session_key())
    impostor = figures.with_columns(session_key=other_key["session_key"])
    assessed = classification.assess_sessions(
        session_frame([_session("b")]).lazy(), impostor, protocol_table()
    ).collect()
    assert classification.has_key_collision(assessed)
    honest = classification.assess_sessions(
        session_frame([_session("a")]).lazy(), figures, protocol_table()
    ).collect()
    assert not classification.has_key_collision(honest)


def _by_session(figures: pl.DataFrame, sessions: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Figures by procedure id, the key left out (numbered and hashed keys differ)."""
    named = figures.join(sessions.select("session_key", "procedure_id"), on="session_key")
    return {
        row.pop("procedure_id"): {k: v for k, v in row.items() if k != "session_key"}
        for row in named.drop("check_sum").iter_rows(named=True)
    }


def test_numbered_repetitions_give_the_same_figures_in_session_order_or_interleaved() -> None:
    # In session order (as the star layout is written) the figures come from runs of rows;
    # interleaved, a session's rows make several runs, and they must be grouped instead.
    sessions = [
        _session("a", 2, 3, 4, 5),
        _session("b", 4, 3, 1, order=(2, 0, 1)),
        _session("c", 1, 1),
        _session("d", *(k % 11 for k in range(18))),  # beyond 16 repetitions: the general path
    ]
    numbered, rows = numbered_frames(sessions)
    hashed = repetition_frame(sessions).lazy()
    keyed_ids = session_frame(sessions).with_columns(classification.session_key())
    expected = _by_session(classification.session_figures(hashed), keyed_ids)
    assert len(expected) == 4
    in_order = classification.session_figures(rows.lazy())
    interleaved = rows.with_row_index("row").sort(
        pl.col("row") % 3, "row"
    )  # rows 0, 3, 6, ... first: every session split into pieces
    assert not interleaved["session_key"].is_sorted()
    shuffled = classification.session_figures(interleaved.drop("row").lazy())
    assert _by_session(in_order, numbered) == expected
    assert _by_session(shuffled, numbered) == expected
