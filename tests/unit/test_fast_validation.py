"""Differential tests: store.fast_validation against the full validation (the slow path).

The slow path is ``store.validation.full_validate``: the FHIR R4 JSON shape check, then
fhir.resources 8.3.0 (R4B models). The contract under test: ``fast_validate(r)`` implies that the
full validation accepts ``r``, every valid session-contract resource (CLINICAL_RULES.md section 2)
is fast-accepted, and wrong JSON types, nulls and empty values are refused by both.
"""

from __future__ import annotations

import calendar
import copy
import functools
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.procedure import Procedure
from fhir_core import types as fhir_types
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from store.errors import InvalidResource
from store.fast_validation import PRIMITIVE_CHECKS, fast_validate
from store.validation import fhirpath, full_validate

EXAMPLES = Path("/work/shared/examples")
MODELS: dict[str, Any] = {"Observation": Observation, "Procedure": Procedure}

LOINC_PAIN = {"system": "http://loinc.org", "code": "72514-3"}
SESSION_MEASURE = "https://reptrend.dev/fhir/CodeSystem/session-measure"
EXERCISE = "https://reptrend.dev/fhir/CodeSystem/exercise"
FORM_FAULT = "https://reptrend.dev/fhir/CodeSystem/form-fault"
REP_INDEX_EXT = "https://reptrend.dev/fhir/StructureDefinition/repetition-index"
UCUM = "http://unitsofmeasure.org"

SLOW = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def full_accepts(resource: Any) -> bool:
    """What the slow path decides for the type named by resourceType (else Observation)."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if resource_type not in MODELS:
        resource_type = "Observation"  # whose model refuses any other resourceType
    try:
        full_validate(copy.deepcopy(resource), resource_type)
    except (InvalidResource, ValueError, TypeError):
        return False
    return True


def assert_sound(resource: Any) -> bool:
    """fast accept => full accept. Returns the fast verdict."""
    fast = fast_validate(resource)
    if fast:
        assert full_accepts(resource), (
            f"fast path accepted what the full validation rejects: {resource}"
        )
    return fast


# ------------------------------------------------------------------------------------------
# Strategies for valid session-contract resources
# ------------------------------------------------------------------------------------------

ID_ALPHABET = "ABCXYZabcxyz0123456789-."
ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)
words = st.text(alphabet="ABCabcxyz019 äéß-", min_size=0, max_size=20).map(lambda w: "w" + w)


@st.composite
def tz_offsets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["Z", "+", "-"]))
    if kind == "Z":
        return "Z"
    if draw(st.booleans()):
        return f"{kind}14:00"
    return f"{kind}{draw(st.integers(0, 13)):02d}:{draw(st.integers(0, 59)):02d}"


@st.composite
def instants(draw: st.DrawFn) -> str:
    year = draw(st.one_of(st.integers(2020, 2030), st.integers(1, 9999)))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    hh, mm, ss = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.sampled_from(["", ".1", ".123", ".123456", ".123456789"]))
    tz = draw(tz_offsets())
    return f"{year:04d}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}{tz}"


@st.composite
def datetimes(draw: st.DrawFn) -> str:
    full = draw(instants())
    # YYYY, YYYY-MM, YYYY-MM-DD or a full date-time with a zone.
    return draw(st.sampled_from([full[:4], full[:7], full[:10], full, full]))


@functools.cache
def reference(ref_prefix: str = "") -> st.SearchStrategy[dict[str, Any]]:
    base = (
        ids.map(lambda i: f"{ref_prefix}/{i}")
        if ref_prefix
        else st.uuids().map(lambda u: f"urn:uuid:{u}")
    )
    return st.fixed_dictionaries(
        {"reference": st.one_of(base, st.uuids().map(lambda u: f"urn:uuid:{u}"))},
        optional={"display": words, "type": st.just(ref_prefix or "Procedure")},
    )


@functools.cache
def coding(system: str, code: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"system": st.just(system), "code": st.just(code)},
        optional={"display": words, "version": st.just("2.77"), "userSelected": st.booleans()},
    )


def concept(*codings: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"coding": st.tuples(*codings).map(list)}, optional={"text": words}
    )


pain_scores = st.integers(0, 10)


@st.composite
def pain_value(draw: st.DrawFn) -> dict[str, Any]:
    score = draw(pain_scores)
    if draw(st.booleans()):
        return {"valueInteger": score}
    value: int | float = score if draw(st.booleans()) else float(score)
    quantity: dict[str, Any] = {"value": value, "system": UCUM, "code": "{score}"}
    if draw(st.booleans()):
        quantity["unit"] = "score"
    return {"valueQuantity": quantity}


@st.composite
def resource_extras(draw: st.DrawFn) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if draw(st.booleans()):
        extras["id"] = draw(ids)
    if draw(st.booleans()):
        extras["meta"] = draw(
            st.fixed_dictionaries(
                {"versionId": ids},
                optional={
                    "lastUpdated": instants(),
                    "profile": st.just(["https://reptrend.dev/fhir/StructureDefinition/rep"]),
                    "source": st.just("urn:reptrend:app"),
                },
            )
        )
    if draw(st.booleans()):
        extras["text"] = {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">pain</div>',
        }
    if draw(st.booleans()):
        extras["identifier"] = [
            {"system": "urn:reptrend:client", "value": str(draw(st.uuids())), "use": "usual"}
        ]
    return extras


@st.composite
def repetition_observations(draw: st.DrawFn) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        **draw(resource_extras()),
        "status": "final",
        "code": draw(concept(coding("http://loinc.org", "72514-3"))),
        "subject": draw(reference("Patient")),
        "partOf": [draw(reference("Procedure"))],
        "effectiveDateTime": draw(datetimes()),
        **draw(pain_value()),
    }
    components = [
        {
            "code": {"coding": [{"system": SESSION_MEASURE, "code": "repetition-index"}]},
            "valueInteger": draw(st.integers(1, 30)),
        }
    ]
    if draw(st.booleans()):
        components.append(
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "knee-to-chest-distance"}]},
                "valueQuantity": {
                    "value": draw(st.floats(0, 80, allow_nan=False).map(lambda f: round(f, 1))),
                    "unit": "cm",
                    "system": UCUM,
                    "code": "cm",
                },
            }
        )
    if draw(st.booleans()):
        fault = draw(
            st.sampled_from(["head-raised", "legs-straightened-on-lowering", "neck-strain"])
        )
        components.append(
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "form-fault"}]},
                "valueCodeableConcept": {"coding": [{"system": FORM_FAULT, "code": fault}]},
            }
        )
    if draw(st.booleans()):
        components.append(
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "peripheral-symptoms"}]},
                "valueBoolean": draw(st.booleans()),
            }
        )
    obs["component"] = draw(st.permutations(components))
    if draw(st.booleans()):
        obs["basedOn"] = [draw(reference("ServiceRequest"))]
    if draw(st.booleans()):
        obs["issued"] = draw(instants())
    return obs


@st.composite
def compact_observations(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 8))
    components = []
    for i in range(1, n + 1):
        value = draw(pain_value())
        components.append(
            {
                "extension": [{"url": REP_INDEX_EXT, "valueInteger": i}],
                "code": {"coding": [dict(LOINC_PAIN)]},
                **value,
            }
        )
    return {
        "resourceType": "Observation",
        **draw(resource_extras()),
        "status": "final",
        "code": draw(concept(coding(SESSION_MEASURE, "repetition-pain"))),
        "subject": draw(reference("Patient")),
        "partOf": [draw(reference("Procedure"))],
        "effectiveDateTime": draw(datetimes()),
        "component": components,
    }


@st.composite
def general_pain_observations(draw: st.DrawFn) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        **draw(resource_extras()),
        "status": draw(st.sampled_from(["final", "amended", "preliminary"])),
        "code": draw(concept(coding("http://loinc.org", "72514-3"))),
        "subject": draw(reference("Patient")),
        **draw(pain_value()),
    }
    if draw(st.booleans()):
        obs["effectiveDateTime"] = draw(datetimes())
    if draw(st.booleans()):
        obs["category"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ]
    if draw(st.booleans()):
        obs["performer"] = [draw(reference("Patient"))]
    return obs


@st.composite
def session_procedures(draw: st.DrawFn) -> dict[str, Any]:
    exercise = draw(
        st.sampled_from(
            [
                "rocking-knees-to-chest",
                "flexion-in-lying",
                "spinal-rolling",
                "extension-in-lying",
            ]
        )
    )
    codings = [coding(EXERCISE, exercise)]
    if draw(st.booleans()):
        codings.append(coding("http://snomed.info/sct", "229065009"))
    proc: dict[str, Any] = {
        "resourceType": "Procedure",
        **draw(resource_extras()),
        "status": "completed",
        "code": draw(concept(*codings)),
        "subject": draw(reference("Patient")),
    }
    performed = draw(st.sampled_from(["period", "period-start-only", "dateTime", "none"]))
    if performed == "period":
        proc["performedPeriod"] = {"start": draw(datetimes()), "end": draw(datetimes())}
    elif performed == "period-start-only":
        proc["performedPeriod"] = {"start": draw(datetimes())}
    elif performed == "dateTime":
        proc["performedDateTime"] = draw(datetimes())
    if draw(st.booleans()):
        proc["basedOn"] = [draw(reference("ServiceRequest"))]
    if draw(st.booleans()):
        proc["partOf"] = [draw(reference("Procedure"))]
    return proc


contract_resources = st.one_of(
    repetition_observations(),
    compact_observations(),
    general_pain_observations(),
    session_procedures(),
)

# ------------------------------------------------------------------------------------------
# Mutations
# ------------------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def all_paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    paths: list[Path_] = []
    if isinstance(node, dict):
        for key, value in node.items():
            paths.append((*prefix, key))
            paths.extend(all_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths.append((*prefix, i))
            paths.extend(all_paths(value, (*prefix, i)))
    return paths


def container_paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    found = [prefix] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(container_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(container_paths(value, (*prefix, i)))
    return found


def get_at(node: Any, path: Path_) -> Any:
    for step in path:
        node = node[step]
    return node


BAD_VALUES: list[Any] = [
    None,
    "",
    " ",
    "\x0b",
    "\u00a0",
    "a\ud800",
    " final",
    "final ",
    "a  b",
    "a_b",
    "true",
    "1",
    "4",
    "2.5",
    1,
    0,
    True,
    False,
    4.0,
    2.5,
    float("nan"),
    float("inf"),
    2**31,
    -(2**31) - 1,
    2**31 - 1,
    10**700,
    [],
    {},
    [None],
    [{}],
    {"foo": 1},
    ("tuple",),
    "2026-02-30",
    "2026-03-10T08:00:00",
    "2026-03-10T08:00Z",
    "2026-03-10T24:00:00Z",
    "2026-03-10T23:59:60Z",
    "2026-03-10T08:00:00+14:30",
    "0000-01-01",
    "2026-13",
    "Patient/x",
    {"reference": "Patient/x"},
    {"coding": [{"system": "s", "code": "c"}]},
    {"value": 1, "system": UCUM, "code": "{score}"},
    [{"reference": "Patient/x"}],
    "a" * 256,
]

EXTRA_KEYS = [
    "foo",
    "_status",
    "fhir_comments",
    "status__ext",
    "modifierExtension",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueQuantity",
    "effectiveInstant",
    "effectiveDateTime",
    "performedDateTime",
    "performedPeriod",
    "resourceType",
    "id",
    "extension",
    "contained",
]


primitive_inputs = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="ascii")),
    st.from_regex(r"[A-Za-z0-9\-. _\t\n]{0,8}", fullmatch=True),
    st.from_regex(
        r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?",
        fullmatch=True,
    ),
    st.integers(),
    st.integers(-(2**31) - 2, 2**31 + 1),
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from(BAD_VALUES),
)


# Boundary-heavy values per FHIR primitive family, chosen by the key being mutated.
DATETIME_PART_EDGES: dict[str, list[str]] = {
    "date": [
        *["0000-01-01", "0001-01-01", "9999-12-31", "26-03-10", "20260-03-10", "2026-3-10"],
        *["2026-02-29", "2024-02-29", "1900-02-29", "2000-02-29", "2026-02-28", "2026-04-31"],
        *["2026-04-30", "2026-12-31", "2026-12-32", "2026-13-01", "2026-00-10", "2026-01-00"],
    ],
    "clock": ["00:00:00", "23:59:59", "24:00:00", "23:59:60", "08:00", "8:00:00", "08:60:00"],
    "frac": ["", ".5", ".123456789012", "."],
    "tz": ["Z", "z", "+00:00", "-00:00", "+13:59", "-14:00", "+14:00", "+14:30", "+0100", ""],
    "sep": ["T", " ", "t"],
    "tail": ["", "\n", " "],
}


@st.composite
def near_datetimes(draw: st.DrawFn, *, instant: bool = False) -> str:
    """A valid dateTime/instant with at most two parts replaced by boundary values."""
    year = draw(st.integers(1, 9999))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    parts = {
        "date": f"{year:04d}-{month:02d}-{day:02d}",
        "clock": "08:30:00",
        "frac": draw(st.sampled_from(["", ".250"])),
        "tz": draw(tz_offsets()),
        "sep": "T",
        "tail": "",
    }
    for _ in range(draw(st.integers(0, 2))):
        part = draw(st.sampled_from(["date", "date", "tz", "tz", "clock", "frac", "sep", "tail"]))
        parts[part] = draw(st.sampled_from(DATETIME_PART_EDGES[part]))
    p = parts
    text = f"{p['date']}{p['sep']}{p['clock']}{p['frac']}{p['tz']}"
    if not instant:
        cut = draw(st.sampled_from([None, None, 4, 7, 10]))
        if cut is not None:
            text = text[:cut]
    return text + p["tail"]


TRICKY_CHARS = " \t\n\r\x0b\x0c\x1c\x00\xa0\u2028\u3000aZ0-._|{}é"
tricky_text = st.one_of(
    st.text(alphabet=TRICKY_CHARS, max_size=5),
    st.sampled_from(["a\ud800", "\udfff", "a" * 255, "a" * 256, "final", "urn:uuid:x"]),
)
edge_ints = st.one_of(
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 0, -1, 10**700, True, False]),
    st.sampled_from([4.0, 4.5, "4", " 4", "04", float("nan"), float("inf"), None]),
)
edge_decimals = st.one_of(
    edge_ints,
    st.floats(),
    st.sampled_from(["2.5", "1e5", "-0", "01", " 1", "1.", ".5", 10**5000]),
)
edge_codes = st.one_of(
    tricky_text,
    st.sampled_from(["final", "final ", " final", "a  b", "a\tb", "a b", "final\n", "a\u3000b"]),
)
edge_ids = st.one_of(
    st.text(alphabet="aZ09-._ \n", max_size=4),
    st.sampled_from(["a" * 255, "a" * 256, "a_b", "a.b", "-", "", "ä"]),
)
edge_bools = st.sampled_from([True, False, "true", "false", "True", 1, 0, 2, None, "yes"])

FAMILY_OF_KEY: dict[str, str] = {
    **dict.fromkeys(
        ["effectiveDateTime", "performedDateTime", "start", "end", "valueDateTime"], "dateTime"
    ),
    **dict.fromkeys(["issued", "lastUpdated", "effectiveInstant"], "instant"),
    **dict.fromkeys(["valueInteger"], "integer"),
    **dict.fromkeys(["value", "valueDecimal"], "decimal"),
    **dict.fromkeys(["valueBoolean", "userSelected"], "boolean"),
    **dict.fromkeys(["status", "code", "use", "comparator", "valueCode"], "code"),
    **dict.fromkeys(["system", "url", "type", "source", "profile", "valueUri"], "uri"),
    **dict.fromkeys(["id", "versionId"], "id"),
}
FAMILIES: dict[str, st.SearchStrategy[Any]] = {
    "dateTime": near_datetimes(),
    "instant": near_datetimes(instant=True),
    "integer": edge_ints,
    "decimal": edge_decimals,
    "boolean": edge_bools,
    "code": edge_codes,
    "id": edge_ids,
}


CHOICE_SIBLINGS: list[tuple[str, Any]] = [
    ("valueString", "x"),
    ("valueBoolean", True),
    ("valueInteger", 3),
    ("valueQuantity", {"value": 1}),
    ("valueCodeableConcept", {"text": "x"}),
    ("valueCode", "x"),
    ("valueDecimal", 1.5),
    ("valueUri", "u"),
    ("effectiveInstant", "2026-03-10T08:00:00Z"),
    ("effectiveDateTime", "2026"),
    ("effectivePeriod", {"start": "2026"}),
    ("performedDateTime", "2026"),
    ("performedPeriod", {"start": "2026"}),
    ("performedString", "x"),
    ("url", "u"),
    ("code", {"text": "x"}),
    ("status", "final"),
    ("subject", {"reference": "Patient/x"}),
    ("extension", [{"url": "u", "valueInteger": 1}]),
    ("id", "x"),
]


def leaf_key(path: Path_) -> str:
    for step in reversed(path):
        if isinstance(step, str):
            return step
    return ""


MUTATION_KINDS = ["delete", "replace", "add", "add_choice", "resource_type", "swap", "wrong_json"]

WRONG_JSON_KINDS = ["quote", "retype", "null", "empty", "null_in_list", "fraction"]


def wrong_json_edit(draw: st.DrawFn, resource: dict[str, Any]) -> Path_ | None:
    """Make one element of ``resource`` wrong FHIR JSON; return its path (None: nothing to edit).

    What fhir.resources alone coerces or lets through: a number or boolean quoted, a string
    given as a number or boolean, null, an empty object, array or string, a null in an array,
    an integer written with a fraction part.
    """
    paths = [p for p in all_paths(resource) if p != ("resourceType",)]
    kind = draw(st.sampled_from(WRONG_JSON_KINDS))
    value: Any
    if kind == "quote":
        paths = [p for p in paths if type(get_at(resource, p)) in (bool, int, float)]
    elif kind == "retype":
        paths = [p for p in paths if type(get_at(resource, p)) is str]
    elif kind == "empty":
        paths = [p for p in paths if type(get_at(resource, p)) in (dict, list, str)]
    elif kind == "null_in_list":
        paths = [p for p in paths if type(get_at(resource, p)) is list]
    elif kind == "fraction":
        paths = [
            p
            for p in paths
            if type(get_at(resource, p)) is int and FAMILY_OF_KEY.get(leaf_key(p)) == "integer"
        ]
    if not paths:
        return None
    path = draw(st.sampled_from(paths))
    old = get_at(resource, path)
    if kind == "null_in_list":
        index = draw(st.integers(0, len(old)))
        old.insert(index, None)
        return (*path, index)
    if kind == "quote":
        value = json.dumps(old)
    elif kind == "retype":
        value = draw(st.sampled_from([0, 4, 2.5, True, False]))
    elif kind == "null":
        value = None
    elif kind == "empty":
        value = type(old)()
    else:
        value = float(old)
    get_at(resource, path[:-1])[path[-1]] = value
    return path


FAMILY_NAMES = sorted({*FAMILY_OF_KEY.values(), "string"})


@st.composite
def fuzzed_leaf(draw: st.DrawFn, family: str) -> dict[str, Any]:
    """One primitive of ``family`` in a valid resource replaced by a boundary value."""
    resource: dict[str, Any] = copy.deepcopy(draw(contract_resources))
    paths = [
        path
        for path in all_paths(resource)
        if not isinstance(get_at(resource, path), (dict, list))
        and FAMILY_OF_KEY.get(leaf_key(path), "string") == family
    ]
    assume(paths)
    path = draw(st.sampled_from(paths))
    values = FAMILIES.get(family, tricky_text)
    get_at(resource, path[:-1])[path[-1]] = draw(
        st.one_of(values, values, values, primitive_inputs)
    )
    return resource


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    resource: dict[str, Any] = copy.deepcopy(draw(contract_resources))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        kind = draw(st.sampled_from(MUTATION_KINDS))
        paths = all_paths(resource)
        if kind == "delete":
            # pick the object first, so small nested objects are hit as often as the resource
            parent = get_at(resource, draw(st.sampled_from(container_paths(resource))))
            if parent:
                del parent[draw(st.sampled_from(sorted(parent)))]
        elif kind == "replace" and paths:
            path = draw(st.sampled_from(paths))
            get_at(resource, path[:-1])[path[-1]] = copy.deepcopy(draw(st.sampled_from(BAD_VALUES)))
        elif kind == "add":
            target = get_at(resource, draw(st.sampled_from(container_paths(resource))))
            key = draw(st.sampled_from(EXTRA_KEYS))
            target[key] = copy.deepcopy(draw(st.sampled_from(BAD_VALUES)))
        elif kind == "add_choice":
            target = get_at(resource, draw(st.sampled_from(container_paths(resource))))
            key, value = draw(st.sampled_from(CHOICE_SIBLINGS))
            target[key] = copy.deepcopy(value)
        elif kind == "resource_type":
            resource["resourceType"] = draw(
                st.sampled_from(["Procedure", "Observation", "observation", None, 5, "Patient"])
            )
        elif kind == "wrong_json":
            wrong_json_edit(draw, resource)
        elif kind == "swap" and len(paths) >= 2:
            a, b = draw(st.sampled_from(paths)), draw(st.sampled_from(paths))
            value = copy.deepcopy(get_at(resource, b))
            if len(a) > 0:
                get_at(resource, a[:-1])[a[-1]] = value
    return resource


# ------------------------------------------------------------------------------------------
# Property tests
# ------------------------------------------------------------------------------------------


@settings(SLOW, max_examples=150)
@given(contract_resources)
def test_every_valid_contract_resource_is_fast_accepted_and_fully_valid(
    resource: dict[str, Any],
) -> None:
    assert full_accepts(resource), resource
    assert fast_validate(resource), resource


@pytest.mark.parametrize("family", FAMILY_NAMES)
@settings(SLOW, max_examples=40)
@given(data=st.data())
def test_fast_accept_implies_full_validation_accepts_when_one_primitive_is_fuzzed(
    family: str, data: st.DataObject
) -> None:
    resource = data.draw(fuzzed_leaf(family))
    event(f"fast={assert_sound(resource)}")


@settings(SLOW, max_examples=250)
@given(mutated())
def test_fast_accept_implies_full_validation_accepts_for_structural_mutations(
    resource: dict[str, Any],
) -> None:
    event(f"fast={assert_sound(resource)}")


@st.composite
def wrong_json_resources(draw: st.DrawFn) -> tuple[dict[str, Any], Path_]:
    resource: dict[str, Any] = copy.deepcopy(draw(contract_resources))
    path = wrong_json_edit(draw, resource)
    assume(path is not None)
    assert path is not None
    return resource, path


@settings(SLOW, max_examples=300)
@given(wrong_json_resources())
def test_wrong_json_types_nulls_and_empty_values_are_refused_by_both_paths_at_the_element(
    case: tuple[dict[str, Any], Path_],
) -> None:
    resource, path = case
    event(f"edited={leaf_key(path) or 'list item'}")
    assert not fast_validate(resource), (path, resource)
    resource_type = resource["resourceType"]
    with pytest.raises(InvalidResource) as refused:
        full_validate(copy.deepcopy(resource), resource_type)
    assert refused.value.expression == fhirpath(resource_type, path), refused.value.diagnostics


# ------------------------------------------------------------------------------------------
# Exhaustive single edits: every boundary value at every leaf, every key deleted or added at
# every object, of resources that use every modelled element. Only fast-accepted edits need the
# (slow) full validation, so this runs tens of thousands of cases in a few seconds.
# ------------------------------------------------------------------------------------------


def rich_repetition_observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "rep-1",
        "meta": {
            "versionId": "2",
            "lastUpdated": "2026-03-10T08:01:00.123+01:00",
            "source": "urn:reptrend:app",
            "profile": ["https://reptrend.dev/fhir/StructureDefinition/repetition"],
            "tag": [{"system": "urn:reptrend:tag", "code": "import"}],
        },
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">4</div>'},
        "identifier": [{"use": "usual", "system": "urn:reptrend:client", "value": "r-1"}],
        "basedOn": [{"reference": "ServiceRequest/rx", "type": "ServiceRequest"}],
        "partOf": [{"reference": "Procedure/s-1", "display": "session"}],
        "status": "final",
        "category": [{"coding": [{"system": "urn:cat", "code": "survey"}], "text": "survey"}],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "version": "2.77",
                    "code": "72514-3",
                    "display": "Pain severity",
                    "userSelected": True,
                }
            ],
            "text": "pain",
        },
        "subject": {"reference": "Patient/p-1"},
        "encounter": {"reference": "Encounter/e-1"},
        "effectiveDateTime": "2026-03-10T08:00:10+01:00",
        "issued": "2026-03-10T08:00:11Z",
        "performer": [{"reference": "Patient/p-1"}],
        "valueQuantity": {
            "value": 4,
            "comparator": "<",
            "unit": "score",
            "system": UCUM,
            "code": "{score}",
        },
        "component": [
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "repetition-index"}]},
                "valueInteger": 1,
            },
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "knee-to-chest-distance"}]},
                "valueQuantity": {"value": 12.5, "unit": "cm", "system": UCUM, "code": "cm"},
            },
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "form-fault"}]},
                "valueCodeableConcept": {"coding": [{"system": FORM_FAULT, "code": "neck-strain"}]},
            },
            {
                "code": {"coding": [{"system": SESSION_MEASURE, "code": "peripheral-symptoms"}]},
                "valueBoolean": False,
            },
        ],
    }


def rich_procedure() -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": "s-1",
        "meta": {"versionId": "1", "lastUpdated": "2026-03-10T08:05:00Z"},
        "identifier": [{"system": "urn:reptrend:client", "value": "s-1"}],
        "basedOn": [{"reference": "ServiceRequest/rx"}],
        "partOf": [{"reference": "Procedure/day-1"}],
        "status": "completed",
        "category": {"text": "exercise"},
        "code": {"coding": [{"system": EXERCISE, "code": "flexion-in-lying"}]},
        "subject": {"reference": "Patient/p-1"},
        "encounter": {"reference": "Encounter/e-1"},
        "performedPeriod": {"start": "2026-03-10T08:00:00+01:00", "end": "2026-03", "id": "x"},
    }


def exhaustive_bases() -> list[dict[str, Any]]:
    rich_procedure_ = rich_procedure()
    del rich_procedure_["performedPeriod"]["id"]  # element ids are not modelled
    dated_procedure = rich_procedure()
    del dated_procedure["performedPeriod"]
    dated_procedure["performedDateTime"] = "2026-03-10"
    instant_obs = load("daily-pain-observation.json")
    del instant_obs["effectiveDateTime"], instant_obs["valueInteger"]
    instant_obs["effectiveInstant"] = "2026-03-10T08:00:00.5-05:00"
    instant_obs["valueString"] = "4 of 10"
    # every modelled Extension.value[x] once, and an Observation.valueBoolean
    extensions_obs = load("session-compact-observation.json")
    extensions_obs["valueBoolean"] = True
    extensions_obs["component"][0]["extension"] = [
        {"url": REP_INDEX_EXT, "valueInteger": 1},
        {"url": "urn:x:string", "valueString": "x"},
        {"url": "urn:x:code", "valueCode": "x"},
        {"url": "urn:x:boolean", "valueBoolean": True},
        {"url": "urn:x:decimal", "valueDecimal": 1.5},
        {"url": "urn:x:uri", "valueUri": "urn:x"},
        {"url": "urn:x:dateTime", "valueDateTime": "2026-03-10T08:00:00Z"},
        {"url": "urn:x:coding", "valueCoding": {"system": "urn:s", "code": "c"}},
        {"url": "urn:x:concept", "valueCodeableConcept": {"text": "x"}},
        {"url": "urn:x:quantity", "valueQuantity": {"value": 1, "unit": "cm"}},
        {"url": "urn:x:reference", "valueReference": {"reference": "Patient/x"}},
        {"url": "urn:x:no-value"},
    ]
    return [
        rich_repetition_observation(),
        load("session-compact-observation.json"),
        instant_obs,
        extensions_obs,
        rich_procedure_,
        dated_procedure,
    ]


def single_edit_datetimes() -> list[str]:
    base = {"date": "2026-03-10", "clock": "08:30:00", "frac": "", "tz": "+01:00"}
    base |= {"sep": "T", "tail": ""}
    found = []
    for part, edges in DATETIME_PART_EDGES.items():
        for edge in edges:
            p = {**base, part: edge}
            full = f"{p['date']}{p['sep']}{p['clock']}{p['frac']}{p['tz']}"
            found += [full + p["tail"], full[:10] + p["tail"]]
            if part == "date":
                found += [edge[:4], edge[:7]]
    return found


def edge_key(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 10_000:
        return f"int:{value.bit_length()}"
    return f"{type(value).__name__}:{value!r}"


EDGE_VALUES: list[Any] = list(
    {
        edge_key(v): v
        for v in [
            *BAD_VALUES,
            *single_edit_datetimes(),
            *["\t", "\n", "\x0c", "\x1c", "\x00", "\u2028", "\u3000", "a", "a ", " a"],
            *["a b", "a\tb", "a\nb", "\udfff", "a.b", "ä", "final\n", "{score}", "2026-3"],
            *[-1, -(2**31), 10**5000, -0.0, 1e-7, 1e300, -float("inf"), "1e5", " 1", "-0"],
            *["True", "yes", 2, (1,), b"x"],
        ]
    }.values()
)


def leaf_paths(resource: dict[str, Any]) -> list[Path_]:
    return [p for p in all_paths(resource) if not isinstance(get_at(resource, p), (dict, list))]


def test_base_resources_for_exhaustive_edits_are_fast_accepted_and_valid() -> None:
    for resource in exhaustive_bases():
        assert fast_validate(resource) and full_accepts(resource), resource


def test_fast_accept_implies_full_accept_for_every_boundary_value_at_every_leaf() -> None:
    # Leaf checks are independent in both validators, so the edits the fast path accepts one
    # at a time are validated together (one full validation per value); a rejection is then
    # narrowed down to the single edit responsible.
    checked = accepted = 0
    for base in exhaustive_bases():
        leaves = leaf_paths(base)
        for value in EDGE_VALUES:
            work = copy.deepcopy(base)
            fast_accepted = []
            for path in leaves:
                parent = get_at(work, path[:-1])
                original, parent[path[-1]] = parent[path[-1]], value
                checked += 1
                if fast_validate(work):
                    fast_accepted.append(path)
                parent[path[-1]] = original
            if not fast_accepted:
                continue
            accepted += len(fast_accepted)
            for path in fast_accepted:
                get_at(work, path[:-1])[path[-1]] = value
            assert fast_validate(work)
            if not full_accepts(work):
                for path in fast_accepted:
                    single = copy.deepcopy(base)
                    get_at(single, path[:-1])[path[-1]] = value
                    assert full_accepts(single), (path, value)
                pytest.fail(f"combined edits rejected: {value!r}")
    assert checked > 20_000 and accepted > 5_000


def test_fast_accept_implies_full_accept_for_every_key_deleted_or_added() -> None:
    additions = [*CHOICE_SIBLINGS, ("foo", 1), ("_status", {"id": "x"}), ("fhir_comments", "c")]
    for base in exhaustive_bases():
        for container in container_paths(base):
            for key in get_at(base, container):
                resource = copy.deepcopy(base)
                del get_at(resource, container)[key]
                if fast_validate(resource):
                    assert full_accepts(resource), ("deleted", container, key)
            for key, value in additions:
                resource = copy.deepcopy(base)
                get_at(resource, container)[key] = copy.deepcopy(value)
                if fast_validate(resource):
                    assert full_accepts(resource), ("added", container, key)
        for path in all_paths(base):
            for value in [None, [], {}, [None], [{}], "x", 1]:
                resource = copy.deepcopy(base)
                get_at(resource, path[:-1])[path[-1]] = value
                if fast_validate(resource):
                    assert full_accepts(resource), ("replaced", path, value)


# ------------------------------------------------------------------------------------------
# Primitive rules: each predicate is checked against the fhir_core type it mirrors.
# ------------------------------------------------------------------------------------------

PRIMITIVE_TYPES: dict[str, Any] = {
    "string": fhir_types.StringType,
    "code": fhir_types.CodeType,
    "id": fhir_types.IdType,
    "uri": fhir_types.UriType,
    "canonical": fhir_types.CanonicalType,
    "xhtml": fhir_types.XhtmlType,
    "boolean": fhir_types.BooleanType,
    "integer": fhir_types.IntegerType,
    "decimal": fhir_types.DecimalType,
    "dateTime": fhir_types.DateTimeType,
    "instant": fhir_types.InstantType,
}
ADAPTERS = {name: TypeAdapter(tp) for name, tp in PRIMITIVE_TYPES.items()}


def library_accepts_primitive(name: str, value: Any) -> bool:
    try:
        ADAPTERS[name].validate_python(value)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def test_every_primitive_predicate_is_checked_against_its_fhir_core_type() -> None:
    assert set(PRIMITIVE_CHECKS) == set(PRIMITIVE_TYPES)


@settings(SLOW, max_examples=300)
@given(st.sampled_from(sorted(PRIMITIVE_CHECKS)), primitive_inputs)
def test_primitive_predicate_true_implies_fhir_core_type_accepts(name: str, value: Any) -> None:
    if PRIMITIVE_CHECKS[name](value):
        assert library_accepts_primitive(name, value), (name, value)


@pytest.mark.parametrize("name", sorted(PRIMITIVE_CHECKS))
def test_primitive_predicate_true_implies_fhir_core_type_accepts_for_every_edge_value(
    name: str,
) -> None:
    for value in EDGE_VALUES:
        if PRIMITIVE_CHECKS[name](value):
            assert library_accepts_primitive(name, value), (name, value)


ALL_CHARS = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def test_string_rule_every_code_point_the_fast_path_accepts_is_a_valid_fhir_string() -> None:
    accepted = [c for c in ALL_CHARS if PRIMITIVE_CHECKS["string"](c)]
    assert len(accepted) > 1_000_000
    TypeAdapter(list[fhir_types.StringType]).validate_python(accepted)
    # only whitespace other than space/CR/LF/TAB, or nothing at all, is refused
    for refused in ["", "\x0b", "\x0c", "\u00a0", "\u2028", "\u3000", "a\ud800"]:
        assert not PRIMITIVE_CHECKS["string"](refused)
        assert not library_accepts_primitive("string", refused)


def test_code_rule_every_token_and_separator_the_fast_path_accepts_is_a_valid_fhir_code() -> None:
    tokens = [c for c in ALL_CHARS if PRIMITIVE_CHECKS["code"](c)]
    separators = [c for c in ALL_CHARS if PRIMITIVE_CHECKS["code"]("a" + c + "b")]
    assert len(tokens) > 1_000_000
    adapter = TypeAdapter(list[fhir_types.CodeType])
    adapter.validate_python(tokens)
    adapter.validate_python(["a" + c + "b" for c in separators])
    # no leading/trailing whitespace, no double whitespace, not empty
    for refused in ["", " a", "a ", "a  b", "a\n", "\ta", "a\ud800"]:
        assert not PRIMITIVE_CHECKS["code"](refused)
        assert not library_accepts_primitive("code", refused)
    assert PRIMITIVE_CHECKS["code"]("a\tb") and library_accepts_primitive("code", "a\tb")


DAY_YEARS = [1, 4, 100, 400, 1900, 2000, 2023, 2024, 2026, 9999]


@pytest.mark.parametrize("year", DAY_YEARS)
def test_calendar_rule_dates_match_fhir_core_exactly_for_every_day_of_the_year(year: int) -> None:
    for month in range(1, 13):
        for day in range(1, 32):
            date = f"{year:04d}-{month:02d}-{day:02d}"
            for name, value in [
                ("dateTime", date),
                ("dateTime", f"{date}T12:30:00+01:00"),
                ("instant", f"{date}T00:00:00Z"),
            ]:
                expected = library_accepts_primitive(name, value)
                assert PRIMITIVE_CHECKS[name](value) == expected, (name, value)


@pytest.mark.parametrize(
    ("value", "fast_expected", "library_expected"),
    [
        ("2026", True, True),
        ("2026-03", True, True),
        ("2026-03-10", True, True),
        ("2026-03-10T08:00:00Z", True, True),
        ("2026-03-10T08:00:00.123456789012+14:00", True, True),
        ("2026-03-10T08:00:00-00:00", True, True),
        ("2026-03-10T08:00:00", False, False),  # a time needs a zone
        ("2026-03-10T08:00Z", False, False),  # seconds are required
        ("2026-03-10T24:00:00Z", False, False),
        ("2026-03-10T08:00:00+14:30", False, False),
        ("2026-03-10T08:00:00+0100", False, False),
        ("2026-03-10T08:00:00z", False, False),
        ("2026-03-10 08:00:00Z", False, False),
        ("0000-01-01", False, False),
        ("2026-13", False, False),
        ("2026-03-10T08:00:00Z\n", False, False),
        ("2026-03-10T23:59:60Z", False, True),  # leap second: accepted by fhir_core, deferred
        (1773129600, False, True),  # numbers are read as Unix times by pydantic: deferred
    ],
)
def test_datetime_rule_matches_fhir_core(
    value: Any, fast_expected: bool, library_expected: bool
) -> None:
    assert library_accepts_primitive("dateTime", value) is library_expected
    assert PRIMITIVE_CHECKS["dateTime"](value) is fast_expected


# ------------------------------------------------------------------------------------------
# Resource-level rules, each one a documented fhir.resources behaviour.
# ------------------------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def repetition_obs() -> dict[str, Any]:
    resource: dict[str, Any] = load("session-transaction.json")["entry"][1]["resource"]
    return resource


def session_procedure() -> dict[str, Any]:
    resource: dict[str, Any] = load("session-transaction.json")["entry"][0]["resource"]
    return resource


Mutation = Callable[[dict[str, Any]], None]


def setter(key: str, value: Any) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        r[key] = copy.deepcopy(value)

    return apply


def deleter(key: str) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        del r[key]

    return apply


def nested(path: Path_, value: Any) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        get_at(r, path[:-1])[path[-1]] = copy.deepcopy(value)

    return apply


def quantity_value(value: Any) -> Mutation:
    def apply(r: dict[str, Any]) -> None:
        del r["valueInteger"]
        r["valueQuantity"] = {"value": value, "system": UCUM, "code": "{score}"}

    return apply


# (rule, base, mutation, does the full validation accept it?) -- the fast path must never accept
# a case the full validation rejects, and defers (False) on every case listed here. The cases
# fhir.resources alone accepts by coercion (null, empty, "4", "true", "2.5") are refused.
RULES: list[tuple[str, Callable[[], dict[str, Any]], Mutation, bool]] = [
    ("observation_status_is_required", repetition_obs, deleter("status"), False),
    ("observation_status_null_is_missing", repetition_obs, setter("status", None), False),
    ("observation_code_is_required", repetition_obs, deleter("code"), False),
    ("observation_code_null_is_refused", repetition_obs, setter("code", None), False),
    ("procedure_status_is_required", session_procedure, deleter("status"), False),
    ("procedure_subject_is_required", session_procedure, deleter("subject"), False),
    ("procedure_subject_null_is_refused", session_procedure, setter("subject", None), False),
    ("resource_type_must_match_model", repetition_obs, setter("resourceType", "Procedure"), False),
    (
        "resource_type_is_case_sensitive",
        repetition_obs,
        setter("resourceType", "observation"),
        False,
    ),
    ("missing_resource_type_is_accepted", repetition_obs, deleter("resourceType"), True),
    ("unknown_top_level_key_is_rejected", repetition_obs, setter("foo", 1), False),
    ("unknown_nested_key_is_rejected", repetition_obs, nested(("subject", "foo"), 1), False),
    ("fhir_comments_key_is_accepted", repetition_obs, setter("fhir_comments", "x"), True),
    (
        "primitive_extension_sibling_is_accepted",
        repetition_obs,
        setter("_status", {"extension": [{"url": "u", "valueString": "x"}]}),
        True,
    ),
    ("two_value_x_are_rejected", repetition_obs, setter("valueString", "x"), False),
    (
        "two_effective_x_are_rejected",
        repetition_obs,
        setter("effectiveInstant", "2026-03-10T08:00:00Z"),
        False,
    ),
    (
        "two_performed_x_are_rejected",
        session_procedure,
        setter("performedDateTime", "2026-03-10"),
        False,
    ),
    ("empty_string_is_rejected", repetition_obs, nested(("subject", "reference"), ""), False),
    ("empty_list_is_refused", repetition_obs, setter("partOf", []), False),
    ("null_in_complex_list_is_rejected", repetition_obs, setter("partOf", [None]), False),
    ("empty_object_is_refused", repetition_obs, setter("subject", {}), False),
    ("empty_nested_object_is_refused", repetition_obs, nested(("code", "coding", 0), {}), False),
    ("null_optional_element_is_refused", repetition_obs, setter("subject", None), False),
    (
        "null_in_primitive_list_is_refused",
        repetition_obs,
        setter("meta", {"profile": [None]}),
        False,
    ),
    (
        "empty_uri_is_refused",
        repetition_obs,
        nested(("code", "coding", 0, "system"), ""),
        False,
    ),
    (
        "empty_narrative_div_is_refused",
        repetition_obs,
        setter("text", {"status": "s", "div": ""}),
        False,
    ),
    ("integer_above_int32_is_rejected", repetition_obs, setter("valueInteger", 2**31), False),
    (
        "integer_below_int32_is_rejected",
        repetition_obs,
        setter("valueInteger", -(2**31) - 1),
        False,
    ),
    ("integer_as_string_is_refused", repetition_obs, setter("valueInteger", "4"), False),
    ("integer_as_bool_is_refused", repetition_obs, setter("valueInteger", True), False),
    ("integer_as_whole_float_is_refused", repetition_obs, setter("valueInteger", 4.0), False),
    ("integer_as_fractional_float_is_rejected", repetition_obs, setter("valueInteger", 4.5), False),
    (
        "bool_as_string_is_refused",
        repetition_obs,
        nested(("code", "coding", 0, "userSelected"), "true"),
        False,
    ),
    (
        "bool_as_int_is_refused",
        repetition_obs,
        nested(("code", "coding", 0, "userSelected"), 1),
        False,
    ),
    (
        "bool_as_two_is_rejected",
        repetition_obs,
        nested(("code", "coding", 0, "userSelected"), 2),
        False,
    ),
    ("decimal_bool_is_rejected", repetition_obs, quantity_value(True), False),
    ("decimal_string_is_refused", repetition_obs, quantity_value("2.5"), False),
    (
        "datetime_as_number_is_refused",
        repetition_obs,
        setter("effectiveDateTime", 1773129600),
        False,
    ),
    ("python_field_name_is_refused", repetition_obs, setter("status__ext", {"id": "x"}), False),
    ("decimal_with_leading_zero_is_rejected", repetition_obs, quantity_value("01"), False),
    ("decimal_nan_is_rejected", repetition_obs, quantity_value(float("nan")), False),
    ("decimal_infinity_is_rejected", repetition_obs, quantity_value(float("inf")), False),
    ("code_leading_space_is_rejected", repetition_obs, setter("status", " final"), False),
    ("code_trailing_newline_is_rejected", repetition_obs, setter("status", "final\n"), False),
    ("id_pattern_is_enforced", repetition_obs, setter("id", "a_b"), False),
    ("id_max_length_is_255", repetition_obs, setter("id", "a" * 256), False),
    (
        "datetime_needs_zone_with_time",
        repetition_obs,
        setter("effectiveDateTime", "2026-03-10T08:00:00"),
        False,
    ),
    (
        "datetime_must_be_a_real_day",
        repetition_obs,
        setter("effectiveDateTime", "2026-02-29"),
        False,
    ),
    (
        "list_given_as_object_is_rejected",
        repetition_obs,
        setter("partOf", {"reference": "x"}),
        False,
    ),
    ("narrative_div_is_required", repetition_obs, setter("text", {"status": "generated"}), False),
    (
        "component_code_is_required",
        repetition_obs,
        setter("component", [{"valueInteger": 1}]),
        False,
    ),
    (
        "extension_url_is_required",
        repetition_obs,
        nested(("component", 0, "extension"), [{"valueInteger": 1}]),
        False,
    ),
    (
        "extension_two_values_are_rejected",
        repetition_obs,
        nested(
            ("component", 0, "extension"), [{"url": "u", "valueInteger": 1, "valueString": "x"}]
        ),
        False,
    ),
]


@pytest.mark.parametrize(
    ("base", "mutation", "library_accepts"),
    [pytest.param(b, m, a, id=rule) for rule, b, m, a in RULES],
)
def test_documented_full_validation_behaviour_and_fast_path_defers(
    base: Callable[[], dict[str, Any]], mutation: Mutation, library_accepts: bool
) -> None:
    resource = base()
    assert fast_validate(resource)
    mutation(resource)
    assert full_accepts(resource) is library_accepts
    assert fast_validate(resource) is False


@pytest.mark.parametrize(
    ("rule", "mutation"),
    [
        ("observation_status_value_is_not_checked", setter("status", "bogus")),
        ("narrative_div_content_is_not_checked", setter("text", {"status": "s", "div": "x"})),
        ("partial_date_is_a_valid_datetime", setter("effectiveDateTime", "2026-03")),
        ("max_length_id_is_valid", setter("id", "a" * 255)),
        ("uri_with_spaces_is_valid", nested(("code", "coding", 0, "system"), "not a uri")),
        ("large_integer_value_is_valid", setter("valueInteger", 2**31 - 1)),
        ("string_of_spaces_is_valid", nested(("subject", "display"), "   ")),
        ("code_with_inner_tab_is_valid", setter("status", "a\tb")),
        ("value_x_is_optional", deleter("valueInteger")),
    ],
)
def test_fast_path_accepts_what_the_full_validation_accepts(rule: str, mutation: Mutation) -> None:
    resource = repetition_obs()
    mutation(resource)
    assert full_accepts(resource), rule
    assert fast_validate(resource), rule


def test_only_plain_dicts_are_fast_accepted() -> None:
    from collections import OrderedDict
    from types import MappingProxyType

    resource = repetition_obs()
    assert not fast_validate(MappingProxyType(resource))
    assert not fast_validate(OrderedDict(resource))
    resource["subject"] = OrderedDict(resource["subject"])
    assert not fast_validate(resource)


def test_other_resource_types_defer() -> None:
    assert not fast_validate({"resourceType": "Patient"})
    assert not fast_validate(load("session-transaction.json"))


# ------------------------------------------------------------------------------------------
# The shared examples
# ------------------------------------------------------------------------------------------


def example_resources() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(EXAMPLES.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("resourceType") == "Observation":
            found.append((path.name, data))
        elif data.get("resourceType") == "Bundle":
            for i, entry in enumerate(data.get("entry", [])):
                resource = entry["resource"]
                if resource["resourceType"] in ("Observation", "Procedure"):
                    found.append((f"{path.name}#entry{i}", resource))
    return found


EXAMPLE_RESOURCES = example_resources()


def test_examples_include_all_three_observation_shapes_and_the_procedure() -> None:
    names = {name.split("#")[0] for name, _ in EXAMPLE_RESOURCES}
    assert names == {
        "daily-pain-observation.json",
        "session-compact-observation.json",
        "session-transaction.json",
    }
    assert sum(r["resourceType"] == "Procedure" for _, r in EXAMPLE_RESOURCES) == 1
    assert len(EXAMPLE_RESOURCES) == 9


@pytest.mark.parametrize(
    "resource", [r for _, r in EXAMPLE_RESOURCES], ids=[n for n, _ in EXAMPLE_RESOURCES]
)
def test_every_shared_example_resource_is_fast_accepted_and_fully_valid(
    resource: dict[str, Any],
) -> None:
    assert full_accepts(resource)
    assert fast_validate(resource)


def test_urn_uuid_references_are_plain_strings() -> None:
    resource = repetition_obs()
    resource["partOf"] = [{"reference": f"urn:uuid:{uuid.uuid4()}"}]
    assert fast_validate(resource) and full_accepts(resource)
