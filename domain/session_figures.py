"""A session's rated repetitions packed into two integers, the form the cohort report reads.

The store keeps these with each session (`exercise_session.pain_code`, `repetition_counts`),
written in the transaction that writes its repetitions, so a report over a large database
reads one row per session instead of every repetition. The packing is the one
`analytics.classification.packed_sessions` computes from repetition rows in index order (a
hypothesis test holds the two to the same integers):

- `code`: the pain of repetition k (1-based) in bits 4(k-1) to 4k-1; pain is 0-10 < 16.
- `counts`: six counts of `COUNT_BITS` bits each, field f worth 2**(COUNT_BITS*f): order
  breaks (1: the rows are taken in index order), repetitions without a knee-to-chest
  distance, distance steps up and down from one repetition to the next, repetitions with a
  form fault, repetitions with peripheral symptoms.

Only a regular session packs: indices exactly 1..n, each once, n <= `PACKED_SLOTS`. Any other
(gaps, duplicates, more repetitions) keeps `code` and `counts` None, and the report reads its
repetitions, as it does for sessions stored before the columns existed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from domain.codes import PAIN_MAX, PAIN_MIN

PACKED_SLOTS: Final = 16  # 4 bits of pain per repetition in 64 bits
COUNT_BITS: Final = 10
BREAKS, NO_DISTANCE, DISTANCE_UP, DISTANCE_DOWN, FAULTY, PERIPHERAL = range(6)
_SIGN: Final = 1 << 63


class RepetitionRow(NamedTuple):
    """One repetition as the fact table holds it (pain None: not rated)."""

    repetition_index: int
    pain: int | None
    distance_cm: float | None
    faulty: bool  # at least one form fault
    peripheral: bool


@dataclass(frozen=True, slots=True)
class PackedSession:
    rated: int  # repetitions with a pain of 0-10
    code: int | None  # None unless the session is regular
    counts: int | None

    @property
    def regular(self) -> bool:
        return self.code is not None


def _above(a: float, b: float) -> bool:
    """a > b with NaN above every number, as polars compares floats."""
    if math.isnan(a):
        return not math.isnan(b)
    return not math.isnan(b) and a > b


def pack_session(repetitions: Iterable[RepetitionRow]) -> PackedSession:
    """The packed figures of one session's repetitions (in any order)."""
    rated = sorted(
        (r for r in repetitions if r.pain is not None and PAIN_MIN <= r.pain <= PAIN_MAX),
        key=lambda r: r.repetition_index,
    )
    n = len(rated)
    indices_1_to_n = all(r.repetition_index == k for k, r in enumerate(rated, start=1))
    if n == 0 or n > PACKED_SLOTS or not indices_1_to_n:
        return PackedSession(n, None, None)
    code = 0
    fields = [0] * 6
    fields[BREAKS] = 1
    previous: float | None = None
    for k, r in enumerate(rated):
        code |= r.pain << (4 * k)  # type: ignore[operator]  # rated: pain is not None
        distance = r.distance_cm
        if distance is None:
            fields[NO_DISTANCE] += 1
        elif previous is not None:
            fields[DISTANCE_UP] += _above(distance, previous)
            fields[DISTANCE_DOWN] += _above(previous, distance)
        previous = distance
        fields[FAULTY] += r.faulty
        fields[PERIPHERAL] += r.peripheral
    counts = sum(value << (COUNT_BITS * f) for f, value in enumerate(fields))
    return PackedSession(n, code, counts)


def signed_64(value: int) -> int:
    """An unsigned 64-bit value as the signed integer with the same bits (SQL's bigint)."""
    return value - (1 << 64) if value >= _SIGN else value
