"""The built-in protocol catalog (CLINICAL_RULES section 1) and its parameters."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from domain.codes import (
    CANONICAL_BASE,
    EXERCISE_SYSTEM,
    FORM_FAULT_SYSTEM,
    PAIN_RESPONSE_SYSTEM,
    REPETITION_INDEX_EXTENSION,
    SESSION_MEASURE_SYSTEM,
    ExerciseCode,
)
from domain.protocols import (
    CATALOG,
    Category,
    InvalidParameter,
    ProtocolParameters,
    StopRuleMode,
    UnknownProtocol,
    protocol,
)


def test_catalog_holds_the_four_exercises_of_the_seed_texts() -> None:
    assert set(CATALOG) == {code.value for code in ExerciseCode}
    assert all(isinstance(code, str) and type(code) is str for code in CATALOG)


def test_only_flexion_in_lying_has_stop_rule_readiness_and_dosage() -> None:
    checked = {
        code
        for code, p in CATALOG.items()
        if p.parameters.stop_rule or p.parameters.requires_readiness or p.parameters.dosage_checked
    }
    assert checked == {"flexion-in-lying"}
    flexion_in_lying = protocol("flexion-in-lying").parameters
    assert flexion_in_lying.stop_rule and flexion_in_lying.requires_readiness
    assert flexion_in_lying.dosage_checked


def test_every_flexion_exercise_must_be_followed_by_extension_in_lying() -> None:
    for p in CATALOG.values():
        assert p.parameters.requires_extension_after is (p.category is Category.FLEXION), p.code
    assert protocol("extension-in-lying").category is Category.EXTENSION


def test_rocking_has_hip_comfort_variants_and_progresses_to_spinal_rolling() -> None:
    rocking = protocol("rocking-knees-to-chest")
    assert rocking.variants == ("knees-apart", "single-leg")
    assert rocking.progresses_to == "spinal-rolling"
    assert rocking.progresses_to in CATALOG


def test_every_protocol_names_the_seed_file_it_comes_from() -> None:
    sources = {code: p.source for code, p in CATALOG.items()}
    assert all(re.fullmatch(r"\d{3}_[0-9a-f]{16}", s) for s in sources.values())
    assert sources["flexion-in-lying"].startswith("001_")
    assert sources["rocking-knees-to-chest"].startswith("000_")


def test_an_unknown_code_raises_unknown_protocol_which_is_a_key_error() -> None:
    with pytest.raises(UnknownProtocol, match="walking") as caught:
        protocol("walking")
    assert isinstance(caught.value, KeyError)


def test_default_parameters_are_those_of_the_contract() -> None:
    p = ProtocolParameters()
    assert (p.min_reps, p.max_reps, p.min_sessions_per_day, p.max_sessions_per_day) == (5, 6, 3, 4)
    assert (p.readiness_days, p.readiness_min_reported_days, p.readiness_max_pain) == (14, 10, 3)
    assert p.readiness_pain_free_share == 0.7
    assert (p.stop_rule_mode, p.worsening_min_rise, p.slope_threshold) == (
        StopRuleMode.RISING,
        2,
        0.5,
    )
    assert p.severe_pain is None
    assert (p.retry_min_days, p.retry_max_days, p.max_failed_retries) == (7, 14, 2)
    assert p.extension_within_minutes == 15
    assert p.extension_within.total_seconds() == 15 * 60


def test_parameters_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        ProtocolParameters(5)  # type: ignore[call-arg]
    p = ProtocolParameters()
    with pytest.raises(AttributeError):
        p.min_reps = 3  # type: ignore[misc]
    assert len(fields(p)) >= 20


def test_a_plain_string_mode_is_normalised_to_the_enum() -> None:
    p = ProtocolParameters(stop_rule_mode="slope")  # type: ignore[arg-type]
    assert p.stop_rule_mode is StopRuleMode.SLOPE


OUT_OF_RANGE = [
    ("readiness_min_reported_days", 15),  # more than the 14-day window holds
    ("readiness_max_pain", 11),
    ("readiness_pain_free_share", 1.5),
    ("min_reps", 0),
    ("max_reps", 4),  # below min_reps
    ("min_sessions_per_day", 0),
    ("max_sessions_per_day", 2),  # below min_sessions_per_day
    ("worsening_min_rise", 0),
    ("worsening_min_rises", 0),
    ("slope_threshold", 0.0),
    ("severe_pain", 0),
    ("retry_min_days", 0),
    ("retry_max_days", 6),  # below retry_min_days
    ("max_failed_retries", 0),
    ("extension_within_minutes", -1),
    ("stop_rule_mode", "sometimes"),
]


@pytest.mark.parametrize(
    ("name", "value"), [pytest.param(n, v, id=f"{n}={v!r}") for n, v in OUT_OF_RANGE]
)
def test_an_out_of_range_parameter_is_rejected_with_its_name(name: str, value: object) -> None:
    with pytest.raises(InvalidParameter, match=name):
        ProtocolParameters(**{name: value})  # type: ignore[arg-type]


def test_local_code_systems_live_under_the_canonical_base() -> None:
    for url in (EXERCISE_SYSTEM, SESSION_MEASURE_SYSTEM, FORM_FAULT_SYSTEM, PAIN_RESPONSE_SYSTEM):
        assert url.startswith(f"{CANONICAL_BASE}/CodeSystem/")
    assert REPETITION_INDEX_EXTENSION == (
        "https://reptrend.dev/fhir/StructureDefinition/repetition-index"
    )
