"""Bulk export throughput and memory on PostgreSQL, against PostgreSQL's own ceiling.

For each size it loads that many Observation-sized resources (a rated repetition, about 560
bytes with meta) into a scratch schema with COPY, then, several times each and every time in a
fresh process (so peak RSS is that run's alone):

- export: a queued system-level export job run by the real worker (`ExportWorker.run_pending`:
  claim, COPY stream, NDJSON files, fsync, rename, manifest row);
- ceiling: `COPY (SELECT body::text FROM resource WHERE ...) TO STDOUT` read and discarded.

It prints medians, the export/ceiling ratio (target >= 0.5), resources/s (target >= 80,000) and
peak RSS (target <= 300 MB, flat from the smallest size to the largest).

    uv run python bench/bench_export.py [--sizes 100000 1000000] [--runs 3]
        [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store.database import normalize_url  # noqa: E402
from store.schema import upgrade  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TENANT = "default"
LOADED_AT = "2026-11-21 08:00:00+00"


def observation(i: int) -> dict[str, Any]:
    patient = f"patient-{i // 600:05d}"
    session = f"session-{i // 6:07d}"
    return {
        "resourceType": "Observation",
        "id": f"obs-{i:08d}",
        "meta": {"versionId": "1", "lastUpdated": "2026-11-21T08:00:00.000Z"},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "partOf": [{"reference": f"Procedure/{session}"}],
        "effectiveDateTime": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T08:0{i % 6}:00+01:00",
        "valueQuantity": {
            "value": i % 11,
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        },
        "component": [
            {
                "code": {
                    "coding": [
                        {
                            "system": "https://reptrend.dev/fhir/CodeSystem/session-measure",
                            "code": "repetition-index",
                        }
                    ]
                },
                "valueInteger": 1 + i % 6,
            }
        ],
    }


def plain(url: str) -> str:
    return normalize_url(url).replace("postgresql+psycopg://", "postgresql://")


def load(url: str, count: int) -> int:
    """COPY `count` Observations into `resource` (and their history into `resource_version`);
    returns the average body size in bytes."""
    size = 0
    with psycopg.connect(plain(url)) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY resource (tenant, type, id, version_id, last_updated, deleted, body) "
                "FROM STDIN"
            ) as copy,
        ):
            chunk: list[bytes] = []
            for i in range(count):
                body = orjson.dumps(observation(i))
                size += len(body)
                chunk.append(
                    b"%s\tObservation\tobs-%08d\t1\t%s\tf\t%s\n"
                    % (TENANT.encode(), i, LOADED_AT.encode(), body)
                )
                if len(chunk) == 10_000:
                    copy.write(b"".join(chunk))
                    chunk.clear()
            copy.write(b"".join(chunk))
        # History as the write path keeps it (the export reads it for rows changed mid-run).
        connection.execute(
            "INSERT INTO resource_version "
            "(tenant, type, id, version_id, last_updated, method, deleted, body) "
            "SELECT tenant, type, id, version_id, last_updated, 'PUT', deleted, body FROM resource"
        )
        connection.execute("ANALYZE resource")
        connection.execute("ANALYZE resource_version")
    return size // count


# --- the measured runs, each in a fresh process ------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_export(url: str, directory: Path, expected: int) -> dict[str, float]:
    from datetime import UTC, datetime

    from api.export_worker import ExportConfig, ExportWorker
    from store.database import create_engine
    from store.export_jobs import ExportJobs, ExportLevel, ExportRequest
    from store.unit_of_work import UnitOfWork

    engine = create_engine(url)
    request = ExportRequest(ExportLevel.SYSTEM, ("Observation",), "bench")
    with UnitOfWork(engine, write=True) as uow:
        job = ExportJobs(uow.resources).create("bench", request, datetime.now(UTC))
        uow.commit()
    before = _peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    ExportWorker(
        engine, ExportConfig(directory, max_file_bytes=256 * 1024 * 1024, lease_seconds=30)
    ).run_pending()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    with UnitOfWork(engine) as uow:
        done = ExportJobs(uow.resources).load(job.id)
    exported = sum(f.count for f in done.progress.files)
    if done.status.value != "completed" or exported != expected:
        raise SystemExit(f"export incomplete: {done.status} {exported} of {expected}")
    engine.dispose()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rows": exported,
        "files": len(done.progress.files),
        "rss_before_mb": before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_ceiling(url: str) -> dict[str, float]:
    before = _peak_rss_mb()
    rows = size = 0
    with psycopg.connect(plain(url)) as connection:
        started, cpu = time.perf_counter(), time.process_time()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY (SELECT body::text FROM resource "
                f"WHERE tenant = '{TENANT}' AND type = 'Observation' AND NOT deleted) TO STDOUT"
            ) as copy,
        ):
            for data in copy:
                rows += 1
                size += len(data)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rows": rows,
        "bytes": size,
        "rss_before_mb": before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_child(kind: str, url: str, directory: Path, expected: int) -> dict[str, float]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--url",
            url,
            "--dir",
            str(directory),
            "--expected",
            str(expected),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


# --- orchestration ---------------------------------------------------------------------------


def scratch_schema(url: str) -> tuple[str, str]:
    schema = f"bench_export_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    separator = "&" if "?" in url else "?"
    return schema, f"{url}{separator}options=-csearch_path%3D{schema}"


def drop_schema(url: str, schema: str) -> None:
    admin = sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


def measure(url: str, size: int, runs: int, workdir: Path) -> dict[str, Any]:
    schema, scoped = scratch_schema(url)
    try:
        upgrade(scoped)
        started = time.perf_counter()
        average = load(scoped, size)
        load_seconds = time.perf_counter() - started
        exports, ceilings = [], []
        for run in range(runs):
            ceilings.append(run_child("ceiling", scoped, workdir, size))
            directory = workdir / f"run-{size}-{run}"
            exports.append(run_child("export", scoped, directory, size))
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        drop_schema(url, schema)
    export_rate = statistics.median(size / e["seconds"] for e in exports)
    ceiling_rate = statistics.median(size / c["seconds"] for c in ceilings)
    return {
        "size": size,
        "body_bytes": average,
        "load_rate": size / load_seconds,
        "export_rate": export_rate,
        "ceiling_rate": ceiling_rate,
        "ceiling_mb_s": statistics.median(c["bytes"] / c["seconds"] / 1e6 for c in ceilings),
        "ratio": export_rate / ceiling_rate,
        # Client CPU per resource: how much of the time this process itself needs.
        "export_cpu_us": statistics.median(e["cpu"] / size * 1e6 for e in exports),
        "ceiling_cpu_us": statistics.median(c["cpu"] / size * 1e6 for c in ceilings),
        "export_peak_rss_mb": max(e["peak_rss_mb"] for e in exports),
        "export_rss_before_mb": statistics.median(e["rss_before_mb"] for e in exports),
        "ceiling_peak_rss_mb": max(c["peak_rss_mb"] for c in ceilings),
        "files": exports[0]["files"],
        "export_runs": [round(size / e["seconds"]) for e in exports],
        "ceiling_runs": [round(size / c["seconds"]) for c in ceilings],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("REPTREND_BENCH_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--child", choices=("export", "ceiling"))
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--expected", type=int, default=0)
    args = parser.parse_args()
    if args.child == "export":
        print(json.dumps(child_export(args.url, args.dir, args.expected)))
        return 0
    if args.child == "ceiling":
        print(json.dumps(child_ceiling(args.url)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-export-") as workdir:
        results = [measure(args.url, size, args.runs, Path(workdir)) for size in args.sizes]
    print(
        "| resources | body B | export res/s | ceiling res/s (MB/s) | ratio | "
        "export peak RSS MB (at start) | ceiling peak RSS MB | files |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['size']:,} | {r['body_bytes']} | {r['export_rate']:,.0f} | "
            f"{r['ceiling_rate']:,.0f} ({r['ceiling_mb_s']:.0f}) | {r['ratio']:.2f} | "
            f"{r['export_peak_rss_mb']:.0f} ({r['export_rss_before_mb']:.0f}) | "
            f"{r['ceiling_peak_rss_mb']:.0f} | {r['files']} |"
        )
    for r in results:
        print(
            f"runs at {r['size']:,}: export {r['export_runs']} res/s, "
            f"ceiling {r['ceiling_runs']} res/s; client CPU per resource: export "
            f"{r['export_cpu_us']:.1f} us, ceiling {r['ceiling_cpu_us']:.1f} us; "
            f"load (COPY, then history by INSERT ... SELECT) {r['load_rate']:,.0f} res/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
