"""The full cohort report on a year of synthetic data, against DuckDB on the same files.

    uv run python bench/bench_cohort_report.py [--patients 50000] [--runs 3]
        [--cache /tmp/reptrend-bench] [--postgres postgresql://postgres@127.0.0.1:5432/test]

1. Generates once (cached under --cache, not in git) a directory of fact Parquet files in the
   layout `analytics.sources` reads: 50,000 patients over a year, about 1.7M flexion-category
   sessions with about 10M rated repetitions (uuid ids, as the server assigns them), an
   extension-in-lying session after most of them, daily pain reports, clinics and groups.
   Star layout (`analytics.sources`): `session_fact` names each repetition's session by
   `session`, the session's row in `exercise_session` (which keeps the uuid ids), and is
   written in session order, one session's repetitions together. DuckDB reads the same files
   and joins on the same number (`file_row_number`).
2. Runs, each in a fresh subprocess (so peak RSS is the run's own, from `os.wait4`):
   - reptrend: `analytics.report.cohort_report` for the whole tenant (every section 7 metric)
     from the Parquet directory;
   - DuckDB (the baseline): the same classification of every session and the same stop-rule
     status of every patient's protocol, in SQL on the same files.
   Prints the median wall time of --runs runs, the peak RSS and the ratio.
3. With --postgres: loads 1,000,000 sessions (and their repetitions) with COPY into a scratch
   schema of that database and times the report read from PostgreSQL through ADBC. Each
   session carries the figures ingest writes with it (migration 0006), computed by the
   store's own `store.session_facts.session_figures` from the session's repetitions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

AS_OF = date(2026, 11, 21)
FIRST_DAY = AS_OF - timedelta(days=365)
CLINICS = 20
OFFSETS = [60, -300, 600, 0, 330]  # minutes east of UTC, per clinic (clinic k: OFFSETS[k % 5])
PROTOCOLS = ["flexion-in-lying"] * 16 + ["rocking-knees-to-chest"] * 2 + ["spinal-rolling"] * 2
FAULTS = ["head-raised", "legs-straightened-on-lowering", "neck-strain"]
# The star layout's session number in session_fact (`analytics.sources.STAR_SESSION`; not
# imported, so the DuckDB child loads nothing of reptrend).
STAR_SESSION = "session"
LAYOUT_VERSION = 3  # 2: Parquet row groups at the writer default; 3: star layout


def _uniform(key: pl.Expr, salt: int) -> pl.Expr:
    """A deterministic pseudo-random number in [0, 1) per row."""
    return (key.hash(seed=salt) % 1_000_003).cast(pl.Float64) / 1_000_003


def _uuids(count: int, rng: random.Random) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def generate(directory: Path, patients: int, seed: int) -> None:
    """Write the fact files; skip when the directory already holds this exact data set."""
    marker = directory / "MANIFEST.json"
    manifest = {
        "patients": patients,
        "seed": seed,
        "layout": LAYOUT_VERSION,
        "polars": pl.__version__,
    }
    if marker.exists() and json.loads(marker.read_text()) == manifest:
        return
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = random.Random(seed)
    k = pl.col("k")
    people = (
        pl.DataFrame({"patient_id": _uuids(patients, rng)})
        .with_row_index("k")
        .with_columns(
            clinic=(k % CLINICS).cast(pl.Int32),
            protocol=pl.lit(pl.Series(PROTOCOLS)).gather(k.hash(1) % len(PROTOCOLS)),
            start=(k.hash(2) % 300).cast(pl.Int32),
            sessions=(10 + k.hash(3) % 49).cast(pl.Int32),
        )
        .with_columns(
            organization_id=pl.format("clinic-{}", pl.col("clinic")),
            offset=pl.lit(pl.Series(OFFSETS, dtype=pl.Int32)).gather(
                pl.col("clinic") % len(OFFSETS)
            ),
        )
    )
    people.select("patient_id", "organization_id").write_parquet(directory / "patient.parquet")
    people.select(
        group_id=pl.format("{}-patients", "organization_id"), patient_id="patient_id"
    ).write_parquet(directory / "group_member.parquet")
    people.select("patient_id", "protocol").write_parquet(directory / "prescription.parquet")

    # Sessions: about 1.2 a day from the patient's start, three time slots a day.
    s = people.select(
        "patient_id", "protocol", "start", "offset", j=pl.int_ranges(0, "sessions")
    ).explode("j")
    j = pl.col("j").cast(pl.Int64)
    key = pl.struct("patient_id", "j")
    s = s.with_columns(
        day=(pl.col("start") + j * 5 // 6).cast(pl.Int32),
        minute=(7 * 60 + (j % 3) * 300 + (key.hash(4) % 45)).cast(pl.Int32),
        reps=pl.lit(
            pl.Series([1, 2, 2, 3, 3, 4, 4, 4, 4] + [5] * 15 + [6] * 60 + [7] * 10 + [8] * 6)
        )
        .gather(key.hash(5) % 100)
        .cast(pl.Int32),
        shape=_uniform(key, 6),
        distance=_uniform(key, 7) < 0.5,
        extension=_uniform(key, 8),
    )
    s = s.with_columns(procedure_id=pl.Series(_uuids(s.height, rng)))
    local = pl.lit(FIRST_DAY).cast(pl.Datetime("us")) + pl.duration(
        days=pl.col("day"), minutes=pl.col("minute")
    )
    s = s.with_columns(
        local_date=(pl.lit(FIRST_DAY) + pl.duration(days=pl.col("day"))).cast(pl.Date),
        started_at=(local - pl.duration(minutes=pl.col("offset"))).dt.replace_time_zone("UTC"),
    ).with_columns(ended_at=pl.col("started_at") + pl.duration(seconds=30 + 25 * pl.col("reps")))
    flexion = s.select(
        "procedure_id",
        "patient_id",
        "protocol",
        status=pl.lit("completed"),
        local_date="local_date",
        started_at="started_at",
        utc_offset_minutes="offset",
        ended_at="ended_at",
        based_on=pl.format("ServiceRequest/{}-rx", "patient_id"),
    )
    # The Cobra after 93% of sessions, within minutes; 5 in 100 of those are late.
    follow = s.filter(pl.col("extension") < 0.93)
    late = pl.col("extension") < 0.05
    follow_start = pl.col("ended_at") + pl.duration(
        seconds=pl.when(late).then(1800).otherwise(20 + (pl.col("extension") * 10_000) % 580)
    )
    extension = follow.select(
        procedure_id=pl.Series(_uuids(follow.height, rng)),
        patient_id="patient_id",
        protocol=pl.lit("extension-in-lying"),
        status=pl.lit("completed"),
        local_date="local_date",
        started_at=follow_start,
        utc_offset_minutes="offset",
        ended_at=follow_start + pl.duration(seconds=60),
        based_on=pl.lit(None, pl.String),
    )
    sessions = pl.concat([flexion, extension]).sort("started_at", maintain_order=True)
    sessions.write_parquet(directory / "exercise_session.parquet")
    # The star layout: a repetition names its session by the session's row in that file.
    numbers = sessions.select("procedure_id").with_row_index(STAR_SESSION)
    s = s.join(numbers, on="procedure_id", how="left")

    # Repetitions: the session's shape decides the pain per repetition.
    r = (
        s.select(
            STAR_SESSION,
            "procedure_id",
            "shape",
            "distance",
            i=pl.int_ranges(1, pl.col("reps") + 1),
        )
        .explode("i")
        .with_columns(pl.col("i").cast(pl.Int32))
    )
    i = pl.col("i")
    rkey = pl.struct("procedure_id", "i")
    base = (pl.col("shape") * 1000 % 5).cast(pl.Int32)
    noise = (rkey.hash(9) % 3).cast(pl.Int32) - 1
    shape = pl.col("shape")
    pain = (
        pl.when(shape < 0.06)
        .then(base + i)  # rising with each repetition: worsening
        .when(shape < 0.41)
        .then(base + 3 - i // 2)  # wears off
        .when(shape < 0.61)
        .then(pl.lit(0))  # pain-free
        .when(shape < 0.86)
        .then(base // 2 + (i % 2))  # no change
        .otherwise(base + noise * 2)  # fluctuating
    ).clip(0, 10)
    fault_roll = _uniform(rkey, 10)
    r = r.with_columns(
        observation_id=pl.format("{}-r{}", "procedure_id", "i"),
        repetition_index=i,
        pain=pain.cast(pl.Int32),
        distance_cm=pl.when("distance").then((45 - i - (rkey.hash(11) % 2)).cast(pl.Float64)),
        form_faults=pl.when(fault_roll < 0.03).then(
            pl.lit(pl.Series(FAULTS)).gather(rkey.hash(12) % 3)
        ),
        peripheral_symptoms=_uniform(rkey, 13) < 0.002,
    )
    # In session order, as an export writes them; the session's own columns (its id, patient,
    # protocol, day, start) live once in exercise_session.
    r.select(
        "observation_id",
        "repetition_index",
        STAR_SESSION,
        "pain",
        "distance_cm",
        "form_faults",
        "peripheral_symptoms",
    ).sort(STAR_SESSION, "repetition_index").write_parquet(directory / "session_fact.parquet")

    # A daily pain report on 70% of days, from two weeks before the start to 40 days after.
    d = people.select("patient_id", "start", day=pl.int_ranges(-14, 41)).explode("day")
    dkey = pl.struct("patient_id", "day")
    d = (
        d.filter(_uniform(dkey, 14) < 0.7)
        .with_columns(
            local_date=(pl.lit(FIRST_DAY) + pl.duration(days=pl.col("start") + pl.col("day"))).cast(
                pl.Date
            ),
            pain=(6 - pl.col("day") // 8 + (dkey.hash(15) % 3).cast(pl.Int64) - 1)
            .clip(0, 10)
            .cast(pl.Int32),
        )
        .filter(pl.col("local_date") < AS_OF)
    )
    d.select(
        observation_id=pl.format("{}-d{}", "patient_id", "day"),
        patient_id="patient_id",
        local_date="local_date",
        pain="pain",
    ).write_parquet(directory / "pain_report.parquet")
    marker.write_text(json.dumps(manifest))
    print(
        f"generated {directory} in {time.perf_counter() - started:.0f} s: "
        f"{r.height:,} repetitions, "
        f"{s.height:,} flexion sessions, {extension.height:,} extension sessions, "
        f"{d.height:,} pain reports, {patients:,} patients",
        flush=True,
    )


# --- what each child process runs ---------------------------------------------------------------


def child_reptrend(source: str) -> dict[str, Any]:
    from analytics.cohorts import Cohort
    from analytics.report import cohort_report
    from analytics.sources import read_source

    if "://" in source:
        # `analytics.sources` imports the database side (SQLAlchemy, the store) on first use;
        # a server has it imported before any request, so it is not timed here either.
        for module in ("store.database", "store.protocol_catalog", "store.unit_of_work"):
            importlib.import_module(module)
    started = time.perf_counter()
    facts = read_source(source, "default")
    read = time.perf_counter() - started
    report = cohort_report(facts, Cohort(), AS_OF)
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "read": read,
        "patients": report.summary["cohort"]["patients"],
        "statuses": report.summary["patients_by_status"],
        "responses": report.summary["sessions_by_response"],
    }


def child_subset(source: str) -> dict[str, Any]:
    """The DuckDB baseline's work, in reptrend: classify every session and give every
    flexion-in-lying patient's stop-rule status (no other metric), with the report's own
    steps (patient and protocol ids as `pl.Enum` codes, as `cohort_report` keys them)."""
    from analytics import classification, stop_rule
    from analytics.cohorts import Cohort, cohort_patients
    from analytics.protocol_table import protocol_table
    from analytics.sources import read_source

    started = time.perf_counter()
    facts = read_source(source, "default")
    patients = pl.Enum(cohort_patients(facts, Cohort(), AS_OF).collect()["patient_id"])
    table = protocol_table()
    protocols = pl.Enum(table["protocol"])
    table = table.with_columns(pl.col("protocol").cast(protocols))
    sessions = facts.sessions.filter(
        pl.col("protocol") == "flexion-in-lying", pl.col("local_date") <= AS_OF
    ).with_columns(pl.col("patient_id").cast(patients), pl.col("protocol").cast(protocols))
    figures = classification.session_figures(facts.repetitions, stored=facts.stored_figures)
    assessed = classification.assess_sessions(sessions, figures, table).collect()
    roles = stop_rule.session_roles(assessed.lazy()).collect(engine="in-memory")
    states = stop_rule.protocol_states(roles.lazy(), AS_OF).collect()
    wall = time.perf_counter() - started
    counts = dict(
        states.group_by("status").len().with_columns(pl.col("status").cast(pl.String)).iter_rows()
    )
    return {"wall": wall, "statuses": counts}


def duckdb_version() -> str:
    import duckdb

    return str(duckdb.__version__)


DUCKDB_SQL = """
WITH reps AS (
  SELECT session,
         list(pain ORDER BY repetition_index) AS p,
         list(repetition_index ORDER BY repetition_index) AS x,
         bool_or(peripheral_symptoms) AS peripheral
  FROM read_parquet('{dir}/session_fact.parquet') WHERE pain IS NOT NULL GROUP BY session
), figures AS (
  SELECT session, peripheral, len(p) AS n, p[1] AS first, p[len(p)] AS last,
         list_max(p) AS peak, list_min(p) AS low,
         len(list_filter(list_zip(p[1:len(p) - 1], p[2:]), lambda t: t[2] > t[1])) AS rises,
         len(list_filter(list_zip(p[1:len(p) - 1], p[2:]), lambda t: t[2] < t[1])) AS falls,
         (len(p) * list_sum(list_transform(list_zip(x, p), lambda t: t[1] * t[2]))
            - list_sum(x) * list_sum(p))::DOUBLE
         / nullif(len(p) * list_sum(list_transform(x, lambda v: v * v))
                  - list_sum(x) ^ 2, 0) AS slope
  FROM reps
), sessions AS (
  SELECT s.procedure_id, s.patient_id, s.protocol, s.local_date, s.started_at,
         CASE
           WHEN coalesce(f.n, 0) < 3 THEN 'insufficient'
           WHEN f.peripheral OR (f.last - f.first >= 2 AND f.falls = 0 AND f.rises >= 2)
             THEN 'worsening'
           WHEN f.peak = 0 THEN 'pain-free'
           WHEN f.first > 0 AND f.last <= f.peak - 1 AND f.last <= f.first THEN 'wears-off'
           WHEN f.peak - f.low <= 1 THEN 'no-change'
           ELSE 'fluctuating'
         END AS response
  FROM read_parquet('{dir}/exercise_session.parquet', file_row_number = true) s
  LEFT JOIN figures f ON f.session = s.file_row_number
  WHERE s.protocol = 'flexion-in-lying' AND s.local_date <= DATE '{as_of}'
), staged AS (
  SELECT *, response = 'worsening' AS w,
         sum((response = 'worsening')::INT) OVER g - (response = 'worsening')::INT AS holds_before,
         lag(CASE WHEN response = 'worsening' THEN local_date END IGNORE NULLS)
           OVER g AS hold_since
  FROM sessions
  WINDOW g AS (PARTITION BY patient_id, protocol ORDER BY started_at, procedure_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), seen AS (
  SELECT *, max(local_date) OVER (PARTITION BY patient_id, protocol, holds_before
           ORDER BY started_at, procedure_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
           AS seen_max,
         hold_since + INTERVAL 7 DAY AS retry_from
  FROM staged
), roles AS (
  SELECT *, holds_before >= 1 AND (seen_max IS NULL OR seen_max < retry_from) AS hold_open
  FROM seen
), ordered AS (
  SELECT *, hold_open AND local_date < retry_from AS premature,
         hold_open AND local_date >= retry_from AND w AS failed,
         row_number() OVER (PARTITION BY patient_id, protocol
                            ORDER BY started_at DESC, procedure_id DESC) AS from_end
  FROM roles
), states AS (
  SELECT patient_id, protocol,
         sum(failed::INT) AS failed_retries,
         bool_or(w) AS any_hold,
         max(CASE WHEN from_end = 1 THEN w OR (premature AND NOT w) END) AS open_now,
         max(CASE WHEN from_end = 1 THEN CASE WHEN w THEN local_date ELSE hold_since END END)
           AS open_since
  FROM ordered GROUP BY patient_id, protocol
)
SELECT CASE
         WHEN failed_retries >= 2 THEN 'clinician-review'
         WHEN open_now AND DATE '{as_of}' < open_since + INTERVAL 7 DAY THEN 'on-hold'
         WHEN open_now AND DATE '{as_of}' <= open_since + INTERVAL 14 DAY THEN 'retry-due'
         WHEN open_now THEN 'retry-overdue'
         WHEN any_hold THEN 'resumed'
         ELSE 'active'
       END AS status, count(*) AS patients
FROM states GROUP BY status ORDER BY status
"""


def child_duckdb(directory: str) -> dict[str, Any]:
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {os.cpu_count() or 1}")
    started = time.perf_counter()
    rows = connection.execute(DUCKDB_SQL.format(dir=directory, as_of=AS_OF.isoformat())).fetchall()
    wall = time.perf_counter() - started
    return {"wall": wall, "statuses": dict(rows)}


# --- running children and reporting ---------------------------------------------------------------


def run_child(kind: str, source: str) -> tuple[dict[str, Any], float, float]:
    """The child's own result, its peak RSS in MB and its CPU seconds (user + system: honest
    when other jobs share the two cores), both from GNU time: a child forked from this
    (large) process would inherit its RSS into ru_maxrss before it execs."""
    command = [sys.executable, __file__, "--child", kind, "--source", source]
    completed = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command],
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )
    peak_kb, user, system = completed.stderr.decode().strip().splitlines()[-1].split()
    result = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    return result, int(peak_kb) / 1024, float(user) + float(system)


def measure_interleaved(kinds: list[str], source: str, runs: int) -> dict[str, dict[str, Any]]:
    """Each run runs every kind once, in turn, so a burst of load on the shared machine hits
    them alike."""
    raw: dict[str, list[tuple[dict[str, Any], float, float]]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            raw[kind].append(run_child(kind, source))
    return {kind: summarise(results) for kind, results in raw.items()}


def measure(kind: str, source: str, runs: int) -> dict[str, Any]:
    return summarise([run_child(kind, source) for _ in range(runs)])


def summarise(results: list[tuple[dict[str, Any], float, float]]) -> dict[str, Any]:
    walls = [r["wall"] for r, _, _ in results]
    return {
        "median": statistics.median(walls),
        "walls": walls,
        "reads": [r.get("read", 0.0) for r, _, _ in results],
        "rss": max(rss for _, rss, _ in results),
        "cpu": statistics.median(cpu for _, _, cpu in results),
        "result": results[0][0],
    }


def _line(name: str, figures: dict[str, Any]) -> str:
    walls = ", ".join(f"{w:.2f}" for w in figures["walls"])
    return (
        f"{name}: median {figures['median']:.2f} s wall ({walls}); process CPU "
        f"{figures['cpu']:.1f} s (incl. start-up); peak RSS {figures['rss']:.0f} MB"
    )


def _copy_csv(cursor: Any, table: str, frame: pl.DataFrame, chunk: int = 500_000) -> None:
    """COPY a frame as CSV in chunks (psycopg's row-by-row writer is ~20x slower)."""
    columns = ", ".join(frame.columns)
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        for offset in range(0, frame.height, chunk):
            part = frame.slice(offset, chunk)
            copy.write(
                part.write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f%z")
            )


def with_figures(sessions: pl.DataFrame, repetitions: pl.DataFrame) -> pl.DataFrame:
    """`sessions` with the figure columns ingest writes (migration 0006), computed by the
    store's own function (`store.session_facts.session_figures`) from each session's rows."""
    from store.session_facts import FIGURE_INPUTS, session_figures

    rows: list[dict[str, Any]] = []
    current: str | None = None
    facts: list[dict[str, Any]] = []
    ordered = repetitions.select(FIGURE_INPUTS).sort("procedure_id")
    for row in ordered.iter_rows(named=True):
        if row["procedure_id"] != current:
            if current is not None:
                rows.append({"procedure_id": current, **session_figures(facts)})
            current, facts = row["procedure_id"], []
        facts.append(row)
    if current is not None:
        rows.append({"procedure_id": current, **session_figures(facts)})
    no_facts = session_figures(())  # a session without repetitions: 0 rated, nothing packed
    figures = pl.DataFrame(
        rows,
        schema={
            "procedure_id": pl.String,
            "rated_repetitions": pl.Int32,
            "pain_code": pl.Int64,
            "repetition_counts": pl.Int64,
        },
        orient="row",
    )
    return sessions.join(figures, on="procedure_id", how="left").with_columns(
        pl.col("rated_repetitions").fill_null(no_facts["rated_repetitions"])
    )


def load_postgres(url: str, directory: Path, sessions: int) -> str:
    """COPY the first `sessions` sessions (by start), their repetitions and their patients'
    pain reports into a fresh scratch schema built by the migrations; returns its URL."""
    import psycopg

    from store.database import normalize_url
    from store.schema import upgrade

    schema = "bench_analytics"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    scoped = f"{plain}{'&' if '?' in plain else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as connection:
        loaded = connection.execute(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'exercise_session'",
            (schema,),
        ).fetchone()
        if loaded is not None:
            # Loaded, and with the figure columns filled (migration 0006).
            count = connection.execute(
                f"SELECT count(*), count(rated_repetitions) FROM {schema}.exercise_session"
            )
            row = count.fetchone()
            if row is not None and row[0] == row[1] == sessions:
                print(f"reusing PostgreSQL schema {schema} ({sessions:,} sessions)", flush=True)
                return scoped
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.execute(f"CREATE SCHEMA {schema}")
    upgrade(normalize_url(scoped))
    chosen = pl.scan_parquet(directory / "exercise_session.parquet").head(sessions).collect()
    patients = chosen.select("patient_id").unique()
    # The table holds the session's columns on every repetition row (the star file does not).
    reps = (
        pl.scan_parquet(directory / "session_fact.parquet")
        .join(
            chosen.lazy()
            .select("procedure_id", "patient_id", "protocol", "local_date", "started_at")
            .with_row_index(STAR_SESSION),
            on=STAR_SESSION,
            how="inner",
        )
        .drop(STAR_SESSION)
        .collect()
    )
    reports = (
        pl.scan_parquet(directory / "pain_report.parquet")
        .join(patients.lazy(), on="patient_id", how="semi")
        .with_columns(
            effective_at=pl.col("local_date").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        )
        .collect()
    )
    started = time.perf_counter()
    chosen = with_figures(chosen, reps)
    print(f"session figures computed in {time.perf_counter() - started:.0f} s", flush=True)
    tenant = pl.lit("default")
    with psycopg.connect(scoped) as connection, connection.cursor() as cursor:
        _copy_csv(cursor, "exercise_session", chosen.with_columns(tenant=tenant))
        _copy_csv(cursor, "session_fact", reps.with_columns(tenant=tenant))
        _copy_csv(cursor, "pain_report", reports.with_columns(tenant=tenant))
        connection.commit()
    with psycopg.connect(scoped, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    rated = chosen.filter(pl.col("protocol") != "extension-in-lying").height
    print(
        f"loaded {chosen.height:,} sessions ({rated:,} with repetitions), {reps.height:,} "
        f"repetitions and {reports.height:,} pain reports into PostgreSQL schema {schema} "
        f"with COPY in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return scoped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reptrend-bench"))
    parser.add_argument("--postgres", default=None, help="also time the report from PostgreSQL")
    parser.add_argument("--pg-sessions", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["reptrend", "subset", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "reptrend":
        print(json.dumps(child_reptrend(args.source)))
        return
    if args.child == "subset":
        print(json.dumps(child_subset(args.source)))
        return
    if args.child == "duckdb":
        print(json.dumps(child_duckdb(args.source)))
        return

    directory = args.cache / f"cohort-{args.patients}-{args.seed}"
    generate(directory, args.patients, args.seed)
    load = os.getloadavg()[0]
    figures = measure_interleaved(["reptrend", "subset", "duckdb"], str(directory), args.runs)
    reptrend, subset, duckdb = figures["reptrend"], figures["subset"], figures["duckdb"]
    print(
        f"load average (1 min) before / after the runs: {load:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores (other jobs share them)"
    )
    print(_line(f"reptrend full cohort report (polars {pl.__version__}, Parquet)", reptrend))
    print(_line("reptrend classification + statuses only", subset))
    print(_line(f"DuckDB {duckdb_version()} classification + statuses (same files)", duckdb))
    print(
        f"ratio DuckDB / reptrend: full report {duckdb['median'] / reptrend['median']:.2f}x, "
        f"same work {duckdb['median'] / subset['median']:.2f}x"
    )
    flexion = {k: v for k, v in reptrend["result"]["statuses"].items() if k != "no-sessions"}
    print(f"statuses reptrend: {flexion}")
    print(f"statuses DuckDB:   {dict(sorted(duckdb['result']['statuses'].items()))}")
    if args.postgres:
        scoped = load_postgres(args.postgres, directory, args.pg_sessions)
        pg = measure("reptrend", scoped, args.runs)
        print(_line("reptrend full cohort report from PostgreSQL (ADBC read included)", pg))
        print(f"  of which reading: median {statistics.median(pg['reads']):.2f} s")


if __name__ == "__main__":
    main()
