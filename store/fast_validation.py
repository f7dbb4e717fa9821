"""Fast, conservative validation of the hot session-contract resource shapes.

``fast_validate(resource)`` returns True only when it is certain that the full validation of
``store.validation.full_validate`` accepts the resource: the FHIR R4 JSON shape check (JSON types
per primitive, no null, no empty object, array or string) and then ``fhir.resources`` 8.3.0 (R4B
models, ``Model.model_validate(dict)``). False means "not certain": the caller must run the full
validation. The fast path never rejects on its own, so "fast accept, else full validation"
accepts and rejects exactly the inputs that full validation accepts and rejects.

What is modelled (everything else defers): the session Procedure, the repetition, compact and
general pain Observations of CLINICAL_RULES.md section 2, with a narrow set of optional elements
(``id``, ``meta``, ``text``, ``identifier``, ``basedOn``, ``partOf``, ``category``,
``encounter``, ``performer``, ``issued``). Every rule below mirrors what the full validation
actually does, as measured (tests/unit/test_fast_validation.py proves it differentially):

- unknown keys are rejected (pydantic ``extra="forbid"``). Keys this module does not model
  (``_status`` primitive extensions, ``fhir_comments``, ``contained``, ``modifierExtension``,
  element ``id``, further value[x] types, ...) defer.
- only exact JSON types are accepted: ``bool`` for booleans, ``int`` for integers, ``int`` or
  ``float`` for decimals, ``str`` for every other primitive, plain ``dict``/``list``. Anything
  else defers (the full validation refuses what pydantic's lax mode would coerce, such as
  ``"true"``/``1`` for booleans, ``"4"``/``4.0``/``True`` for integers or ``"2.5"`` for decimals).
- ``null``, empty lists, empty objects and empty strings (even for ``uri`` and ``xhtml``, which
  fhir.resources alone accepts empty) defer; the full validation refuses them.
- code values are not checked against value sets (``Observation.status = "bogus"`` is valid);
  only the code pattern is.
- choice types (value[x], effective[x], performed[x]) allow at most one present member; none
  is required.
- Period start/end order is not checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

__all__ = ["PRIMITIVE_CHECKS", "fast_validate"]

Check = Callable[[Any], bool]

# --------------------------------------------------------------------------------------------
# Primitive types.
#
# fhir_core expresses string/code/id/uri rules as pydantic ``pattern`` constraints, which
# pydantic-core evaluates with the Rust ``regex`` crate (unanchored search, Unicode ``\s``). Any
# str that reaches Rust must be valid UTF-8, so lone surrogates are rejected. Python's ``\s``
# (str.isspace) is a superset of Rust's Unicode White_Space (it adds U+001C..U+001F), so a
# Python ``\S`` character is always a Rust ``\S`` character; evaluating the same patterns with
# Python's ``re`` can therefore only be stricter than the library, never laxer.
# --------------------------------------------------------------------------------------------

_SURROGATE: Final = re.compile("[\ud800-\udfff]")

# string: pattern '[ \r\n\t\S]+' (unanchored): at least one such character.
_STRING_CHAR: Final = re.compile(r"[ \r\n\t\S]")

# code: pattern '^[^\s]+(\s[^\s]+)*$' (Rust '$' = end of text only; fullmatch here).
_CODE: Final = re.compile("[^\\s\ud800-\udfff]+(?:\\s[^\\s\ud800-\udfff]+)*")

# id: pattern '^[A-Za-z0-9\-.]+$', min length 1, max length 255 (TYPES_ID_MAX_LENGTH, not 64).
_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,255}")

# decimal: fhir_core matches str(value) against this, then builds decimal.Decimal(value).
_DECIMAL: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")

# dateTime / instant: fhir_core's regexes (fullmatch), except that a leap second (":60", which
# fhir_core special-cases) is not modelled and a year of 0000 (excluded by fhir_core's year
# alternation) is rejected separately. A time needs a zone. Any number of fraction digits.
_TZ: Final = r"(?:Z|[+\-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME: Final = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?" + _TZ
_DATETIME: Final = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<m>0[1-9]|1[0-2])(?:-(?P<d>0[1-9]|[12][0-9]|3[01])"
    r"(?:T" + _TIME + r")?)?)?"
)
_INSTANT: Final = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12][0-9]|3[01])T" + _TIME
)
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
# str(int) is capped by sys.set_int_max_str_digits (never below 640 digits); stay well under.
_DECIMAL_INT_MAX_BITS: Final = 2000


# Codes repeat across resources ("final", "72514-3", "{score}"): remember the verdicts for
# short codes, up to a fixed number of entries.
_CODE_VERDICTS: Final[dict[str, bool]] = {}
_CODE_VERDICTS_MAX: Final = 4096
_CODE_CACHED_LENGTH: Final = 64


def _is_code(v: Any) -> bool:
    if type(v) is not str:
        return False
    verdict = _CODE_VERDICTS.get(v)
    if verdict is None:
        verdict = _CODE.fullmatch(v) is not None
        if len(v) <= _CODE_CACHED_LENGTH and len(_CODE_VERDICTS) < _CODE_VERDICTS_MAX:
            _CODE_VERDICTS[v] = verdict
    return verdict


def _is_decimal(v: Any) -> bool:
    t = type(v)
    if t is int:
        return bool(v.bit_length() <= _DECIMAL_INT_MAX_BITS)
    if t is float:
        return math.isfinite(v) and _DECIMAL.fullmatch(str(v)) is not None
    return False


def _valid_day(m: re.Match[str]) -> bool:
    year_s = m.group("y")
    if year_s == "0000":
        return False
    day_s = m.group("d")
    if day_s is None:
        # "YYYY" / "YYYY-MM": fhir_core keeps the string after the regex (month <= 12).
        return True
    day = int(day_s)
    if day <= 28:
        return True
    month = int(m.group("m"))
    if month != 2:
        return day <= _DAYS_IN_MONTH[month]
    year = int(year_s)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= (29 if leap else 28)


def _is_datetime(v: Any) -> bool:
    if type(v) is not str:
        return False
    m = _DATETIME.fullmatch(v)
    return m is not None and _valid_day(m)


def _is_instant(v: Any) -> bool:
    if type(v) is not str:
        return False
    m = _INSTANT.fullmatch(v)
    return m is not None and _valid_day(m)


# Each primitive rule as one Python expression over ``{x}``. The generated struct checkers inline
# these, and PRIMITIVE_CHECKS (tested value by value against fhir_core's types) is compiled
# from the very same text, so the two cannot drift apart.
_NO_SURROGATE: Final = "({x}.isascii() or _SURROGATE.search({x}) is None)"
_PRIMITIVE_EXPRESSIONS: Final[Mapping[str, str]] = {
    # string: at least one [ \r\n\t\S] character, valid Unicode
    "string": "(type({x}) is str and "
    + _NO_SURROGATE
    + " and _STRING_CHAR.search({x}) is not None)",
    "code": "_is_code({x})",
    "id": "(type({x}) is str and _ID.fullmatch({x}) is not None)",
    # uri / canonical: pattern '\S*' is unanchored and matches anything, so any valid Unicode
    # str (including " " and "\n") is accepted, except "" (FHIR JSON has no empty strings;
    # a plain truth test is the cheapest way to say so).
    "uri": "(type({x}) is str and {x} and " + _NO_SURROGATE + ")",
    "canonical": "(type({x}) is str and {x} and " + _NO_SURROGATE + ")",
    # Narrative.div: a bare ``str`` annotation without a pattern: any str but "".
    "xhtml": "(type({x}) is str and {x} != '')",
    "boolean": "(type({x}) is bool)",
    "integer": "(type({x}) is int and " + f"{_INT32_MIN} <= {{x}} <= {_INT32_MAX})",
    "decimal": "_is_decimal({x})",
    "dateTime": "_is_datetime({x})",
    "instant": "_is_instant({x})",
}
_NAMESPACE: Final[Mapping[str, Any]] = {
    "_SURROGATE": _SURROGATE,
    "_STRING_CHAR": _STRING_CHAR,
    "_ID": _ID,
    "_is_code": _is_code,
    "_is_decimal": _is_decimal,
    "_is_datetime": _is_datetime,
    "_is_instant": _is_instant,
}


def _compile(source: str, name: str, extra: Mapping[str, Any] | None = None) -> Check:
    namespace = {**_NAMESPACE, **(extra or {})}
    exec(source, namespace)  # trusted: built only from this module's constant tables
    return cast(Check, namespace[name])


PRIMITIVE_CHECKS: Final[Mapping[str, Check]] = {
    name: _compile(f"def check(x):\n    return bool({expr.format(x='x')})\n", "check")
    for name, expr in _PRIMITIVE_EXPRESSIONS.items()
}
"""FHIR primitive type name -> predicate; True only if the full validation accepts the value."""

# --------------------------------------------------------------------------------------------
# Complex types: closed key sets; every value must be present, non-null and non-empty.
# A field is a primitive type name, a compiled checker, or ``_ListOf`` either of them.
# Each struct compiles to one function: a loop over the dict's items with an if/elif chain on
# the key (fields are listed most frequent first), inlined primitive checks, a counter per
# choice group, then the required keys.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ListOf:
    item: str | Check


Field = str | Check | _ListOf


def _struct(
    name: str,
    fields: Mapping[str, Field],
    required: Iterable[str] = (),
    choices: Iterable[Iterable[str]] = (),
) -> Check:
    """A dict with only ``fields`` keys, all ``required`` keys, at most one key per choice."""
    extra: dict[str, Any] = {}

    def expr_for(spec: str | Check, var: str) -> str:
        if isinstance(spec, str):
            return _PRIMITIVE_EXPRESSIONS[spec].format(x=var)
        ref = f"_f{len(extra)}"
        extra[ref] = spec
        return f"{ref}({var})"

    groups = [tuple(group) for group in choices]
    choice_of = {key: i for i, group in enumerate(groups) for key in group}
    assert len(choice_of) == sum(map(len, groups)), "a key in two choice groups"
    n_choices = len(groups)
    lines = [f"def {name}(v):", "    if type(v) is not dict or not v:", "        return False"]
    lines += [f"    n{i} = 0" for i in range(n_choices)]
    lines.append("    for k, x in v.items():")
    for j, (key, spec) in enumerate(fields.items()):
        assert key.isidentifier(), key
        lines.append(f"        {'if' if j == 0 else 'elif'} k == {key!r}:")
        if key in choice_of:
            lines.append(f"            n{choice_of[key]} += 1")
        if isinstance(spec, _ListOf):
            lines += [
                "            if type(x) is not list or not x:",
                "                return False",
                "            for y in x:",
                f"                if not {expr_for(spec.item, 'y')}:",
                "                    return False",
            ]
        else:
            lines += [f"            if not {expr_for(spec, 'x')}:", "                return False"]
    lines += ["        else:", "            return False"]
    for i in range(n_choices):
        lines += [f"    if n{i} > 1:", "        return False"]
    for key in required:
        assert key in fields, key
        lines += [f"    if {key!r} not in v:", "        return False"]
    lines.append("    return True")
    return _compile("\n".join(lines) + "\n", name, extra)


_coding = _struct(
    "coding",
    {
        "system": "uri",
        "code": "code",
        "display": "string",
        "version": "string",
        "userSelected": "boolean",
    },
)
_codeable_concept = _struct("codeable_concept", {"coding": _ListOf(_coding), "text": "string"})
_reference = _struct("reference", {"reference": "string", "type": "uri", "display": "string"})
_quantity = _struct(
    "quantity",
    {"value": "decimal", "system": "uri", "code": "code", "unit": "string", "comparator": "code"},
)
_period = _struct("period", {"start": "dateTime", "end": "dateTime"})
_identifier = _struct("identifier", {"system": "uri", "value": "string", "use": "code"})
_meta = _struct(
    "meta",
    {
        "versionId": "id",
        "lastUpdated": "instant",
        "source": "uri",
        "profile": _ListOf("canonical"),
        "tag": _ListOf(_coding),
    },
)
_narrative = _struct("narrative", {"status": "code", "div": "xhtml"}, required=("status", "div"))

_EXTENSION_VALUES: Final[Mapping[str, Field]] = {
    "valueInteger": "integer",
    "valueString": "string",
    "valueCode": "code",
    "valueBoolean": "boolean",
    "valueDecimal": "decimal",
    "valueUri": "uri",
    "valueDateTime": "dateTime",
    "valueCoding": _coding,
    "valueCodeableConcept": _codeable_concept,
    "valueQuantity": _quantity,
    "valueReference": _reference,
}
# Extension: url is required; value[x] is optional (url-only is accepted), at most one.
_extension = _struct(
    "extension",
    {"url": "uri", **_EXTENSION_VALUES},
    required=("url",),
    choices=(_EXTENSION_VALUES,),
)

_OBSERVATION_VALUES: Final[Mapping[str, Field]] = {
    "valueInteger": "integer",
    "valueQuantity": _quantity,
    "valueCodeableConcept": _codeable_concept,
    "valueBoolean": "boolean",
    "valueString": "string",
}
_observation_component = _struct(
    "observation_component",
    {"code": _codeable_concept, **_OBSERVATION_VALUES, "extension": _ListOf(_extension)},
    required=("code",),
    choices=(_OBSERVATION_VALUES,),
)

_RESOURCE_HEAD: Final[Mapping[str, Field]] = {
    "status": "code",
    "code": _codeable_concept,
    "subject": _reference,
    "partOf": _ListOf(_reference),
    "basedOn": _ListOf(_reference),
    "id": "id",
    "meta": _meta,
    "text": _narrative,
    "identifier": _ListOf(_identifier),
    "encounter": _reference,
}


def _resource_type(name: str) -> Check:
    def check(v: Any) -> bool:
        return type(v) is str and v == name

    return check


_EFFECTIVE: Final = ("effectiveDateTime", "effectiveInstant")
_observation = _struct(
    "observation",
    {
        "resourceType": _resource_type("Observation"),
        **_RESOURCE_HEAD,
        "effectiveDateTime": "dateTime",
        **_OBSERVATION_VALUES,
        "component": _ListOf(_observation_component),
        "category": _ListOf(_codeable_concept),
        "effectiveInstant": "instant",
        "issued": "instant",
        "performer": _ListOf(_reference),
    },
    required=("resourceType", "status", "code"),
    choices=(_EFFECTIVE, _OBSERVATION_VALUES),
)

_PERFORMED: Final = ("performedDateTime", "performedPeriod")
_procedure = _struct(
    "procedure",
    {
        "resourceType": _resource_type("Procedure"),
        **_RESOURCE_HEAD,
        "performedPeriod": _period,
        "performedDateTime": "dateTime",
        "category": _codeable_concept,
    },
    required=("resourceType", "status", "subject"),
    choices=(_PERFORMED,),
)

_BY_RESOURCE_TYPE: Final[Mapping[str, Check]] = {
    "Observation": _observation,
    "Procedure": _procedure,
}


def fast_validate(resource: Mapping[str, Any]) -> bool:
    """True only if the full validation certainly accepts ``resource``; False means "not sure".

    ``resource`` must be a plain ``dict`` (as parsed from JSON) whose ``resourceType`` is
    ``"Observation"`` or ``"Procedure"``; anything else defers.
    """
    if type(resource) is not dict:
        return False
    resource_type = resource.get("resourceType")
    if type(resource_type) is not str:
        return False
    check = _BY_RESOURCE_TYPE.get(resource_type)
    return check is not None and check(resource)
