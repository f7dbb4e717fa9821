"""FHIR search parameters, parsed and checked against the registry in `search_params`.

Raw `name=value` pairs (from a query string or a form body) become frozen dataclasses that
`store.search` turns into SQL. Everything a client can get wrong is caught here, with an
error naming the parameter; under `Prefer: handling=lenient` unknown or unsupported
parameters are dropped instead and reported in `SearchRequest.ignored`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from store.errors import InvalidRequest, NotSupported
from store.fhir_dates import value_range
from store.indexing import split_reference
from store.search_params import RESOURCE_SPECS, ParamType, ResourceSpec, SearchParam
from store.string_folding import fold_string

DEFAULT_COUNT = 50
MAX_COUNT = 1000

# Parameters every type has; they search columns of `resource`, not the index tables.
ID = SearchParam("_id", ParamType.TOKEN, ())
LAST_UPDATED = SearchParam("_lastUpdated", ParamType.DATE, ())
COMMON_PARAMS: Mapping[str, SearchParam] = {p.name: p for p in (ID, LAST_UPDATED)}

# The result parameters we implement, with what the CapabilityStatement says about them.
RESULT_PARAMETERS: Mapping[str, str] = {
    "_count": f"page size, default {DEFAULT_COUNT}, at most {MAX_COUNT}; 0 answers the total only",
    "_sort": "one key: _lastUpdated, _id or a date parameter, '-' for descending",
    "_include": "Type:param[:Target] for any reference parameter of the searched type",
    "_revinclude": "Type:param[:Target] for any reference parameter that can point here",
    "_summary": "count or false",
    "_elements": "top-level elements to keep (the result is tagged SUBSETTED)",
    "_total": "accurate, estimate or none; accurate always counts (alias: _totalMethod=count)",
}
# Aidbox's spelling of _total=accurate, which fhirpy's count() sends.
TOTAL_METHOD = "_totalMethod"
# Paging token of our `next` links: opaque to clients, see store.search.
CURSOR = "_cursor"
# Handled at the HTTP edge (content negotiation), never a search criterion.
HTTP_PARAMETERS = frozenset({"_format", "_pretty"})
HISTORY_PARAMETERS = frozenset({"_count", "_since", CURSOR})


class UnsupportedParameter(InvalidRequest):
    """A parameter or modifier this server does not offer (400, or ignored when lenient)."""

    code = "not-supported"


class Prefix(StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    SA = "sa"
    EB = "eb"


_PREFIXES = frozenset(p.value for p in Prefix)


# --- parsed values (one per comma-separated alternative) ------------------------------------


@dataclass(frozen=True, slots=True)
class TokenValue:
    """`code`, `system|code`, `|code` (no system) or `system|` (any code in the system)."""

    code: str | None
    system: str | None = None
    system_given: bool = False


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    target_id: str
    target_type: str | None = None


@dataclass(frozen=True, slots=True)
class DateValue:
    """The inclusive UTC range a search date covers at its own precision, and the prefix."""

    prefix: Prefix
    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class NumberValue:
    """A number (or quantity) and the range its implied precision covers: [low, high)."""

    prefix: Prefix
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class StringValue:
    text: str  # case- and accent-folded (fold_string), like the index's lookup column
    written: str  # as given, for :exact


Value = TokenValue | ReferenceValue | DateValue | NumberValue | StringValue


class StringMatch(StrEnum):
    STARTS_WITH = "starts-with"
    EXACT = "exact"
    CONTAINS = "contains"


@dataclass(frozen=True, slots=True)
class Criterion:
    """One `name[:modifier]=v1,v2` parameter: the values are alternatives (OR).

    Criteria of one request all have to hold (AND), so a repeated parameter is two criteria.
    """

    param: SearchParam
    values: tuple[Value, ...] = ()
    # `:missing=true|false`; when set, `values` is empty.
    missing: bool | None = None
    # `:not` (tokens): resources with no matching value.
    negated: bool = False
    string_match: StringMatch = StringMatch.STARTS_WITH


@dataclass(frozen=True, slots=True)
class SortKey:
    """`_lastUpdated` (the default), `_id` or a date parameter; ties broken by id."""

    name: str = LAST_UPDATED.name
    descending: bool = False

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.name


@dataclass(frozen=True, slots=True)
class Include:
    """`_include`/`_revinclude=source_type:param[:target_type]`."""

    source_type: str
    param: SearchParam
    target_type: str | None = None


class Total(StrEnum):
    NONE = "none"
    ESTIMATE = "estimate"
    ACCURATE = "accurate"


@dataclass(frozen=True, slots=True)
class SearchRequest:
    type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    sort: SortKey = SortKey()
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    summary_count: bool = False
    elements: tuple[str, ...] | None = None
    total: Total | None = None
    cursor: str | None = None
    # The pairs that were applied (without the cursor): what `self` and `next` links repeat.
    applied: tuple[tuple[str, str], ...] = ()
    # Why each parameter dropped under lenient handling was dropped.
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    type: str
    count: int = DEFAULT_COUNT
    since: datetime | None = None
    cursor: str | None = None
    applied: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    resource_id: str | None = None  # instance history: only this resource's versions


# --- entry points ---------------------------------------------------------------------------


def resource_spec(resource_type: str) -> ResourceSpec:
    spec = RESOURCE_SPECS.get(resource_type)
    if spec is None:
        raise NotSupported(f"resource type '{resource_type}' is not supported by this server")
    return spec


def parse_search(
    resource_type: str, pairs: Sequence[tuple[str, str]], *, lenient: bool = False
) -> SearchRequest:
    """Parse search parameters for `resource_type`; raises InvalidRequest naming the parameter."""
    parser = _SearchParser(resource_spec(resource_type), lenient)
    for name, value in pairs:
        parser.add(name, value)
    return parser.result()


def parse_history(
    resource_type: str, pairs: Sequence[tuple[str, str]], *, lenient: bool = False
) -> HistoryRequest:
    resource_spec(resource_type)
    count, since, cursor = DEFAULT_COUNT, None, None
    applied: list[tuple[str, str]] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for name, value in pairs:
        if name in HTTP_PARAMETERS or value == "":
            continue
        if name not in HISTORY_PARAMETERS:
            problem = UnsupportedParameter(
                f"'{name}' is not supported for history: use _count, _since", name
            )
            if not lenient:
                raise problem
            ignored.append(problem.diagnostics)
            continue
        _once(name, seen)
        if name == "_count":
            count = _count(value)
        elif name == "_since":
            since = _instant(name, value)
        else:
            cursor = value
            continue
        applied.append((name, value))
    return HistoryRequest(resource_type, count, since, cursor, tuple(applied), tuple(ignored))


# --- the search parser ----------------------------------------------------------------------


@dataclass
class _SearchParser:
    spec: ResourceSpec
    lenient: bool
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    sort: SortKey = SortKey()
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    summary_count: bool = False
    elements: tuple[str, ...] | None = None
    total: Total | None = None
    cursor: str | None = None
    applied: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, name: str, value: str) -> None:
        # Empty values constrain nothing (clients send `name=` for unset form fields).
        if name in HTTP_PARAMETERS or value == "":
            return
        try:
            kept = self._apply(name, value)
        except UnsupportedParameter as problem:
            if not self.lenient:
                raise
            self.ignored.append(problem.diagnostics)
            return
        if kept:
            self.applied.append((name, value))

    def result(self) -> SearchRequest:
        return SearchRequest(
            type=self.spec.type,
            criteria=tuple(self.criteria),
            count=self.count,
            sort=self.sort,
            includes=tuple(self.includes),
            revincludes=tuple(self.revincludes),
            summary_count=self.summary_count,
            elements=self.elements,
            total=self.total,
            cursor=self.cursor,
            applied=tuple(self.applied),
            ignored=tuple(self.ignored),
        )

    def _apply(self, name: str, value: str) -> bool:
        """Record one pair; False for the paging cursor, which links add themselves."""
        base, _, modifier = name.partition(":")
        if base.startswith("_") and base not in COMMON_PARAMS:
            return self._result_parameter(base, modifier, value)
        param = COMMON_PARAMS.get(base) or self.spec.params.get(base)
        if param is None:
            raise UnsupportedParameter(
                f"unknown search parameter '{name}' for {self.spec.type}; supported: "
                + ", ".join(sorted([*COMMON_PARAMS, *self.spec.params])),
                base,
            )
        self.criteria.append(_criterion(param, modifier if ":" in name else None, value, name))
        return True

    def _result_parameter(self, name: str, modifier: str, value: str) -> bool:
        if name == TOTAL_METHOD:
            name, value = "_total", {"count": Total.ACCURATE.value}.get(value, value)
        if name not in RESULT_PARAMETERS and name != CURSOR:
            raise UnsupportedParameter(f"the parameter '{name}' is not supported", name)
        # `_sort:asc=date` / `_sort:desc=date` is the DSTU2 spelling some clients still use.
        if modifier and not (name == "_sort" and modifier in ("asc", "desc")):
            raise UnsupportedParameter(f"'{name}:{modifier}' is not supported", name)
        if name == "_include":
            self.includes.append(self._include(value, name))
            return True
        if name == "_revinclude":
            self.revincludes.append(self._revinclude(value, name))
            return True
        _once(name, self.seen)
        if name == CURSOR:
            self.cursor = value
            return False
        if name == "_count":
            self.count = _count(value)
            self.summary_count = self.summary_count or self.count == 0
        elif name == "_sort":
            self.sort = self._sort(value if modifier != "desc" else f"-{value}")
        elif name == "_summary":
            if value not in ("count", "false"):
                raise UnsupportedParameter(
                    f"_summary={value} is not supported; use _summary=count or false", name
                )
            self.summary_count = value == "count"
        elif name == "_elements":
            self.elements = _elements(self.spec.type, value)
        elif name == "_total":
            try:
                self.total = Total(value)
            except ValueError:
                raise InvalidRequest(
                    f"_total must be none, estimate or accurate, not '{value}'", name
                ) from None
        return True

    def _sort(self, value: str) -> SortKey:
        keys = value.split(",")
        if len(keys) > 1:
            raise UnsupportedParameter("_sort takes one key on this server", "_sort")
        descending = keys[0].startswith("-")
        key = keys[0].removeprefix("-")
        param = COMMON_PARAMS.get(key) or self.spec.params.get(key)
        if key != ID.name and (param is None or param.type is not ParamType.DATE):
            dates = [p.name for p in self.spec.params.values() if p.type is ParamType.DATE]
            raise UnsupportedParameter(
                f"cannot sort {self.spec.type} by '{key}'; sort keys: "
                + ", ".join([ID.name, LAST_UPDATED.name, *dates]),
                "_sort",
            )
        return SortKey(key, descending)

    def _include(self, value: str, name: str) -> Include:
        include = _include_value(value, name)
        if include.source_type != self.spec.type:
            raise InvalidRequest(
                f"{name}={value}: the source type must be the searched type {self.spec.type}",
                name,
            )
        return include

    def _revinclude(self, value: str, name: str) -> Include:
        include = _include_value(value, name)
        param = include.param
        if include.target_type not in (None, self.spec.type) or (
            param.targets and self.spec.type not in param.targets
        ):
            raise InvalidRequest(
                f"{name}={value}: that reference cannot point to {self.spec.type}", name
            )
        return include


def _once(name: str, seen: set[str]) -> None:
    if name in seen:
        raise InvalidRequest(f"'{name}' may be given only once", name)
    seen.add(name)


def _count(value: str) -> int:
    if not value.isdigit():
        raise InvalidRequest(f"_count must be a whole number, not '{value}'", "_count")
    # A larger page than the server allows is not an error: the spec lets us return fewer.
    return min(int(value), MAX_COUNT)


def _elements(resource_type: str, value: str) -> tuple[str, ...]:
    names = []
    for item in value.split(","):
        item = item.strip()
        # R5 spells elements `Type.element`; accept that form for the searched type.
        prefix, dot, rest = item.partition(".")
        names.append(rest if dot and prefix == resource_type else item)
    return tuple(n for n in names if n)


def _include_value(value: str, name: str) -> Include:
    parts = value.split(":")
    if value == "*" or len(parts) not in (2, 3):
        raise UnsupportedParameter(
            f"{name}={value} is not supported: use Type:param or Type:param:Target", name
        )
    source = RESOURCE_SPECS.get(parts[0])
    param = source.params.get(parts[1]) if source else None
    if source is None or param is None or param.type is not ParamType.REFERENCE:
        raise UnsupportedParameter(
            f"{name}={value}: {parts[0]} has no reference parameter '{parts[1]}'", name
        )
    target = parts[2] if len(parts) == 3 else None
    if target is not None and (
        target not in RESOURCE_SPECS or (param.targets and target not in param.targets)
    ):
        raise InvalidRequest(f"{name}={value}: '{target}' is not a possible target", name)
    return Include(source.type, param, target)


# --- criteria -------------------------------------------------------------------------------

_MODIFIERS: Mapping[ParamType, frozenset[str]] = {
    ParamType.TOKEN: frozenset({"missing", "not"}),
    ParamType.STRING: frozenset({"missing", "exact", "contains"}),
    ParamType.REFERENCE: frozenset({"missing"}),
    ParamType.DATE: frozenset({"missing"}),
    ParamType.QUANTITY: frozenset({"missing"}),
    ParamType.NUMBER: frozenset({"missing"}),
    ParamType.URI: frozenset({"missing"}),
}


def _criterion(param: SearchParam, modifier: str | None, value: str, name: str) -> Criterion:
    type_modifier: str | None = None
    if modifier is not None:
        if param.type is ParamType.REFERENCE and modifier in RESOURCE_SPECS:
            type_modifier = modifier
        elif modifier not in _MODIFIERS[param.type] or param in COMMON_PARAMS.values():
            raise UnsupportedParameter(
                f"the modifier ':{modifier}' is not supported on '{param.name}' "
                f"({param.type.value})",
                param.name,
            )
    if modifier == "missing":
        if value not in ("true", "false"):
            raise InvalidRequest(f"{name} must be true or false, not '{value}'", param.name)
        return Criterion(param, missing=value == "true")
    values = tuple(_value(param, item, type_modifier, name) for item in split_escaped(value, ","))
    return Criterion(
        param,
        values,
        negated=modifier == "not",
        string_match=StringMatch(modifier)
        if modifier in ("exact", "contains")
        else StringMatch.STARTS_WITH,
    )


def _value(param: SearchParam, text: str, type_modifier: str | None, name: str) -> Value:
    kind = param.type
    try:
        if param is ID:
            return TokenValue(unescape(text))
        if kind is ParamType.TOKEN:
            return _token(text)
        if kind is ParamType.URI:
            return TokenValue(unescape(text))
        if kind is ParamType.STRING:
            written = unescape(text)
            return StringValue(fold_string(written), written)
        if kind is ParamType.REFERENCE:
            return _reference(text, type_modifier)
        if kind is ParamType.DATE:
            prefix, rest = _prefix(text)
            low, high = search_date_range(rest)
            return DateValue(prefix, low, high)
        return _number(text, quantity=kind is ParamType.QUANTITY)
    except ValueError as error:
        raise InvalidRequest(
            f"{name}: '{text}' is not a valid {kind.value} value ({error})", param.name
        ) from None


def _token(text: str) -> TokenValue:
    parts = split_escaped(text, "|")
    if len(parts) == 1:
        return TokenValue(unescape(parts[0]))
    if len(parts) != 2:
        raise ValueError("use code, system|code, |code or system|")
    system, code = (unescape(p) for p in parts)
    return TokenValue(code or None, system or None, system_given=True)


def _reference(text: str, type_modifier: str | None) -> ReferenceValue:
    target_type, target_id = split_reference(unescape(text))
    if type_modifier is not None:
        if target_type not in (None, type_modifier):
            raise ValueError(f"the reference is not to a {type_modifier}")
        target_type = type_modifier
    if not target_id:
        raise ValueError("no id")
    return ReferenceValue(target_id, target_type)


# The DSTU1 comparators, which clients such as fhirclient still send for $gt/$lt/$gte/$lte.
_LEGACY_COMPARATORS = {"<=": Prefix.LE, ">=": Prefix.GE, "<": Prefix.LT, ">": Prefix.GT}


def _prefix(text: str) -> tuple[Prefix, str]:
    if text[:2] in _PREFIXES and len(text) > 2:
        return Prefix(text[:2]), text[2:]
    for comparator, prefix in _LEGACY_COMPARATORS.items():
        if text.startswith(comparator):
            return prefix, text[len(comparator) :]
    return Prefix.EQ, text


def _number(text: str, *, quantity: bool) -> NumberValue:
    prefix, rest = _prefix(text)
    parts = split_escaped(rest, "|") if quantity else [rest]
    if len(parts) not in (1, 3):
        raise ValueError("use number, number|system|code or number||code")
    try:
        number = Decimal(parts[0])
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not number.is_finite():
        raise ValueError("not a finite number")
    # Implied precision: '100' is [99.5, 100.5), '100.00' is [99.995, 100.005).
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    system = unescape(parts[1]) or None if len(parts) == 3 else None
    code = unescape(parts[2]) or None if len(parts) == 3 else None
    return NumberValue(prefix, number, number - half, number + half, system, code)


# yyyy, yyyy-mm, yyyy-mm-dd, and date-times to the minute, second or a fraction of one.
_DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?$"
)


def search_date_range(text: str) -> tuple[datetime, datetime]:
    """The inclusive UTC range of a search date at the precision written.

    Values without a zone are read as UTC, as the index reads partial dates.
    """
    # An unescaped '+' in a query string arrives as a space.
    text = text.replace(" ", "+")
    match = _DATE_TIME.match(text)
    if match is None:
        if "T" in text:
            raise ValueError("expected yyyy-mm-ddThh:mm[:ss[.fff]][Z|+hh:mm]")
        try:
            return value_range(text)
        except ValueError:
            raise ValueError("expected yyyy, yyyy-mm, yyyy-mm-dd or a date-time") from None
    day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = (moment - sign * offset).replace(tzinfo=UTC)
    else:
        moment = moment.replace(tzinfo=UTC)
    if fraction:
        span = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    else:
        span = timedelta(seconds=1) if second else timedelta(minutes=1)
    return moment, moment + span - timedelta(microseconds=1)


def _instant(name: str, value: str) -> datetime:
    try:
        return search_date_range(value)[0]
    except ValueError as error:
        raise InvalidRequest(f"{name}: '{value}' is not a valid instant ({error})", name) from None


# --- FHIR's escaping of ',', '|', '$' and '\' in parameter values ---------------------------


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on `separator` where it is not escaped with a backslash (escapes are kept)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


_ESCAPE = re.compile(r"\\([\\,|$])")


def unescape(text: str) -> str:
    return _ESCAPE.sub(r"\1", text)
