"""FHIR search over HTTP: searchset Bundles, POST _search, paging links, errors, history,
the CapabilityStatement, and the HL7 example resources."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from store.search import SUBSETTED
from tests.api.conftest import FHIR
from tests.conftest import FIXTURES

BASE = "http://testserver/fhir"
LENIENT = {"Prefer": "handling=lenient"}
HL7_EXAMPLES = FIXTURES / "hl7-examples"


def put(client: TestClient, body: dict[str, Any]) -> Any:
    return client.put(f"/fhir/{body['resourceType']}/{body['id']}", json=body, headers=FHIR)


def observation(resource_id: str, **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        **elements,
    }


def match_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def test_search_answers_a_searchset_with_absolute_full_urls_modes_and_links(
    client: TestClient,
) -> None:
    put(client, {"resourceType": "Patient", "id": "p1"})
    for n in range(3):
        put(client, observation(f"o{n}"))
    response = client.get("/fhir/Observation?subject=Patient/p1&_count=2")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        f"{BASE}/Observation/o0",
        f"{BASE}/Observation/o1",
    ]
    assert {e["search"]["mode"] for e in bundle["entry"]} == {"match"}
    assert link(bundle, "self") == f"{BASE}/Observation?subject=Patient/p1&_count=2"
    next_url = link(bundle, "next")
    assert next_url is not None and next_url.startswith(f"{BASE}/Observation?")
    assert match_ids(client.get(next_url).json()) == ["o2"]


def test_post_search_merges_the_form_body_with_the_query_string(client: TestClient) -> None:
    put(client, observation("final", status="final"))
    put(client, observation("amended", status="amended"))
    put(client, observation("other", subject={"reference": "Patient/p2"}))
    response = client.post(
        "/fhir/Observation/_search?subject=p1",
        content="status=amended%2Cfinal&_sort=-_id",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert match_ids(response.json()) == ["final", "amended"]
    refused = client.post("/fhir/Observation/_search", json={"status": "final"})
    assert refused.status_code == 415


def test_next_links_visit_every_match_once_while_resources_arrive(client: TestClient) -> None:
    for n in range(23):
        put(client, observation(f"o{n:02}"))
    seen: list[str] = []
    url: str | None = "/fhir/Observation?_count=5&status=final"
    pages = 0
    while url:
        bundle = client.get(url).json()
        seen += match_ids(bundle)
        put(client, observation(f"new{pages}"))
        pages += 1
        url = link(bundle, "next")
    assert len(seen) == len(set(seen))
    assert {f"o{n:02}" for n in range(23)} <= set(seen)
    assert pages >= 5


def test_an_unknown_parameter_answers_400_naming_it_unless_handling_is_lenient(
    client: TestClient,
) -> None:
    put(client, observation("o1"))
    strict = client.get("/fhir/Observation?colour=red&status=final")
    assert strict.status_code == 400
    issue = strict.json()["issue"][0]
    assert issue["expression"] == ["colour"]
    assert "'colour'" in issue["diagnostics"]

    lenient = client.get("/fhir/Observation?colour=red&status=final", headers=LENIENT)
    assert lenient.status_code == 200
    bundle = lenient.json()
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    assert outcome[0]["resource"]["resourceType"] == "OperationOutcome"
    assert "'colour'" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert match_ids(bundle) == ["o1"]
    # The links repeat only what was applied, so following them needs no Prefer header.
    assert link(bundle, "self") == f"{BASE}/Observation?status=final"


def test_include_and_revinclude_entries_are_marked_include(client: TestClient) -> None:
    put(client, {"resourceType": "Patient", "id": "p1"})
    put(
        client,
        {
            "resourceType": "Procedure",
            "id": "proc",
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
        },
    )
    put(client, observation("o1", partOf=[{"reference": "Procedure/proc"}]))
    bundle = client.get(
        "/fhir/Observation?_include=Observation:subject&_include=Observation:part-of"
    ).json()
    modes = [(e["search"]["mode"], e["fullUrl"]) for e in bundle["entry"]]
    assert modes == [
        ("match", f"{BASE}/Observation/o1"),
        ("include", f"{BASE}/Patient/p1"),
        ("include", f"{BASE}/Procedure/proc"),
    ]
    reverse = client.get("/fhir/Procedure?_revinclude=Observation:part-of").json()
    assert [e["search"]["mode"] for e in reverse["entry"]] == ["match", "include"]


def test_summary_count_total_and_elements_shape_the_bundle(client: TestClient) -> None:
    for n in range(4):
        put(client, observation(f"o{n}", effectiveDateTime="2026-03-10"))
    counted = client.get("/fhir/Observation?_summary=count").json()
    assert counted["total"] == 4 and "entry" not in counted
    assert "total" not in client.get("/fhir/Observation?_count=2").json()
    assert client.get("/fhir/Observation?_count=2&_total=accurate").json()["total"] == 4
    subset = client.get("/fhir/Observation?_elements=status&_count=1").json()
    resource = subset["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status"}
    assert SUBSETTED in resource["meta"]["tag"]
    assert "_elements=status" in (link(subset, "next") or "")


def test_type_history_lists_versions_newest_first_with_paging(client: TestClient) -> None:
    put(client, observation("a"))
    put(client, observation("b"))
    put(client, observation("a", status="amended"))
    client.delete("/fhir/Observation/b")
    seen: list[tuple[str, str, str]] = []
    url: str | None = "/fhir/Observation/_history?_count=3"
    while url:
        bundle = client.get(url).json()
        assert bundle["type"] == "history"
        for entry in bundle["entry"]:
            version = entry["response"]["etag"]
            seen.append((entry["fullUrl"].rsplit("/", 1)[1], version, entry["request"]["method"]))
        url = link(bundle, "next")
    assert seen == [
        ("b", 'W/"2"', "DELETE"),
        ("a", 'W/"2"', "PUT"),
        ("b", 'W/"1"', "PUT"),
        ("a", 'W/"1"', "PUT"),
    ]


def test_instance_history_pages_like_type_history_and_labels_each_version(
    client: TestClient,
) -> None:
    put(client, observation("a"))
    put(client, observation("b"))
    put(client, observation("a", status="amended"))
    client.delete("/fhir/Observation/a")
    first = client.get("/fhir/Observation/a/_history?_count=2").json()
    assert [e["response"]["etag"] for e in first["entry"]] == ['W/"3"', 'W/"2"']
    assert [e["request"]["method"] for e in first["entry"]] == ["DELETE", "PUT"]
    assert all("lastModified" in e["response"] for e in first["entry"])
    rest = client.get(link(first, "next") or "").json()
    assert [(e["request"]["method"], e["response"]["etag"]) for e in rest["entry"]] == [
        ("PUT", 'W/"1"')  # created by PUT, so labelled PUT, as type history labels it
    ]
    assert client.get("/fhir/Observation/a/_history?foo=1").status_code == 400
    assert client.get("/fhir/Observation/nobody/_history").status_code == 404


def test_the_capability_statement_lists_exactly_what_search_accepts(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    for resource in statement["rest"][0]["resource"]:
        kind = resource["type"]
        assert {"code": "search-type"} in resource["interaction"]
        # One request per type: every listed parameter at once (they AND together).
        listed = {p["name"] for p in resource["searchParam"]}
        criteria = [f"{n}:missing=true" for n in listed if not n.startswith("_")]
        criteria += ["_id=x", "_lastUpdated=ge2020-01-01"]
        criteria += [f"_include={i}" for i in resource.get("searchInclude", [])]
        criteria += [f"_revinclude={i}" for i in resource.get("searchRevInclude", [])]
        response = client.get(f"/fhir/{kind}?{'&'.join(criteria)}")
        assert response.status_code == 200, response.json()
        unlisted = next(n for n in ("code", "name", "status", "url") if n not in listed)
        assert client.get(f"/fhir/{kind}?{unlisted}=x").status_code == 400, (kind, unlisted)


def test_an_unknown_type_is_404_and_literal_paths_still_answer(client: TestClient) -> None:
    unknown = client.get("/fhir/Unicorn?name=x")
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/metadata").json()["resourceType"] == "CapabilityStatement"


def test_a_trailing_slash_and_format_parameters_are_accepted_and_kept_in_links(
    client: TestClient,
) -> None:
    put(client, observation("o1"))
    put(client, observation("o2"))
    response = client.get("/fhir/Observation/?_format=json&_count=1&_pretty=true")
    assert response.status_code == 200
    query = parse_qs(urlsplit(link(response.json(), "next") or "").query)
    assert (query["_format"], query["_pretty"], query["_count"]) == (["json"], ["true"], ["1"])


def test_search_sees_only_the_callers_clinic(settings: Settings) -> None:
    other = settings.model_copy(update={"default_tenant": "clinic-b"})
    with TestClient(create_app(settings)) as clinic_a, TestClient(create_app(other)) as clinic_b:
        put(clinic_a, observation("mine"))
        put(clinic_b, observation("theirs"))
        assert match_ids(clinic_a.get("/fhir/Observation").json()) == ["mine"]
        assert match_ids(clinic_b.get("/fhir/Observation?code=29463-7").json()) == ["theirs"]
        history = clinic_b.get("/fhir/Observation/_history").json()
        assert [e["resource"]["id"] for e in history["entry"]] == ["theirs"]


# --- the HL7 specification's example resources ----------------------------------------------


def patient(resource_id: str, family: str, *given: str) -> dict[str, Any]:
    name: dict[str, Any] = {"family": family, **({"given": list(given)} if given else {})}
    return {"resourceType": "Patient", "id": resource_id, "name": [name]}


def put_all(client: TestClient, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        assert put(client, body).status_code == 201, body


def test_string_search_ignores_accents_as_well_as_case(client: TestClient) -> None:
    put_all(
        client,
        patient("mueller", "Müller", "Anna"),
        patient("muller", "Muller", "Ben"),
        patient("jose", "García", "José"),
        patient("strasse", "Straße"),
    )
    # FHIR R4 string search: "equals or starts with ... after both have been normalized by
    # case and accent", so the value written and the value searched fold alike.
    assert search_ids(client, "Patient?name=mul") == {"mueller", "muller"}
    assert search_ids(client, "Patient?family=MULLER") == {"mueller", "muller"}
    assert search_ids(client, "Patient?family=m%C3%BCll") == {"mueller", "muller"}
    assert search_ids(client, "Patient?given=jose") == {"jose"}
    assert search_ids(client, "Patient?family=garcia") == {"jose"}
    assert search_ids(client, "Patient?family=STRASSE") == {"strasse"}
    total = client.get("/fhir/Patient?family=MULLER&_summary=count").json()["total"]
    assert total == 2


def test_string_contains_ignores_accents_and_exact_keeps_them(client: TestClient) -> None:
    put_all(
        client,
        patient("mueller", "Müller"),
        patient("muller", "Muller"),
        patient("jose", "García", "José"),
    )
    assert search_ids(client, "Patient?family:contains=ULL") == {"mueller", "muller"}
    assert search_ids(client, "Patient?family:contains=%C3%BCLLER") == {"mueller", "muller"}
    assert search_ids(client, "Patient?name:contains=ose") == {"jose"}
    # :exact compares the text as written: case and accents.
    assert search_ids(client, "Patient?family:exact=M%C3%BCller") == {"mueller"}
    assert search_ids(client, "Patient?family:exact=Muller") == {"muller"}
    assert search_ids(client, "Patient?family:exact=muller") == set()
    assert search_ids(client, "Patient?given:exact=Jose") == set()
    assert search_ids(client, "Patient?given:exact=Jos%C3%A9") == {"jose"}


def load_examples(client: TestClient) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """PUT every example (Procedures first, so partOf can resolve); returns what was stored
    and why each refused file was refused."""
    paths = sorted(HL7_EXAMPLES.glob("*.json"), key=lambda p: (not p.name.startswith("proc"), p))
    stored: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    for path in paths:
        body = json.loads(path.read_text())
        response = put(client, body)
        if response.status_code in (200, 201):
            stored[f"{body['resourceType']}/{body['id']}"] = body
        else:
            refused[path.name] = f"{response.status_code} {response.json()['issue'][0]}"
    return stored, refused


def without_server_meta(body: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in body.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    rest = {k: v for k, v in body.items() if k != "meta"}
    return {**rest, "meta": meta} if meta else rest


def search_ids(client: TestClient, query: str) -> set[str]:
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.json()
    return set(match_ids(response.json()))


def test_the_hl7_examples_are_stored_unchanged_and_found_by_search(client: TestClient) -> None:
    stored, refused = load_examples(client)
    # AuditEvent is read-only here; satO2 is partOf Procedure/ob, which the examples lack.
    assert set(refused) == {"audit-event-example-vread.json", "observation-example-satO2.json"}
    assert "Procedure/ob" in refused["observation-example-satO2.json"]
    assert len(stored) == len(list(HL7_EXAMPLES.glob("*.json"))) - 2

    everything = client.get("/fhir/Observation?_count=1000").json()
    for entry in everything["entry"]:
        key = f"Observation/{entry['resource']['id']}"
        assert without_server_meta(entry["resource"]) == without_server_meta(stored[key]), key

    assert search_ids(client, "Observation?subject=Patient/f001") == {
        "f001",
        "f002",
        "f004",
        "f005",
    }
    assert search_ids(client, "Observation?code=http://loinc.org|8302-2") == {"body-height"}
    assert search_ids(client, "Observation?date=1999-07-02") == {
        "bmi",
        "body-height",
        "heart-rate",
        "mbp",
        "respiratory-rate",
    }
    # f001 has an open-ended effectivePeriod: it is not contained in April 2013.
    assert search_ids(client, "Observation?date=2013-04") == {"f002", "f004", "f005"}
    assert search_ids(
        client, "Observation?value-quantity=185|http://unitsofmeasure.org|[lb_av]"
    ) == {"example"}
    assert search_ids(client, "Procedure?date=sa2013-01-01") == {
        "f004",
        "f201",
        "example",
        "biopsy",
        "education",
        "HCBS",
    }
    assert search_ids(client, "Patient?gender=female") == {"pat4", "mom"}
    assert search_ids(client, "Patient?birthdate=lt1970") == {"f201", "xds"}
    assert search_ids(client, "Practitioner?family=ver") == {"f003"}
    assert search_ids(client, "CarePlan?patient=f001") == {"f001", "f002"}
    included = client.get("/fhir/Procedure?_id=education&_include=Procedure:based-on").json()
    assert [e["fullUrl"] for e in included["entry"]] == [
        f"{BASE}/Procedure/education",
        f"{BASE}/ServiceRequest/education",
    ]
