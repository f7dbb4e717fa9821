"""Transaction and batch Bundles: FHIR R4's processing rules (http.html#trules), over HTTP."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import FHIR
from tests.session_examples import example

SESSION = example("session-transaction.json")
PROCEDURE: dict[str, Any] = SESSION["entry"][0]["resource"]
REPETITION: dict[str, Any] = SESSION["entry"][1]["resource"]


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def patient(system: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], **extra}


def conditional_create(full_url: str, criteria: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": criteria},
        "resource": resource,
    }


def repetition(procedure_reference: str, subject: str = "Patient/rb") -> dict[str, Any]:
    return {
        **copy.deepcopy(REPETITION),
        "subject": {"reference": subject},
        "partOf": [{"reference": procedure_reference}],
    }


def total(client: TestClient, query: str) -> int:
    return int(client.get(f"/fhir/{query}&_summary=count").json()["total"])


def put(client: TestClient, resource: dict[str, Any]) -> None:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    assert client.put(url, json=resource, headers=FHIR).status_code in (200, 201)


def setup_session_procedure(client: TestClient, procedure_id: str) -> None:
    put(client, {"resourceType": "Patient", "id": "rb"})
    procedure = {k: v for k, v in copy.deepcopy(PROCEDURE).items() if k != "basedOn"}
    put(client, {**procedure, "id": procedure_id, "subject": {"reference": "Patient/rb"}})


# --- conditional creates in one transaction ----------------------------------------------


def test_two_identical_conditional_creates_in_one_transaction_make_one_resource(
    client: TestClient,
) -> None:
    criteria = "identifier=urn:dupx|T1"
    body = patient("urn:dupx", "T1")
    first, second = (
        "urn:uuid:dddddddd-0000-0000-0000-000000000001",
        ("urn:uuid:dddddddd-0000-0000-0000-000000000002"),
    )
    observations = [
        {
            "fullUrl": f"urn:uuid:dddddddd-0000-0000-0000-00000000001{i}",
            "request": {"method": "POST", "url": "Observation"},
            "resource": example(
                "daily-pain-observation.json",
                subject={"reference": subject},
                effectiveDateTime=f"2026-03-0{i + 1}T08:00:00+01:00",
                valueInteger=2,
            ),
        }
        for i, subject in enumerate((first, second))
    ]
    response = client.post(
        "/fhir",
        json=transaction(
            conditional_create(first, criteria, body),
            conditional_create(second, criteria, body),
            *observations,
        ),
        headers=FHIR,
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries[:2]] == ["201 Created", "200 OK"]
    assert entries[0]["fullUrl"] == entries[1]["fullUrl"]
    assert entries[1]["response"]["location"] == entries[0]["response"]["location"]
    assert entries[1]["response"]["etag"] == entries[0]["response"]["etag"]
    assert total(client, f"Patient?{criteria}") == 1
    for entry in entries[2:]:
        stored = client.get("/fhir/" + entry["fullUrl"]).json()
        assert stored["subject"] == {"reference": entries[0]["fullUrl"]}
    # The claim names the one resource: every later retry finds it.
    retry = client.post("/fhir/Patient", json=body, headers={**FHIR, "If-None-Exist": criteria})
    assert retry.status_code == 200
    assert f"Patient/{retry.json()['id']}" == entries[0]["fullUrl"]


def test_criteria_written_differently_are_the_same_condition_in_one_transaction(
    client: TestClient,
) -> None:
    body = patient("urn:dupy", "T2", gender="male")
    response = client.post(
        "/fhir",
        json=transaction(
            conditional_create("urn:uuid:1", "identifier=urn:dupy|T2&gender=male", body),
            conditional_create("urn:uuid:2", "gender=male&identifier=urn%3Adupy%7CT2", body),
        ),
        headers=FHIR,
    )
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "200 OK"]
    assert total(client, "Patient?identifier=urn:dupy|T2") == 1


def test_a_condition_that_matches_what_an_earlier_entry_creates_never_duplicates_it(
    client: TestClient,
) -> None:
    """Different criteria, both matching the first entry's new resource: processed in order,
    the second would find it; the server never stores two and never leaves a claim behind."""
    body = patient("urn:dupz", "T3", gender="male")
    response = client.post(
        "/fhir",
        json=transaction(
            conditional_create("urn:uuid:1", "identifier=urn:dupz|T3", body),
            conditional_create("urn:uuid:2", "identifier=urn:dupz|T3&gender=male", body),
        ),
        headers=FHIR,
    )
    assert total(client, "Patient?identifier=urn:dupz|T3") == (
        1 if response.status_code == 200 else 0
    )
    for criteria in ("identifier=urn:dupz|T3", "identifier=urn:dupz|T3&gender=male"):
        retry = client.post("/fhir/Patient", json=body, headers={**FHIR, "If-None-Exist": criteria})
        assert retry.status_code in (200, 201), retry.text
    assert total(client, "Patient?identifier=urn:dupz|T3") == 1


def test_a_conditional_update_of_what_a_conditional_create_makes_fails_the_transaction(
    client: TestClient,
) -> None:
    criteria = "identifier=urn:dupw|T4"
    body = patient("urn:dupw", "T4")
    response = client.post(
        "/fhir",
        json=transaction(
            conditional_create("urn:uuid:1", criteria, body),
            {"request": {"method": "PUT", "url": f"Patient?{criteria}"}, "resource": body},
        ),
        headers=FHIR,
    )
    assert response.status_code in (400, 409, 412), response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert total(client, f"Patient?{criteria}") == 0
    headers = {**FHIR, "If-None-Exist": criteria}
    created = client.post("/fhir/Patient", json=body, headers=headers)
    again = client.post("/fhir/Patient", json=body, headers=headers)
    assert (created.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == created.json()["id"]


# --- read-only types ------------------------------------------------------------------------

AUDIT_EVENT = {
    "resourceType": "AuditEvent",
    "id": "ae1",
    "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
    "recorded": "2026-03-01T08:00:00Z",
    "agent": [{"requestor": True, "who": {"display": "someone"}}],
    "source": {"observer": {"display": "reptrend"}},
}

AUDIT_WRITES: list[dict[str, Any]] = [
    {"request": {"method": "POST", "url": "AuditEvent"}, "resource": AUDIT_EVENT},
    {"request": {"method": "PUT", "url": "AuditEvent/ae1"}, "resource": AUDIT_EVENT},
    {"request": {"method": "DELETE", "url": "AuditEvent/ae1"}},
]


@pytest.mark.parametrize("entry", AUDIT_WRITES, ids=lambda e: e["request"]["method"])
def test_a_transaction_writing_a_read_only_type_fails_with_405(
    client: TestClient, entry: dict[str, Any]
) -> None:
    ok = {
        "request": {"method": "PUT", "url": "Patient/ro"},
        "resource": {"resourceType": "Patient", "id": "ro"},
    }
    response = client.post("/fhir", json=transaction(ok, entry), headers=FHIR)
    assert response.status_code == 405, response.text
    assert response.json()["issue"][0]["code"] == "not-supported"
    assert client.get("/fhir/Patient/ro").status_code == 404
    assert total(client, "AuditEvent?_id=ae1") == 0


def test_a_batch_refuses_each_write_of_a_read_only_type_with_405(client: TestClient) -> None:
    ok = {
        "request": {"method": "PUT", "url": "Patient/ro"},
        "resource": {"resourceType": "Patient", "id": "ro"},
    }
    response = client.post("/fhir", json=transaction(ok, *AUDIT_WRITES, kind="batch"), headers=FHIR)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "405", "405", "405"]
    assert entries[1]["response"]["outcome"]["issue"][0]["code"] == "not-supported"
    assert client.get("/fhir/Patient/ro").status_code == 200
    assert total(client, "AuditEvent?_id=ae1") == 0


# --- processing order -----------------------------------------------------------------------


@pytest.mark.parametrize("delete_first", [True, False], ids=["delete-listed-first", "post-first"])
def test_a_conditional_create_sees_a_delete_in_the_same_transaction(
    client: TestClient, delete_first: bool
) -> None:
    put(client, {**patient("urn:o5", "1"), "id": "b1"})
    delete = {"request": {"method": "DELETE", "url": "Patient/b1"}}
    create = conditional_create("urn:uuid:1", "identifier=urn:o5|1", patient("urn:o5", "1"))
    entries = (delete, create) if delete_first else (create, delete)
    response = client.post("/fhir", json=transaction(*entries), headers=FHIR)
    assert response.status_code == 200, response.text
    by_method = {
        e["request"]["method"]: r for e, r in zip(entries, response.json()["entry"], strict=True)
    }
    assert by_method["DELETE"]["response"]["status"] == "204 No Content"
    assert by_method["POST"]["response"]["status"] == "201 Created"
    assert by_method["POST"]["fullUrl"] != "Patient/b1"
    assert client.get("/fhir/Patient/b1").status_code == 410
    assert total(client, "Patient?identifier=urn:o5|1") == 1


def test_an_observation_part_of_a_procedure_deleted_in_the_same_transaction_is_rejected(
    client: TestClient,
) -> None:
    setup_session_procedure(client, "dp2")
    missing = client.post(
        "/fhir",
        json=transaction(
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": repetition("Procedure/nope"),
            }
        ),
        headers=FHIR,
    )
    assert missing.status_code == 400
    response = client.post(
        "/fhir",
        json=transaction(
            {"request": {"method": "DELETE", "url": "Procedure/dp2"}},
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": repetition("Procedure/dp2"),
            },
        ),
        headers=FHIR,
    )
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    # The same error as a missing Procedure (the entry named, in either case).
    expected = missing.json()["issue"][0]["diagnostics"].replace("nope", "dp2")
    assert issue["diagnostics"].partition(": ")[2] == expected.partition(": ")[2]
    assert client.get("/fhir/Procedure/dp2").status_code == 200, "nothing was deleted"
    assert total(client, "Observation?part-of=Procedure/dp2") == 0


def test_a_resource_deleted_and_written_in_one_transaction_fails_it(client: TestClient) -> None:
    put(client, {"resourceType": "Patient", "id": "twice"})
    response = client.post(
        "/fhir",
        json=transaction(
            {"request": {"method": "DELETE", "url": "Patient/twice"}},
            {
                "request": {"method": "PUT", "url": "Patient/twice"},
                "resource": {"resourceType": "Patient", "id": "twice", "gender": "male"},
            },
        ),
        headers=FHIR,
    )
    assert response.status_code == 400, response.text
    stored = client.get("/fhir/Patient/twice").json()
    assert stored["meta"]["versionId"] == "1"


# --- errors name the entry ------------------------------------------------------------------


def test_a_missing_part_of_names_the_entry(client: TestClient) -> None:
    put(client, {"resourceType": "Patient", "id": "rb"})
    response = client.post(
        "/fhir",
        json=transaction(
            {
                "request": {"method": "PUT", "url": "Patient/rb"},
                "resource": {"resourceType": "Patient", "id": "rb"},
            },
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": repetition("Procedure/nope"),
            },
        ),
        headers=FHIR,
    )
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.partOf"]
    assert issue["diagnostics"].startswith("Bundle.entry[1]: ")


def test_a_stale_if_match_names_the_entry(client: TestClient) -> None:
    put(client, {"resourceType": "Patient", "id": "im"})
    put(client, {"resourceType": "Patient", "id": "im", "gender": "male"})
    response = client.post(
        "/fhir",
        json=transaction(
            {
                "request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient"},
            },
            {
                "request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient"},
            },
            {
                "request": {"method": "PUT", "url": "Patient/im", "ifMatch": 'W/"1"'},
                "resource": {"resourceType": "Patient", "id": "im"},
            },
        ),
        headers=FHIR,
    )
    assert response.status_code == 412, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[2].request.ifMatch"]
    assert issue["diagnostics"].startswith("Bundle.entry[2]: ")


# --- searches in a batch or a transaction ----------------------------------------------------


def _search(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def test_a_search_in_a_batch_answers_with_its_first_page_as_a_searchset(
    client: TestClient,
) -> None:
    for value in ("s1", "s2", "s3"):
        put(client, {"resourceType": "Patient", "id": value, "identifier": [{"value": value}]})
    response = client.post(
        "/fhir",
        json=transaction(
            _search("Patient?identifier=s2"),
            _search("Patient?_count=2&_total=accurate"),
            _search("Patient?colour=blue"),
            kind="batch",
        ),
        headers=FHIR,
    )
    assert response.status_code == 200, response.text
    one, paged, bad = response.json()["entry"]
    assert one["response"]["status"] == "200 OK"
    assert one["resource"]["type"] == "searchset"
    assert [e["fullUrl"] for e in one["resource"]["entry"]] == ["Patient/s2"]
    assert paged["resource"]["total"] == 3 and len(paged["resource"]["entry"]) == 2
    (next_link,) = paged["resource"]["link"]
    assert next_link["relation"] == "next" and next_link["url"].startswith("Patient?")
    rest = client.get(f"/fhir/{next_link['url']}").json()
    assert len(rest["entry"]) == 1  # the link pages on through the REST API
    assert bad["response"]["status"].startswith("400")
    assert bad["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[2].request.url"]


def test_a_search_in_a_transaction_runs_after_its_writes(client: TestClient) -> None:
    response = client.post(
        "/fhir",
        json=transaction(
            _search("Patient?identifier=urn:t|9"),
            conditional_create("urn:uuid:p9", "identifier=urn:t|9", patient("urn:t", "9")),
        ),
        headers=FHIR,
    )
    assert response.status_code == 200, response.text
    found, created = response.json()["entry"]
    assert created["response"]["status"].startswith("201")
    assert [e["fullUrl"] for e in found["resource"]["entry"]] == [created["fullUrl"]]


# --- links to entries' fullUrls (http.html#trules) ------------------------------------------

CLINIC = "urn:uuid:0c11a1c0-0000-4000-8000-00000000000a"
UUID_EXTENSION = "https://reptrend.dev/fhir/ext/visit"
NARRATIVE = (
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Seen at <a href="{link}">clinic</a> '
    "<img src='{link}' alt=\"logo\"/>; booked as {text}</p></div>"
)


def linking_procedure(url: str) -> dict[str, Any]:
    """A Procedure that names an entry's fullUrl in every kind of element R4 speaks of, and in
    strings that are not links to it."""
    return {
        "resourceType": "Procedure",
        "text": {"status": "generated", "div": NARRATIVE.format(link=url, text=url)},
        "extension": [
            {"url": "https://reptrend.dev/fhir/ext/site", "valueUri": url},
            *([{"url": UUID_EXTENSION, "valueUuid": url}] if url.startswith("urn:uuid:") else []),
        ],
        "identifier": [{"system": "https://reptrend.dev/fhir/booking", "value": url}],
        "instantiatesCanonical": [url],
        "instantiatesUri": ["https://example.org/protocol", url],
        "status": "completed",
        "subject": {"reference": "Patient/ul"},
        "performer": [{"actor": {"reference": url, "display": url}}],
        "note": [{"text": url}],
    }


CLINIC_ENTRIES: dict[str, dict[str, Any]] = {
    # A create: the server assigns the id.
    "post-urn": {
        "fullUrl": CLINIC,
        "request": {"method": "POST", "url": "Organization"},
        "resource": {"resourceType": "Organization", "name": "Back clinic"},
    },
    # An update whose fullUrl is the client's RESTful URL for it.
    "put-url": {
        "fullUrl": "https://ehr.example/fhir/Organization/ul-clinic",
        "request": {"method": "PUT", "url": "Organization/ul-clinic"},
        "resource": {"resourceType": "Organization", "id": "ul-clinic", "name": "Back clinic"},
    },
}


def clinic_and_procedure(kind: str, clinic: str = "post-urn") -> dict[str, Any]:
    entry = CLINIC_ENTRIES[clinic]
    return transaction(
        entry,
        {
            "fullUrl": "urn:uuid:0c11a1c0-0000-4000-8000-00000000000b",
            "request": {"method": "POST", "url": "Procedure"},
            "resource": linking_procedure(entry["fullUrl"]),
        },
        kind=kind,
    )


def stored(client: TestClient, response_entry: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/fhir/" + response_entry["fullUrl"]).json()
    return {k: v for k, v in body.items() if k not in ("id", "meta")}


@pytest.mark.parametrize("clinic", sorted(CLINIC_ENTRIES))
def test_a_transaction_points_uri_elements_and_narrative_links_at_the_new_id(
    client: TestClient, clinic: str
) -> None:
    """R4: the server SHALL replace every matching link: references, elements of type uri and
    url, <a href> and <img src> in the narrative. Canonicals are not replaced; R4 also lists
    oid and uuid, but `Organization/<id>` is neither (the resource would no longer validate),
    so they keep the urn; strings that are not links (an Identifier.value, a display, a note,
    the narrative's text) are data, kept as sent."""
    put(client, {"resourceType": "Patient", "id": "ul"})
    sent = CLINIC_ENTRIES[clinic]["fullUrl"]
    response = client.post("/fhir", json=clinic_and_procedure("transaction", clinic), headers=FHIR)
    assert response.status_code == 200, response.text
    clinic_entry, procedure_entry = response.json()["entry"]
    new = clinic_entry["fullUrl"]
    assert new.startswith("Organization/")
    expected = {
        **linking_procedure(sent),
        "text": {"status": "generated", "div": NARRATIVE.format(link=new, text=sent)},
        "extension": [{"url": "https://reptrend.dev/fhir/ext/site", "valueUri": new}],
        "instantiatesUri": ["https://example.org/protocol", new],
        "performer": [{"actor": {"reference": new, "display": sent}}],
    }
    if sent.startswith("urn:uuid:"):
        # A uuid element cannot hold a reference (the resource would not validate).
        expected["extension"].append({"url": UUID_EXTENSION, "valueUuid": sent})
    assert stored(client, procedure_entry) == expected


def test_a_batch_leaves_links_to_other_entries_as_sent(client: TestClient) -> None:
    """R4: in a batch, references to resources the batch creates are non-conformant; the
    server resolves no fullUrls, so a urn stays what the client wrote."""
    put(client, {"resourceType": "Patient", "id": "ul"})
    bundle = clinic_and_procedure("batch")
    procedure = bundle["entry"][1]["resource"]
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    assert stored(client, response.json()["entry"][1]) == procedure
