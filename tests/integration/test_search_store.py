"""FHIR search in the store (parse -> SQL -> SearchResult), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from sqlalchemy.engine import Engine

from store.errors import InvalidRequest, NotSupported
from store.resource_store import Method, Write
from store.search import SUBSETTED, SearchResult, matching_ids, search, type_history
from store.search_parameters import (
    MAX_COUNT,
    UnsupportedParameter,
    parse_history,
    parse_search,
    search_date_range,
)
from store.unit_of_work import UnitOfWork

NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


# --- helpers --------------------------------------------------------------------------------


def write(engine: Engine, *bodies: dict[str, Any], tenant: str = "default", at: datetime = NOW):
    with UnitOfWork(engine, tenant, write=True, clock=lambda: at) as uow:
        uow.resources.write([Write(Method.UPDATE, b["resourceType"], b["id"], b) for b in bodies])
        uow.commit()


def delete(engine: Engine, resource_type: str, resource_id: str, at: datetime = NOW) -> None:
    with UnitOfWork(engine, write=True, clock=lambda: at) as uow:
        uow.resources.write([Write(Method.DELETE, resource_type, resource_id)])
        uow.commit()


def run(
    engine: Engine, resource_type: str, query: str, tenant: str = "default", **kw: Any
) -> SearchResult:
    request = parse_search(resource_type, parse_qsl(query, keep_blank_values=True), **kw)
    with UnitOfWork(engine, tenant) as uow:
        return search(uow.resources, request)


def ids(engine: Engine, resource_type: str, query: str, tenant: str = "default") -> set[str]:
    return {m.id for m in run(engine, resource_type, query, tenant).matches}


def ordered(engine: Engine, resource_type: str, query: str) -> list[str]:
    return [m.id for m in run(engine, resource_type, query).matches]


def observation(resource_id: str, **elements: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
    }
    body.update(elements)
    return body


def patient(resource_id: str, family: str = "Testperson", **elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": resource_id, "name": [{"family": family}], **elements}


def procedure(resource_id: str, **elements: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": resource_id,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
    }
    body.update(elements)
    return body


def all_pages(engine: Engine, resource_type: str, query: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        result = run(engine, resource_type, query + (f"&_cursor={cursor}" if cursor else ""))
        pages.append([m.id for m in result.matches])
        cursor = result.next_cursor
        if cursor is None:
            return pages


# --- parameter types ------------------------------------------------------------------------


def test_token_matches_code_system_and_code_no_system_and_any_code_of_a_system(
    engine: Engine,
) -> None:
    write(
        engine,
        observation("loinc"),
        observation("local", code={"coding": [{"code": "29463-7"}]}),
        observation("snomed", code={"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}),
        patient("p1", identifier=[{"system": "urn:mrn", "value": "123"}], active=True),
    )
    assert ids(engine, "Observation", "code=29463-7") == {"loinc", "local"}
    assert ids(engine, "Observation", f"code={LOINC}|29463-7") == {"loinc"}
    assert ids(engine, "Observation", "code=|29463-7") == {"local"}
    assert ids(engine, "Observation", "code=http://snomed.info/sct|") == {"snomed"}
    assert ids(engine, "Observation", "code:not=29463-7") == {"snomed"}
    assert ids(engine, "Observation", "code:not=29463-7&subject=p1&status=final") == {"snomed"}
    assert ids(engine, "Patient", "identifier=urn:mrn|123") == {"p1"}
    assert ids(engine, "Patient", "identifier=urn:other|123") == set()
    assert ids(engine, "Patient", "active=true") == {"p1"}
    assert ids(engine, "Observation", "_id=loinc,snomed") == {"loinc", "snomed"}


def test_reference_matches_type_and_id_a_bare_id_absolute_urls_and_a_type_modifier(
    engine: Engine,
) -> None:
    write(
        engine,
        observation("o1"),
        observation("o2", subject={"reference": "https://ehr.example/fhir/Patient/p2"}),
        observation("o3", subject={"reference": "Group/g1"}),
    )
    assert ids(engine, "Observation", "subject=Patient/p1") == {"o1"}
    assert ids(engine, "Observation", "subject=p1") == {"o1"}
    assert ids(engine, "Observation", "subject=http://elsewhere/fhir/Patient/p2") == {"o2"}
    assert ids(engine, "Observation", "subject:Patient=p2") == {"o2"}
    assert ids(engine, "Observation", "subject:Group=g1") == {"o3"}
    # `patient` only indexes references to Patients.
    assert ids(engine, "Observation", "patient=g1") == set()
    assert ids(engine, "Observation", "patient=Patient/p1,p2") == {"o1", "o2"}


def date_examples() -> list[dict[str, Any]]:
    return [
        observation("day", effectiveDateTime="2026-03-10"),
        observation("instant", effectiveDateTime="2026-03-10T12:00:00Z"),
        observation(
            "period",
            effectivePeriod={"start": "2026-03-09T00:00:00Z", "end": "2026-03-11T23:59:59Z"},
        ),
        observation("ongoing", effectivePeriod={"start": "2026-03-12T08:00:00Z"}),
        observation("before", effectiveDateTime="2026-03-01"),
        observation("undated"),
    ]


def test_date_prefixes_follow_the_fhir_range_semantics(engine: Engine) -> None:
    write(engine, *date_examples())
    # The search value 2026-03-10 is the whole day; targets are ranges too.
    expected = {
        "eq": {"day", "instant"},  # the day contains the target
        "ne": {"period", "ongoing", "before"},
        "gt": {"period", "ongoing"},  # some of the target lies after the day
        "lt": {"period", "before"},  # some of the target lies before the day
        "ge": {"day", "instant", "period", "ongoing"},
        "le": {"day", "instant", "period", "before"},
        "sa": {"ongoing"},  # starts after the day ends
        "eb": {"before"},  # ends before the day starts
    }
    found = {p: ids(engine, "Observation", f"date={p}2026-03-10") for p in expected}
    assert found == expected
    assert ids(engine, "Observation", "date=2026-03-10") == expected["eq"]
    # The DSTU1 comparators fhirclient sends for $gt, $lt, $gte and $lte.
    legacy = {">": "gt", "<": "lt", ">=": "ge", "<=": "le"}
    for comparator, prefix in legacy.items():
        query = "date=" + quote(comparator) + "2026-03-10"
        assert ids(engine, "Observation", query) == expected[prefix], comparator


def test_a_date_search_value_covers_its_own_precision_and_zone(engine: Engine) -> None:
    write(engine, *date_examples())
    assert ids(engine, "Observation", "date=2026-03") == {"day", "instant", "period", "before"}
    assert ids(engine, "Observation", "date=2026-03-10T12:00") == {"instant"}
    assert ids(engine, "Observation", "date=2026-03-10T13:00:00%2B01:00") == {"instant"}
    assert ids(engine, "Observation", "date=2026-03-10T12:00:01Z") == set()
    assert ids(engine, "Observation", "date:missing=true") == {"undated"}
    assert len(ids(engine, "Observation", "date:missing=false&subject=p1&code=29463-7")) == 5
    assert search_date_range("2026-03-10T12:00:00.5Z") == (
        datetime(2026, 3, 10, 12, 0, 0, 500000, tzinfo=UTC),
        datetime(2026, 3, 10, 12, 0, 0, 599999, tzinfo=UTC),
    )


def test_last_updated_searches_the_time_the_server_stored_the_resource(engine: Engine) -> None:
    write(engine, observation("early"), at=NOW)
    write(engine, observation("late"), at=NOW + timedelta(hours=2, microseconds=123456))
    assert ids(engine, "Observation", "_lastUpdated=gt2026-03-12T10:00:00Z") == {"late"}
    assert ids(engine, "Observation", "_lastUpdated=le2026-03-12T09:00:00Z") == {"early"}
    # meta.lastUpdated is written to the millisecond; searching for it finds the resource.
    assert ids(engine, "Observation", "_lastUpdated=2026-03-12T11:00:00.123Z") == {"late"}
    assert ids(engine, "Observation", "_lastUpdated=2026-03-12") == {"early", "late"}


def test_string_is_case_insensitive_starts_with_unless_exact_or_contains(engine: Engine) -> None:
    write(
        engine,
        patient("peter", "Peter"),
        patient("peterson", "PETERSON"),
        patient("mcpeter", "McPeter"),
        patient("underscore", "Ab_c"),
        patient("wildcard", "Abxc"),
        patient("accent", "Ødegård"),
    )
    assert ids(engine, "Patient", "family=pEt") == {"peter", "peterson"}
    assert ids(engine, "Patient", "family:exact=Peter") == {"peter"}
    # :exact compares case too (FHIR: "including case and accents").
    assert ids(engine, "Patient", "family:exact=peter") == set()
    assert ids(engine, "Patient", "family:exact=PETERSON") == {"peterson"}
    assert ids(engine, "Patient", "family:contains=PETER") == {"peter", "peterson", "mcpeter"}
    # LIKE wildcards in the value are literal characters.
    assert ids(engine, "Patient", "family=ab_") == {"underscore"}
    assert ids(engine, "Patient", "name=ødeg") == {"accent"}


def test_quantity_prefixes_and_the_implied_precision_of_the_value(engine: Engine) -> None:
    def weighing(resource_id: str, value: float, code: str = "kg") -> dict[str, Any]:
        quantity = {"value": value, "unit": code, "system": UCUM, "code": code}
        return observation(resource_id, valueQuantity=quantity)

    write(
        engine,
        weighing("w100", 100),
        weighing("w99.7", 99.7),
        weighing("w100.6", 100.6),
        weighing("lb", 120, "[lb_av]"),
    )
    query = "value-quantity="
    assert ids(engine, "Observation", query + "100") == {"w100", "w99.7"}  # [99.5, 100.5)
    assert ids(engine, "Observation", query + "100.0") == {"w100"}  # [99.95, 100.05)
    assert ids(engine, "Observation", query + "ne100") == {"w100.6", "lb"}
    assert ids(engine, "Observation", query + "gt100") == {"w100.6", "lb"}
    assert ids(engine, "Observation", query + "ge100") == {"w100", "w100.6", "lb"}
    assert ids(engine, "Observation", query + "lt100") == {"w99.7"}
    assert ids(engine, "Observation", query + "le100") == {"w100", "w99.7"}
    assert ids(engine, "Observation", query + "sa100.6") == {"lb"}
    assert ids(engine, "Observation", query + "eb99.7") == set()
    assert ids(engine, "Observation", query + f"120|{UCUM}|[lb_av]") == {"lb"}
    assert ids(engine, "Observation", query + "ge0||kg") == {"w100", "w99.7", "w100.6"}


def test_uri_matches_the_whole_uri_only(engine: Engine) -> None:
    url = "https://reptrend.dev/fhir/PlanDefinition/flexion"
    write(engine, {"resourceType": "PlanDefinition", "id": "pd", "status": "active", "url": url})
    assert ids(engine, "PlanDefinition", f"url={url}") == {"pd"}
    assert ids(engine, "PlanDefinition", "url=https://reptrend.dev/fhir") == set()


def test_comma_means_or_and_a_repeated_parameter_means_and(engine: Engine) -> None:
    both = {"coding": [{"system": LOINC, "code": "a"}, {"system": LOINC, "code": "b"}]}
    write(
        engine,
        observation("a", code={"coding": [{"system": LOINC, "code": "a"}]}),
        observation("b", code={"coding": [{"system": LOINC, "code": "b"}]}),
        observation("ab", code=both),
        observation("c", code={"coding": [{"system": LOINC, "code": "c"}]}),
    )
    assert ids(engine, "Observation", "code=a,b") == {"a", "b", "ab"}
    assert ids(engine, "Observation", "code=a&code=b") == {"ab"}
    assert ids(engine, "Observation", "code=a,c&status=final&subject=p1") == {"a", "ab", "c"}


# --- what never matches ---------------------------------------------------------------------


def test_deleted_resources_never_match_and_are_never_included(engine: Engine) -> None:
    write(engine, patient("p1"), observation("kept"), observation("gone"))
    delete(engine, "Observation", "gone")
    delete(engine, "Patient", "p1")
    result = run(engine, "Observation", "_include=Observation:subject")
    assert [m.id for m in result.matches] == ["kept"]
    assert result.includes == []
    assert ids(engine, "Observation", "_id=gone") == set()


def test_search_sees_only_the_tenant_of_its_unit_of_work(engine: Engine) -> None:
    write(engine, observation("mine"), tenant="clinic-a")
    write(engine, observation("theirs"), patient("p1"), tenant="clinic-b")
    result = run(engine, "Observation", "code=29463-7&_include=Observation:subject", "clinic-a")
    assert [m.id for m in result.matches] == ["mine"]
    assert result.includes == []
    assert ids(engine, "Observation", "_id=theirs", tenant="clinic-a") == set()
    with UnitOfWork(engine, "clinic-b") as uow:
        assert matching_ids(uow.resources, "Observation", "code=29463-7") == ["theirs"]


# --- paging and order -----------------------------------------------------------------------


def test_keyset_pages_have_no_duplicates_or_gaps_when_resources_arrive_between_pages(
    engine: Engine,
) -> None:
    # Same timestamp for many rows: the id breaks the tie, so the order is still total.
    write(engine, *(observation(f"o{n:02}") for n in range(0, 25, 2)), at=NOW)
    write(engine, *(observation(f"o{n:02}") for n in range(1, 25, 2)), at=NOW + timedelta(1))
    original = {f"o{n:02}" for n in range(25)}
    seen: list[str] = []
    cursor = None
    for page_number in range(10):
        query = "_count=7" + (f"&_cursor={cursor}" if cursor else "")
        result = run(engine, "Observation", query)
        seen += [m.id for m in result.matches]
        # Insert between pages: before the cursor, at its timestamp and after it.
        write(engine, observation(f"new-{page_number}-a"), at=NOW)
        write(engine, observation(f"new-{page_number}-b"), at=NOW + timedelta(2))
        cursor = result.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert original <= set(seen)


def test_sort_by_date_in_both_directions_puts_undated_resources_last(engine: Engine) -> None:
    write(
        engine,
        observation("mid", effectiveDateTime="2026-03-05"),
        observation("first", effectiveDateTime="2026-03-01"),
        observation("last", effectivePeriod={"start": "2026-03-02", "end": "2026-03-20"}),
        observation("undated"),
    )
    # Ascending sorts on the start, descending on the end of each range.
    assert ordered(engine, "Observation", "_sort=date") == ["first", "last", "mid", "undated"]
    assert ordered(engine, "Observation", "_sort=-date") == ["last", "mid", "first", "undated"]
    assert ordered(engine, "Observation", "_sort:desc=date") == ["last", "mid", "first", "undated"]
    pages = all_pages(engine, "Observation", "_sort=-date&_count=1")
    assert pages == [["last"], ["mid"], ["first"], ["undated"]]


def test_sort_by_last_updated_both_ways_and_by_id(engine: Engine) -> None:
    write(engine, observation("b"), at=NOW)
    write(engine, observation("a"), at=NOW + timedelta(1))
    write(engine, observation("c"), at=NOW + timedelta(2))
    assert ordered(engine, "Observation", "") == ["b", "a", "c"]
    assert ordered(engine, "Observation", "_sort=-_lastUpdated") == ["c", "a", "b"]
    assert all_pages(engine, "Observation", "_sort=-_id&_count=2") == [["c", "b"], ["a"]]


def test_a_cursor_only_continues_the_sort_it_was_made_for(engine: Engine) -> None:
    write(engine, observation("a"), observation("b"))
    cursor = run(engine, "Observation", "_count=1").next_cursor
    with pytest.raises(InvalidRequest, match="_cursor"):
        run(engine, "Observation", f"_sort=-date&_count=1&_cursor={cursor}")
    with pytest.raises(InvalidRequest, match="_cursor"):
        run(engine, "Observation", "_cursor=not-a-cursor")


# --- result parameters ----------------------------------------------------------------------


def test_include_and_revinclude_follow_references_once(engine: Engine) -> None:
    write(engine, patient("p1"), procedure("proc"), patient("other"))
    write(
        engine,
        observation("o1", partOf=[{"reference": "Procedure/proc"}]),
        observation("o2", partOf=[{"reference": "Procedure/proc"}]),
        observation("o3"),
    )

    def keys(result: SearchResult) -> list[str]:
        return [f"{r.type}/{r.id}" for r in result.includes]

    subject = run(engine, "Observation", "_include=Observation:subject")
    assert keys(subject) == ["Patient/p1"]
    both = run(engine, "Observation", "_include=Observation:subject&_include=Observation:part-of")
    assert keys(both) == ["Patient/p1", "Procedure/proc"]
    assert keys(run(engine, "Observation", "_include=Observation:subject:Group")) == []
    assert keys(run(engine, "Procedure", "_include=Procedure:subject")) == ["Patient/p1"]
    reverse = run(engine, "Procedure", "_revinclude=Observation:part-of")
    assert keys(reverse) == ["Observation/o1", "Observation/o2"]
    assert keys(run(engine, "Patient", "_id=p1&_revinclude=Procedure:subject")) == [
        "Procedure/proc"
    ]


def test_summary_count_and_total_accurate_count_every_match(engine: Engine) -> None:
    write(engine, *(observation(f"o{n}") for n in range(5)), procedure("proc"))
    counted = run(engine, "Observation", "_summary=count")
    assert (counted.total, counted.matches, counted.next_cursor) == (5, [], None)
    assert run(engine, "Observation", "_count=0").total == 5
    assert run(engine, "Observation", "_count=2&_total=accurate").total == 5
    # Without _total the total is given only when the first page holds everything.
    assert run(engine, "Observation", "_count=2").total is None
    assert run(engine, "Observation", "_count=10").total == 5


def test_elements_keep_the_listed_elements_and_mark_the_resource_subsetted(engine: Engine) -> None:
    write(engine, observation("o1", effectiveDateTime="2026-03-10"))
    body = run(engine, "Observation", "_elements=status,Observation.subject").matches[0].body
    assert body is not None
    assert set(body) == {"resourceType", "id", "meta", "status", "subject"}
    assert SUBSETTED in body["meta"]["tag"]


# --- type history ---------------------------------------------------------------------------


def test_type_history_lists_every_version_newest_first_and_pages(engine: Engine) -> None:
    write(engine, observation("a"), observation("b"), at=NOW)
    write(engine, observation("a", status="amended"), at=NOW + timedelta(1))
    delete(engine, "Observation", "b", at=NOW + timedelta(2))
    write(engine, patient("p1"), at=NOW + timedelta(3))

    def history(query: str) -> list[tuple[str, int, str]]:
        entries: list[tuple[str, int, str]] = []
        cursor = None
        while True:
            pairs = parse_qsl(query + (f"&_cursor={cursor}" if cursor else ""))
            with UnitOfWork(engine) as uow:
                result = type_history(uow.resources, parse_history("Observation", pairs))
            entries += [(e.resource.id, e.resource.version_id, e.method) for e in result.entries]
            cursor = result.next_cursor
            if cursor is None:
                return entries

    assert history("_count=1") == [
        ("b", 2, "DELETE"),
        ("a", 2, "PUT"),
        ("b", 1, "PUT"),
        ("a", 1, "PUT"),
    ]
    assert history("_since=2026-03-13T00:00:00Z") == [("b", 2, "DELETE"), ("a", 2, "PUT")]


# --- parsing (no database) ------------------------------------------------------------------


def test_an_unknown_parameter_is_refused_naming_it_unless_handling_is_lenient() -> None:
    with pytest.raises(UnsupportedParameter, match="'colour'") as refused:
        parse_search("Observation", [("colour", "red")])
    assert refused.value.expression == "colour"
    lenient = parse_search("Observation", [("colour", "red"), ("status", "final")], lenient=True)
    assert [c.param.name for c in lenient.criteria] == ["status"]
    assert len(lenient.ignored) == 1 and "'colour'" in lenient.ignored[0]
    assert lenient.applied == (("status", "final"),)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("code:text", "x")], "modifier ':text'"),
        ([("_sort", "status")], "cannot sort"),
        ([("_include", "Observation:code")], "no reference parameter"),
        ([("_include", "*")], "not supported"),
        ([("_summary", "true")], "_summary=true"),
        ([("_has:Observation:subject:code", "x")], "'_has'"),
        ([("subject.name", "x")], "unknown search parameter 'subject.name'"),
    ],
)
def test_unsupported_parameters_and_modifiers_are_refused(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(UnsupportedParameter, match=message):
        parse_search("Observation", pairs)
    assert parse_search("Observation", pairs, lenient=True).ignored


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("date", "yesterday")], "not a valid date"),
        ([("date", "2026-13-01")], "not a valid date"),
        ([("value-quantity", "gtabc")], "not a valid quantity"),
        ([("_count", "-1")], "_count"),
        ([("_count", "5"), ("_count", "6")], "only once"),
        ([("code", "a|b|c")], "not a valid token"),
        ([("_revinclude", "Observation:part-of:Patient")], "cannot point"),
        ([("_total", "maybe")], "_total"),
    ],
)
def test_malformed_values_are_refused_even_when_lenient(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_search("Procedure" if pairs[0][0] == "_revinclude" else "Observation", pairs)
    with pytest.raises(InvalidRequest):
        parse_search(
            "Procedure" if pairs[0][0] == "_revinclude" else "Observation", pairs, lenient=True
        )


def test_count_is_capped_and_empty_values_are_ignored() -> None:
    request = parse_search("Observation", [("_count", "5000"), ("code", ""), ("_format", "json")])
    assert (request.count, request.criteria) == (MAX_COUNT, ())


def test_an_unknown_resource_type_is_not_supported() -> None:
    with pytest.raises(NotSupported):
        parse_search("Unicorn", [])
