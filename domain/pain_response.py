"""Pain response of one session: pain per repetition read against the stop rule (section 3).

Seed 001: "An initial pain that wears off gradually with repetition of the exercise is
acceptable" and "If this exercise causes pain that increases with each repetition, stop."

`classify_session` runs once per ingested session and over whole cohorts in parity tests, so it
is written for speed: C-level `map` over attribute getters instead of Python loops, a fast path
for the usual repetition indices 1..n, and the explanation text built only when it is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter, gt, le, lt, mul
from typing import Final, NamedTuple, cast

from domain.codes import PAIN_MAX, PAIN_MIN
from domain.protocols import ProtocolParameters, StopRuleMode

MIN_RATED_REPETITIONS: Final = 3


class PainResponse(StrEnum):
    INSUFFICIENT = "insufficient"
    WORSENING = "worsening"
    PAIN_FREE = "pain-free"
    WEARS_OFF = "wears-off"
    NO_CHANGE = "no-change"
    FLUCTUATING = "fluctuating"


class InvalidRepetition(ValueError):
    """A repetition that cannot be rated: pain off the 0-10 scale, index below 1, duplicates."""


@dataclass(frozen=True, slots=True)
class Repetition:
    index: int  # repetition-index, 1..n
    pain: int  # 0-10 numeric rating
    distance_cm: float | None = None  # knee-to-chest distance: smaller is better
    form_faults: tuple[str, ...] = ()
    peripheral_symptoms: bool = False

    def __post_init__(self) -> None:
        if not PAIN_MIN <= self.pain <= PAIN_MAX:
            raise InvalidRepetition(f"repetition {self.index}: pain {self.pain} is not 0..10")
        if self.index < 1:
            raise InvalidRepetition(f"repetition index {self.index} is below 1")


class SessionAssessment(NamedTuple):
    """The class of one session and the figures section 3 asks to report with it.

    Only what the decision needed is stored; the other figures are derived on access from
    the ordered repetitions (a session has a handful), which keeps bulk classification fast.
    An immutable NamedTuple rather than a frozen dataclass: it is built once per classified
    session, and a frozen dataclass's field-by-field `__init__` was a quarter of that cost.
    """

    response: PainResponse
    repetitions: tuple[Repetition, ...]  # in repetition-index order
    pain: tuple[int, ...]  # in repetition-index order
    parameters: ProtocolParameters

    def __repr__(self) -> str:
        return f"SessionAssessment(response={self.response!r}, pain={self.pain!r})"

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(map(_INDEX, self.repetitions))

    @property
    def slope(self) -> float | None:
        """Least-squares pain points per repetition index; None when n < 2."""
        return _slope(self.repetitions, self.pain)

    @property
    def first(self) -> int | None:
        return self.pain[0] if self.pain else None

    @property
    def last(self) -> int | None:
        return self.pain[-1] if self.pain else None

    @property
    def peak(self) -> int | None:
        return max(self.pain) if self.pain else None

    @property
    def rises(self) -> int:
        """Consecutive repetitions where pain went up."""
        return sum(map(lt, self.pain, self.pain[1:]))

    @property
    def falls(self) -> int:
        return sum(map(gt, self.pain, self.pain[1:]))

    @property
    def progressing(self) -> bool | None:
        """Knees at least as close every repetition and closer at the end than at the start.

        Seed 001: "try to pull your knees a little closer to the chest" each repetition.
        None unless every repetition recorded a distance.
        """
        distances = tuple(map(_DISTANCE, self.repetitions))
        if not distances or None in distances:
            return None
        known = cast(tuple[float, ...], distances)
        return all(map(le, known[1:], known)) and known[-1] < known[0]

    @property
    def peripheral_symptoms_at(self) -> tuple[int, ...]:
        """Repetition indices that reported peripheral symptoms."""
        return tuple(r.index for r in self.repetitions if r.peripheral_symptoms)

    @property
    def explanation(self) -> str:
        """Why this class, naming the numbers and parameters used. Built on demand."""
        return _explain(self)

    def as_dict(self) -> dict[str, object]:
        """Every reported figure, for fact tables and JSON."""
        return {
            "response": str(self.response),
            "pain": list(self.pain),
            "slope": self.slope,
            "first": self.first,
            "last": self.last,
            "peak": self.peak,
            "rises": self.rises,
            "falls": self.falls,
            "progressing": self.progressing,
            "peripheral_symptoms_at": list(self.peripheral_symptoms_at),
            "explanation": self.explanation,
        }


_INDEX: Final = attrgetter("index")
_PAIN: Final = attrgetter("pain")
_DISTANCE: Final = attrgetter("distance_cm")
_PERIPHERAL: Final = attrgetter("peripheral_symptoms")

# The usual indices 1..n, their sum and the slope denominator n*Sxx - Sx^2, precomputed.
_FAST_PATH_MAX: Final = 64
_ONE_TO: Final = tuple(tuple(range(1, n + 1)) for n in range(_FAST_PATH_MAX + 1))
_SX_ONE_TO: Final = tuple(sum(xs) for xs in _ONE_TO)
_DENOMINATOR_ONE_TO: Final = tuple(
    len(xs) * sum(x * x for x in xs) - sum(xs) ** 2 for xs in _ONE_TO
)

# Enum members as module constants: class attribute lookup on an Enum costs ~0.1 us a time.
_INSUFFICIENT: Final = PainResponse.INSUFFICIENT
_WORSENING: Final = PainResponse.WORSENING
_PAIN_FREE: Final = PainResponse.PAIN_FREE
_WEARS_OFF: Final = PainResponse.WEARS_OFF
_NO_CHANGE: Final = PainResponse.NO_CHANGE
_FLUCTUATING: Final = PainResponse.FLUCTUATING
_RISING: Final = StopRuleMode.RISING
_STRICT: Final = StopRuleMode.STRICT


def classify_session(reps: Sequence[Repetition], params: ProtocolParameters) -> SessionAssessment:
    """Classify one session's pain per repetition; rules of section 3 evaluated in order.

    Repetitions may come in any order: they are sorted by `index` first. Duplicate indices
    raise `InvalidRepetition`.
    """
    n = len(reps)
    ordered: tuple[Repetition, ...]
    if n <= _FAST_PATH_MAX and tuple(map(_INDEX, reps)) == _ONE_TO[n]:
        ordered = tuple(reps)
    else:
        ordered = tuple(sorted(reps, key=_INDEX))
        indices = tuple(map(_INDEX, ordered))
        if len(set(indices)) != n:
            raise InvalidRepetition(f"duplicate repetition indices in {list(indices)}")
    pain = tuple(map(_PAIN, ordered))
    return SessionAssessment(_response(ordered, pain, params), ordered, pain, params)


def _response(
    ordered: tuple[Repetition, ...], pain: tuple[int, ...], params: ProtocolParameters
) -> PainResponse:
    if len(pain) < MIN_RATED_REPETITIONS:
        return _INSUFFICIENT
    if True in map(_PERIPHERAL, ordered):
        return _WORSENING
    peak = max(pain)
    if params.severe_pain is not None and peak >= params.severe_pain:
        return _WORSENING
    if _worsening_by_mode(ordered, pain, params):
        return _WORSENING
    first = pain[0]
    last = pain[-1]
    if peak == 0:
        return _PAIN_FREE
    if first > 0 and last <= peak - 1 and last <= first:
        return _WEARS_OFF
    if peak - min(pain) <= 1:
        return _NO_CHANGE
    return _FLUCTUATING


def _worsening_by_mode(
    ordered: tuple[Repetition, ...], pain: tuple[int, ...], params: ProtocolParameters
) -> bool:
    mode = params.stop_rule_mode
    following = pain[1:]
    if mode is _STRICT:
        return all(map(lt, pain, following))
    # Cheapest test first: most sessions do not end well above where they started.
    if pain[-1] - pain[0] < params.worsening_min_rise:
        return False
    if mode is _RISING:
        return True not in map(gt, pain, following) and (
            sum(map(lt, pain, following)) >= params.worsening_min_rises
        )
    slope = _slope(ordered, pain)
    return slope is not None and slope >= params.slope_threshold


def _slope(ordered: tuple[Repetition, ...], pain: tuple[int, ...]) -> float | None:
    """(n*Sxy - Sx*Sy) / (n*Sxx - Sx^2) in exact integers and one correctly rounded division.

    Exact arithmetic makes the threshold test reproducible in any implementation (the
    vectorised analytics must agree to the bit), e.g. a slope of exactly 0.5 is never 0.4999.
    """
    n = len(pain)
    if n < 2:
        return None
    indices = tuple(map(_INDEX, ordered))
    sxy: int = sum(map(mul, indices, pain))
    if n <= _FAST_PATH_MAX and indices == _ONE_TO[n]:
        sx, denominator = _SX_ONE_TO[n], _DENOMINATOR_ONE_TO[n]
    else:
        sx = sum(indices)
        denominator = n * sum(x * x for x in indices) - sx * sx  # > 0: indices are distinct
    return (n * sxy - sx * sum(pain)) / denominator


def _explain(a: SessionAssessment) -> str:
    pain = ",".join(map(str, a.pain)) or "none"
    n = len(a.pain)
    if a.response is PainResponse.INSUFFICIENT:
        why = (
            f"{n} rated repetition{'' if n == 1 else 's'} (pain {pain}), fewer than "
            f"{MIN_RATED_REPETITIONS}: too few to judge"
        )
    elif a.response is PainResponse.WORSENING:
        why = f"pain {pain} " + "; ".join(_worsening_reasons(a))
    elif a.response is PainResponse.PAIN_FREE:
        why = f"pain {pain}: no pain at any repetition"
    elif a.response is PainResponse.WEARS_OFF:
        why = (
            f"pain {pain} started at {a.first}, peaked at {a.peak} and ended at {a.last}, "
            "at least 1 below the peak and not above the first repetition: an initial pain "
            "that wears off with repetition is acceptable"
        )
    elif a.response is PainResponse.NO_CHANGE:
        why = f"pain {pain} stayed within 1 point (range {min(a.pain)}..{a.peak})"
    else:
        why = (
            f"pain {pain} varied by {max(a.pain) - min(a.pain)} points ({_count(a.rises, 'rise')}, "
            f"{_count(a.falls, 'fall')}) without rising steadily or wearing off"
        )
    text = f"{why}: {a.response} (mode {a.parameters.stop_rule_mode})"
    if a.slope is not None:
        text += f"; slope {a.slope:+.2f} per repetition"
    if a.progressing is not None:
        text += (
            "; knees closer each repetition (progressing)"
            if a.progressing
            else "; knee-to-chest distance not progressing"
        )
    return text


def _worsening_reasons(a: SessionAssessment) -> list[str]:
    p = a.parameters
    assert a.first is not None and a.last is not None and a.peak is not None
    reasons = []
    if a.peripheral_symptoms_at:
        at = ",".join(map(str, a.peripheral_symptoms_at))
        reasons.append(f"with peripheral symptoms at repetition {at}")
    if p.severe_pain is not None and a.peak >= p.severe_pain:
        reasons.append(f"reached {a.peak} (>= severe_pain={p.severe_pain})")
    n = len(a.pain)
    if _worsening_by_mode(a.repetitions, a.pain, p):
        net = (
            f"ended {a.last - a.first} points above the first repetition "
            f"(>= worsening_min_rise={p.worsening_min_rise})"
        )
        if p.stop_rule_mode is StopRuleMode.STRICT:
            reasons.append(f"rose at every step ({_count(a.rises, 'rise')}, no fall)")
        elif p.stop_rule_mode is StopRuleMode.RISING:
            how = "rose at every step" if a.rises == n - 1 else "never fell"
            reasons.append(
                f"{how} ({_count(a.rises, 'rise')} >= worsening_min_rises={p.worsening_min_rises}, "
                f"no fall) and {net}"
            )
        else:
            reasons.append(
                f"has a least-squares slope of {a.slope:+.2f} per repetition "
                f"(>= slope_threshold={p.slope_threshold}) and {net}"
            )
    return reasons


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"
