"""Benchmark: fhir.resources R4B full validation vs store.fast_validation.fast_validate.

Run: ``uv run python bench/bench_validation.py [--n 20000] [--repeats 3]``

Generates N realistic repetition Observations (session contract, CLINICAL_RULES.md section 2),
then times ``Observation.model_validate(dict)``, the store's whole slow path
``store.validation.full_validate`` (FHIR JSON shape check, then the model) and
``fast_validate(dict)`` over all of them,
``repeats`` times each, and prints the median rates (single process, one core) and their ratio,
by wall clock and by process CPU time (the latter is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fhir.resources.R4B.observation import Observation

from store.fast_validation import fast_validate
from store.validation import full_validate

SESSION_MEASURE = "https://reptrend.dev/fhir/CodeSystem/session-measure"
FORM_FAULT = "https://reptrend.dev/fhir/CodeSystem/form-fault"
UCUM = "http://unitsofmeasure.org"


def repetition_observation(rng: random.Random, session_start: datetime, rep: int) -> dict[str, Any]:
    effective = session_start + timedelta(seconds=10 * rep + rng.randint(0, 5))
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "72514-3",
                    "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
                }
            ]
        },
        "subject": {"reference": f"Patient/p-{rng.randint(1, 5000)}"},
        "partOf": [{"reference": f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"}],
        "effectiveDateTime": effective.isoformat(timespec="seconds"),
    }
    pain = rng.randint(0, 10)
    if rng.random() < 0.5:
        obs["valueInteger"] = pain
    else:
        obs["valueQuantity"] = {"value": pain, "unit": "score", "system": UCUM, "code": "{score}"}
    components: list[dict[str, Any]] = [
        {
            "code": {"coding": [{"system": SESSION_MEASURE, "code": "repetition-index"}]},
            "valueInteger": rep,
        }
    ]
    if rng.random() < 0.5:
        components.append(
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "knee-to-chest-distance"}]},
                "valueQuantity": {
                    "value": round(rng.uniform(5, 40), 1),
                    "unit": "cm",
                    "system": UCUM,
                    "code": "cm",
                },
            }
        )
    if rng.random() < 0.2:
        fault = rng.choice(["head-raised", "legs-straightened-on-lowering", "neck-strain"])
        components.append(
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "form-fault"}]},
                "valueCodeableConcept": {"coding": [{"system": FORM_FAULT, "code": fault}]},
            }
        )
    if rng.random() < 0.3:
        components.append(
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "peripheral-symptoms"}]},
                "valueBoolean": rng.random() < 0.1,
            }
        )
    obs["component"] = components
    return obs


def generate(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    zones = [timezone(timedelta(hours=h)) for h in (-5, 0, 1, 2, 9)] + [UTC]
    resources: list[dict[str, Any]] = []
    while len(resources) < n:
        start = datetime(2026, 1, 1, tzinfo=rng.choice(zones)) + timedelta(
            minutes=rng.randint(0, 60 * 24 * 120)
        )
        for rep in range(1, rng.randint(5, 10) + 1):
            resources.append(repetition_observation(rng, start, rep))
    return resources[:n]


def median_rates(
    resources: list[dict[str, Any]], fn: Callable[[Any], Any], repeats: int
) -> tuple[float, float]:
    """Median (wall-clock, process CPU) rates in resources per second."""
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for resource in resources:
            fn(resource)
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    n = len(resources)
    return n / statistics.median(wall), n / statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    resources = generate(args.n)
    accepted = sum(fast_validate(r) for r in resources)
    if accepted != len(resources):
        raise SystemExit(f"fast path deferred on {len(resources) - accepted} generated resources")

    full_wall, full_cpu = median_rates(resources, Observation.model_validate, args.repeats)
    slow_wall, slow_cpu = median_rates(
        resources, lambda r: full_validate(r, "Observation"), args.repeats
    )
    fast_wall, fast_cpu = median_rates(resources, fast_validate, args.repeats)
    print(f"{len(resources)} repetition Observations, one process, median of {args.repeats} runs")
    print(f"{'':34}{'wall-clock':>12}{'CPU time':>12}")
    print(f"{'fhir.resources R4B model_validate':34}{full_wall:>10,.0f}/s{full_cpu:>10,.0f}/s")
    print(f"{'full_validate (JSON shape + model)':34}{slow_wall:>10,.0f}/s{slow_cpu:>10,.0f}/s")
    print(f"{'fast_validate':34}{fast_wall:>10,.0f}/s{fast_cpu:>10,.0f}/s")
    print(f"{'speed-up':34}{fast_wall / full_wall:>11.1f}x{fast_cpu / full_cpu:>11.1f}x")


if __name__ == "__main__":
    main()
