"""The FHIR REST interactions at /fhir: read, vread, create, update, delete, history, and
transaction/batch Bundles at the base."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from importlib.metadata import version
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

import api.fhir.path_segments  # noqa: F401  (registers {type:fhirtype} and {id:fhirid})
from api.deps import DatabaseDep, WriteUow
from api.errors import HttpProblem, bundle_error_entry
from api.fhir.body import fhir_json_body
from api.fhir.capability import capability_statement
from api.fhir.negotiation import FORMAT_PARAMETERS, ReturnPreference, return_preference
from api.fhir_response import FHIR_JSON, FhirResponse, pretty_output
from api.operation_outcome import operation_outcome
from store.bundles import process_batch, process_transaction
from store.conditional import conditional_create, conditional_update
from store.errors import InvalidRequest, NotSupported
from store.resource_reads import ResourceJson
from store.resource_store import (
    Method,
    StoredResource,
    Write,
    WriteOutcome,
    new_resource_id,
    version_from_etag,
)
from store.search_params import RESOURCE_SPECS, ResourceSpec
from store.unit_of_work import UnitOfWork

router = APIRouter(prefix="/fhir", tags=["fhir"], default_response_class=FhirResponse)


# Creates, reads and vreads whose path segments are well formed are dispatched by
# `api.fhir.hot_routes` before any of these routes, to the same handlers; the routes here
# document them and answer the rest (a malformed id, say) as before.
Body = Annotated[Any, Depends(fhir_json_body)]


def _spec(resource_type: str, *, writing: bool = False) -> ResourceSpec:
    spec = RESOURCE_SPECS.get(resource_type)
    if spec is None:
        raise NotSupported(f"resource type '{resource_type}' is not supported by this server")
    if writing and spec.read_only:
        raise HttpProblem(405, f"{resource_type} is read-only on this server", "not-supported")
    return spec


def _http_date(instant: datetime) -> str:
    """Last-Modified is an HTTP-date (RFC 9110: 'Sun, 06 Dec 2026 20:57:09 GMT'), not a FHIR
    instant; meta.lastUpdated keeps the exact time."""
    return format_datetime(instant.astimezone(UTC), usegmt=True)


def _resource_response(
    request: Request, resource: StoredResource, status_code: int = 200, *, written: bool = False
) -> FhirResponse:
    """A resource with its ETag; after a write, Location and the body the client preferred."""
    headers = {
        "ETag": resource.etag,
        "Last-Modified": _http_date(resource.last_updated),
    }
    if written:
        # The vread URL, built directly: url_for would walk every route.
        headers["Location"] = (
            f"{request.base_url}fhir/{resource.type}/{resource.id}/_history/{resource.version_id}"
        )
        preference = return_preference(request)
        if preference is ReturnPreference.MINIMAL:
            return FhirResponse(None, status_code=status_code, headers=headers)
        if preference is ReturnPreference.OPERATION_OUTCOME:
            verb = "created" if status_code == 201 else "updated"
            outcome = operation_outcome(
                f"{resource.type}/{resource.id} {verb} (version {resource.version_id})",
                code="informational",
                severity="information",
            )
            return FhirResponse(outcome, status_code=status_code, headers=headers)
    return FhirResponse(resource.body, status_code=status_code, headers=headers)


def _json_response(resource: ResourceJson) -> Response:
    """A read: the stored JSON bytes as they are, unless `_pretty` asks for indentation."""
    body = resource.body
    if pretty_output.get():
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    headers = {"ETag": resource.etag, "Last-Modified": _http_date(resource.last_updated)}
    return Response(body, media_type=FHIR_JSON, headers=headers)


@router.get("/metadata", summary="CapabilityStatement")
def metadata(request: Request) -> FhirResponse:
    return FhirResponse(capability_statement(str(request.base_url) + "fhir", version("reptrend")))


@router.post("", summary="Process a transaction or batch Bundle")
def bundle(body: Body, uow: WriteUow) -> FhirResponse:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise InvalidRequest("POST to the base expects a Bundle", "resourceType")
    kind = body.get("type")
    if kind == "transaction":
        response = process_transaction(uow.resources, body)
    elif kind == "batch":
        response = process_batch(uow.resources, body, bundle_error_entry)
    else:
        raise InvalidRequest("Bundle.type must be transaction or batch", "Bundle.type")
    uow.commit()
    return FhirResponse(response)


@router.post("/{type}", summary="Create a resource (server-assigned id; If-None-Exist)")
async def create(
    type: str,
    request: Request,
    body: Body,
    database: DatabaseDep,
    if_none_exist: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    _spec(type, writing=True)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object (a FHIR resource)")
    if if_none_exist:
        condition = if_none_exist

        def create_unless_found(uow: UnitOfWork) -> tuple[StoredResource, bool]:
            conditional = conditional_create(uow.resources, type, condition, body)
            uow.commit()
            return conditional.resource, conditional.created

        resource, created = await database.write(create_unless_found)
        return _resource_response(request, resource, 201 if created else 200, written=True)
    resource_id = new_resource_id()
    write = Write(Method.CREATE, type, resource_id, {**body, "id": resource_id})
    outcome = await database.write(lambda uow: _write_one(uow, write), plannable=True)
    return _resource_response(request, outcome.resource, 201, written=True)


def _write_one(uow: UnitOfWork, write: Write) -> WriteOutcome:
    outcome = uow.resources.write([write], commit_next=True)[0]
    uow.commit()
    return outcome


@router.put("/{type}", summary="Conditional update: PUT [type]?[search criteria]")
def update_conditionally(
    type: str,
    request: Request,
    body: Body,
    uow: WriteUow,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    _spec(type, writing=True)
    criteria = urlencode(
        [(k, v) for k, v in request.query_params.multi_items() if k not in FORMAT_PARAMETERS]
    )
    if not criteria:
        raise InvalidRequest("PUT to a type needs search criteria: PUT [type]?[criteria]")
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object (a FHIR resource)")
    outcome = conditional_update(
        uow.resources, type, criteria, body, version_from_etag(if_match, "If-Match")
    )
    uow.commit()
    status = 201 if outcome.created else 200
    return _resource_response(request, outcome.resource, status, written=True)


@router.get("/{type}/{id}", summary="Read the current version")
async def read(type: str, id: str, database: DatabaseDep) -> Response:
    _spec(type)
    return _json_response(await database.read_resource(type, id))


@router.put("/{type}/{id}", summary="Update (or create with a client-assigned id)")
async def update(
    type: str,
    id: str,
    request: Request,
    body: Body,
    database: DatabaseDep,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    _spec(type, writing=True)
    write = Write(Method.UPDATE, type, id, body, if_match=version_from_etag(if_match, "If-Match"))
    outcome = await database.write(lambda uow: _write_one(uow, write))
    status = 201 if outcome.created else 200
    return _resource_response(request, outcome.resource, status, written=True)


@router.delete("/{type}/{id}", summary="Delete (reads then answer 410)", status_code=204)
def delete(
    type: str,
    id: str,
    uow: WriteUow,
    if_match: Annotated[str | None, Header()] = None,
) -> FhirResponse:
    _spec(type, writing=True)
    uow.resources.write(
        [Write(Method.DELETE, type, id, if_match=version_from_etag(if_match, "If-Match"))]
    )
    uow.commit()
    return FhirResponse(None, status_code=204)


@router.get("/{type}/{id}/_history/{vid}", summary="Read one version")
async def vread(type: str, id: str, vid: int, database: DatabaseDep) -> Response:
    _spec(type)
    return _json_response(await database.read_resource(type, id, vid))
