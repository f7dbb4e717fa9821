"""FHIR search: GET /fhir/{type}, POST /fhir/{type}/_search and type-level history.

This module only reads HTTP (query string, form body, `Prefer`) and writes Bundles; parsing
is `store.search_parameters`, querying `store.search`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Depends, Request

import api.fhir.path_segments  # noqa: F401  (registers {type:fhirtype})
from api.deps import ReadUow
from api.errors import HttpProblem
from api.fhir.negotiation import lenient_handling
from api.fhir_response import FhirResponse
from api.operation_outcome import operation_outcome
from store.errors import InvalidRequest
from store.resource_store import StoredResource, instant_text
from store.search import HistoryResult, SearchResult, search, type_history
from store.search_parameters import (
    CURSOR,
    HTTP_PARAMETERS,
    parse_history,
    parse_search,
)

Pairs = list[tuple[str, str]]
FORM = "application/x-www-form-urlencoded"


router = APIRouter(prefix="/fhir", tags=["fhir"], default_response_class=FhirResponse)


async def form_pairs(request: Request) -> Pairs:
    """The parameters of a POST _search body (application/x-www-form-urlencoded)."""
    body = await request.body()
    if not body:
        return []
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise HttpProblem(
            415, f"POST _search takes {FORM}, not {media_type or '(none)'}", "not-supported"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the form body is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)


FormPairs = Annotated[Pairs, Depends(form_pairs)]


@router.get("/{type:fhirtype}", summary="Search (type level)")
@router.get("/{type:fhirtype}/", include_in_schema=False)
def search_by_get(type: str, request: Request, uow: ReadUow) -> FhirResponse:
    return _searchset(type, request.query_params.multi_items(), request, uow)


@router.post("/{type:fhirtype}/_search", summary="Search with a form body")
def search_by_post(type: str, request: Request, form: FormPairs, uow: ReadUow) -> FhirResponse:
    return _searchset(type, [*request.query_params.multi_items(), *form], request, uow)


@router.get("/{type:fhirtype}/_history", summary="Type history, newest first")
def history_of_type(type: str, request: Request, uow: ReadUow) -> FhirResponse:
    pairs = request.query_params.multi_items()
    parsed = parse_history(type, pairs, lenient=lenient_handling(request))
    result = type_history(uow.resources, parsed)
    base = fhir_base(request)
    links = _links(
        f"{base}/{type}/_history", [*parsed.applied, *_http(pairs)], parsed.cursor, result
    )
    return FhirResponse(_history_bundle(base, result, links, parsed.ignored))


@router.get("/{type:fhirtype}/{id:fhirid}/_history", summary="Instance history, newest first")
def history_of_instance(type: str, id: str, request: Request, uow: ReadUow) -> FhirResponse:
    pairs = request.query_params.multi_items()
    parsed = replace(parse_history(type, pairs, lenient=lenient_handling(request)), resource_id=id)
    result = type_history(uow.resources, parsed)
    if not result.entries:
        uow.resources.history(type, id)  # 404 when the resource was never written
    base = fhir_base(request)
    links = _links(
        f"{base}/{type}/{id}/_history", [*parsed.applied, *_http(pairs)], parsed.cursor, result
    )
    return FhirResponse(_history_bundle(base, result, links, parsed.ignored))


def fhir_base(request: Request) -> str:
    return str(request.base_url) + "fhir"


def _http(pairs: Sequence[tuple[str, str]]) -> Pairs:
    """_format and _pretty: not search criteria, but the next page should honour them too."""
    return [(k, v) for k, v in pairs if k in HTTP_PARAMETERS]


def _searchset(
    resource_type: str, pairs: Sequence[tuple[str, str]], request: Request, uow: ReadUow
) -> FhirResponse:
    parsed = parse_search(resource_type, pairs, lenient=lenient_handling(request))
    result = search(uow.resources, parsed)
    base = fhir_base(request)
    links = _links(
        f"{base}/{resource_type}", [*parsed.applied, *_http(pairs)], parsed.cursor, result
    )
    entries = [_outcome_entry(parsed.ignored)] if parsed.ignored else []
    entries += [_entry(base, r, "match") for r in result.matches]
    entries += [_entry(base, r, "include") for r in result.includes]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return FhirResponse(bundle)


def _links(
    url: str, applied: Pairs, cursor: str | None, result: SearchResult | HistoryResult
) -> list[dict[str, str]]:
    current = [*applied, (CURSOR, cursor)] if cursor else applied
    links = [{"relation": "self", "url": _with_query(url, current)}]
    if result.next_cursor is not None:
        links.append(
            {"relation": "next", "url": _with_query(url, [*applied, (CURSOR, result.next_cursor)])}
        )
    return links


def _with_query(url: str, pairs: Pairs) -> str:
    return f"{url}?{urlencode(pairs, quote_via=quote, safe=':,|/')}" if pairs else url


def _entry(base: str, resource: StoredResource, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{resource.type}/{resource.id}",
        "resource": resource.body,
        "search": {"mode": mode},
    }


def _outcome_entry(ignored: Sequence[str]) -> dict[str, Any]:
    issues = [
        operation_outcome(reason, code="not-supported", severity="warning")["issue"][0]
        for reason in ignored
    ]
    return {
        "resource": {"resourceType": "OperationOutcome", "issue": issues},
        "search": {"mode": "outcome"},
    }


_HISTORY_STATUS = {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}


def _history_bundle(
    base: str, result: HistoryResult, links: list[dict[str, str]], ignored: Sequence[str]
) -> dict[str, Any]:
    entries = [_outcome_entry(ignored)] if ignored else []
    for item in result.entries:
        version = item.resource
        entry: dict[str, Any] = {"fullUrl": f"{base}/{version.type}/{version.id}"}
        if version.body is not None:
            entry["resource"] = version.body
        entry["request"] = {
            "method": item.method,
            "url": version.type if item.method == "POST" else f"{version.type}/{version.id}",
        }
        entry["response"] = {
            "status": _HISTORY_STATUS.get(item.method, "200 OK"),
            "etag": version.etag,
            "lastModified": instant_text(version.last_updated),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle
