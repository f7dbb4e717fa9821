"""The hottest FHIR interactions as plain Starlette routes, matched before every FastAPI route.

A create or a read through FastAPI's router and dependency solver cost about as much CPU as
the store's own work for it: matching twenty routes, solving five dependencies, validating
parameters. These routes match first and call the very same functions in the same order
(negotiation, the JSON body, the current client, the handler), so a request answers exactly
as through the FastAPI routes, which stay registered for the OpenAPI document and for paths
these strict segments do not take. Errors raised here reach the same exception handlers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import api.fhir.path_segments  # noqa: F401  (registers {type:fhirtype} and {id:fhirid})
from api.deps import current_client, database
from api.fhir.body import fhir_json_body
from api.fhir.negotiation import negotiate
from api.fhir.routes import create, read, vread


class _HotRoute(Route):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self  # as FastAPI's routes do: the access log names its template
        await super().handle(scope, receive, send)


async def _create(request: Request) -> Response:
    await negotiate(request)
    body = await fhir_json_body(request)
    db = await database(request, await current_client(request))
    resource_type = request.path_params["type"]
    return await create(resource_type, request, body, db, request.headers.get("if-none-exist"))


async def _read(request: Request) -> Response:
    await negotiate(request)
    db = await database(request, await current_client(request))
    return await read(request.path_params["type"], request.path_params["id"], db)


async def _vread(request: Request) -> Response:
    await negotiate(request)
    db = await database(request, await current_client(request))
    params = request.path_params
    return await vread(params["type"], params["id"], params["vid"], db)


HOT_ROUTES = [
    _HotRoute("/fhir/{type:fhirtype}", _create, methods=["POST"]),
    _HotRoute("/fhir/{type:fhirtype}/{id:fhirid}", _read, methods=["GET"]),
    _HotRoute("/fhir/{type:fhirtype}/{id:fhirid}/_history/{vid:int}", _vread, methods=["GET"]),
]
