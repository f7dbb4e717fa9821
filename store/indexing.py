"""Search-index rows for one resource, derived from the registry in `search_params`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from store.fhir_dates import period_range, value_range
from store.search_params import ParamType, SearchParam, spec_for
from store.string_folding import fold_string

Row = dict[str, Any]


@dataclass(slots=True)
class IndexRows:
    """Rows for each search table, keyed by the table they go to."""

    token: list[Row] = field(default_factory=list)
    reference: list[Row] = field(default_factory=list)
    date: list[Row] = field(default_factory=list)
    quantity: list[Row] = field(default_factory=list)
    string: list[Row] = field(default_factory=list)

    def extend(self, other: IndexRows) -> None:
        self.token.extend(other.token)
        self.reference.extend(other.reference)
        self.date.extend(other.date)
        self.quantity.extend(other.quantity)
        self.string.extend(other.string)


@cache
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def values_at(resource: Mapping[str, Any], path: str) -> list[Any]:
    """Every value at a dotted element path; lists along the way are flattened."""
    steps = _steps(path)
    # Most paths of a type's parameters are absent from any one resource: leave early.
    if steps[0] not in resource:
        return []
    current: list[Any] = [resource]
    for step in steps:
        found: list[Any] = []
        for node in current:
            if isinstance(node, dict) and step in node:
                child = node[step]
                if isinstance(child, list):
                    found.extend(child)
                else:
                    found.append(child)
        current = found
    return current


def split_reference(reference: str) -> tuple[str | None, str]:
    """'Patient/1', 'https://x/fhir/Patient/1' or 'Patient/1/_history/2' -> ('Patient', '1')."""
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    return None, reference


_TABLE_OF = {
    ParamType.TOKEN: "token",
    ParamType.URI: "token",
    ParamType.REFERENCE: "reference",
    ParamType.DATE: "date",
    ParamType.QUANTITY: "quantity",
    ParamType.NUMBER: "quantity",
    ParamType.STRING: "string",
}


@cache
def index_tables_of(resource_type: str) -> frozenset[str]:
    """The IndexRows fields (search tables) a resource of this type can have rows in.

    Updates delete old index rows only from these tables, so a release that takes a
    parameter type away from a resource type must reindex that type in its migration.
    """
    spec = spec_for(resource_type)
    if spec is None:
        return frozenset()
    return frozenset(_TABLE_OF[param.type] for param in spec.params.values())


def index_resource(
    tenant: str, resource_type: str, resource_id: str, body: Mapping[str, Any]
) -> IndexRows:
    rows = IndexRows()
    for name, path, add in _indexers(resource_type):
        values = values_at(body, path)
        if values:
            add(rows, tenant, resource_type, resource_id, name, values)
    return rows


# One function per parameter type, each appending its rows as plain dict literals: this runs
# for every parameter path of every resource written, so no per-value dispatch on the type.
# `rows` holds one resource's rows, so a row's ordinal (its key with the resource) is the
# number of rows before it in its table.
Indexer = Callable[[IndexRows, str, str, str, str, list[Any]], None]


def _add_tokens(
    rows: IndexRows, tenant: str, type_: str, rid: str, name: str, values: list[Any]
) -> None:
    for value in values:
        for system, code in _tokens(value):
            rows.token.append(
                {
                    "tenant": tenant,
                    "type": type_,
                    "resource_id": rid,
                    "ordinal": len(rows.token),
                    "param": name,
                    "system": system,
                    "code": code,
                }
            )


def _reference_adder(targets: tuple[str, ...]) -> Indexer:
    def add(
        rows: IndexRows, tenant: str, type_: str, rid: str, name: str, values: list[Any]
    ) -> None:
        for value in values:
            reference = value.get("reference") if isinstance(value, dict) else value
            if not isinstance(reference, str):
                continue
            target_type, target_id = split_reference(reference)
            if targets and target_type not in targets:
                continue
            rows.reference.append(
                {
                    "tenant": tenant,
                    "type": type_,
                    "resource_id": rid,
                    "ordinal": len(rows.reference),
                    "param": name,
                    "target_type": target_type,
                    "target_id": target_id,
                }
            )

    return add


def _add_dates(
    rows: IndexRows, tenant: str, type_: str, rid: str, name: str, values: list[Any]
) -> None:
    for value in values:
        if isinstance(value, dict):
            low, high = period_range(value.get("start"), value.get("end"))
        elif isinstance(value, str):
            low, high = value_range(value)
        else:
            continue
        rows.date.append(
            {
                "tenant": tenant,
                "type": type_,
                "resource_id": rid,
                "ordinal": len(rows.date),
                "param": name,
                "low": low,
                "high": high,
            }
        )


def _add_quantities(
    rows: IndexRows, tenant: str, type_: str, rid: str, name: str, values: list[Any]
) -> None:
    base = {"tenant": tenant, "type": type_, "resource_id": rid, "param": name}
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("value"), int | float):
            rows.quantity.append(
                {
                    **base,
                    "ordinal": len(rows.quantity),
                    "value": float(value["value"]),
                    "system": value.get("system"),
                    "code": value.get("code") or value.get("unit"),
                }
            )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            rows.quantity.append(
                {
                    **base,
                    "ordinal": len(rows.quantity),
                    "value": float(value),
                    "system": None,
                    "code": None,
                }
            )


def _add_strings(
    rows: IndexRows, tenant: str, type_: str, rid: str, name: str, values: list[Any]
) -> None:
    base = {"tenant": tenant, "type": type_, "resource_id": rid, "param": name}
    for value in values:
        for text in _strings(value):
            rows.string.append(
                {**base, "ordinal": len(rows.string), "value": fold_string(text), "exact": text}
            )


def _indexer(param: SearchParam) -> Indexer:
    kind = param.type
    if kind in (ParamType.TOKEN, ParamType.URI):
        return _add_tokens
    if kind is ParamType.REFERENCE:
        return _reference_adder(param.targets)
    if kind is ParamType.DATE:
        return _add_dates
    if kind in (ParamType.QUANTITY, ParamType.NUMBER):
        return _add_quantities
    return _add_strings


@cache
def _indexers(resource_type: str) -> tuple[tuple[str, str, Indexer], ...]:
    """(parameter name, element path, indexer) for every path of the type's parameters."""
    spec = spec_for(resource_type)
    if spec is None:
        return ()
    return tuple(
        (param.name, path, _indexer(param))
        for param in spec.params.values()
        for path in param.paths
    )


def _tokens(value: Any) -> Iterator[tuple[str | None, str]]:
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value["coding"]:
                if coding.get("code"):
                    yield coding.get("system"), coding["code"]
        elif "code" in value:  # Coding
            yield value.get("system"), value["code"]
        elif "value" in value:  # Identifier
            yield value.get("system"), str(value["value"])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName: every part is searchable
        for key in ("text", "family"):
            if isinstance(value.get(key), str):
                yield value[key]
        for key in ("given", "prefix", "suffix"):
            yield from value.get(key, ())
