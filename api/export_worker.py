"""The export worker: runs queued Bulk Data export jobs outside the request.

One thread per server process, started and stopped by the app lifespan. It polls `export_job`
(and is woken by kick-offs), claims one job at a time, exports it type by type, and records
each finished type with its files. A job whose worker died is claimed again once its heartbeat
is older than the lease; the new run keeps the finished types, deletes every file the job does
not list, and redoes the rest. A graceful stop puts the running job back in the queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.engine import Engine

from api.operation_outcome import operation_outcome
from store.export_jobs import (
    Claim,
    ExportJob,
    ExportJobs,
    JobStatus,
    Progress,
    any_claimable,
    claim_next,
)
from store.export_writer import export_selection, write_ndjson_file
from store.resource_store import Clock, utc_now
from store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from api.settings import Settings

log = logging.getLogger("reptrend.export")

POLL_SECONDS = 2.0
# Unexpected errors are retried this many times (in total) before the job is marked failed.
MAX_ATTEMPTS = 3

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Checkpoint = Callable[[str, str], None]
"""Called with (event, detail) at "file" (a file is complete under its final name, not yet
recorded) and "type" (a type and its files are recorded). Crash tests hook in here."""


@dataclass(frozen=True, slots=True)
class ExportConfig:
    directory: Path
    max_file_bytes: int
    lease_seconds: float
    poll_seconds: float = POLL_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportConfig:
        return cls(
            directory=settings.export_dir,
            max_file_bytes=settings.export_max_file_bytes,
            lease_seconds=settings.export_lease_seconds,
        )


def job_directory(config: ExportConfig, tenant: str, job_id: str) -> Path:
    """Files of one job: <export dir>/<tenant>/<job id>. A tenant name that is not a plain
    token is hashed, so it can never climb out of the export directory."""
    if not _SAFE_NAME.match(tenant):
        tenant = "t-" + hashlib.sha256(tenant.encode()).hexdigest()[:16]
    if not _SAFE_NAME.match(job_id):
        raise ValueError("not a job id")
    return config.directory / tenant / job_id


def remove_job_files(config: ExportConfig, tenant: str, job_id: str) -> None:
    shutil.rmtree(job_directory(config, tenant, job_id), ignore_errors=True)


class JobInterrupted(Exception):
    """The worker is stopping, or the job is no longer ours (cancelled or taken over)."""


class ExportWorker:
    def __init__(
        self,
        engine: Engine,
        config: ExportConfig,
        *,
        clock: Clock = utc_now,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.checkpoint = checkpoint
        self.token = uuid.uuid4().hex
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reptrend-export", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop after the current step; a running job goes back to the queue."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        last_error = ""
        while not self._stopping.is_set():
            try:
                worked = self.run_pending()
                last_error = ""
            except Exception as error:  # the database may be down or not migrated yet
                # Once per kind of error, not once per poll.
                level = logging.DEBUG if type(error).__name__ == last_error else logging.WARNING
                last_error = type(error).__name__
                log.log(level, "export queue unavailable", extra={"error_type": last_error})
                worked = 0
            if not worked:
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()

    # --- the queue -------------------------------------------------------------------------

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.config.lease_seconds)

    def claim(self) -> Claim | None:
        with UnitOfWork(self.engine, clock=self.clock) as uow:
            if not any_claimable(uow.resources, self.clock(), self._lease):
                return None
        with UnitOfWork(self.engine, write=True, clock=self.clock) as uow:
            claim = claim_next(uow.resources, self.token, self.clock(), self._lease)
            uow.commit()
        return claim

    def run_pending(self) -> int:
        """Run claimable jobs until there are none (or the worker stops); returns how many."""
        ran = 0
        while not self._stopping.is_set():
            claim = self.claim()
            if claim is None:
                break
            self.run(claim)
            ran += 1
        return ran

    # --- one job ---------------------------------------------------------------------------

    def _load(self, claim: Claim) -> ExportJob:
        with UnitOfWork(self.engine, claim.tenant, clock=self.clock) as uow:
            return ExportJobs(uow.resources).load(claim.job_id)

    def save(self, claim: Claim, progress: Progress) -> None:
        with UnitOfWork(self.engine, claim.tenant, write=True, clock=self.clock) as uow:
            held = ExportJobs(uow.resources).save_progress(claim, progress, self.clock())
            uow.commit()
        if not held:
            raise JobInterrupted("the job was cancelled or taken over")

    def run(self, claim: Claim) -> None:
        started = time.monotonic()
        job = self._load(claim)
        directory = job_directory(self.config, claim.tenant, claim.job_id)
        directory.mkdir(parents=True, exist_ok=True)
        _remove_unlisted(directory, job.progress)
        fields = {"job": claim.job_id, "attempt": claim.attempt}
        if job.progress.done_types:
            log.info("export job resumed", extra={**fields, "done": len(job.progress.done_types)})
        try:
            progress = self._export(claim, job, directory)
            with UnitOfWork(self.engine, claim.tenant, write=True, clock=self.clock) as uow:
                held = ExportJobs(uow.resources).finish(
                    claim, JobStatus.COMPLETED, progress, self.clock()
                )
                uow.commit()
            if not held:
                raise JobInterrupted("the job was cancelled or taken over")
            log.info(
                "export job completed",
                extra={
                    **fields,
                    "resources": progress.exported,
                    "files": len(progress.files),
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
        except JobInterrupted:
            self._interrupted(claim)
        except Exception as error:
            if not self._still_ours(claim):
                # A cancel deletes the directory under the writer: not an export failure.
                self._interrupted(claim)
                return
            log.error("export job error", extra={**fields, "error_type": type(error).__name__})
            self._failed(claim, type(error).__name__)

    def _still_ours(self, claim: Claim) -> bool:
        job = self._load(claim)
        return job.status is JobStatus.RUNNING and job.claimed_by == claim.token

    def _export(self, claim: Claim, job: ExportJob, directory: Path) -> Progress:
        progress = job.progress
        for resource_type in job.request.types:
            if resource_type in progress.done_types:
                continue
            if self.stopping:
                raise JobInterrupted("the worker is stopping")
            heartbeat = _Heartbeat(self, claim, progress)
            files = export_selection(
                self.engine,
                job.request.selection(claim.tenant, resource_type, job.transaction_time),
                directory,
                f"{resource_type}.{claim.attempt}",
                self.config.max_file_bytes,
                progress=heartbeat,
                on_file=lambda exported: self._checkpoint("file", exported.name),
            )
            progress = progress.with_type(resource_type, files)
            self.save(claim, progress)
            self._checkpoint("type", resource_type)
        if job.request.warnings and not progress.errors:
            lines = [
                orjson.dumps(operation_outcome(w, code="not-supported", severity="warning")) + b"\n"
                for w in job.request.warnings
            ]
            name = f"OperationOutcome.{claim.attempt}.001.ndjson"
            error_file = write_ndjson_file(directory, name, "OperationOutcome", lines)
            progress = Progress(
                progress.done_types, progress.files, (error_file,), progress.exported
            )
        return progress

    def _checkpoint(self, event: str, detail: str) -> None:
        if self.checkpoint is not None:
            self.checkpoint(event, detail)

    def _interrupted(self, claim: Claim) -> None:
        if self._stopping.is_set():
            with UnitOfWork(self.engine, claim.tenant, write=True, clock=self.clock) as uow:
                ExportJobs(uow.resources).release(claim, self.clock())
                uow.commit()
            log.info("export job released", extra={"job": claim.job_id})
            return
        job = self._load(claim)
        if job.status is JobStatus.CANCELLED:
            remove_job_files(self.config, claim.tenant, claim.job_id)
        log.info("export job given up", extra={"job": claim.job_id, "status": job.status.value})

    def _failed(self, claim: Claim, error_type: str) -> None:
        with UnitOfWork(self.engine, claim.tenant, write=True, clock=self.clock) as uow:
            jobs = ExportJobs(uow.resources)
            if claim.attempt < MAX_ATTEMPTS:
                jobs.release(claim, self.clock())
            else:
                progress = jobs.load(claim.job_id).progress
                jobs.finish(
                    claim,
                    JobStatus.FAILED,
                    progress,
                    self.clock(),
                    error=f"the export failed ({error_type}) after {claim.attempt} attempts",
                )
            uow.commit()
        if claim.attempt >= MAX_ATTEMPTS:
            remove_job_files(self.config, claim.tenant, claim.job_id)


class _Heartbeat:
    """Called every few thousand rows: stops the export when the worker stops, and records the
    running count (which doubles as the lease heartbeat) a few times per lease."""

    def __init__(self, worker: ExportWorker, claim: Claim, done: Progress) -> None:
        self.worker = worker
        self.claim = claim
        self.done = done
        self.interval = max(worker.config.lease_seconds / 4, 0.05)
        self.last = time.monotonic()

    def __call__(self, rows: int) -> None:
        if self.worker.stopping:
            raise JobInterrupted("the worker is stopping")
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            running = Progress(
                self.done.done_types,
                self.done.files,
                self.done.errors,
                self.done.finished_count + rows,
            )
            self.worker.save(self.claim, running)


def _remove_unlisted(directory: Path, progress: Progress) -> None:
    """Delete what an earlier attempt left: temporary files and files of unfinished types."""
    listed = {f.name for f in (*progress.files, *progress.errors)}
    for path in directory.iterdir():
        if path.name not in listed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def start_export_worker(app: Any) -> ExportWorker:
    """Start the worker for an app (its engine and settings); the app lifespan calls this."""
    worker = ExportWorker(app.state.engine, ExportConfig.from_settings(app.state.settings))
    app.state.export_worker = worker
    worker.start()
    return worker
