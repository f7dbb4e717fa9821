"""Throughput of `domain.pain_response.classify_session`.

Generates sessions of 6 repetitions deterministically (`random.Random(seed)`), then times
classification alone (generation is not timed) and reports the median of several runs.

    uv run python bench/bench_classify.py [--sessions 1000000] [--runs 3] [--seed 20260311]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence

from domain.pain_response import Repetition, classify_session
from domain.protocols import ProtocolParameters

REPS_PER_SESSION = 6


def generate(count: int, seed: int) -> list[tuple[Repetition, ...]]:
    """A mix of shapes (rising, wearing off, flat, noisy) so every rule branch is exercised."""
    rng = random.Random(seed)
    # Many sessions share identical repetitions in real data; reuse objects to keep memory low.
    pool: dict[tuple[int, int, bool], Repetition] = {}
    sessions = []
    for _ in range(count):
        start = rng.randint(0, 6)
        drift = rng.choice((-1, 0, 0, 1))
        reps = []
        for i in range(1, REPS_PER_SESSION + 1):
            pain = min(10, max(0, start + drift * (i - 1) + rng.randint(-1, 1)))
            peripheral = rng.random() < 0.01
            key = (i, pain, peripheral)
            rep = pool.get(key)
            if rep is None:
                rep = pool[key] = Repetition(i, pain, peripheral_symptoms=peripheral)
            reps.append(rep)
        sessions.append(tuple(reps))
    return sessions


def run_once(
    sessions: Sequence[tuple[Repetition, ...]], params: ProtocolParameters
) -> tuple[float, float]:
    """Wall and CPU seconds; CPU time stays honest when other jobs share the two cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    for reps in sessions:
        classify_session(reps, params)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260311)
    args = parser.parse_args()

    sessions = generate(args.sessions, args.seed)
    params = ProtocolParameters()
    runs = [run_once(sessions, params) for _ in range(args.runs)]
    wall = statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(
        f"classify_session: {args.sessions} sessions x {REPS_PER_SESSION} reps, "
        f"median of {args.runs} runs: {wall:.2f} s wall ({args.sessions / wall:,.0f} sessions/s), "
        f"{cpu:.2f} s CPU ({args.sessions / cpu:,.0f} sessions/s); "
        f"wall per run: {', '.join(f'{w:.2f}' for w, _ in runs)}"
    )


if __name__ == "__main__":
    main()
