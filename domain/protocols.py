"""The built-in protocol catalog and the parameters every clinical decision is made with.

Every number in CLINICAL_RULES is a parameter with a default, so a clinic can tune a protocol
and every explanation can name the values it used. `ProtocolParameters()` with no arguments is
the parameter set of flexion-in-lying, the exercise the seed text 001 parametrises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from domain.codes import PAIN_MAX, PAIN_MIN, ExerciseCode


class InvalidParameter(ValueError):
    """A protocol parameter is outside the range the rules are defined for."""


class UnknownProtocol(KeyError):
    """No protocol with that code in the catalog."""

    def __str__(self) -> str:  # KeyError would print the repr of the code
        return f"unknown protocol {self.args[0]!r}; known: {', '.join(CATALOG)}"


class Category(StrEnum):
    FLEXION = "flexion"
    EXTENSION = "extension"


class StopRuleMode(StrEnum):
    """How "pain that increases with each repetition" is read (CLINICAL_RULES section 3)."""

    RISING = "rising"  # no fall, enough rises, and a net rise: tolerates plateaus
    STRICT = "strict"  # every consecutive repetition hurts more
    SLOPE = "slope"  # least-squares trend and a net rise


READINESS_DAYS_ALLOWED: Final = range(14, 22)  # "two to three weeks"
_MODES: Final = frozenset(m.value for m in StopRuleMode)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolParameters:
    # Dosage (section 6): "5 - 6 repetitions per session ... three or four times per day".
    min_reps: int = 5
    max_reps: int = 6
    min_sessions_per_day: int = 3
    max_sessions_per_day: int = 4
    # Readiness (section 4): "long pain-free periods for two to three weeks".
    readiness_days: int = 14
    readiness_min_reported_days: int = 10
    readiness_max_pain: int = 3
    readiness_pain_free_share: float = 0.7
    # Pain response and stop rule (sections 3 and 5).
    stop_rule: bool = True
    stop_rule_mode: StopRuleMode = StopRuleMode.RISING
    worsening_min_rise: int = 2  # Pn - P1 must reach this
    worsening_min_rises: int = 2  # rises between consecutive reps needed in mode `rising`
    slope_threshold: float = 0.5  # pain points per repetition in mode `slope`
    severe_pain: int | None = None  # any repetition at or above this is worsening; off by default
    retry_min_days: int = 7  # "wait and try it in another week or two"
    retry_max_days: int = 14
    max_failed_retries: int = 2
    # Sequence (section 6): every flexion session is followed by extension-in-lying.
    extension_within_minutes: int = 15
    requires_extension_after: bool = True
    requires_readiness: bool = True
    dosage_checked: bool = True

    def __post_init__(self) -> None:
        _check(
            self.readiness_days in READINESS_DAYS_ALLOWED,
            "readiness_days",
            f"{self.readiness_days} is outside 14..21 (two to three weeks)",
        )
        _check(
            1 <= self.readiness_min_reported_days <= self.readiness_days,
            "readiness_min_reported_days",
            f"{self.readiness_min_reported_days} is outside 1..readiness_days "
            f"({self.readiness_days})",
        )
        _check(
            PAIN_MIN <= self.readiness_max_pain <= PAIN_MAX,
            "readiness_max_pain",
            f"{self.readiness_max_pain} is outside the 0..10 pain scale",
        )
        _check(
            0.0 <= self.readiness_pain_free_share <= 1.0,
            "readiness_pain_free_share",
            f"{self.readiness_pain_free_share} is not a share between 0 and 1",
        )
        _check(self.min_reps >= 1, "min_reps", f"{self.min_reps} must be at least 1")
        _check(
            self.max_reps >= self.min_reps,
            "max_reps",
            f"{self.max_reps} is below min_reps ({self.min_reps})",
        )
        _check(
            self.min_sessions_per_day >= 1,
            "min_sessions_per_day",
            f"{self.min_sessions_per_day} must be at least 1",
        )
        _check(
            self.max_sessions_per_day >= self.min_sessions_per_day,
            "max_sessions_per_day",
            f"{self.max_sessions_per_day} is below min_sessions_per_day "
            f"({self.min_sessions_per_day})",
        )
        _check(
            self.worsening_min_rise >= 1,
            "worsening_min_rise",
            f"{self.worsening_min_rise} must be at least 1",
        )
        _check(
            self.worsening_min_rises >= 1,
            "worsening_min_rises",
            f"{self.worsening_min_rises} must be at least 1",
        )
        _check(
            self.slope_threshold > 0,
            "slope_threshold",
            f"{self.slope_threshold} must be positive",
        )
        _check(
            self.severe_pain is None or PAIN_MIN < self.severe_pain <= PAIN_MAX,
            "severe_pain",
            f"{self.severe_pain} is outside 1..10 (or None to switch it off)",
        )
        _check(
            self.retry_min_days >= 1,
            "retry_min_days",
            f"{self.retry_min_days} must be at least 1",
        )
        _check(
            self.retry_max_days >= self.retry_min_days,
            "retry_max_days",
            f"{self.retry_max_days} is below retry_min_days ({self.retry_min_days})",
        )
        _check(
            self.max_failed_retries >= 1,
            "max_failed_retries",
            f"{self.max_failed_retries} must be at least 1",
        )
        _check(
            self.extension_within_minutes >= 0,
            "extension_within_minutes",
            f"{self.extension_within_minutes} must not be negative",
        )
        _check(
            self.stop_rule_mode in _MODES,
            "stop_rule_mode",
            f"{self.stop_rule_mode!r} is not one of {', '.join(_MODES)}",
        )
        # A plain string from configuration compares equal to the enum but prints oddly.
        object.__setattr__(self, "stop_rule_mode", StopRuleMode(self.stop_rule_mode))

    @property
    def extension_within(self) -> timedelta:
        return timedelta(minutes=self.extension_within_minutes)


def _check(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise InvalidParameter(f"{name}: {problem}")


DEFAULT_PARAMETERS: Final = ProtocolParameters()

# Exercises without the flexion-in-lying checks: no stop rule, readiness or dosage.
_UNCHECKED: Final = replace(
    DEFAULT_PARAMETERS, stop_rule=False, requires_readiness=False, dosage_checked=False
)


@dataclass(frozen=True, slots=True)
class Protocol:
    code: str
    name: str
    category: Category
    source: str  # seed file id the protocol is built from (shared/seeds/<source>.txt)
    description: str
    parameters: ProtocolParameters = DEFAULT_PARAMETERS
    variants: tuple[str, ...] = ()
    progresses_to: str | None = None


SEED_ROCKING: Final = "000_748aad8838c56f50"
SEED_FLEXION_IN_LYING: Final = "001_21431b4aab2a09b7"

_PROTOCOLS: Final = (
    Protocol(
        code=ExerciseCode.ROCKING_KNEES_TO_CHEST.value,
        name="Rocking the knees to the chest",
        category=Category.FLEXION,
        source=SEED_ROCKING,
        description=(
            "Supine knee rocking: the least taxing first exercise to loosen a jammed segment; "
            "most effective for L5/L4 stiffness. Head and shoulders stay relaxed on the floor."
        ),
        parameters=_UNCHECKED,
        variants=("knees-apart", "single-leg"),
        progresses_to=ExerciseCode.SPINAL_ROLLING.value,
    ),
    Protocol(
        code=ExerciseCode.FLEXION_IN_LYING.value,
        name="Pulling knees into the chest",
        category=Category.FLEXION,
        source=SEED_FLEXION_IN_LYING,
        description=(
            "Flexion in lying, begun after two to three weeks with long pain-free periods; "
            "5-6 repetitions a session, 3-4 sessions a day, knees a little closer each "
            "repetition; stop if pain increases with each repetition and retry in a week or two."
        ),
        parameters=DEFAULT_PARAMETERS,
    ),
    Protocol(
        code=ExerciseCode.SPINAL_ROLLING.value,
        name="Spinal rolling",
        category=Category.FLEXION,
        source=SEED_ROCKING,
        description="The natural progression of knee rocking once the back rounds more easily.",
        parameters=_UNCHECKED,
    ),
    Protocol(
        code=ExerciseCode.EXTENSION_IN_LYING.value,
        name="Cobra (Extension in Lying)",
        category=Category.EXTENSION,
        source=SEED_FLEXION_IN_LYING,
        description="Restores the lordosis; must follow every flexion session immediately.",
        parameters=replace(_UNCHECKED, requires_extension_after=False),
    ),
)

CATALOG: Final[Mapping[str, Protocol]] = MappingProxyType({p.code: p for p in _PROTOCOLS})


def protocol(code: str) -> Protocol:
    """The catalog entry for an exercise code; raises `UnknownProtocol` if there is none."""
    try:
        return CATALOG[code]
    except KeyError:
        raise UnknownProtocol(code) from None
