"""transaction and batch Bundles: FHIR's processing rules on top of `ResourceStore.write`.

A transaction is one call to `write` (so one set of executemany statements) inside the caller's
unit of work: any error rolls back every entry. A batch runs each entry in its own savepoint.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import parse_qsl, urlencode

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, Uri, Url, Xhtml

from store.conditional import existing_or_claim, normalise_criteria
from store.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotSupported,
    PreconditionFailed,
    ReptrendError,
)
from store.resource_store import (
    Method,
    ResourceStore,
    StoredResource,
    Write,
    WriteOutcome,
    instant_text,
    new_resource_id,
    version_from_etag,
)
from store.search import matching_ids, search
from store.search_parameters import CURSOR, parse_search
from store.search_params import RESOURCE_SPECS, SUPPORTED_TYPES

# FHIR transaction processing order: deletes, creates, updates, then reads.
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}

ErrorEntry = Callable[[ReptrendError], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Entry:
    position: int
    method: str
    type: str
    id: str
    full_url: str | None
    resource: dict[str, Any] | None
    version: int | None = None
    # Search criteria of a conditional create (ifNoneExist) or update (PUT Type?criteria).
    condition: str | None = None
    if_match: int | None = None
    # Set when a conditional create found its resource: nothing is written for the entry.
    matched: bool = False
    # A search (GET Type?criteria): its first page answers the entry, as a searchset.
    search: str | None = None


def _parse_entry(position: int, raw: Any) -> Entry:
    where = f"Bundle.entry[{position}]"
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{where} must be an object", where)
    request = raw.get("request")
    if not isinstance(request, Mapping):
        raise InvalidRequest(f"{where}.request is required in a transaction", f"{where}.request")
    method = str(request.get("method", "")).upper()
    path, _, query = str(request.get("url", "")).strip("/").partition("?")
    if method not in _ORDER:
        raise NotSupported(f"{where}.request.method {method!r} is not supported", where)
    parts = path.split("/")
    resource_type = parts[0]
    if resource_type not in SUPPORTED_TYPES:
        raise NotSupported(
            f"{where}.request.url names an unsupported type {resource_type!r}",
            f"{where}.request.url",
        )
    if method != "GET" and RESOURCE_SPECS[resource_type].read_only:
        # As the REST interactions answer (405): a Bundle is no way around it.
        raise MethodNotAllowed(
            f"{where}: {resource_type} is read-only on this server", f"{where}.request.method"
        )
    resource = raw.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise InvalidRequest(f"{where}.resource is required for {method}", f"{where}.resource")
    if_match = version_from_etag(request.get("ifMatch"), f"{where}.request.ifMatch")
    full_url = raw.get("fullUrl")
    if method == "POST":
        if len(parts) != 1 or query:
            raise InvalidRequest(f"{where}.request.url must be a type for POST", where)
        condition = request.get("ifNoneExist") or None
        return Entry(
            position,
            method,
            resource_type,
            new_resource_id(),
            full_url,
            resource,
            condition=condition,
        )
    if query and method == "GET" and len(parts) == 1:
        return Entry(position, method, resource_type, "", None, None, search=query)
    if query:
        if method != "PUT" or len(parts) != 1:
            raise InvalidRequest(
                f"{where}: search criteria in request.url are for GET [type]?... (a search) "
                "and PUT [type]?... (a conditional update)",
                f"{where}.request.url",
            )
        return Entry(
            position,
            method,
            resource_type,
            new_resource_id(),
            full_url,
            resource,
            condition=query,
            if_match=if_match,
        )
    if len(parts) == 4 and parts[2] == "_history" and method == "GET":
        return Entry(position, method, resource_type, parts[1], None, None, int(parts[3]))
    if len(parts) != 2:
        raise InvalidRequest(f"{where}.request.url must be '{resource_type}/[id]'", where)
    return Entry(position, method, resource_type, parts[1], full_url, resource, if_match=if_match)


def _with_assigned_id(entry: Entry, body: dict[str, Any]) -> dict[str, Any]:
    """Creates and conditional updates get the id the server chose; a plain PUT keeps its
    own, so a body whose id differs from the URL is still rejected."""
    if entry.method == "POST" or entry.condition is not None:
        return {**body, "id": entry.id}
    return body


def _in_request(error: ReptrendError, entry: Entry) -> ReptrendError:
    """Point an error about a conditional entry's criteria at that entry's request."""
    field = "ifNoneExist" if entry.method == "POST" else "url"
    error.diagnostics = f"Bundle.entry[{entry.position}]: {error.diagnostics}"
    error.expression = f"Bundle.entry[{entry.position}].request.{field}"
    return error


def _resolve_condition(store: ResourceStore, entry: Entry) -> Entry:
    """Decide which resource a conditional entry creates or updates (race-free claims)."""
    if entry.condition is None:
        return entry
    try:
        existing = existing_or_claim(store, entry.type, entry.condition, entry.id)
    except ReptrendError as error:
        raise _in_request(error, entry) from None
    if existing is None:
        return entry
    if entry.method == "POST":
        return replace(entry, id=existing, matched=True)
    return _resolved_update(entry, existing)


def _resolved_update(entry: Entry, existing: str) -> Entry:
    body_id = (entry.resource or {}).get("id")
    if body_id not in (None, existing):
        raise InvalidRequest(
            f"Bundle.entry[{entry.position}]: the body's id does not match the resource "
            "the criteria found",
            f"Bundle.entry[{entry.position}].resource.id",
        )
    return replace(entry, id=existing)


_REFERENCE = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')
# Bundle-local identities that may still appear in the text after the reference pass.
_URN = re.compile(rb"urn:[^\s\"'\\<>]+")
_URL = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'\\<>]+")
# <a href="..."> and <img src="..."> (either quote) in a narrative's xhtml.
_NARRATIVE_LINK = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])([^"'<>]*)\2""")


def _rewrite_all(
    resources: list[dict[str, Any]], targets: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Point links to Bundle entries' fullUrls (urn:uuid:...) at the entries' new ids.

    R4 (http.html, transaction processing rules): the server replaces every matching link,
    in references, in elements of type uri and url and in the narrative's <a href> and
    <img src>; canonicals are not replaced. References go first: the whole list is
    serialised once and rewritten with one regex pass (in C) instead of walking every node
    in Python; orjson escapes quotes inside strings, so text that merely looks like a
    reference is left alone. Only when a fullUrl still occurs in the text after that (rare:
    the session bundles link entries by reference only) are the resources that hold one
    walked, along the element types the R4B models declare (`_rewrite_links`). Inputs are
    not mutated.
    """
    if not targets or not resources:
        return resources
    text = orjson.dumps(resources)

    def replace(match: re.Match[bytes]) -> bytes:
        value = match.group(1).decode()
        target = targets.get(value)
        return match.group(0) if target is None else b'"reference":' + orjson.dumps(target)

    rewritten = _REFERENCE.sub(replace, text)
    linked = _remaining(rewritten, targets)
    if rewritten == text and not linked:
        return resources
    result: list[dict[str, Any]] = orjson.loads(rewritten)
    if linked:
        named = {url: target for url, target in targets.items() if url in linked}
        for resource in result:
            serialised = orjson.dumps(resource).decode()
            if any(url in serialised for url in named):
                _rewrite_links(resource, _resource_model(resource.get("resourceType")), named)
    return result


def _remaining(text: bytes, targets: Mapping[str, str]) -> set[str]:
    """The targets' fullUrls that still occur in `text` as a whole string or attribute value,
    from one regex pass for urns (a miss costs one scan of the text) and, only when some
    fullUrl is an absolute URL (a PUT's RESTful fullUrl, say), a second one for URLs."""
    found = set(_URN.findall(text))
    if any(not url.startswith("urn:") for url in targets):
        found.update(_URL.findall(text))
    return {url.decode() for url in found} & targets.keys()


_URI = "uri"
_XHTML = "xhtml"
_COMPLEX = "complex"
_RESOURCE = "resource"

_LinkField = tuple[str, "type[FHIRAbstractModel] | None"]


def _link_kind(annotation: Any) -> _LinkField | None:
    """How a field can hold a link: uri/url, xhtml, an element or a resource that can hold
    one, or not at all (None). uuid and oid elements cannot hold a `Type/id` reference (the
    resource would no longer validate) and canonicals are not replaced: left alone."""
    options = [a for a in get_args(annotation) if a is not NoneType]
    if get_origin(annotation) in (Union, UnionType, list):
        return next(filter(None, map(_link_kind, options)), None)
    if get_origin(annotation) is Annotated:
        metadata = options[1:]
        if any(type(m) in (Uri, Url) for m in metadata):
            return _URI, None
        if any(type(m) is Xhtml for m in metadata):
            return _XHTML, None
        return None
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        model = annotation.get_model_klass()
        if model.__name__ == "Resource":
            return _RESOURCE, None
        return _COMPLEX, model
    return None


@functools.cache
def _link_fields(model: type[FHIRAbstractModel]) -> Mapping[str, _LinkField]:
    fields: dict[str, _LinkField] = {}
    for name, field in model.model_fields.items():
        kind = _link_kind(field.annotation)
        if kind is not None:
            fields[field.alias or name] = kind
    return fields


@functools.cache
def _resource_model(resource_type: Any) -> type[FHIRAbstractModel] | None:
    if type(resource_type) is not str:
        return None
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


def _rewrite_links(
    node: dict[str, Any], model: type[FHIRAbstractModel] | None, targets: Mapping[str, str]
) -> None:
    """Rewrite, in place, uri/url values equal to a fullUrl and narrative links to one."""
    if model is None:
        return
    fields = _link_fields(model)
    for key, value in node.items():
        field = fields.get(key)
        if field is None:
            continue
        kind, child = field
        if kind == _URI:
            node[key] = _map_values(value, lambda v: targets.get(v, v))
        elif kind == _XHTML:
            node[key] = _map_values(value, lambda v: _rewrite_narrative(v, targets))
        else:
            for item in value if type(value) is list else [value]:
                if type(item) is dict:
                    if kind == _RESOURCE:
                        child = _resource_model(item.get("resourceType"))
                    _rewrite_links(item, child, targets)


def _map_values(value: Any, rewrite: Callable[[str], str]) -> Any:
    if type(value) is str:
        return rewrite(value)
    if type(value) is list:
        return [rewrite(v) if type(v) is str else v for v in value]
    return value


def _rewrite_narrative(div: str, targets: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        target = targets.get(match.group(3))
        if target is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{target}{match.group(2)}"

    return _NARRATIVE_LINK.sub(replace, div)


def _rewrite_references(resource: dict[str, Any], targets: Mapping[str, str]) -> dict[str, Any]:
    return _rewrite_all([resource], targets)[0]


def _response(outcome: WriteOutcome, method: str) -> dict[str, Any]:
    resource = outcome.resource
    if method == "DELETE":
        return {"response": {"status": "204 No Content"}}
    status = "201 Created" if outcome.created else "200 OK"
    return {
        "fullUrl": f"{resource.type}/{resource.id}",
        "response": {
            "status": status,
            "location": f"{resource.type}/{resource.id}/_history/{resource.version_id}",
            "etag": resource.etag,
            "lastModified": instant_text(resource.last_updated),
        },
    }


def _read_response(resource: StoredResource) -> dict[str, Any]:
    return {
        "fullUrl": f"{resource.type}/{resource.id}",
        "resource": resource.body,
        "response": {"status": "200 OK", "etag": resource.etag},
    }


def _get_response(store: ResourceStore, entry: Entry) -> dict[str, Any]:
    """A read, a vread or a search: a search answers with its first page as a searchset
    (entries and the next page's link relative to the base, as the entry's own URL is)."""
    if entry.search is None:
        return _read_response(_read(store, entry))
    where = f"Bundle.entry[{entry.position}].request.url"
    try:
        request = parse_search(entry.type, parse_qsl(entry.search, keep_blank_values=True))
        result = search(store, request)
    except ReptrendError as error:
        error.diagnostics = f"Bundle.entry[{entry.position}]: {error.diagnostics}"
        error.expression = where
        raise
    found = [(r, "match") for r in result.matches] + [(r, "include") for r in result.includes]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    if result.next_cursor is not None:
        applied = [*request.applied, (CURSOR, result.next_cursor)]
        bundle["link"] = [{"relation": "next", "url": f"{entry.type}?{urlencode(applied)}"}]
    bundle["entry"] = [
        {"fullUrl": f"{r.type}/{r.id}", "resource": r.body, "search": {"mode": mode}}
        for r, mode in found
    ]
    return {"resource": bundle, "response": {"status": "200 OK"}}


def _entries(bundle: Mapping[str, Any]) -> list[Any]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRequest("Bundle.entry must be an array", "Bundle.entry")
    return entries


def process_transaction(store: ResourceStore, bundle: Mapping[str, Any]) -> dict[str, Any]:
    """All or nothing: raises on the first problem, leaving the caller to roll back.

    Entries are processed in FHIR's order (deletes, creates, updates, reads) and conditional
    criteria are evaluated in that order: the deletes are written first (when anything
    follows them), so a conditional create after them no longer finds what they deleted and
    an Observation is not part of a Procedure they deleted. The creates and updates then go
    in as one write, as before: a transaction of plain creates is still one batch of
    statements.
    """
    parsed = [_parse_entry(i, raw) for i, raw in enumerate(_entries(bundle))]
    ordered = sorted(parsed, key=lambda e: (_ORDER[e.method], e.position))
    deletes = [e for e in ordered if e.method == "DELETE"]
    outcomes: dict[int, WriteOutcome] = {}
    if deletes:
        outcomes.update(_write_entries(store, deletes, {}))
    resolved = _resolve_conditions(store, [e for e in ordered if e.method in ("POST", "PUT")])
    written = [e for e in resolved if not e.matched]
    _check_identities([*deletes, *written])
    targets = {e.full_url: f"{e.type}/{e.id}" for e in resolved if e.full_url}
    outcomes.update(_write_entries(store, written, targets))
    _check_conditions_in_order(store, resolved)
    responses: dict[int, dict[str, Any]] = {
        e.position: _response(outcomes[e.position], e.method) for e in [*deletes, *written]
    }
    for entry in resolved:
        if entry.matched:
            existing = store.read(entry.type, entry.id)
            responses[entry.position] = _response(WriteOutcome(existing, created=False), "POST")
    for entry in ordered:
        if entry.method == "GET":
            responses[entry.position] = _get_response(store, entry)
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [responses[i] for i in range(len(parsed))],
    }


def _write_entries(
    store: ResourceStore, entries: list[Entry], targets: Mapping[str, str]
) -> dict[int, WriteOutcome]:
    """One `store.write` for these entries (references to fullUrls rewritten); outcomes by
    entry position."""
    with_body = [e for e in entries if e.resource is not None]
    bodies = dict(
        zip(
            (e.position for e in with_body),
            _rewrite_all([e.resource for e in with_body if e.resource is not None], targets),
            strict=True,
        )
    )
    writes: list[Write] = []
    for entry in entries:
        body = bodies.get(entry.position)
        if body is not None:
            body = _with_assigned_id(entry, body)
        method = Method.UPDATE if entry.method == "PUT" else Method(entry.method)
        writes.append(Write(method, entry.type, entry.id, body, if_match=entry.if_match))
    if not writes:
        return {}
    try:
        outcomes = store.write(writes)
    except ReptrendError as error:
        raise _in_entry(error, entries) from None
    return {e.position: o for e, o in zip(entries, outcomes, strict=True)}


def _resolve_conditions(store: ResourceStore, entries: list[Entry]) -> list[Entry]:
    """Resolve conditional entries in processing order.

    An entry whose criteria (normalised: the same search however written) are those of an
    earlier entry of the transaction gets that entry's resource: a second identical
    conditional create answers with the resource the first creates, and claims nothing (the
    claim in `conditional_key` names the first's id, which is the one created)."""
    seen: dict[tuple[str, str], Entry] = {}
    resolved: list[Entry] = []
    for entry in entries:
        if entry.condition is None:
            resolved.append(entry)
            continue
        try:
            key = (entry.type, normalise_criteria(entry.condition))
        except ReptrendError as error:
            raise _in_request(error, entry) from None
        earlier = seen.get(key)
        if earlier is None:
            outcome = _resolve_condition(store, entry)
            seen[key] = outcome
        elif entry.method == "POST":
            outcome = replace(entry, id=earlier.id, matched=True)
        else:
            outcome = _resolved_update(entry, earlier.id)
        resolved.append(outcome)
    return resolved


def _check_identities(entries: list[Entry]) -> None:
    """FHIR: a transaction whose writes (conditional ones as resolved) name one resource
    twice fails. Deletes are written on their own first, so the store's own check of one
    write does not see them together with the rest."""
    first: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        other = first.setdefault((entry.type, entry.id), entry)
        if other is not entry:
            raise InvalidRequest(
                f"Bundle.entry[{entry.position}]: {entry.type}/{entry.id} is also written by "
                f"Bundle.entry[{other.position}]; a transaction writes each resource once",
                f"Bundle.entry[{entry.position}].request",
            )


def _check_conditions_in_order(store: ResourceStore, resolved: list[Entry]) -> None:
    """Criteria were evaluated before the creates and updates were written (so they are one
    write). A conditional entry whose criteria, evaluated in order, would have found what an
    earlier entry of the same type writes (different criteria matching the same new
    resource, say) would have had another outcome: the transaction fails (412) rather than
    store a duplicate. Searches only for conditional entries that follow a write of their
    type in this transaction."""
    written_before: dict[str, dict[str, Entry]] = {}
    for entry in resolved:
        earlier = written_before.get(entry.type, {})
        if entry.condition is not None and earlier:
            found = set(matching_ids(store, entry.type, entry.condition)) - {entry.id}
            clash = sorted(found & set(earlier))
            if clash:
                other = earlier[clash[0]]
                error = PreconditionFailed(
                    f"{entry.type}/{clash[0]}, which Bundle.entry[{other.position}] writes, also "
                    "matches these criteria: processed in order, they would not create or "
                    "update what they did; make the criteria of the entries distinct"
                )
                raise _in_request(error, entry)
        if not entry.matched:
            written_before.setdefault(entry.type, {})[entry.id] = entry


def _read(store: ResourceStore, entry: Entry) -> StoredResource:
    if entry.version is not None:
        return store.vread(entry.type, entry.id, entry.version)
    return store.read(entry.type, entry.id)


def _in_entry(error: ReptrendError, written: list[Entry]) -> ReptrendError:
    """Point an error raised for one write at the Bundle entry it came from."""
    index = error.batch_index
    if index is None:
        return error
    position = written[index].position
    expression = error.expression or ""
    if expression == "If-Match":
        error.expression = f"Bundle.entry[{position}].request.ifMatch"
    else:
        _, _, rest = expression.partition(".")
        error.expression = f"Bundle.entry[{position}].resource" + (f".{rest}" if rest else "")
    error.diagnostics = f"Bundle.entry[{position}]: {error.diagnostics}"
    return error


def process_batch(
    store: ResourceStore, bundle: Mapping[str, Any], error_entry: ErrorEntry
) -> dict[str, Any]:
    """Each entry on its own: a failing entry gets its error, the others still apply."""
    responses: list[dict[str, Any]] = []
    for position, raw in enumerate(_entries(bundle)):
        savepoint = store.connection.begin_nested()
        try:
            entry = _resolve_condition(store, _parse_entry(position, raw))
            if entry.method == "GET":
                responses.append(_get_response(store, entry))
            elif entry.matched:
                existing = store.read(entry.type, entry.id)
                responses.append(_response(WriteOutcome(existing, created=False), "POST"))
            else:
                body = None
                if entry.resource is not None:
                    body = _with_assigned_id(entry, entry.resource)
                method = Method.UPDATE if entry.method == "PUT" else Method(entry.method)
                write = Write(method, entry.type, entry.id, body, if_match=entry.if_match)
                try:
                    outcome = store.write([write])[0]
                except ReptrendError as error:
                    raise _in_entry(error, [entry]) from None
                responses.append(_response(outcome, entry.method))
            savepoint.commit()
        except ReptrendError as error:
            savepoint.rollback()
            responses.append(error_entry(error))
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}
