"""Pain response of one session (CLINICAL_RULES section 3), written from seed 001."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.pain_response import (
    InvalidRepetition,
    PainResponse,
    Repetition,
    classify_session,
)
from domain.protocols import DEFAULT_PARAMETERS, ProtocolParameters, StopRuleMode
from tests.unit.domain.builders import reps

RISING = DEFAULT_PARAMETERS
STRICT = replace(DEFAULT_PARAMETERS, stop_rule_mode=StopRuleMode.STRICT)
SLOPE = replace(DEFAULT_PARAMETERS, stop_rule_mode=StopRuleMode.SLOPE)
SEVERE_8 = replace(DEFAULT_PARAMETERS, severe_pain=8)

W = PainResponse.WORSENING
CASES = [
    # (pain per repetition, parameters, expected, id)
    ((2, 3, 4, 5, 6), RISING, W, "pain that increases with each repetition: stop"),
    ((2, 2, 3, 4), RISING, W, "rising mode tolerates a plateau on the way up"),
    ((0, 1, 1, 1, 2), RISING, W, "rising mode: slow creep with two rises and net rise 2 stops"),
    ((1, 1, 3), RISING, PainResponse.FLUCTUATING, "rising mode: one jump is not two rises"),
    ((2, 3, 4, 3), RISING, PainResponse.FLUCTUATING, "rising mode: any fall is not worsening"),
    ((2, 3, 4), STRICT, W, "strict mode: every step rises"),
    ((2, 2, 3, 4), STRICT, PainResponse.FLUCTUATING, "strict mode: a plateau is not worsening"),
    ((2, 4, 3, 5), SLOPE, W, "slope mode: slope 0.8 with a dip and net rise 3 stops"),
    ((0, 1, 0, 2), SLOPE, W, "slope mode: slope exactly at the 0.5 threshold stops"),
    ((0, 1, 1, 1, 2), SLOPE, PainResponse.FLUCTUATING, "slope mode: slope 0.4 is below 0.5"),
    ((2, 4, 3, 5), RISING, PainResponse.FLUCTUATING, "rising mode: the same dip is not worsening"),
    ((4, 4, 3, 3, 2, 1), RISING, PainResponse.WEARS_OFF, "initial pain that wears off is ok"),
    ((3, 4, 2), RISING, PainResponse.WEARS_OFF, "pain that peaks then ends below the start"),
    ((3, 3, 4, 3), RISING, PainResponse.WEARS_OFF, "ends 1 below the peak and at the start"),
    ((0, 0, 0, 0, 0), RISING, PainResponse.PAIN_FREE, "no pain at any repetition"),
    ((2, 2, 2, 2, 2), RISING, PainResponse.NO_CHANGE, "steady pain is no change"),
    ((2, 3, 2, 3), RISING, PainResponse.NO_CHANGE, "pain within one point that ends up"),
    ((0, 1, 0), RISING, PainResponse.NO_CHANGE, "no initial pain, so nothing wears off"),
    ((1, 4, 2, 5), RISING, PainResponse.FLUCTUATING, "up and down by several points"),
    ((3, 5), RISING, PainResponse.INSUFFICIENT, "fewer than three repetitions is insufficient"),
    ((), RISING, PainResponse.INSUFFICIENT, "no rated repetition is insufficient"),
    ((7, 9, 7), RISING, PainResponse.WEARS_OFF, "severe pain threshold is off by default"),
    ((7, 9, 7), SEVERE_8, W, "a repetition at the severe pain threshold stops"),
    ((7, 7, 7), SEVERE_8, PainResponse.NO_CHANGE, "pain below the severe threshold is judged"),
]


@pytest.mark.parametrize(
    ("pain", "params", "expected"),
    [pytest.param(p, params, e, id=i) for p, params, e, i in CASES],
)
def test_session_pain_is_classified_by_the_first_matching_rule(
    pain: tuple[int, ...], params: ProtocolParameters, expected: PainResponse
) -> None:
    assert classify_session(reps(*pain), params).response is expected


def test_peripheral_symptoms_make_a_session_worsening_whatever_the_pain() -> None:
    session = (Repetition(1, 2), Repetition(2, 1, peripheral_symptoms=True), Repetition(3, 1))
    assessment = classify_session(session, RISING)
    assert assessment.response is PainResponse.WORSENING
    assert assessment.peripheral_symptoms_at == (2,)
    assert "peripheral symptoms at repetition 2" in assessment.explanation


def test_two_repetitions_are_insufficient_even_with_peripheral_symptoms() -> None:
    # Section 3 is evaluated in order: n < 3 is decided before worsening.
    session = (Repetition(1, 2), Repetition(2, 6, peripheral_symptoms=True))
    assert classify_session(session, RISING).response is PainResponse.INSUFFICIENT


def test_worsening_needs_the_net_rise_parameter() -> None:
    stricter = replace(RISING, worsening_min_rise=4)
    assert classify_session(reps(2, 3, 4, 5), stricter).response is PainResponse.FLUCTUATING
    assert classify_session(reps(2, 3, 4, 5, 6), stricter).response is PainResponse.WORSENING


def test_repetitions_are_read_in_index_order_not_arrival_order() -> None:
    shuffled = (Repetition(3, 4), Repetition(1, 2), Repetition(2, 3))
    assessment = classify_session(shuffled, RISING)
    assert assessment.pain == (2, 3, 4)
    assert assessment.response is PainResponse.WORSENING


def test_duplicate_repetition_indices_are_rejected() -> None:
    with pytest.raises(InvalidRepetition, match="duplicate"):
        classify_session((Repetition(1, 2), Repetition(1, 3), Repetition(2, 3)), RISING)


@pytest.mark.parametrize(
    ("index", "pain"),
    [
        pytest.param(1, 11, id="pain above 10"),
        pytest.param(1, -1, id="pain below 0"),
        pytest.param(0, 3, id="index below 1"),
    ],
)
def test_a_repetition_off_the_scale_is_rejected(index: int, pain: int) -> None:
    with pytest.raises(InvalidRepetition):
        Repetition(index, pain)


def test_session_reports_slope_first_last_peak_rises_and_falls() -> None:
    assessment = classify_session(reps(2, 4, 3, 5, 1), RISING)
    assert (assessment.first, assessment.last, assessment.peak) == (2, 1, 5)
    assert (assessment.rises, assessment.falls) == (2, 2)
    assert assessment.slope == pytest.approx(-0.1)


def test_slope_uses_the_repetition_index_when_a_repetition_is_unrated() -> None:
    gapped = (Repetition(1, 1), Repetition(2, 2), Repetition(4, 4))
    assert classify_session(gapped, RISING).slope == 1.0


def test_a_single_repetition_has_no_slope_and_no_repetition_has_no_figures() -> None:
    assert classify_session(reps(3), RISING).slope is None
    empty = classify_session((), RISING)
    assert (empty.first, empty.last, empty.peak, empty.slope) == (None, None, None, None)


def _with_distances(*distances: float | None) -> tuple[Repetition, ...]:
    return tuple(Repetition(i, 1, distance_cm=d) for i, d in enumerate(distances, start=1))


@pytest.mark.parametrize(
    ("distances", "expected"),
    [
        pytest.param((30.0, 28.0, 28.0, 25.0), True, id="a little closer each repetition"),
        pytest.param((30.0, 28.0, 29.0), False, id="knees drifting away again"),
        pytest.param((30.0, 30.0, 30.0), False, id="no closer at the end than at the start"),
        pytest.param((30.0, None, 25.0), None, id="a repetition without distance: not judged"),
        pytest.param((None, None, None), None, id="range not recorded"),
    ],
)
def test_progressing_means_knees_a_little_closer_to_the_chest_each_repetition(
    distances: tuple[float | None, ...], expected: bool | None
) -> None:
    assert classify_session(_with_distances(*distances), RISING).progressing is expected


def test_explanation_names_the_pain_the_rule_and_the_parameters() -> None:
    text = classify_session(reps(2, 3, 4, 5, 6), RISING).explanation
    assert text.startswith("pain 2,3,4,5,6 rose at every step (4 rises")
    assert "ended 4 points above the first repetition (>= worsening_min_rise=2)" in text
    assert ": worsening (mode rising)" in text


@pytest.mark.parametrize(
    ("pain", "params", "fragment"),
    [
        pytest.param((3, 5), RISING, "fewer than 3", id="insufficient"),
        pytest.param((0, 0, 0), RISING, "pain-free", id="pain-free"),
        pytest.param((4, 3, 1), RISING, "wears off with repetition is acceptable", id="wears-off"),
        pytest.param((2, 2, 3), RISING, "stayed within 1 point", id="no-change"),
        pytest.param((1, 4, 2, 5), RISING, "varied by 4 points", id="fluctuating"),
        pytest.param((2, 4, 3, 5), SLOPE, "slope_threshold=0.5", id="worsening by slope"),
        pytest.param((2, 3, 4), STRICT, "(mode strict)", id="worsening strict"),
        pytest.param((7, 9, 7), SEVERE_8, "severe_pain=8", id="worsening severe"),
    ],
)
def test_every_class_has_an_explanation_naming_its_reason(
    pain: tuple[int, ...], params: ProtocolParameters, fragment: str
) -> None:
    assert fragment in classify_session(reps(*pain), params).explanation


def test_as_dict_holds_every_reported_figure() -> None:
    facts = classify_session(reps(4, 4, 3, 3, 2, 1), RISING).as_dict()
    assert facts["response"] == "wears-off"
    assert facts["pain"] == [4, 4, 3, 3, 2, 1]
    assert set(facts) >= {"slope", "first", "last", "peak", "rises", "falls", "explanation"}


pain_lists = st.lists(st.integers(0, 10), min_size=0, max_size=12)


@given(pain_lists, st.randoms(use_true_random=False))
def test_classification_does_not_depend_on_the_order_repetitions_arrive(
    pain: list[int], rng: random.Random
) -> None:
    ordered = reps(*pain)
    shuffled = list(ordered)
    rng.shuffle(shuffled)
    assert classify_session(shuffled, RISING) == classify_session(ordered, RISING)


@given(st.lists(st.integers(0, 10), min_size=2, max_size=12))
def test_slope_is_the_least_squares_slope_of_pain_on_index(pain: list[int]) -> None:
    expected = statistics.linear_regression(range(1, len(pain) + 1), pain).slope
    assert classify_session(reps(*pain), RISING).slope == pytest.approx(expected)


@given(pain_lists, st.sampled_from(list(StopRuleMode)))
def test_a_session_whose_pain_never_rises_is_never_worsening(
    pain: list[int], mode: StopRuleMode
) -> None:
    never_rising = sorted(pain, reverse=True)
    params = replace(RISING, stop_rule_mode=mode)
    assert classify_session(reps(*never_rising), params).response is not PainResponse.WORSENING
