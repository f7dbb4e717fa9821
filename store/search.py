"""FHIR search and type-level history as SQL on the index tables.

Layers: `store.search_parameters` parses a request into criteria; this module turns each
criterion into an `IN (SELECT resource_id FROM search_<kind> ...)` clause on `resource`
(criteria AND together, a criterion's values OR together inside its subquery), pages with a
keyset cursor (the sort key and id of the last row, never an offset) and returns a
`SearchResult`. Every statement filters by the tenant of the store it is given; deleted
resources never match.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from store import tables
from store.errors import InvalidRequest
from store.fhir_dates import EARLIEST, LATEST
from store.resource_store import ResourceStore, StoredResource, stored_from_row
from store.search_parameters import (
    CURSOR,
    ID,
    LAST_UPDATED,
    Criterion,
    DateValue,
    HistoryRequest,
    Include,
    NumberValue,
    Prefix,
    ReferenceValue,
    SearchRequest,
    SortKey,
    StringMatch,
    StringValue,
    TokenValue,
    Total,
    Value,
    parse_search,
)
from store.search_params import ParamType

_RESOURCE: sa.Table = tables.Resource.__table__  # type: ignore[attr-defined]
_VERSION: sa.Table = tables.ResourceVersion.__table__  # type: ignore[attr-defined]
_TOKEN: sa.Table = tables.SearchToken.__table__  # type: ignore[attr-defined]
_REFERENCE: sa.Table = tables.SearchReference.__table__  # type: ignore[attr-defined]
_DATE: sa.Table = tables.SearchDate.__table__  # type: ignore[attr-defined]
_QUANTITY: sa.Table = tables.SearchQuantity.__table__  # type: ignore[attr-defined]
_STRING: sa.Table = tables.SearchString.__table__  # type: ignore[attr-defined]

_INDEX: dict[ParamType, sa.Table] = {
    ParamType.TOKEN: _TOKEN,
    ParamType.URI: _TOKEN,
    ParamType.REFERENCE: _REFERENCE,
    ParamType.DATE: _DATE,
    ParamType.QUANTITY: _QUANTITY,
    ParamType.NUMBER: _QUANTITY,
    ParamType.STRING: _STRING,
}
_STORED_COLUMNS = (
    _RESOURCE.c.type,
    _RESOURCE.c.id,
    _RESOURCE.c.version_id,
    _RESOURCE.c.last_updated,
    _RESOURCE.c.deleted,
    _RESOURCE.c.body,
)
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of matches, the resources included for them, and where the next page starts."""

    matches: list[StoredResource]
    includes: list[StoredResource]
    # None when not asked for (`_total`) and not known for free.
    total: int | None
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    resource: StoredResource
    method: str  # POST, PUT or DELETE


@dataclass(frozen=True, slots=True)
class HistoryResult:
    entries: list[HistoryEntry]
    total: int | None
    next_cursor: str | None


# --- search ---------------------------------------------------------------------------------


def search(store: ResourceStore, request: SearchRequest) -> SearchResult:
    """Run a parsed search in the store's tenant and transaction."""
    connection, tenant = store.connection, store.tenant
    where = _matching(store, request.type, request.criteria)
    if request.summary_count:
        return SearchResult([], [], _count(connection, where), None)

    key = _sort_expression(tenant, request.type, request.sort)
    query = sa.select(*_STORED_COLUMNS, key.label("sort_key")).where(*where)
    if request.cursor is not None:
        query = query.where(_after(key, request.sort, _decode_cursor(request.cursor, request.sort)))
    order = (
        (key.desc(), _RESOURCE.c.id.desc()) if request.sort.descending else (key, _RESOURCE.c.id)
    )
    rows = connection.execute(query.order_by(*order).limit(request.count + 1)).all()

    page, more = rows[: request.count], len(rows) > request.count
    next_cursor = _encode_cursor(request.sort, page[-1].sort_key, page[-1].id) if more else None
    if request.total is Total.ACCURATE:
        total: int | None = _count(connection, where)
    else:
        # A first page that holds everything counts itself.
        total = len(page) if request.cursor is None and not more else None

    matches = [stored_from_row(row) for row in page]
    includes = _included(connection, tenant, request, matches)
    if request.elements is not None:
        matches = [_subset(m, request.elements) for m in matches]
    return SearchResult(matches, includes, total, next_cursor)


def matching_ids(store: ResourceStore, resource_type: str, criteria: str) -> list[str]:
    """Ids of the live resources matching a query string such as conditional create's
    If-None-Exist ('identifier=urn:x|1'); strict about unknown parameters. Fits
    `store.conditional.Matcher`."""
    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    request = parse_search(resource_type, pairs)
    where = _matching(store, resource_type, request.criteria)
    query = sa.select(_RESOURCE.c.id).where(*where).order_by(_RESOURCE.c.id)
    return list(store.connection.execute(query).scalars())


def _matching(store: ResourceStore, resource_type: str, criteria: Sequence[Criterion]) -> list[Any]:
    """WHERE clauses for `resource`. The likeliest-selective criterion drives the query as an
    `id IN (subquery)`; the others are correlated EXISTS checks on the candidates it yields.
    PostgreSQL plans both forms as semi-joins either way; SQLite materialises every IN list,
    so a broad criterion (a date range) must not be one."""
    ranked = sorted(criteria, key=_selectivity_rank)
    driver = ranked[0] if ranked and _selectivity_rank(ranked[0]) < _NEGATIVE else None
    scope = _Scope(store.tenant, resource_type, store.connection.dialect.name == "sqlite")
    return [
        _RESOURCE.c.tenant == store.tenant,
        _RESOURCE.c.type == resource_type,
        _RESOURCE.c.deleted.is_(False),
        *(_criterion_clause(scope, c, drives=c is driver) for c in ranked),
    ]


@dataclass(frozen=True, slots=True)
class _Scope:
    tenant: str
    resource_type: str
    # SQLite without statistics would run an EXISTS check through the (param, value) index,
    # scanning every row of the parameter per candidate; see `_criterion_clause`.
    sqlite: bool


# Lower ranks are usually more selective. Negations never drive: they match most rows.
_RANK = {
    ParamType.REFERENCE: 1,
    ParamType.TOKEN: 2,
    ParamType.URI: 2,
    ParamType.STRING: 3,
    ParamType.QUANTITY: 4,
    ParamType.NUMBER: 4,
    ParamType.DATE: 5,
}
_NEGATIVE = 9
# Tokens with a handful of codes match a large share of a type.
_FEW_VALUES = frozenset({"status", "category", "gender", "active", "intent", "actual", "type"})


def _selectivity_rank(criterion: Criterion) -> int:
    name = criterion.param.name
    if criterion.negated or criterion.missing is not None:
        return _NEGATIVE
    if criterion.param is ID or name == "identifier":
        return 0
    if criterion.param is LAST_UPDATED or name in _FEW_VALUES:
        return 6
    return _RANK[criterion.param.type]


def _count(connection: sa.Connection, where: list[Any]) -> int:
    query = sa.select(sa.func.count()).select_from(_RESOURCE).where(*where)
    return int(connection.execute(query).scalar_one())


# --- criteria -> SQL ------------------------------------------------------------------------


def _criterion_clause(scope: _Scope, criterion: Criterion, *, drives: bool) -> Any:
    param = criterion.param
    if param is ID:
        ids = [v.code for v in criterion.values if isinstance(v, TokenValue)]
        return _RESOURCE.c.id.in_(ids)
    if param is LAST_UPDATED:
        column = _RESOURCE.c.last_updated
        return sa.or_(
            *(_date_match(v, column, column) for v in criterion.values if isinstance(v, DateValue))
        )
    table = _INDEX[param.type]
    base = [table.c.tenant == scope.tenant, table.c.type == scope.resource_type]
    values = [] if criterion.missing is not None else [_values_match(table, criterion)]
    if drives:
        rows = sa.select(table.c.resource_id).where(*base, table.c.param == param.name, *values)
        return _RESOURCE.c.id.in_(rows)
    # A check of one candidate: through the (tenant, type, resource_id) index. On SQLite the
    # `param || ''` keeps the planner off the (param, value) index, which it would otherwise
    # prefer without statistics.
    param_column = table.c.param + "" if scope.sqlite else table.c.param
    exists = sa.exists(
        sa.select(table.c.resource_id).where(
            *base, table.c.resource_id == _RESOURCE.c.id, param_column == param.name, *values
        )
    )
    return ~exists if criterion.negated or criterion.missing else exists


def _values_match(table: sa.Table, criterion: Criterion) -> ColumnElement[bool]:
    return sa.or_(*(_value_match(table, criterion, v) for v in criterion.values))


def _value_match(table: sa.Table, criterion: Criterion, value: Value) -> ColumnElement[bool]:
    if isinstance(value, TokenValue):
        return _token_match(table, value)
    if isinstance(value, ReferenceValue):
        match = table.c.target_id == value.target_id
        if value.target_type is not None:
            match = sa.and_(match, table.c.target_type == value.target_type)
        return match
    if isinstance(value, DateValue):
        return _date_match(value, table.c.low, table.c.high)
    if isinstance(value, NumberValue):
        return _number_match(table, value)
    assert isinstance(value, StringValue)
    column = table.c.value
    if criterion.string_match is StringMatch.EXACT:
        # The folded column finds the candidates through the index; the text as written
        # decides, so :exact is case-exact as FHIR asks.
        return sa.and_(column == value.text, table.c.exact == value.written)
    if criterion.string_match is StringMatch.CONTAINS:
        return column.contains(value.text, autoescape=True)
    return column.startswith(value.text, autoescape=True)


def _token_match(table: sa.Table, value: TokenValue) -> ColumnElement[bool]:
    parts = []
    if value.code is not None:
        parts.append(table.c.code == value.code)
    if value.system_given:
        parts.append(
            table.c.system.is_(None) if value.system is None else table.c.system == value.system
        )
    return sa.and_(*parts)


def _date_match(
    value: DateValue, low: ColumnElement[Any], high: ColumnElement[Any]
) -> ColumnElement[bool]:
    """FHIR R4 prefix semantics on ranges: the search value is [value.low, value.high], the
    target [low, high], both inclusive.

    Since low <= high, some prefixes also bound `low` from above; saying so explicitly lets
    the (..., low, high) index scan a bounded range instead of everything after a start.
    """
    contained = sa.and_(low >= value.low, high <= value.high)
    prefix = value.prefix
    if prefix is Prefix.EQ:
        return sa.and_(contained, low <= value.high)
    if prefix is Prefix.NE:
        return sa.or_(low < value.low, high > value.high)
    if prefix is Prefix.GT:  # the range above the search value overlaps the target
        return high > value.high
    if prefix is Prefix.LT:  # the range below the search value overlaps the target
        return low < value.low
    if prefix is Prefix.GE:
        return sa.or_(high > value.high, contained)
    if prefix is Prefix.LE:
        return sa.and_(sa.or_(low < value.low, contained), low <= value.high)
    if prefix is Prefix.SA:  # no overlap, and the target lies above
        return low > value.high
    assert prefix is Prefix.EB  # no overlap, and the target lies below
    return sa.and_(high < value.low, low < value.low)


def _number_match(table: sa.Table, value: NumberValue) -> ColumnElement[bool]:
    column = table.c.value
    number, low, high = float(value.value), float(value.low), float(value.high)
    # eq/ne honour the implied precision of the value; the comparisons treat it as exact.
    comparisons = {
        Prefix.EQ: sa.and_(column >= low, column < high),
        Prefix.NE: sa.or_(column < low, column >= high),
        Prefix.GT: column > number,
        Prefix.SA: column > number,
        Prefix.LT: column < number,
        Prefix.EB: column < number,
        Prefix.GE: column >= number,
        Prefix.LE: column <= number,
    }
    parts = [comparisons[value.prefix]]
    if value.system is not None:
        parts.append(table.c.system == value.system)
    if value.code is not None:
        parts.append(table.c.code == value.code)
    return sa.and_(*parts)


# --- order and keyset paging ----------------------------------------------------------------


def _sort_expression(tenant: str, resource_type: str, sort: SortKey) -> ColumnElement[Any]:
    if sort.name == LAST_UPDATED.name:
        return _RESOURCE.c.last_updated
    if sort.name == ID.name:
        return _RESOURCE.c.id
    # A date parameter: the earliest start ascending, the latest end descending (FHIR sorts
    # on the value that comes first in the requested order); resources without one go last.
    bound = sa.func.max(_DATE.c.high) if sort.descending else sa.func.min(_DATE.c.low)
    sentinel = EARLIEST if sort.descending else LATEST
    per_resource = (
        sa.select(bound)
        .where(
            _DATE.c.tenant == tenant,
            _DATE.c.type == resource_type,
            _DATE.c.param == sort.name,
            _DATE.c.resource_id == _RESOURCE.c.id,
        )
        .scalar_subquery()
    )
    return sa.func.coalesce(per_resource, sa.literal(sentinel, tables.UTCDateTime()))


def _after(
    key: ColumnElement[Any], sort: SortKey, position: tuple[Any, str]
) -> ColumnElement[bool]:
    """Rows strictly after (key, id) in the sort order. The redundant bound on the key alone
    lets the database range-scan an index on it."""
    value, last_id = position
    if sort.name == ID.name:
        return _RESOURCE.c.id < last_id if sort.descending else _RESOURCE.c.id > last_id
    if sort.descending:
        return sa.and_(key <= value, sa.or_(key < value, _RESOURCE.c.id < last_id))
    return sa.and_(key >= value, sa.or_(key > value, _RESOURCE.c.id > last_id))


def _encode_cursor(sort: SortKey, key: Any, last_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = orjson.dumps([sort.text, value, last_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: SortKey) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_text, value, last_id = orjson.loads(raw)
        if sort_text != sort.text or not isinstance(last_id, str):
            raise ValueError("another sort")
        key = value if sort.name == ID.name else datetime.fromisoformat(value)
        if not isinstance(key, str) and (not isinstance(key, datetime) or key.tzinfo is None):
            raise ValueError("not a sort key")
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidRequest(
            f"{CURSOR} is not a cursor of this search: follow the next link as given", CURSOR
        ) from None
    return key, last_id


# --- _include, _revinclude and _elements ----------------------------------------------------


def _included(
    connection: sa.Connection, tenant: str, request: SearchRequest, matches: list[StoredResource]
) -> list[StoredResource]:
    if not matches or not (request.includes or request.revincludes):
        return []
    page_ids = [m.id for m in matches]
    seen = {(m.type, m.id) for m in matches}
    found: list[StoredResource] = []
    queries = [_include_query(tenant, i, page_ids) for i in request.includes]
    queries += [_revinclude_query(tenant, request.type, i, page_ids) for i in request.revincludes]
    for query in queries:
        for row in connection.execute(query.order_by(_RESOURCE.c.type, _RESOURCE.c.id)):
            if (row.type, row.id) not in seen:
                seen.add((row.type, row.id))
                found.append(stored_from_row(row))
    return found


def _live(tenant: str) -> list[Any]:
    return [_RESOURCE.c.tenant == tenant, _RESOURCE.c.deleted.is_(False)]


def _include_query(tenant: str, include: Include, page_ids: list[str]) -> sa.Select[Any]:
    """What the page's resources point to through `include.param`."""
    targets = sa.select(_REFERENCE.c.target_type, _REFERENCE.c.target_id).where(
        _REFERENCE.c.tenant == tenant,
        _REFERENCE.c.type == include.source_type,
        _REFERENCE.c.param == include.param.name,
        _REFERENCE.c.resource_id.in_(page_ids),
    )
    if include.target_type is not None:
        targets = targets.where(_REFERENCE.c.target_type == include.target_type)
    return sa.select(*_STORED_COLUMNS).where(
        *_live(tenant), sa.tuple_(_RESOURCE.c.type, _RESOURCE.c.id).in_(targets)
    )


def _revinclude_query(
    tenant: str, searched_type: str, include: Include, page_ids: list[str]
) -> sa.Select[Any]:
    """The `include.source_type` resources that point to the page's resources."""
    sources = sa.select(_REFERENCE.c.resource_id).where(
        _REFERENCE.c.tenant == tenant,
        _REFERENCE.c.type == include.source_type,
        _REFERENCE.c.param == include.param.name,
        _REFERENCE.c.target_type == searched_type,
        _REFERENCE.c.target_id.in_(page_ids),
    )
    return sa.select(*_STORED_COLUMNS).where(
        *_live(tenant), _RESOURCE.c.type == include.source_type, _RESOURCE.c.id.in_(sources)
    )


_ALWAYS_KEPT = ("resourceType", "id", "meta")


def _subset(resource: StoredResource, elements: Sequence[str]) -> StoredResource:
    """`_elements`: the listed top-level elements plus id and meta, tagged SUBSETTED."""
    body = resource.body or {}
    kept = {k: v for k, v in body.items() if k in _ALWAYS_KEPT or k in elements}
    meta = dict(kept.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    kept["meta"] = meta
    return StoredResource(
        resource.type,
        resource.id,
        resource.version_id,
        resource.last_updated,
        resource.deleted,
        kept,
    )


# --- type-level history ---------------------------------------------------------------------


def type_history(store: ResourceStore, request: HistoryRequest) -> HistoryResult:
    """Every version of every resource of a type (or of `request.resource_id` alone), newest
    first, keyset-paged."""
    where: list[Any] = [_VERSION.c.tenant == store.tenant, _VERSION.c.type == request.type]
    if request.resource_id is not None:
        where.append(_VERSION.c.id == request.resource_id)
    if request.since is not None:
        where.append(_VERSION.c.last_updated >= request.since)
    query = sa.select(_VERSION).where(*where)
    if request.cursor is not None:
        when, last_id, last_version = _decode_history_cursor(request.cursor)
        updated, id_, version = (
            _VERSION.c.last_updated,
            _VERSION.c.id,
            _VERSION.c.version_id,
        )
        query = query.where(
            updated <= when,
            sa.or_(
                updated < when,
                id_ < last_id,
                sa.and_(id_ == last_id, version < last_version),
            ),
        )
    order = (_VERSION.c.last_updated.desc(), _VERSION.c.id.desc(), _VERSION.c.version_id.desc())
    rows = store.connection.execute(query.order_by(*order).limit(request.count + 1)).all()
    page, more = rows[: request.count], len(rows) > request.count
    entries = [HistoryEntry(stored_from_row(row), row.method) for row in page]
    next_cursor = None
    if more:
        last = page[-1]
        raw = orjson.dumps([last.last_updated.isoformat(), last.id, last.version_id])
        next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    total = len(page) if request.cursor is None and not more else None
    return HistoryResult(entries, total, next_cursor)


def _decode_history_cursor(cursor: str) -> tuple[datetime, str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, last_id, last_version = orjson.loads(raw)
        if not isinstance(last_id, str) or not isinstance(last_version, int):
            raise ValueError("malformed")
        moment = datetime.fromisoformat(when)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, last_id, last_version
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidRequest(
            f"{CURSOR} is not a history cursor: follow the next link as given", CURSOR
        ) from None
