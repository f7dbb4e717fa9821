"""store.validation: FHIR R4 JSON is checked as JSON, not only as whatever pydantic can coerce.

fhir.resources' R4B models validate in pydantic's lax mode: ``"active": "yes"`` becomes True,
``"multipleBirthInteger": "3"`` becomes 3, ``"code": null`` and ``"name": []`` pass. The raw body
is what the store keeps, so every one of these must be refused, naming the element
(hl7.org/fhir/R4/json.html: JSON types per primitive, no nulls outside aligned primitive arrays,
no empty objects, arrays or strings).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from store.errors import InvalidResource
from store.validation import validate_resource
from tests.conftest import FIXTURES
from tests.session_examples import EXAMPLES as SESSION_EXAMPLES
from tests.session_examples import example

HL7_EXAMPLES = FIXTURES / "hl7-examples"


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **fields}


def observation(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "pain"}, **fields}


def refusal(body: dict[str, Any]) -> InvalidResource:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(body, body["resourceType"])
    return caught.value


WRONG_JSON: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, body, expression, what the diagnostic must say)
    ("boolean_as_yes", patient(active="yes"), "Patient.active", "expected a JSON boolean"),
    ("boolean_as_string", patient(active="true"), "Patient.active", "got a JSON string"),
    ("boolean_as_number", patient(active=1), "Patient.active", "got a JSON number"),
    ("choice_boolean", patient(deceasedBoolean="no"), "Patient.deceasedBoolean", "boolean"),
    (
        "integer_as_string",
        patient(multipleBirthInteger="3"),
        "Patient.multipleBirthInteger",
        "expected a JSON integer",
    ),
    (
        "integer_with_fraction_part",
        patient(multipleBirthInteger=3.0),
        "Patient.multipleBirthInteger",
        "expected a JSON integer",
    ),
    (
        "integer_as_boolean",
        observation(valueInteger=True),
        "Observation.valueInteger",
        "got a JSON boolean",
    ),
    (
        "decimal_as_string",
        observation(valueQuantity={"value": "2.5", "unit": "cm"}),
        "Observation.valueQuantity.value",
        "expected a JSON number",
    ),
    (
        "nested_integer_as_string",
        observation(component=[{"code": {"text": "rep"}, "valueInteger": "4"}]),
        "Observation.component[0].valueInteger",
        "expected a JSON integer",
    ),
    (
        "datetime_as_number",
        observation(effectiveDateTime=1773129600),
        "Observation.effectiveDateTime",
        "expected a JSON string",
    ),
    ("empty_array", patient(name=[]), "Patient.name", "empty array"),
    ("empty_object_in_array", patient(name=[{}]), "Patient.name[0]", "empty object"),
    ("required_element_null", observation(code=None), "Observation.code", "null"),
    ("required_element_empty", observation(code={}), "Observation.code", "empty object"),
    ("optional_element_null", patient(active=None), "Patient.active", "null"),
    ("optional_object_empty", observation(subject={}), "Observation.subject", "empty object"),
    ("complex_list_empty", observation(partOf=[]), "Observation.partOf", "empty array"),
    (
        "null_in_primitive_array_without_extension",
        patient(name=[{"given": ["Ann", None]}]),
        "Patient.name[0].given[1]",
        "null",
    ),
    ("empty_uri", patient(implicitRules=""), "Patient.implicitRules", "empty string"),
    (
        "empty_canonical_in_array",
        patient(meta={"profile": [""]}),
        "Patient.meta.profile[0]",
        "empty string",
    ),
    (
        "primitive_extension_value",
        patient(active=True, _active={"extension": [{"url": "u", "valueBoolean": "yes"}]}),
        "Patient._active.extension[0].valueBoolean",
        "expected a JSON boolean",
    ),
    (
        "python_name_instead_of_json_name",
        patient(active__ext={"extension": [{"url": "u", "valueBoolean": True}]}),
        "Patient.active__ext",
        "_active",
    ),
    (
        "contained_resource",
        observation(contained=[patient(id="p", active="yes")]),
        "Observation.contained[0].active",
        "expected a JSON boolean",
    ),
    ("fhir_comments_null", patient(fhir_comments=None), "Patient.fhir_comments", "null"),
]


@pytest.mark.parametrize(
    ("body", "expression", "says"),
    [pytest.param(b, e, s, id=case) for case, b, e, s in WRONG_JSON],
)
def test_wrong_json_types_nulls_and_empty_values_are_refused_naming_the_element(
    body: dict[str, Any], expression: str, says: str
) -> None:
    error = refusal(body)
    assert error.expression == expression
    assert says in error.diagnostics
    assert error.diagnostics.startswith(expression + ": ")


def test_the_diagnostic_tells_what_to_write_instead() -> None:
    assert refusal(patient(active="yes")).diagnostics == (
        "Patient.active: expected a JSON boolean (true or false, without quotes), got a JSON string"
    )
    assert refusal(observation(code=None)).diagnostics == (
        "Observation.code: null is not allowed here: leave the element out"
    )


def test_the_diagnostic_never_echoes_the_value() -> None:
    # Values may be patient data (store/errors.py); only elements and JSON types are named.
    error = refusal(patient(multipleBirthInteger="Zebulonowicz", active="Zebulonowicz"))
    assert "Zebulonowicz" not in error.diagnostics
    assert "Patient.active" in error.diagnostics
    assert "Patient.multipleBirthInteger" in error.diagnostics


def test_every_problem_is_reported_up_to_a_limit() -> None:
    body = patient(active="yes", deceasedBoolean="no", name=[], telecom=[{}])
    error = refusal(body)
    for where in [
        "Patient.active",
        "Patient.deceasedBoolean",
        "Patient.name",
        "Patient.telecom[0]",
    ]:
        assert where in error.diagnostics
    many = patient(name=[{"given": [None] * 9}])
    assert "... and 4 more" in refusal(many).diagnostics


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(patient(active=False), id="false_is_a_boolean"),
        pytest.param(patient(multipleBirthInteger=0), id="zero_is_an_integer"),
        pytest.param(observation(valueQuantity={"value": 2}), id="integer_is_a_decimal"),
        pytest.param(observation(valueQuantity={"value": -2.5}), id="fraction_is_a_decimal"),
        pytest.param(
            patient(name=[{"given": ["Ann", None], "_given": [None, {"id": "g2"}]}]),
            id="null_aligned_with_its_extension",
        ),
        pytest.param(
            patient(name=[{"given": ["Ann"], "_given": [{"extension": [{"url": "u"}]}]}]),
            id="primitive_array_with_extensions",
        ),
        pytest.param(patient(_active={"id": "a"}), id="extension_without_value"),
        pytest.param(patient(name=[{"family": "   "}]), id="whitespace_is_not_empty"),
        pytest.param(
            observation(contained=[patient(id="p", active=True)]), id="contained_resource"
        ),
    ],
)
def test_valid_fhir_json_is_still_accepted(body: dict[str, Any]) -> None:
    assert validate_resource(body, body["resourceType"]) == body["resourceType"]


def test_a_primitive_array_and_its_extensions_may_not_both_be_null_at_one_index() -> None:
    body = patient(name=[{"given": ["Ann", None], "_given": [None, None]}])
    error = refusal(body)
    assert error.expression == "Patient.name[0].given[1]"


HL7_FILES = sorted(HL7_EXAMPLES.glob("*.json"))


@pytest.mark.parametrize("path", HL7_FILES, ids=[p.name for p in HL7_FILES])
def test_every_hl7_example_is_still_valid(path: Any) -> None:
    body = json.loads(path.read_text())
    assert validate_resource(body, body["resourceType"]) == body["resourceType"]


def test_every_session_example_resource_is_still_valid() -> None:
    checked = 0
    for path in sorted(SESSION_EXAMPLES.glob("*.json")):
        body = example(path.name)
        resources = [e["resource"] for e in body["entry"]] if "entry" in body else [body]
        for resource in resources:
            validate_resource(resource, resource["resourceType"])
            checked += 1
    assert checked >= 9
