"""The database schema, as SQLModel tables. alembic migrations are derived from (and tested
against) these definitions; nothing calls `create_all` outside the migration tests.

Every row carries its `tenant`, so per-clinic isolation is a WHERE clause, not a rewrite.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

# JSONB on PostgreSQL; JSON stored as text on SQLite (3.40 here has no jsonb()).
JSONBody = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite a UTC text timestamp. Always returns aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _tenant() -> Any:
    return Field(sa_column=sa.Column("tenant", sa.String(64), primary_key=True))


def _key(name: str) -> Any:
    return Field(sa_column=sa.Column(name, sa.String(64), primary_key=True))


def _ordinal() -> Any:
    """A search row's place among its resource's rows in its table: with the resource, the
    row's key. Keyed by its resource, a search row needs no serial key of its own (one
    b-tree and a sequence step fewer per row, and the resource's rows are found by the key)."""
    return Field(
        sa_column=sa.Column("ordinal", sa.Integer(), primary_key=True, autoincrement=False)
    )


def _utc(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


class Resource(SQLModel, table=True):
    """The current version of every resource (deleted ones stay, flagged, so reads answer 410)."""

    __tablename__ = "resource"
    __table_args__ = (sa.Index("ix_resource_type_updated", "tenant", "type", "last_updated"),)

    tenant: str = _tenant()
    type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    version_id: int
    last_updated: datetime = _utc()
    deleted: bool = False
    body: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONBody))


class ResourceVersion(SQLModel, table=True):
    """Every version ever written: history and vread read from here."""

    __tablename__ = "resource_version"
    __table_args__ = (sa.Index("ix_resource_version_updated", "tenant", "type", "last_updated"),)

    tenant: str = _tenant()
    type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    version_id: int = Field(primary_key=True)
    last_updated: datetime = _utc()
    method: str = Field(max_length=8)
    deleted: bool = False
    body: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONBody))


# --- search index: one table per FHIR search parameter type, rewritten on every write -------


class SearchToken(SQLModel, table=True):
    __tablename__ = "search_token"
    __table_args__ = (
        sa.Index("ix_search_token_lookup", "tenant", "type", "param", "code", "system"),
    )

    tenant: str = _tenant()
    type: str = _key("type")
    resource_id: str = _key("resource_id")
    ordinal: int = _ordinal()
    param: str = Field(max_length=64)
    system: str | None = None
    code: str


class SearchReference(SQLModel, table=True):
    __tablename__ = "search_reference"
    __table_args__ = (
        sa.Index("ix_search_reference_lookup", "tenant", "type", "param", "target_id"),
    )

    tenant: str = _tenant()
    type: str = _key("type")
    resource_id: str = _key("resource_id")
    ordinal: int = _ordinal()
    param: str = Field(max_length=64)
    target_type: str | None = Field(default=None, max_length=64)
    target_id: str


class SearchDate(SQLModel, table=True):
    __tablename__ = "search_date"
    __table_args__ = (sa.Index("ix_search_date_lookup", "tenant", "type", "param", "low", "high"),)

    tenant: str = _tenant()
    type: str = _key("type")
    resource_id: str = _key("resource_id")
    ordinal: int = _ordinal()
    param: str = Field(max_length=64)
    low: datetime = _utc()
    high: datetime = _utc()


class SearchQuantity(SQLModel, table=True):
    """Numbers and quantities (value, with unit system and code when there is one)."""

    __tablename__ = "search_quantity"
    __table_args__ = (sa.Index("ix_search_quantity_lookup", "tenant", "type", "param", "value"),)

    tenant: str = _tenant()
    type: str = _key("type")
    resource_id: str = _key("resource_id")
    ordinal: int = _ordinal()
    param: str = Field(max_length=64)
    value: float
    system: str | None = None
    code: str | None = None


class SearchString(SQLModel, table=True):
    """Strings, normalised by case and accent (`fold_string`) for FHIR's default matching."""

    __tablename__ = "search_string"
    __table_args__ = (sa.Index("ix_search_string_lookup", "tenant", "type", "param", "value"),)

    tenant: str = _tenant()
    type: str = _key("type")
    resource_id: str = _key("resource_id")
    ordinal: int = _ordinal()
    param: str = Field(max_length=64)
    value: str
    # The text as written, for :exact (case and accents); `value` serves the index lookups.
    exact: str


# --- narrow clinical facts, written in the same transaction as the resources they come from ---

FAULTY_RATED = "form_faults IS NOT NULL AND pain IS NOT NULL"
UNPACKED_SESSION = "pain_code IS NULL AND (rated_repetitions IS NULL OR rated_repetitions > 0)"


class ExerciseSession(SQLModel, table=True):
    """One performed exercise session (a Procedure coded with a reptrend exercise)."""

    __tablename__ = "exercise_session"
    __table_args__ = (
        sa.Index("ix_exercise_session_patient", "tenant", "patient_id", "protocol", "started_at"),
        # The sessions whose repetitions the cohort report reads (migration 0006): few once
        # the figures are filled, so finding them scans no table.
        sa.Index(
            "ix_exercise_session_unpacked",
            "tenant",
            "procedure_id",
            postgresql_where=sa.text(UNPACKED_SESSION),
            sqlite_where=sa.text(UNPACKED_SESSION),
        ),
    )

    tenant: str = _tenant()
    procedure_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    patient_id: str = Field(max_length=64)
    protocol: str = Field(max_length=64)
    status: str = Field(max_length=32)
    # The calendar date as written in the data (offset kept, not converted to UTC first).
    local_date: date
    started_at: datetime = _utc()
    utc_offset_minutes: int | None = None
    ended_at: datetime | None = _utc(nullable=True)
    based_on: str | None = Field(default=None, max_length=140)
    # The session's repetitions packed as the cohort report reads them
    # (`domain.session_figures`), kept in step by the fact writer. `rated_repetitions` NULL:
    # not computed (stored before migration 0006); `pain_code` NULL: not a regular session.
    # Either way the report reads the session's repetitions instead.
    rated_repetitions: int | None = None
    pain_code: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    repetition_counts: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))


class SessionFact(SQLModel, table=True):
    """One rated repetition of a session: the row analytics and the rules read."""

    __tablename__ = "session_fact"
    __table_args__ = (
        sa.Index("ix_session_fact_procedure", "tenant", "procedure_id"),
        sa.Index("ix_session_fact_patient", "tenant", "patient_id", "protocol"),
        # The cohort report's form-fault counts (migration 0006): the few rows with a fault,
        # read from the index alone on PostgreSQL.
        sa.Index(
            "ix_session_fact_faults",
            "tenant",
            postgresql_include=["procedure_id", "repetition_index", "form_faults"],
            postgresql_where=sa.text(FAULTY_RATED),
            sqlite_where=sa.text(FAULTY_RATED),
        ),
    )

    tenant: str = _tenant()
    observation_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    repetition_index: int = Field(primary_key=True)
    procedure_id: str = Field(max_length=64)
    patient_id: str = Field(max_length=64)
    # Copied from the session so analytics reads one narrow table; kept in step when the
    # Procedure changes.
    protocol: str = Field(max_length=64)
    local_date: date
    started_at: datetime = _utc()
    pain: int | None = None
    distance_cm: float | None = None
    # Form-fault codes, space separated (codes cannot contain spaces).
    form_faults: str | None = None
    peripheral_symptoms: bool = False


class PainReport(SQLModel, table=True):
    """A general pain report (72514-3 without partOf): readiness and outcomes read these."""

    __tablename__ = "pain_report"
    __table_args__ = (sa.Index("ix_pain_report_patient", "tenant", "patient_id", "local_date"),)

    tenant: str = _tenant()
    observation_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    patient_id: str = Field(max_length=64)
    local_date: date
    effective_at: datetime = _utc()
    pain: int


class StopRuleFold(SQLModel, table=True):
    """Where the stop-rule fold of one (patient, protocol) stands after its latest session.

    A derived cache, kept in the sessions' transaction: a session later than every stored one
    continues the fold from here instead of re-reading and re-folding the whole history. `key`
    names what the state was computed with (parameters, definition, format); a different key
    means fold the history again.
    """

    __tablename__ = "stop_rule_fold"

    tenant: str = _tenant()
    patient_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    protocol: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    key: str = Field(max_length=64)
    state: dict[str, Any] = Field(sa_column=sa.Column(JSONBody, nullable=False))


class ConditionalKey(SQLModel, table=True):
    """Claims a conditional create's search criteria, so concurrent retries of the same
    If-None-Exist create race on a primary key instead of a read-then-write check."""

    __tablename__ = "conditional_key"

    tenant: str = _tenant()
    type: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    # sha256 of the normalised criteria (sorted parameters), hex.
    criteria_hash: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    resource_id: str = Field(max_length=64)


# --- bulk data: export jobs and import progress (migration 0003) ------------------------------


class ExportJob(SQLModel, table=True):
    """One FHIR Bulk Data export: its request, its state, and the files it has finished.

    `progress` lists only files that are complete on disk (written, fsynced, renamed), so a
    manifest built from it never names a truncated file.
    """

    __tablename__ = "export_job"
    __table_args__ = (sa.Index("ix_export_job_status", "status", "updated_at"),)

    tenant: str = _tenant()
    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    client_id: str = Field(max_length=128)
    # queued, running, completed, failed, cancelled
    status: str = Field(max_length=16)
    # system, patient, group
    level: str = Field(max_length=16)
    group_id: str | None = Field(default=None, max_length=64)
    # types, since, type_filters, output_format, warnings
    request: dict[str, Any] = Field(sa_column=sa.Column(JSONBody, nullable=False))
    request_url: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    transaction_time: datetime = _utc()
    created_at: datetime = _utc()
    # The running worker's heartbeat: a job whose heartbeat is stale may be claimed again.
    updated_at: datetime = _utc()
    claimed_by: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    progress: dict[str, Any] = Field(sa_column=sa.Column(JSONBody, nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))


class ImportProgress(SQLModel, table=True):
    """How far `reptrend import` got in one input (keyed by content hash): every item up to
    `position` is done, written or rejected, in the same transaction as the data."""

    __tablename__ = "import_progress"

    tenant: str = _tenant()
    source_hash: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    source_name: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    position: int
    written: int
    rejected: int
    updated_at: datetime = _utc()


METADATA = SQLModel.metadata
