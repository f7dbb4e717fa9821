"""Bulk Data export jobs: durable state in `export_job`.

A job is `queued` at kick-off, `running` while a worker holds it, then `completed`, `failed` or
`cancelled`. A worker claims a job by compare-and-set on (status, attempts), heartbeats while it
works, and every later write is conditional on still holding the claim, so a worker that lost
its job (cancelled, or its lease taken over after it stalled) can only find out, never
overwrite. The file list grows one finished type at a time; files of the type in progress are
never listed, so a restart redoes that type and never serves part of it.

Job rows are read per tenant like everything else; only `claim_next` looks across tenants: it is
the queue, and it returns the tenant the rest of the work then runs under.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from store import tables
from store.errors import ResourceNotFound
from store.export_writer import ExportedFile, Selection, parse_type_filter
from store.fhir_dates import parse_instant
from store.patient_compartment import PatientScope
from store.resource_store import ResourceStore, instant_text

_JOB = tables.ExportJob.__table__  # type: ignore[attr-defined]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExportLevel(StrEnum):
    SYSTEM = "system"
    PATIENT = "patient"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What was asked for, already validated at kick-off."""

    level: ExportLevel
    types: tuple[str, ...]
    request_url: str
    since: datetime | None = None
    # Filters per type (texts of the _typeFilter queries); a type without any is unfiltered.
    type_filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    output_format: str = "application/fhir+ndjson"
    group_id: str | None = None
    # Parameters ignored under `Prefer: handling=lenient`; reported in the manifest's error.
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "types": list(self.types),
            "since": instant_text(self.since) if self.since else None,
            "type_filters": {k: list(v) for k, v in self.type_filters.items()},
            "output_format": self.output_format,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_row(cls, row: Any) -> ExportRequest:
        data = row.request
        return cls(
            level=ExportLevel(row.level),
            types=tuple(data["types"]),
            request_url=row.request_url,
            since=parse_instant(data["since"]) if data.get("since") else None,
            type_filters={k: tuple(v) for k, v in data.get("type_filters", {}).items()},
            output_format=data.get("output_format", "application/fhir+ndjson"),
            group_id=row.group_id,
            warnings=tuple(data.get("warnings", ())),
        )

    def scope(self) -> PatientScope | None:
        if self.level is ExportLevel.PATIENT:
            return PatientScope.all_patients()
        if self.level is ExportLevel.GROUP:
            assert self.group_id is not None
            return PatientScope.group(self.group_id)
        return None

    def selection(self, tenant: str, resource_type: str, until: datetime) -> Selection:
        return Selection(
            tenant=tenant,
            type=resource_type,
            until=until,
            since=self.since,
            scope=self.scope(),
            filters=tuple(
                parse_type_filter(text) for text in self.type_filters.get(resource_type, ())
            ),
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """Finished types and their files (durable on disk), plus a running count for X-Progress."""

    done_types: tuple[str, ...] = ()
    files: tuple[ExportedFile, ...] = ()
    errors: tuple[ExportedFile, ...] = ()
    exported: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "done_types": list(self.done_types),
            "files": [_file_json(f) for f in self.files],
            "errors": [_file_json(f) for f in self.errors],
            "exported": self.exported,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Progress:
        return cls(
            done_types=tuple(data.get("done_types", ())),
            files=tuple(ExportedFile(**f) for f in data.get("files", ())),
            errors=tuple(ExportedFile(**f) for f in data.get("errors", ())),
            exported=int(data.get("exported", 0)),
        )

    def with_type(self, resource_type: str, files: list[ExportedFile]) -> Progress:
        every = (*self.files, *files)
        done = (*self.done_types, resource_type)
        return Progress(done, every, self.errors, sum(f.count for f in every))

    @property
    def finished_count(self) -> int:
        return sum(f.count for f in self.files)


def _file_json(exported: ExportedFile) -> dict[str, Any]:
    return {
        "type": exported.type,
        "name": exported.name,
        "count": exported.count,
        "size": exported.size,
    }


@dataclass(frozen=True, slots=True)
class ExportJob:
    tenant: str
    id: str
    client_id: str
    status: JobStatus
    request: ExportRequest
    transaction_time: datetime
    created_at: datetime
    updated_at: datetime
    claimed_by: str | None
    attempts: int
    progress: Progress
    error: str | None


def _job(row: Any) -> ExportJob:
    return ExportJob(
        tenant=row.tenant,
        id=row.id,
        client_id=row.client_id,
        status=JobStatus(row.status),
        request=ExportRequest.from_row(row),
        transaction_time=row.transaction_time,
        created_at=row.created_at,
        updated_at=row.updated_at,
        claimed_by=row.claimed_by,
        attempts=row.attempts,
        progress=Progress.from_json(row.progress),
        error=row.error,
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on one job: `token` must still be on the row for any write to land."""

    tenant: str
    job_id: str
    token: str
    attempt: int


class ExportJobs:
    """The export jobs of one tenant, on the caller's unit of work (which commits)."""

    def __init__(self, store: ResourceStore) -> None:
        self.connection = store.connection
        self.tenant = store.tenant

    def _key(self, job_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(_JOB.c.tenant == self.tenant, _JOB.c.id == job_id)

    def create(self, client_id: str, request: ExportRequest, now: datetime) -> ExportJob:
        job_id = uuid.uuid4().hex
        self.connection.execute(
            sa.insert(_JOB).values(
                tenant=self.tenant,
                id=job_id,
                client_id=client_id,
                status=JobStatus.QUEUED.value,
                level=request.level.value,
                group_id=request.group_id,
                request=request.to_json(),
                request_url=request.request_url,
                transaction_time=now,
                created_at=now,
                updated_at=now,
                claimed_by=None,
                attempts=0,
                progress=Progress().to_json(),
                error=None,
            )
        )
        return self.load(job_id)

    def load(self, job_id: str) -> ExportJob:
        row = self.connection.execute(sa.select(_JOB).where(self._key(job_id))).first()
        if row is None:
            raise ResourceNotFound(f"export job {job_id} is not known")
        return _job(row)

    def get(self, job_id: str, client_id: str) -> ExportJob:
        """The job, for the client that started it; anyone else (and a cancelled job) gets
        ResourceNotFound, so job ids reveal nothing across clients."""
        job = self.load(job_id)
        if job.client_id != client_id or job.status is JobStatus.CANCELLED:
            raise ResourceNotFound(f"export job {job_id} is not known")
        return job

    def cancel(self, job_id: str, client_id: str, now: datetime) -> ExportJob:
        job = self.get(job_id, client_id)
        self.connection.execute(
            sa.update(_JOB)
            .where(self._key(job_id))
            .values(status=JobStatus.CANCELLED.value, claimed_by=None, updated_at=now)
        )
        return job

    def _held(self, claim: Claim) -> sa.ColumnElement[bool]:
        return sa.and_(
            self._key(claim.job_id),
            _JOB.c.status == JobStatus.RUNNING.value,
            _JOB.c.claimed_by == claim.token,
        )

    def save_progress(self, claim: Claim, progress: Progress, now: datetime) -> bool:
        """Heartbeat and progress; False when the claim is gone (cancelled or taken over)."""
        result = self.connection.execute(
            sa.update(_JOB)
            .where(self._held(claim))
            .values(progress=progress.to_json(), updated_at=now)
        )
        return result.rowcount == 1

    def finish(
        self,
        claim: Claim,
        status: JobStatus,
        progress: Progress,
        now: datetime,
        error: str | None = None,
    ) -> bool:
        result = self.connection.execute(
            sa.update(_JOB)
            .where(self._held(claim))
            .values(status=status.value, progress=progress.to_json(), updated_at=now, error=error)
        )
        return result.rowcount == 1

    def release(self, claim: Claim, now: datetime) -> bool:
        """Back to the queue (a worker shutting down), keeping the finished types."""
        result = self.connection.execute(
            sa.update(_JOB)
            .where(self._held(claim))
            .values(status=JobStatus.QUEUED.value, claimed_by=None, updated_at=now)
        )
        return result.rowcount == 1


def _claimable(now: datetime, lease: timedelta) -> sa.ColumnElement[bool]:
    return sa.or_(
        _JOB.c.status == JobStatus.QUEUED.value,
        sa.and_(_JOB.c.status == JobStatus.RUNNING.value, _JOB.c.updated_at < now - lease),
    )


def any_claimable(store: ResourceStore, now: datetime, lease: timedelta) -> bool:
    """A cheap read a worker polls before taking the write lock `claim_next` needs."""
    query = sa.select(_JOB.c.id).where(_claimable(now, lease)).limit(1)
    return store.connection.execute(query).first() is not None


def claim_next(store: ResourceStore, token: str, now: datetime, lease: timedelta) -> Claim | None:
    """Claim the oldest queued job, or a running one whose worker stopped heartbeating for
    longer than `lease` (it crashed or hung). Across tenants: this is the queue."""
    candidates = store.connection.execute(
        sa.select(_JOB.c.tenant, _JOB.c.id, _JOB.c.status, _JOB.c.attempts)
        .where(_claimable(now, lease))
        .order_by(_JOB.c.created_at)
        .limit(5)
    ).all()
    for candidate in candidates:
        result = store.connection.execute(
            sa.update(_JOB)
            .where(
                _JOB.c.tenant == candidate.tenant,
                _JOB.c.id == candidate.id,
                _JOB.c.status == candidate.status,
                _JOB.c.attempts == candidate.attempts,
            )
            .values(
                status=JobStatus.RUNNING.value,
                claimed_by=token,
                attempts=candidate.attempts + 1,
                updated_at=now,
            )
        )
        if result.rowcount == 1:
            return Claim(candidate.tenant, candidate.id, token, candidate.attempts + 1)
    return None
