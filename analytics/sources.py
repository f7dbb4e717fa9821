"""Where analytics reads from: the only I/O of the analytics package.

Three sources give the same `Facts` for one tenant:

- the service's database: the narrow fact tables (`exercise_session`, `session_fact`,
  `pain_report`) and the search index (Patient organization, Group members, prescribed
  exercise codes). PostgreSQL is read through ADBC (`adbc_driver_postgresql`), which streams
  Arrow batches straight into polars; SQLite through the standard library. The figures the
  store keeps with each session (migration 0006) come as `Facts.stored_figures`; only the
  repetitions of the sessions without them are read, and the ones with a form fault.
- a directory of fact files (`exercise_session`, `session_fact`, `pain_report`, `patient`,
  `group_member`, `prescription`, each `.parquet` or `.ndjson`), the columns of the tables
  above; scanned lazily, so a Parquet file is read only for the columns a report needs.
  `session_fact` names each repetition's session by `procedure_id`, as the table does, or, in
  the star layout, by `session`: the 0-based row of its session in the `exercise_session`
  file (the ids stay there, once per session). Then sessions and repetitions carry that number
  as `session_key` (`analytics.facts.KEYED_SESSION_SCHEMA`), so the 10M-row grouping and join
  work on integers and the uuid text of every repetition is neither stored nor decoded.
- a directory of FHIR NDJSON (the bulk export's output: `Patient.ndjson`,
  `Procedure.ndjson`, `Observation.ndjson`, `Group.ndjson`, `ServiceRequest.ndjson`, or
  `Type_N.ndjson` parts), turned into the same facts by the store's own fact derivation
  (`store.session_facts`), so a file gives exactly what ingest would have stored.

Every read is for one tenant: SQL filters on the `tenant` column; a fact file with a `tenant`
column is filtered on it; a FHIR export directory is one tenant's export by construction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import polars as pl

from analytics.facts import (
    FAULTY_REPETITION_SCHEMA,
    GROUP_MEMBER_SCHEMA,
    KEYED_REPETITION_SCHEMA,
    KEYED_SESSION_SCHEMA,
    PAIN_REPORT_SCHEMA,
    PATIENT_SCHEMA,
    PRESCRIPTION_SCHEMA,
    REPETITION_SCHEMA,
    SESSION_KEY,
    SESSION_SCHEMA,
    STORED_FIGURE_SCHEMA,
    Facts,
    conform,
)
from domain.codes import EXERCISE_SYSTEM
from domain.protocols import CATALOG, InvalidParameter, ProtocolParameters
from store.errors import InvalidRequest, ReptrendError
from store.indexing import split_reference
from store.session_facts import (
    exercise_session_row,
    general_pain_report,
    session_observation,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# The database side (SQLAlchemy, the store's tables and unit of work) is imported where it is
# used: importing it costs about 3 s of CPU here, more than a report on a small directory of
# fact files takes.

# Statuses that say the resource did not happen as recorded (as the fact writer skips them).
_VOID: Final = ("entered-in-error", "not-done", "cancelled", "revoked")

# The figures each session keeps (migration 0006): a session with a `pain_code` has its
# figures stored; one with `rated_repetitions` NULL (not computed) or a `pain_code` NULL (not
# regular) has them computed from its repetitions; one with no rated repetition needs neither.
_FIGURE_COLUMNS: Final = ("rated_repetitions", "pain_code", "repetition_counts")
# The condition of the partial index `ix_exercise_session_unpacked`, word for word, so the
# planner uses it (`store.tables.UNPACKED_SESSION`: not imported, see above).
UNPACKED_SESSION: Final = (
    "pain_code IS NULL AND (rated_repetitions IS NULL OR rated_repetitions > 0)"
)
_UNSTORED: Final = (
    f"SELECT procedure_id FROM exercise_session WHERE tenant = {{p}} AND {UNPACKED_SESSION}"
)


def _prescriptions(authored_on: str) -> str:
    """Each prescribed (patient, exercise) with the day it was written: `authoredOn` as
    written (its first 10 characters are the local date), read from the body by the
    dialect's JSON operator `authored_on`."""
    return (
        f"SELECT DISTINCT subject.target_id AS patient_id, code.code AS protocol, "
        f"{authored_on} AS authored_on "
        "FROM search_token code JOIN search_reference subject "
        "ON subject.tenant = code.tenant AND subject.type = code.type "
        "AND subject.resource_id = code.resource_id AND subject.param = 'patient' "
        "JOIN resource r ON r.tenant = code.tenant AND r.type = code.type "
        "AND r.id = code.resource_id "
        "WHERE code.tenant = {p} AND code.type = 'ServiceRequest' AND code.param = 'code' "
        f"AND code.system = '{EXERCISE_SYSTEM}' AND NOT EXISTS (SELECT 1 FROM search_token st "
        "WHERE st.tenant = code.tenant AND st.type = code.type "
        "AND st.resource_id = code.resource_id AND st.param = 'status' "
        f"AND st.code IN ({', '.join(repr(v) for v in _VOID)}))"
    )


# One query per frame. `{p}` is the backend's placeholder for the tenant.
_QUERIES: Final[Mapping[str, str]] = {
    # With the figure columns: `_with_stored_figures` splits them off.
    "sessions": (
        "SELECT procedure_id, patient_id, protocol, local_date, started_at, ended_at, "
        f"{', '.join(_FIGURE_COLUMNS)} FROM exercise_session WHERE tenant = {{p}}"
    ),
    "repetitions": (
        "SELECT procedure_id, repetition_index, pain, distance_cm, form_faults, "
        "peripheral_symptoms FROM session_fact WHERE tenant = {p} AND pain IS NOT NULL "
        f"AND procedure_id IN ({_UNSTORED})"
    ),
    # Every session's (an index covers them: the 3% of rows with a fault, not a table scan).
    "faulty_repetitions": (
        "SELECT procedure_id, repetition_index, form_faults FROM session_fact "
        "WHERE tenant = {p} AND form_faults IS NOT NULL AND pain IS NOT NULL"
    ),
    "pain_reports": "SELECT patient_id, local_date, pain FROM pain_report WHERE tenant = {p}",
    "patients": (
        "SELECT r.id AS patient_id, s.target_id AS organization_id FROM resource r "
        "LEFT JOIN search_reference s ON s.tenant = r.tenant AND s.type = 'Patient' "
        "AND s.resource_id = r.id AND s.param = 'organization' "
        "WHERE r.tenant = {p} AND r.type = 'Patient' AND r.deleted = {false}"
    ),
    "group_members": (
        "SELECT resource_id AS group_id, target_id AS patient_id FROM search_reference "
        "WHERE tenant = {p} AND type = 'Group' AND param = 'member' "
        "AND (target_type = 'Patient' OR target_type IS NULL)"
    ),
    # Prescribed exercise: the ServiceRequest's code in the exercise CodeSystem, its patient,
    # unless the request is void.
    "prescriptions": _prescriptions("json_extract(r.body, '$.authoredOn')"),
}
_GROUP_BODIES: Final = (
    "SELECT id, body FROM resource WHERE tenant = {p} AND type = 'Group' AND deleted = {false}"
)
_SCHEMAS: Final[Mapping[str, pl.Schema]] = {
    "sessions": SESSION_SCHEMA,
    "repetitions": REPETITION_SCHEMA,
    "stored_figures": STORED_FIGURE_SCHEMA,
    "faulty_repetitions": FAULTY_REPETITION_SCHEMA,
    "pain_reports": PAIN_REPORT_SCHEMA,
    "patients": PATIENT_SCHEMA,
    "group_members": GROUP_MEMBER_SCHEMA,
    "prescriptions": PRESCRIPTION_SCHEMA,
}


class SourceNotFound(InvalidRequest):
    """The report's source is neither a database URL nor a directory of facts."""


def read_source(source: str, tenant: str) -> Facts:
    """A database URL (sqlite:///..., postgresql://...) or a directory of files."""
    if "://" in source:
        from store.database import create_engine

        engine = create_engine(source, pool_size=1)
        try:
            return read_database(engine, tenant)
        finally:
            engine.dispose()
    return read_directory(Path(source), tenant)


# --- the service's database -----------------------------------------------------------------


def read_database(engine: Engine, tenant: str) -> Facts:
    """Every fact of one tenant, read eagerly (the connection is closed on return), with the
    protocol parameters the tenant's stored PlanDefinitions set (as ingest uses them)."""
    if engine.dialect.name == "postgresql":
        frames = _read_postgres(engine, tenant)
    elif engine.dialect.name == "sqlite":
        frames = _read_sqlite(engine, tenant)
    else:
        raise InvalidRequest(f"cannot read analytics from {engine.dialect.name}", "source")
    codes = set(frames["sessions"]["protocol"].unique().to_list()) | set(CATALOG)
    return _facts(
        {name: conform(frame, _SCHEMAS[name]) for name, frame in frames.items()},
        _stored_parameters(engine, tenant, codes),
    )


def _facts(
    frames: Mapping[str, pl.LazyFrame],
    parameters: Mapping[str, ProtocolParameters] | None = None,
) -> Facts:
    return Facts(
        sessions=frames["sessions"],
        repetitions=frames["repetitions"],
        pain_reports=frames["pain_reports"],
        patients=frames["patients"],
        group_members=frames["group_members"],
        prescriptions=frames["prescriptions"],
        parameters=parameters or {},
        stored_figures=frames.get("stored_figures"),
        faulty_repetitions=frames.get("faulty_repetitions"),
    )


def _with_stored_figures(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Splits the figure columns off the sessions: the stored figures of the sessions that
    have them (`STORED_FIGURE_SCHEMA`; bigints read back as the unsigned bits written)."""
    sessions = frames["sessions"]
    stored = sessions.filter(pl.col("pain_code").is_not_null()).select(
        "procedure_id",
        n=pl.col("rated_repetitions").cast(pl.Int32),
        code=pl.col("pain_code").cast(pl.Int64).reinterpret(signed=False),
        counts=pl.col("repetition_counts").cast(pl.Int64).reinterpret(signed=False),
    )
    return {**frames, "sessions": sessions.drop(_FIGURE_COLUMNS), "stored_figures": stored}


def _stored_parameters(
    engine: Engine, tenant: str, codes: set[str]
) -> dict[str, ProtocolParameters]:
    from store.protocol_catalog import protocol_definitions
    from store.unit_of_work import UnitOfWork

    with UnitOfWork(engine, tenant) as uow:
        definitions = protocol_definitions(uow.resources, codes)
    return {code: d.parameters for code, d in definitions.items()}


def _libpq_url(engine: Engine) -> str:
    """The engine's URL as libpq reads it (no SQLAlchemy driver suffix), password included."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# The two big frames, sessions and repetitions, are read in this many parts, each part on
# its own connection, beside one connection that reads the small frames one after the other
# (a connection costs about 0.1 s here). Each part is a range of the table's pages (a TID
# range scan), so each reads only its own pages: splitting by a hash of the procedure id made
# both parts scan the whole table (3M repetitions: 3.2-4.4 s by hash, 2.7-3.2 s by pages).
# The last part is open-ended, so no page is ever left out. More parts than cores did not
# help. With the figures stored (migration 0006) the repetition parts are mostly empty and
# the sessions are the larger read.
_PARTITIONS: Final = 2
_SPLIT_TABLES: Final[Mapping[str, str]] = {
    "sessions": "exercise_session",
    "repetitions": "session_fact",
}
_REPEATABLE_READ: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"


def _pages(table: str) -> str:
    return f"SELECT pg_relation_size('{table}') / current_setting('block_size')::int8"


def _page_ranges(pages: int) -> list[str]:
    step = pages // _PARTITIONS + 1
    bounds = [f"ctid >= '({k * step},0)'::tid" for k in range(_PARTITIONS)]
    return [
        f"{low} AND ctid < '({(k + 1) * step},0)'::tid" if k < _PARTITIONS - 1 else low
        for k, low in enumerate(bounds)
    ]


# What ADBC costs grows with the number of columns far more than with their bytes (3M
# repetitions, client CPU: 6 columns 3.5 s, one bigint 0.5 s, one mostly-null text 0.8 s;
# PostgreSQL's COPY out likewise). So the big frames travel with their small integers packed,
# exactly, into one bigint (a value v of 32 bits in the low half as v + 2**31), and the
# repetition's symptoms flag folded into its fault text; `_unpack` restores the table's
# columns. Repetitions: 4 columns instead of 6; pain reports: 2 instead of 3.
_HALF: Final = 1 << 32
_OFFSET: Final = 1 << 31
_POSTGRES_QUERIES: Final[Mapping[str, str]] = {
    **_QUERIES,
    "prescriptions": _prescriptions("r.body ->> 'authoredOn'"),
    "repetitions": (
        f"SELECT procedure_id, repetition_index::int8 * {_HALF} + (pain::int8 + {_OFFSET}) "
        "AS index_pain, distance_cm, "
        # '+' marks peripheral symptoms, ':' precedes the fault codes (null: no faults).
        "CASE WHEN peripheral_symptoms THEN '+' ELSE '' END || coalesce(':' || form_faults, '') "
        "AS symptoms_faults FROM session_fact WHERE tenant = {p} AND pain IS NOT NULL "
        f"AND procedure_id IN ({_UNSTORED})"
    ),
    "pain_reports": (
        f"SELECT patient_id, (local_date - DATE '1970-01-01')::int8 * {_HALF} "
        f"+ (pain::int8 + {_OFFSET}) AS day_pain FROM pain_report WHERE tenant = {{p}}"
    ),
}


def _high(packed: str) -> pl.Expr:
    return pl.col(packed) // _HALF


def _low(packed: str) -> pl.Expr:
    return pl.col(packed) % _HALF - _OFFSET


def _unpack(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The table's own columns from a frame of `_POSTGRES_QUERIES`."""
    if name == "repetitions":
        text = pl.col("symptoms_faults")
        rest = text.str.strip_prefix("+")
        return frame.select(
            "procedure_id",
            repetition_index=_high("index_pain").cast(pl.Int32),
            pain=_low("index_pain").cast(pl.Int32),
            distance_cm="distance_cm",
            form_faults=pl.when(rest.str.starts_with(":")).then(rest.str.slice(1)),
            peripheral_symptoms=text.str.starts_with("+"),
        )
    if name == "pain_reports":
        return frame.select(
            "patient_id",
            local_date=_high("day_pain").cast(pl.Int32).cast(pl.Date),
            pain=_low("day_pain").cast(pl.Int32),
        )
    return frame


Frames = dict[str, pl.DataFrame]


# ADBC streams a query's rows through COPY in Arrow batches only when the query has no bound
# parameters; with one, libpq holds the whole result before the first batch (1M sessions:
# 600 MB peak and 0.93 s, against 300 MB and 0.50 s by COPY). So each read transaction sets
# the tenant once, as a bound parameter, in a transaction-local setting, and the queries
# compare with that setting (`current_setting` is stable: an index scan still uses it).
_SET_TENANT: Final = "SELECT set_config('reptrend.analytics_tenant', $1, true)"
_TENANT: Final = "current_setting('reptrend.analytics_tenant')"


def _postgres_sql(query: str) -> str:
    return query.format(p=_TENANT, false="false")


def _read_postgres(engine: Engine, tenant: str) -> Frames:
    from adbc_driver_postgresql import dbapi

    url = _libpq_url(engine)
    # Every query reads one snapshot (exported by this first transaction, which stays open
    # until they are done): the frames agree with each other while ingest writes, and a row
    # updated meanwhile cannot move from one page range to the other and be read twice.
    with dbapi.connect(url) as first, first.cursor() as cursor:
        cursor.execute(_REPEATABLE_READ)
        sizes = ", ".join(f"({_pages(table)})" for table in _SPLIT_TABLES.values())
        cursor.execute(f"SELECT pg_export_snapshot(), {sizes}")
        row = cursor.fetchone()
        if row is None:
            raise InvalidRequest("PostgreSQL exported no snapshot", "source")
        snapshot = str(row[0])
        ranges = dict(zip(_SPLIT_TABLES, (_page_ranges(int(n)) for n in row[1:]), strict=True))
        Bodies = list[tuple[str, Mapping[str, Any]]]

        def fetch(queries: Mapping[str, str], group_bodies: bool) -> tuple[Frames, Bodies]:
            """The queries' frames (and the stored Groups' bodies), one after the other on
            one connection of the snapshot."""
            frames: dict[str, pl.DataFrame] = {}
            bodies: Bodies = []
            with dbapi.connect(url) as connection, connection.cursor() as cursor:
                cursor.execute(_REPEATABLE_READ)
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                cursor.execute(_SET_TENANT, parameters=(tenant,))
                cursor.fetchall()
                for name, query in queries.items():
                    cursor.execute(_postgres_sql(query))
                    frames[name] = pl.from_arrow(cursor.fetch_arrow_table())  # type: ignore[assignment]
                if group_bodies:
                    cursor.execute(_postgres_sql(_GROUP_BODIES))
                    bodies = [
                        (group_id, body if isinstance(body, dict) else orjson.loads(body))
                        for group_id, body in cursor.fetchall()
                    ]
            return frames, bodies

        parts = [
            {name: f"{_POSTGRES_QUERIES[name]} AND {ranges[name][k]}" for name in _SPLIT_TABLES}
            for k in range(_PARTITIONS)
        ]
        small = {n: q for n, q in _POSTGRES_QUERIES.items() if n not in _SPLIT_TABLES}
        with ThreadPoolExecutor(max_workers=_PARTITIONS + 1) as pool:
            part_futures = [pool.submit(fetch, queries, False) for queries in parts]
            frames, bodies = pool.submit(fetch, small, True).result()
            read_parts = [future.result()[0] for future in part_futures]
    for name in _SPLIT_TABLES:
        frames[name] = pl.concat([part[name] for part in read_parts])
    frames["group_members"] = _with_body_members(frames["group_members"], bodies)
    return _with_stored_figures({name: _unpack(name, frame) for name, frame in frames.items()})


def _sqlite_path(engine: Engine) -> str:
    from sqlalchemy.engine import make_url

    from store.database import normalize_url

    database = make_url(normalize_url(str(engine.url))).database
    if not database or database == ":memory:":
        raise InvalidRequest("analytics needs a SQLite database file", "source")
    return database


def _read_sqlite(engine: Engine, tenant: str) -> dict[str, pl.DataFrame]:
    # A read-only connection of its own: a report never takes SQLite's write lock.
    uri = f"file:{_sqlite_path(engine)}?mode=ro"
    frames: dict[str, pl.DataFrame] = {}
    with _closing(sqlite3.connect(uri, uri=True)) as connection:
        for name, query in _QUERIES.items():
            cursor = connection.execute(query.format(p=":tenant", false="0"), {"tenant": tenant})
            columns = [d[0] for d in cursor.description]
            frames[name] = pl.DataFrame(
                cursor.fetchall(), schema=_sqlite_schema(columns, _SCHEMAS[name]), orient="row"
            )
        rows = connection.execute(_GROUP_BODIES.format(p="?", false="0"), (tenant,)).fetchall()
    bodies = [(group_id, orjson.loads(body)) for group_id, body in rows if body]
    frames["group_members"] = _with_body_members(frames["group_members"], bodies)
    return _with_stored_figures(frames)


class _closing:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *_exc: object) -> None:
        self.connection.close()


def _sqlite_schema(columns: Sequence[str], schema: pl.Schema) -> dict[str, pl.DataType]:
    """SQLite hands back dates and instants as text and booleans as 0/1."""
    result: dict[str, pl.DataType] = {}
    for column in columns:
        if column in _FIGURE_COLUMNS:
            result[column] = pl.Int64()
            continue
        dtype = schema[column]
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            result[column] = pl.String()
        elif dtype == pl.Boolean:
            result[column] = pl.Int64()
        else:
            result[column] = dtype
    return result


def _with_body_members(
    indexed: pl.DataFrame, bodies: Sequence[tuple[str, Mapping[str, Any]]]
) -> pl.DataFrame:
    """Group members from the search index, plus those of any stored Group the index has no
    member row for (its body's `member[].entity` references)."""
    indexed_groups = set(indexed["group_id"].to_list()) if indexed.height else set()
    extra = [
        {"group_id": group_id, "patient_id": patient_id}
        for group_id, body in bodies
        if group_id not in indexed_groups
        for patient_id in _body_members(body)
    ]
    if not extra:
        return indexed
    return pl.concat([indexed, pl.DataFrame(extra, schema=indexed.schema)])


def _body_members(group: Mapping[str, Any]) -> Iterator[str]:
    for member in group.get("member", ()):
        reference = (member.get("entity") or {}).get("reference")
        if isinstance(reference, str):
            target_type, target_id = split_reference(reference)
            if target_type in ("Patient", None):
                yield target_id


# --- a directory of files ----------------------------------------------------------------------

_FACT_FILES: Final[Mapping[str, str]] = {
    "sessions": "exercise_session",
    "repetitions": "session_fact",
    "pain_reports": "pain_report",
    "patients": "patient",
    "group_members": "group_member",
    "prescriptions": "prescription",
}


def read_directory(directory: Path, tenant: str) -> Facts:
    """Fact files if the directory has `exercise_session.*`, else a FHIR NDJSON export."""
    if not directory.is_dir():
        raise SourceNotFound(
            f"report source {str(directory)!r} is neither a database URL nor a directory",
            "source",
        )
    if any(directory.glob("exercise_session.*")):
        return _read_fact_files(directory, tenant)
    if not any(_ndjson_paths(directory, t) for t in _EXPORT_TYPES):
        raise SourceNotFound(
            f"{str(directory)!r} has no fact files and no FHIR NDJSON "
            f"({', '.join(f'{t}.ndjson' for t in _EXPORT_TYPES)}, or their parts as the bulk "
            "export names them, e.g. Procedure.1.001.ndjson)",
            "source",
        )
    return read_fhir_export(directory)


def _scan(path: Path) -> pl.LazyFrame:
    if path.suffix == ".parquet":
        return pl.scan_parquet(path)
    return pl.scan_ndjson(path)


# The star layout's column in `session_fact`: the row of the session in `exercise_session`.
STAR_SESSION: Final = "session"


def _fact_file(directory: Path, stem: str) -> Path | None:
    found = sorted(directory.glob(f"{stem}.parquet")) or sorted(directory.glob(f"{stem}.ndjson"))
    return found[0] if found else None


def _read_fact_files(directory: Path, tenant: str) -> Facts:
    paths = {name: _fact_file(directory, stem) for name, stem in _FACT_FILES.items()}
    repetitions = paths["repetitions"]
    star = repetitions is not None and STAR_SESSION in _scan(repetitions).collect_schema()
    schemas = dict(_SCHEMAS)
    if star:
        schemas.update(sessions=KEYED_SESSION_SCHEMA, repetitions=KEYED_REPETITION_SCHEMA)
    frames: dict[str, pl.LazyFrame] = {}
    for name, path in paths.items():
        if path is None:
            frames[name] = pl.LazyFrame(schema=schemas[name])
            continue
        frame = _scan(path)
        if star and name == "sessions":
            # Numbered before the tenant filter: the row in the file, as the writer counted.
            frame = frame.with_row_index(SESSION_KEY)
        elif star and name == "repetitions":
            frame = frame.rename({STAR_SESSION: SESSION_KEY})
        if "tenant" in frame.collect_schema():
            frame = frame.filter(pl.col("tenant") == tenant)
        if name == "repetitions":
            frame = frame.filter(pl.col("pain").is_not_null())
        frames[name] = conform(frame, schemas[name])
    return _facts(frames)


# What a report reads of a FHIR export (the types the facts come from).
_EXPORT_TYPES: Final = ("Patient", "Procedure", "Observation", "Group", "ServiceRequest")


def _ndjson_paths(directory: Path, resource_type: str) -> list[Path]:
    """`Type.ndjson`, `Type_N.ndjson`, and the export's own parts: `Type.001.ndjson` from
    `reptrend export`, `Type.1.001.ndjson` from `$export` (`store.export_writer`)."""
    patterns = (f"{resource_type}.ndjson", f"{resource_type}_*.ndjson", f"{resource_type}.*.ndjson")
    return sorted({path for pattern in patterns for path in directory.glob(pattern)})


def _ndjson_resources(directory: Path, resource_type: str) -> Iterator[dict[str, Any]]:
    for path in _ndjson_paths(directory, resource_type):
        with path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


def read_fhir_export(directory: Path) -> Facts:
    """Facts from FHIR resources, derived as the store derives them on write."""
    sessions: list[dict[str, Any]] = []
    for procedure in _ndjson_resources(directory, "Procedure"):
        if procedure.get("status") in _VOID:
            continue
        try:
            row = exercise_session_row(procedure["id"], procedure)
        except ReptrendError:
            continue  # the store would have refused it
        if row is not None:
            sessions.append(row)
    known = {row["procedure_id"] for row in sessions}
    repetitions: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    for observation in _ndjson_resources(directory, "Observation"):
        if observation.get("status") in _VOID:
            continue
        try:
            session = session_observation(observation)
            report = None if session is not None else general_pain_report(observation)
        except ReptrendError:
            continue
        if session is not None and session.procedure_id in known:
            repetitions.extend(
                {
                    "procedure_id": session.procedure_id,
                    "repetition_index": rep.index,
                    "pain": rep.pain,
                    "distance_cm": rep.distance_cm,
                    "form_faults": " ".join(rep.form_faults) or None,
                    "peripheral_symptoms": rep.peripheral_symptoms,
                }
                for rep in session.repetitions
                if rep.pain is not None
            )
        elif report is not None:
            reports.append(
                {
                    "patient_id": report.patient_id,
                    "local_date": report.local_date,
                    "pain": report.pain,
                }
            )
    patients = [
        {"patient_id": p["id"], "organization_id": _reference_id(p.get("managingOrganization"))}
        for p in _ndjson_resources(directory, "Patient")
    ]
    members = [
        {"group_id": g["id"], "patient_id": patient_id}
        for g in _ndjson_resources(directory, "Group")
        for patient_id in _body_members(g)
    ]
    prescriptions = [
        {
            "patient_id": _reference_id(sr.get("subject")),
            "protocol": coding["code"],
            "authored_on": _day(sr.get("authoredOn")),
        }
        for sr in _ndjson_resources(directory, "ServiceRequest")
        if sr.get("status") not in _VOID
        for coding in (sr.get("code") or {}).get("coding", ())
        if coding.get("system") == EXERCISE_SYSTEM and coding.get("code")
    ]
    return Facts(
        parameters=_plan_parameters(_ndjson_resources(directory, "PlanDefinition")),
        sessions=_frame(sessions, SESSION_SCHEMA),
        repetitions=_frame(repetitions, REPETITION_SCHEMA),
        pain_reports=_frame(reports, PAIN_REPORT_SCHEMA),
        patients=_frame(patients, PATIENT_SCHEMA),
        group_members=_frame(members, GROUP_MEMBER_SCHEMA),
        prescriptions=_frame(
            [p for p in prescriptions if p["patient_id"] is not None], PRESCRIPTION_SCHEMA
        ).unique(),
    )


def _plan_parameters(plans: Iterator[dict[str, Any]]) -> dict[str, ProtocolParameters]:
    """A clinic's protocol parameters from exported PlanDefinitions (id = exercise code), read
    as ingest reads them: only `active` ones the rules can use."""
    from store.protocol_catalog import parameters_from_plan

    found: dict[str, ProtocolParameters] = {}
    for plan in plans:
        if plan.get("status") != "active" or not isinstance(plan.get("id"), str):
            continue
        try:
            found[plan["id"]] = parameters_from_plan(plan)
        except InvalidParameter:
            continue  # ingest falls back to the built-in parameters too
    return found


def _day(value: Any) -> date | None:
    """The local date a FHIR date or dateTime was written for (None: absent or partial)."""
    return date.fromisoformat(value[:10]) if isinstance(value, str) and len(value) >= 10 else None


def _reference_id(reference: Any) -> str | None:
    if not isinstance(reference, Mapping) or not isinstance(reference.get("reference"), str):
        return None
    return split_reference(reference["reference"])[1]


def _frame(rows: list[dict[str, Any]], schema: pl.Schema) -> pl.LazyFrame:
    columns = {name: [row[name] for row in rows] for name in schema}
    return conform(pl.DataFrame(columns, schema=schema).lazy(), schema)
