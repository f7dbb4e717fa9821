"""Ingest benchmark (issue 3): transaction Bundles of 500 entries posted over HTTP to the
service on PostgreSQL, durable commits, validation on; in the same run a raw PostgreSQL COPY of
the same JSON as the ceiling; then single-create latency under 16 concurrent clients and read
throughput.

    uv run python bench/bench_ingest.py [--bundles 20] [--clients 2] [--workers 2]

Needs REPTREND_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). Works in
a scratch schema that it drops afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "https://reptrend.dev/fhir/CodeSystem/exercise"
MEASURE = "https://reptrend.dev/fhir/CodeSystem/session-measure"
HEADERS = {"content-type": "application/fhir+json"}


def session_entries(patient: str, n: int, day: int) -> list[dict[str, Any]]:
    """One flexion-in-lying session: a Procedure and six repetition Observations."""
    start = f"2026-03-{1 + day % 28:02d}T{8 + n % 10:02d}:{n % 60:02d}:00+01:00"
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
                "performedPeriod": {"start": start, "end": start.replace(":00+01", ":04+01")},
            },
        }
    ]
    for rep, pain in enumerate((4, 4, 3, 3, 2, 1), start=1):
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
                    "valueInteger": pain,
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


def bundle(patient: str, index: int, size: int = 500) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    n = 0
    while len(entries) + 7 <= size:
        entries.extend(session_entries(patient, index * 1000 + n, index))
        n += 1
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_ceiling(base_url: str, schema: str, bodies: list[bytes]) -> float:
    with psycopg.connect(base_url, options=f"-csearch_path={schema}") as conn:
        conn.execute("CREATE TABLE copy_ceiling (id text, body jsonb)")
        started = time.perf_counter()
        with conn.cursor().copy("COPY copy_ceiling (id, body) FROM STDIN") as copy:
            for i, body in enumerate(bodies):
                copy.write_row((str(i), body.decode()))
        conn.commit()
        return len(bodies) / (time.perf_counter() - started)


async def latency_and_reads(
    base: str, patient: str, clients: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    reads = 0
    async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as client:
        body = orjson.dumps(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": "2026-03-01T08:00:00+01:00",
                "valueInteger": 2,
            }
        )

        async def creator() -> None:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                r = await client.post("/fhir/Observation", content=body)
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()

        await asyncio.gather(*(creator() for _ in range(clients)))

        async def reader() -> None:
            nonlocal reads
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                (await client.get(f"/fhir/Patient/{patient}")).raise_for_status()
                reads += 1

        started = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(clients)))
        read_rate = reads / (time.perf_counter() - started)
    latencies.sort()
    return {
        "create_p50_ms": 1000 * latencies[len(latencies) // 2],
        "create_p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "creates": float(len(latencies)),
        "reads_per_s": read_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundles", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    base_url = os.environ.get(
        "REPTREND_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    server = None
    try:
        url = f"{base_url}?options={quote(f'-csearch_path={schema}')}"
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
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        httpx.put(
            f"{base}/fhir/Patient/bench",
            content=b'{"resourceType":"Patient","id":"bench"}',
            headers=HEADERS,
        ).raise_for_status()

        payloads = [orjson.dumps(bundle("bench", i)) for i in range(args.bundles)]
        resources = sum(len(orjson.loads(p)["entry"]) for p in payloads)

        def post(payload: bytes) -> float:
            t = time.perf_counter()
            r = httpx.post(f"{base}/fhir", content=payload, headers=HEADERS, timeout=300)
            r.raise_for_status()
            return time.perf_counter() - t

        httpx.post(
            f"{base}/fhir", content=orjson.dumps(bundle("bench", 999)), headers=HEADERS, timeout=300
        ).raise_for_status()  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            per_bundle = list(pool.map(post, payloads))
        elapsed = time.perf_counter() - started
        rate = resources / elapsed

        bodies = [orjson.dumps(e["resource"]) for p in payloads for e in orjson.loads(p)["entry"]]
        ceiling = statistics.median(copy_ceiling(base_url, schema, bodies) for _ in range(1))
        extra = asyncio.run(latency_and_reads(base, "bench", 16, args.seconds))

        print(
            f"bundles: {args.bundles} x ~500 entries ({resources} resources), "
            f"{args.clients} client threads, {args.workers} server workers"
        )
        print(
            f"ingest over HTTP: {rate:,.0f} resources/s "
            f"(median bundle {statistics.median(per_bundle) * 1000:,.0f} ms)"
        )
        print(f"raw COPY ceiling: {ceiling:,.0f} resources/s  ratio {rate / ceiling:.2f}")
        print(
            f"single create, 16 clients: p50 {extra['create_p50_ms']:.1f} ms, "
            f"p99 {extra['create_p99_ms']:.1f} ms over {extra['creates']:.0f} creates"
        )
        print(f"reads, 16 clients: {extra['reads_per_s']:,.0f} requests/s")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
