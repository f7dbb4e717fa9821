"""Patient $everything and FHIR Bulk Data $export (HL7 Bulk Data Access IG v2).

Kick-off `GET /fhir/$export`, `/fhir/Patient/$export`, `/fhir/Group/{id}/$export` (with
`Prefer: respond-async` and `Accept: application/fhir+json`) queues a job and answers 202 with
`Content-Location` of its status URL. Polling that URL answers 202 with `X-Progress` and
`Retry-After` while the worker runs, 200 with the manifest when done, 500 if the job failed;
`DELETE` cancels it and deletes its files. Downloads are served as application/fhir+ndjson, and
only to the client that started the job (another client gets 404, as if it did not exist).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, Response

from api.deps import Client, CurrentClient, ReadUow, WriteUow
from api.errors import HttpProblem
from api.export_worker import ExportConfig, job_directory, remove_job_files
from api.fhir_response import FhirResponse
from api.operation_outcome import operation_outcome
from store.errors import InvalidRequest, NotSupported
from store.export_jobs import ExportJob, ExportJobs, ExportLevel, ExportRequest, JobStatus
from store.export_writer import parse_type_filter
from store.fhir_dates import parse_instant
from store.patient_compartment import COMPARTMENT_TYPES, PageCursor, everything_page
from store.resource_store import instant_text, utc_now
from store.search_params import SUPPORTED_TYPES
from store.unit_of_work import UnitOfWork

router = APIRouter(prefix="/fhir", tags=["fhir-bulk"], default_response_class=FhirResponse)

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
KICK_OFF_PARAMETERS = frozenset({"_type", "_since", "_outputFormat", "_typeFilter"})
EVERYTHING_PARAMETERS = frozenset({"_type", "_since", "_count", "_cursor"})
# Content negotiation parameters every /fhir route accepts.
GENERIC_PARAMETERS = frozenset({"_format", "_pretty"})
RETRY_AFTER_SECONDS = 2
DEFAULT_COUNT = 100
MAX_COUNT = 1000
# A _typeFilter value may hold several queries separated by commas; a comma followed by
# "Type?" starts the next query (commas inside a query separate OR'ed values).
_NEXT_FILTER = re.compile(r",(?=[A-Z][A-Za-z]*\?)")


def _prefer(request: Request) -> set[str]:
    return {
        part.strip().replace(" ", "").lower()
        for part in request.headers.get("prefer", "").split(",")
        if part.strip()
    }


def _lenient(request: Request) -> bool:
    return "handling=lenient" in _prefer(request)


def export_config(request: Request) -> ExportConfig:
    worker = getattr(request.app.state, "export_worker", None)
    if worker is not None:
        config: ExportConfig = worker.config
        return config
    return ExportConfig.from_settings(request.app.state.settings)


Config = Annotated[ExportConfig, Depends(export_config)]


class _Problems:
    """Unsupported parameters: an error, or under `Prefer: handling=lenient` a warning."""

    def __init__(self, lenient: bool) -> None:
        self.lenient = lenient
        self.warnings: list[str] = []

    def unsupported(self, message: str) -> None:
        if not self.lenient:
            raise HttpProblem(400, message, "not-supported")
        self.warnings.append(f"ignored: {message}")


def _single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"{name} may be given once", name)
    return values[0] if values else None


def _since(request: Request) -> Any:
    value = _single(request, "_since")
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise InvalidRequest("_since must be a FHIR instant", "_since") from None


def _types(request: Request, allowed: tuple[str, ...], problems: _Problems) -> tuple[str, ...]:
    values = request.query_params.getlist("_type")
    if not values:
        return allowed
    chosen: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if name in allowed:
                if name not in chosen:
                    chosen.append(name)
            elif name:
                problems.unsupported(f"_type {name} cannot be exported at this level")
    return tuple(t for t in allowed if t in chosen)


def _type_filters(
    request: Request, types: tuple[str, ...], problems: _Problems
) -> dict[str, tuple[str, ...]]:
    filters: dict[str, list[str]] = {}
    unfiltered: set[str] = set()
    for value in request.query_params.getlist("_typeFilter"):
        for text in _NEXT_FILTER.split(value):
            try:
                parsed = parse_type_filter(text)
            except NotSupported as error:
                problems.unsupported(error.diagnostics)
                # Ignoring one of a type's OR'ed filters leaves the type unfiltered.
                unfiltered.add(text.partition("?")[0])
                continue
            if parsed.type not in types:
                problems.warnings.append(
                    f"ignored: _typeFilter for {parsed.type}, which is not exported"
                )
                continue
            filters.setdefault(parsed.type, []).append(text)
    return {t: tuple(texts) for t, texts in filters.items() if t not in unfiltered}


def _export_request(request: Request, level: ExportLevel, group_id: str | None) -> ExportRequest:
    prefer = _prefer(request)
    if "respond-async" not in prefer:
        raise InvalidRequest("$export needs the header Prefer: respond-async", "Prefer")
    accept = [a.split(";")[0].strip().lower() for a in request.headers.get("accept", "").split(",")]
    if "application/fhir+json" not in accept:
        raise InvalidRequest("$export needs the header Accept: application/fhir+json", "Accept")
    problems = _Problems("handling=lenient" in prefer)
    for name in sorted(set(request.query_params.keys())):
        if name not in KICK_OFF_PARAMETERS | GENERIC_PARAMETERS:
            problems.unsupported(f"the $export parameter {name} is not supported")
    # An unencoded '+' (curl users type it) arrives as a space.
    output_format = (_single(request, "_outputFormat") or NDJSON).replace(" ", "+")
    if output_format not in OUTPUT_FORMATS:
        raise HttpProblem(
            400,
            f"_outputFormat {output_format} is not supported: use application/fhir+ndjson",
            "not-supported",
        )
    allowed = tuple(sorted(SUPPORTED_TYPES)) if level is ExportLevel.SYSTEM else COMPARTMENT_TYPES
    since = _since(request)
    types = _types(request, allowed, problems)
    filters = _type_filters(request, types, problems)
    return ExportRequest(
        level=level,
        types=types,
        request_url=str(request.url),
        since=since,
        type_filters=filters,
        output_format=output_format,
        group_id=group_id,
        warnings=tuple(problems.warnings),
    )


def _kick_off(
    request: Request,
    uow: UnitOfWork,
    client: Client,
    level: ExportLevel,
    group_id: str | None = None,
) -> FhirResponse:
    export = _export_request(request, level, group_id)
    if group_id is not None:
        uow.resources.read("Group", group_id)
    job = ExportJobs(uow.resources).create(client.client_id, export, utc_now())
    uow.commit()
    worker = getattr(request.app.state, "export_worker", None)
    if worker is not None:
        worker.wake()
    outcome = operation_outcome(
        f"export job {job.id} queued", code="informational", severity="information"
    )
    outcome["issue"].extend(
        {"severity": "warning", "code": "not-supported", "diagnostics": w} for w in export.warnings
    )
    location = str(request.url_for("export_status", job_id=job.id))
    return FhirResponse(outcome, status_code=202, headers={"Content-Location": location})


@router.get("/$export", summary="Bulk Data kick-off: every resource")
def export_system(request: Request, uow: WriteUow, client: CurrentClient) -> FhirResponse:
    return _kick_off(request, uow, client, ExportLevel.SYSTEM)


@router.get("/Patient/$export", summary="Bulk Data kick-off: the compartments of all patients")
def export_patients(request: Request, uow: WriteUow, client: CurrentClient) -> FhirResponse:
    return _kick_off(request, uow, client, ExportLevel.PATIENT)


@router.get("/Group/{id}/$export", summary="Bulk Data kick-off: a Group's members")
def export_group(id: str, request: Request, uow: WriteUow, client: CurrentClient) -> FhirResponse:
    return _kick_off(request, uow, client, ExportLevel.GROUP, id)


def _file_url(request: Request, job: ExportJob, name: str) -> str:
    return str(request.url_for("export_file", job_id=job.id, file_name=name))


def _manifest(request: Request, job: ExportJob) -> dict[str, Any]:
    return {
        "transactionTime": instant_text(job.transaction_time),
        "request": job.request.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": f.type, "url": _file_url(request, job, f.name), "count": f.count}
            for f in job.progress.files
        ],
        "error": [
            {"type": f.type, "url": _file_url(request, job, f.name), "count": f.count}
            for f in job.progress.errors
        ],
    }


def _progress_text(job: ExportJob) -> str:
    if job.status is JobStatus.QUEUED and not job.progress.done_types:
        return "queued"
    done, total = len(job.progress.done_types), len(job.request.types)
    return f"{job.progress.exported} resources exported; {done} of {total} types done"


@router.get("/$export-status/{job_id}", name="export_status", summary="Bulk Data status")
def export_status(job_id: str, request: Request, uow: ReadUow, client: CurrentClient) -> Response:
    job = ExportJobs(uow.resources).get(job_id, client.client_id)
    if job.status is JobStatus.COMPLETED:
        return Response(orjson.dumps(_manifest(request, job)), media_type="application/json")
    if job.status is JobStatus.FAILED:
        return FhirResponse(
            operation_outcome(job.error or "the export failed", code="exception"),
            status_code=500,
        )
    return Response(
        status_code=202,
        headers={"X-Progress": _progress_text(job), "Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@router.delete("/$export-status/{job_id}", summary="Cancel a Bulk Data export")
def export_cancel(
    job_id: str, uow: WriteUow, client: CurrentClient, config: Config
) -> FhirResponse:
    ExportJobs(uow.resources).cancel(job_id, client.client_id, utc_now())
    uow.commit()
    remove_job_files(config, client.tenant, job_id)
    outcome = operation_outcome(
        f"export job {job_id} cancelled; its files are deleted",
        code="informational",
        severity="information",
    )
    return FhirResponse(outcome, status_code=202)


@router.get("/$export-file/{job_id}/{file_name}", name="export_file", summary="Bulk Data file")
def export_file(
    job_id: str, file_name: str, uow: ReadUow, client: CurrentClient, config: Config
) -> Response:
    job = ExportJobs(uow.resources).get(job_id, client.client_id)
    listed = {f.name for f in (*job.progress.files, *job.progress.errors)}
    if job.status is not JobStatus.COMPLETED or file_name not in listed:
        raise HttpProblem(404, f"export job {job_id} has no file {file_name}", "not-found")
    path = job_directory(config, client.tenant, job_id) / file_name
    if not path.is_file():
        raise HttpProblem(404, f"the file {file_name} of export job {job_id} is gone", "not-found")
    return FileResponse(path, media_type=NDJSON)


# --- Patient $everything -----------------------------------------------------------------------


def _count(request: Request) -> int:
    value = _single(request, "_count")
    if value is None:
        return DEFAULT_COUNT
    if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        raise InvalidRequest(f"_count must be a whole number from 1 to {MAX_COUNT}", "_count")
    return int(value)


def _cursor(request: Request) -> PageCursor | None:
    value = _single(request, "_cursor")
    if value is None:
        return None
    try:
        return PageCursor.parse(value)
    except ValueError:
        raise InvalidRequest("_cursor is not a page cursor of this server", "_cursor") from None


@router.get("/Patient/{id}/$everything", summary="Everything in the patient compartment")
def everything(id: str, request: Request, uow: ReadUow) -> FhirResponse:
    problems = _Problems(_lenient(request))
    for name in sorted(set(request.query_params.keys())):
        if name not in EVERYTHING_PARAMETERS | GENERIC_PARAMETERS:
            problems.unsupported(f"the $everything parameter {name} is not supported")
    types = _types(request, COMPARTMENT_TYPES, problems)
    page = everything_page(
        uow.resources,
        id,
        types=types,
        since=_since(request),
        count=_count(request),
        after=_cursor(request),
    )
    base = str(request.base_url) + "fhir"
    links = [{"relation": "self", "url": str(request.url)}]
    if page.next is not None:
        next_url = request.url.remove_query_params("_cursor").include_query_params(
            _cursor=page.next.token()
        )
        links.append({"relation": "next", "url": str(next_url)})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{r.type}/{r.id}",
                "resource": r.body,
                "search": {"mode": "match"},
            }
            for r in page.resources
        ],
    }
    if problems.warnings:
        outcome = operation_outcome("; ".join(problems.warnings), code="not-supported")
        outcome["issue"][0]["severity"] = "warning"
        bundle["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    return FhirResponse(bundle)
