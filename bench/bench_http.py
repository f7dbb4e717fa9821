"""Per-request HTTP benchmark (issue 3): reads and single creates against `reptrend serve` on
PostgreSQL, durable commits, validation on, with `wrk` as the load generator.

    uv run python bench/bench_http.py [--workers 2] [--runs 3] [--seconds 10] [--baseline DIR]

Targets: read (GET /fhir/{type}/{id}) >= 1,500 requests/s; single create (POST /fhir/Observation,
a patient's daily pain score, not part of a session) p99 <= 25 ms with 16 concurrent clients.
The server, PostgreSQL and wrk share the machine's cores. Reads are spread over every seeded
resource (random ids from a Lua script); creates rotate over 50 patients. Each measure runs
`--runs` times, interleaved (read, create, read, create, ...), and the medians are reported.

With `--baseline DIR` (another source tree, e.g. `git archive HEAD | tar -x -C DIR`) a second
server runs from it on its own schema, and every run alternates between the two (A/B).

Besides wrk's figures it reports the CPU time per request of the server processes, of their
PostgreSQL backends and of wrk, and what 2 cores would serve at that cost: the machine is
shared, so this says more than the raw rate (though CPU time per request also grows somewhat
when the cores are oversubscribed).

Needs REPTREND_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) and wrk on
PATH. Works in scratch schemas that it drops afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg
from bench_ingest import WEARING_OFF, session_entries  # the same session shape
from serving import backend_pids, cpu_seconds, cpu_spent, free_port, group_pids, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"content-type": "application/fhir+json"}
PATIENTS = 50
LOINC_PAIN = {"system": "http://loinc.org", "code": "72514-3"}

# wrk prints one JSON line at the end: throughput, latency percentiles, errors.
_REPORT_LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "errors": %d, "non2xx": %d, '
    .. '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, errors, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""

_READ_LUA = """
math.randomseed(os.time())
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""

_CREATE_LUA = """
math.randomseed(os.time())
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/fhir+json"}
request = function()
  return wrk.format("POST", "/fhir/Observation", headers, bodies[math.random(#bodies)])
end
"""


def pain_observation(patient: str, day: int, pain: int) -> dict[str, Any]:
    """A daily pain score (0-10) as a patient app posts it: not part of a session."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "72514-3",
                    "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
                }
            ]
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"2026-03-{1 + day % 28:02d}T08:{day % 60:02d}:00+01:00",
        "valueInteger": pain,
    }


def connections_per_process(port: int) -> str:
    """How the established connections to `port` are spread over the processes serving it,
    most first ("9/7"): the kernel hands each new connection to whichever worker accepts
    first, and a worker keeps it, so one may serve twice the clients of another."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
    ).stdout
    counts = Counter(re.findall(r"pid=(\d+)", listing))
    return "/".join(str(n) for n in sorted(counts.values(), reverse=True)) or "?"


def run_wrk(base: str, script: Path, threads: int, connections: int, seconds: float) -> Any:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    before = os.times()
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wrk opens its connections at once; each server worker keeps the ones it accepted.
    time.sleep(min(1.0, seconds / 2))
    split = connections_per_process(int(base.rsplit(":", 1)[1]))
    output, _ = wrk.communicate()
    after = os.times()
    if wrk.returncode:
        raise RuntimeError(f"wrk failed:\n{output}")
    match = re.search(r"^RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    result = orjson.loads(match.group(1))
    result["rate"] = result["requests"] / result["seconds"]
    result["split"] = split
    spent = after.children_user + after.children_system
    result["wrk_cpu_ms"] = 1000 * (spent - before.children_user - before.children_system)
    if result["errors"]:
        raise RuntimeError(f"wrk saw {result['errors']} errors ({result['non2xx']} non-2xx)")
    return result


def seed(base: str, bundles: int) -> list[str]:
    """Patients, and sessions (Procedures + repetition Observations) through transactions."""
    with httpx.Client(base_url=base, headers=HEADERS, timeout=300) as client:
        for n in range(PATIENTS):
            client.put(
                f"/fhir/Patient/p{n}",
                content=orjson.dumps({"resourceType": "Patient", "id": f"p{n}"}),
            ).raise_for_status()
        paths = [f"/fhir/Patient/p{n}" for n in range(PATIENTS)]
        for i in range(bundles):
            entries = [
                e
                for n in range(70)
                for e in session_entries(f"p{(i + n) % PATIENTS}", n // 4, n % 4, WEARING_OFF)
            ]
            transaction = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            response = client.post("/fhir", content=orjson.dumps(transaction))
            response.raise_for_status()
            paths += ["/fhir/" + e["fullUrl"] for e in response.json()["entry"]]
    return paths


@dataclass
class Service:
    """One `reptrend serve` from a source tree, on its own scratch schema."""

    label: str
    root: Path
    schema: str
    base: str = ""
    server: subprocess.Popen[bytes] | None = None
    results: dict[str, list[Any]] = field(default_factory=dict)


def start(service: Service, base_url: str, workers: int, extra: list[str], scratch: Path) -> None:
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{service.schema}"')
    # Its own application_name, to find (and time) the server's PostgreSQL backends.
    options = quote(f"-csearch_path={service.schema}")
    url = f"{base_url}?options={options}&application_name={service.schema}"
    env = {**os.environ, "REPTREND_DATABASE_URL": url, "REPTREND_LOG_LEVEL": "INFO"}
    python = [sys.executable, "-m", "cli.main"]
    subprocess.run([*python, "migrate"], cwd=service.root, env=env, check=True, capture_output=True)
    port = free_port()
    command = [*python, "serve", "--port", str(port), "--workers", str(workers), *extra]
    # Access logs are part of the cost measured: they go to a file, as in production.
    log_path = scratch / f"{service.schema}.log"
    service.server = subprocess.Popen(
        command, cwd=service.root, env=env, start_new_session=True, stderr=log_path.open("wb")
    )
    service.base = f"http://127.0.0.1:{port}"
    # The first start seeds the protocol catalog.
    if wait_until_ready(service.base, service.server, 180):
        return
    sys.exit(f"bench_http: {service.label} did not start:\n{log_path.read_text()}")


def measure(
    service: Service, kind: str, script: Path, args: argparse.Namespace, base_url: str
) -> None:
    assert service.server is not None
    servers = group_pids(service.server.pid)
    server_cpu = cpu_seconds(servers)
    backend_cpu = cpu_seconds(backend_pids(base_url, service.schema))
    result = run_wrk(service.base, script, args.threads, args.connections, args.seconds)
    requests = result["requests"]
    backends_after = cpu_seconds(backend_pids(base_url, service.schema))
    result["server_cpu_ms"] = 1000 * cpu_spent(server_cpu, cpu_seconds(servers)) / requests
    result["pg_cpu_ms"] = 1000 * cpu_spent(backend_cpu, backends_after) / requests
    result["backends_gone"] = len(set(backend_cpu) - set(backends_after))
    result["backends_new"] = len(set(backends_after) - set(backend_cpu))
    result["wrk_cpu_ms"] /= requests
    # What 2 cores would serve if this service, its PostgreSQL backends and wrk had them to
    # themselves: the machine is shared, and this depends much less on the load than the rate.
    result["capacity"] = 2000 / (
        result["server_cpu_ms"] + result["pg_cpu_ms"] + result["wrk_cpu_ms"]
    )
    service.results.setdefault(kind, []).append(result)
    print(
        f"  {service.label} {kind}: {result['rate']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms ({requests} requests, connections per worker "
        f"{result['split']}); CPU per request: "
        f"server {result['server_cpu_ms']:.2f} ms, PostgreSQL backends "
        f"{result['pg_cpu_ms']:.2f} ms, wrk {result['wrk_cpu_ms']:.2f} ms; "
        f"2-core capacity {result['capacity']:,.0f}/s; PostgreSQL backends started "
        f"{result['backends_new']}, ended {result['backends_gone']}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def summary(service: Service) -> None:
    for kind, runs in service.results.items():

        def median(key: str, runs: list[Any] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"{service.label} {kind}: median {median('rate'):,.0f} req/s, "
            f"p50 {median('p50_ms'):.1f} ms, p99 {median('p99_ms'):.1f} ms "
            f"(runs: {', '.join(format(r['rate'], ',.0f') for r in runs)} req/s; "
            f"p99 {', '.join(format(r['p99_ms'], '.1f') for r in runs)} ms; "
            f"connections per worker {', '.join(r['split'] for r in runs)}); "
            f"CPU per request: server {median('server_cpu_ms'):.2f} ms, "
            f"PostgreSQL {median('pg_cpu_ms'):.2f} ms; "
            f"2-core capacity {median('capacity'):,.0f}/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundles", type=int, default=6, help="seed bundles of ~500 entries")
    parser.add_argument("--only", choices=("read", "create"), default=None)
    parser.add_argument("--serve-args", default="", help="extra `reptrend serve` arguments")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another source tree (e.g. `git archive HEAD` unpacked) served too, runs interleaved",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_http: wrk is not on PATH (apt-get install wrk)")
    base_url = os.environ.get(
        "REPTREND_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    services = [Service("this", ROOT, f"bench_{uuid.uuid4().hex[:8]}")]
    if args.baseline is not None:
        services.insert(
            0, Service("baseline", args.baseline.resolve(), f"bench_{uuid.uuid4().hex[:8]}")
        )
    scratch = Path(tempfile.mkdtemp(prefix="bench_http_"))
    try:
        bodies = [
            orjson.dumps(pain_observation(f"p{n % PATIENTS}", n, n % 11)).decode()
            for n in range(500)
        ]
        (scratch / "bodies.txt").write_text("\n".join(bodies) + "\n")
        create_lua = scratch / "create.lua"
        create_lua.write_text(_CREATE_LUA % {"bodies": scratch / "bodies.txt"} + _REPORT_LUA)
        scripts: dict[tuple[str, str], Path] = {}
        for service in services:
            start(service, base_url, args.workers, args.serve_args.split(), scratch)
            paths = seed(service.base, args.bundles)
            # As autovacuum would have by now on a live database: without statistics the
            # planner's generic plan for the prepared point read can be a sequential scan.
            with psycopg.connect(base_url, autocommit=True) as conn:
                conn.execute(
                    f'ANALYZE "{service.schema}".resource, "{service.schema}".resource_version'
                )
            (scratch / f"{service.schema}.paths").write_text("\n".join(paths) + "\n")
            read_lua = scratch / f"{service.schema}.read.lua"
            read_lua.write_text(
                _READ_LUA % {"paths": scratch / f"{service.schema}.paths"} + _REPORT_LUA
            )
            scripts[(service.label, "read")] = read_lua
            scripts[(service.label, "create")] = create_lua

        kinds = [k for k in ("read", "create") if args.only in (None, k)]
        for service in services:  # warm-up: connection pools, caches, prepared statements
            for kind in kinds:
                run_wrk(service.base, scripts[(service.label, kind)], args.threads, 16, 2)
        for _ in range(args.runs):
            for kind in kinds:
                for service in services:
                    measure(service, kind, scripts[(service.label, kind)], args, base_url)
        load = os.getloadavg()
        print(
            f"{args.workers} server workers, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.seconds:g}s, {len(paths)} resources to read, {args.runs} runs, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        for service in services:
            summary(service)
    finally:
        for service in services:
            if service.server is not None:
                os.killpg(service.server.pid, signal.SIGTERM)
                service.server.wait(timeout=20)
            with psycopg.connect(base_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{service.schema}" CASCADE')
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
