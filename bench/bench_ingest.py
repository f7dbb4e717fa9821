"""Ingest benchmark (issue 3): transaction Bundles of ~500 entries (sessions of 1 Procedure +
6 repetition Observations, a day of four sessions each for a group of patients) posted over
HTTP to the service on PostgreSQL, durable commits, validation and decisions on; after each run
a raw PostgreSQL COPY of the same JSON as the ceiling. Reads and single creates: bench_http.py.

    uv run python bench/bench_ingest.py [--bundles 20] [--runs 3] [--clients 2] [--workers 2]

Needs REPTREND_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). Works in
a scratch schema that it drops afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg
from serving import backend_pids, cpu_seconds, cpu_spent, free_port, group_pids, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "https://reptrend.dev/fhir/CodeSystem/exercise"
MEASURE = "https://reptrend.dev/fhir/CodeSystem/session-measure"
HEADERS = {"content-type": "application/fhir+json"}


WEARING_OFF = (4, 4, 3, 3, 2, 1)
WORSENING = (2, 3, 4, 5, 6, 7)
SESSIONS_A_DAY = 4  # the protocol's dose: 3-4 sessions a day


def session_entries(
    patient: str, day: int, slot: int, pain: tuple[int, ...]
) -> list[dict[str, Any]]:
    """One flexion-in-lying session: a Procedure and six repetition Observations."""
    when = date(2026, 1, 1) + timedelta(days=day)
    start = f"{when.isoformat()}T{8 + 4 * slot:02d}:00:00+01:00"
    procedure_url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": procedure_url,
            "request": {"method": "POST", "url": "Procedure"},
            "resource": {
                "resourceType": "Procedure",
                "status": "completed",
                "code": {
                    "coding": [
                        {"system": EXERCISE, "code": "flexion-in-lying"},
                        {"system": "http://snomed.info/sct", "code": "229065009"},
                    ]
                },
                "subject": {"reference": f"Patient/{patient}"},
                "performedPeriod": {"start": start, "end": start.replace(":00:00+", ":04:00+")},
            },
        }
    ]
    for rep, value in enumerate(pain, start=1):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "request": {"method": "POST", "url": "Observation"},
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "partOf": [{"reference": procedure_url}],
                    "effectiveDateTime": start,
                    "valueInteger": value,
                    "component": [
                        {
                            "code": {"coding": [{"system": MEASURE, "code": "repetition-index"}]},
                            "valueInteger": rep,
                        }
                    ],
                },
            }
        )
    return entries


def bundle(index: int, size: int = 500, groups: int = 3) -> dict[str, Any]:
    """What an EHR's sync posts: one day of sessions (four each) for a group of patients.

    Bundles rotate over `groups` groups of patients, so each patient builds up a history one
    day per `groups` bundles; about one session in twelve rises with each repetition, which
    opens a hold and makes the rules write DetectedIssue, Task and Flag.
    """
    group, day = index % groups, index // groups
    sessions = size // 7
    per_group = patients_needed(size, 1)
    entries: list[dict[str, Any]] = []
    for j in range(sessions):
        k, slot = divmod(j, SESSIONS_A_DAY)
        worsening = (k * 7 + day * 5 + slot) % 12 == 0
        entries.extend(
            session_entries(
                f"p{group * per_group + k}", day, slot, WORSENING if worsening else WEARING_OFF
            )
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def patients_needed(size: int = 500, groups: int = 3) -> int:
    return groups * -(-(size // 7) // SESSIONS_A_DAY)


def patients_bundle(count: int) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "PUT", "url": f"Patient/p{i}"},
                "resource": {"resourceType": "Patient", "id": f"p{i}"},
            }
            for i in range(count)
        ],
    }


def copy_ceiling(base_url: str, schema: str, bodies: list[bytes]) -> float:
    """PostgreSQL's own COPY of the same JSON into a bare jsonb table: the ceiling."""
    table = f"copy_ceiling_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, options=f"-csearch_path={schema}") as conn:
        conn.execute(f"CREATE TABLE {table} (id text, body jsonb)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY {table} (id, body) FROM STDIN") as copy:
            for i, body in enumerate(bodies):
                copy.write_row((str(i), body.decode()))
        conn.commit()
        return len(bodies) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundles", type=int, default=20, help="bundles per run")
    parser.add_argument("--runs", type=int, default=3)
    # Two client threads, one per server worker: four gave the same rate on a quiet machine
    # (2026-11-22: 2,586 against 2,599 and 2,645 resources/s).
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    base_url = os.environ.get(
        "REPTREND_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    server = None
    try:
        # Its own application_name, to find (and time) the server's PostgreSQL backends.
        url = f"{base_url}?options={quote(f'-csearch_path={schema}')}&application_name={schema}"
        env = {**os.environ, "REPTREND_DATABASE_URL": url, "REPTREND_LOG_LEVEL": "WARNING"}
        subprocess.run(
            [sys.executable, "-m", "cli.main", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        if not wait_until_ready(base, server, 120):
            sys.exit("bench_ingest: the server did not start")

        # One client for every post, each post on a new connection, as before: the server
        # sees the same traffic, but `httpx.post` built a client per call, and its TLS
        # context (certificates loaded for a plain-HTTP URL) cost this process 19 ms of CPU
        # per bundle on the cores the server shares.
        http = httpx.Client(
            base_url=base,
            headers=HEADERS,
            timeout=300,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

        def post(payload: bytes) -> float:
            t = time.perf_counter()
            r = http.post("/fhir", content=payload)
            r.raise_for_status()
            return time.perf_counter() - t

        post(orjson.dumps(patients_bundle(patients_needed())))
        post(orjson.dumps(bundle(0)))  # warm-up; the measured bundles continue its histories
        rates, ceilings, medians = [], [], []
        cpu_ms: list[tuple[float, float]] = []
        for run in range(args.runs):
            first = 1 + run * args.bundles
            payloads = [orjson.dumps(bundle(i)) for i in range(first, first + args.bundles)]
            entries = [e for p in payloads for e in orjson.loads(p)["entry"]]
            servers = group_pids(server.pid)
            server_cpu = cpu_seconds(servers)
            backend_cpu = cpu_seconds(backend_pids(base_url, schema))
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                per_bundle = list(pool.map(post, payloads))
            rates.append(len(entries) / (time.perf_counter() - started))
            # CPU per resource: steadier than the rate on a shared machine.
            server_ms = 1000 * cpu_spent(server_cpu, cpu_seconds(servers)) / len(entries)
            pg_ms = 1000 * cpu_spent(backend_cpu, cpu_seconds(backend_pids(base_url, schema)))
            pg_ms /= len(entries)
            cpu_ms.append((server_ms, pg_ms))
            medians.append(statistics.median(per_bundle))
            bodies = [orjson.dumps(e["resource"]) for e in entries]
            ceilings.append(copy_ceiling(base_url, schema, bodies))
            print(
                f"run {run + 1}: {len(entries)} resources in {args.bundles} bundles, "
                f"{rates[-1]:,.0f} resources/s (median bundle {medians[-1] * 1000:,.0f} ms); "
                f"CPU per resource: server {server_ms:.3f} ms, PostgreSQL {pg_ms:.3f} ms "
                f"(2 cores at that cost: {2000 / (server_ms + pg_ms):,.0f}/s); "
                f"COPY ceiling {ceilings[-1]:,.0f}/s; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        rate, ceiling = statistics.median(rates), statistics.median(ceilings)
        print(
            f"median of {args.runs} runs, {args.clients} client threads, "
            f"{args.workers} server workers: ingest {rate:,.0f} resources/s, "
            f"median bundle {statistics.median(medians) * 1000:,.0f} ms; "
            f"raw COPY ceiling {ceiling:,.0f}/s; ratio {rate / ceiling:.3f}; CPU per resource: "
            f"server {statistics.median(c[0] for c in cpu_ms):.3f} ms, "
            f"PostgreSQL {statistics.median(c[1] for c in cpu_ms):.3f} ms"
        )
        http.close()
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
