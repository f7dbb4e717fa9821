"""The hot routes (`api.fhir.hot_routes`) answer exactly as the FastAPI routes they stand in
front of: the same requests, sent to an app with them and to one without, get the same
status, headers and body (server-minted ids and timestamps aside)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.fhir.hot_routes import HOT_ROUTES
from api.settings import Settings
from tests.session_examples import example

FHIR = {"content-type": "application/fhir+json"}
FORM = "application/x-www-form-urlencoded"
PAIN = example("daily-pain-observation.json", subject={"reference": "Patient/hot"}, valueInteger=3)
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INSTANT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|\+00:00)")
_HTTP_DATE_HEADERS = {"last-modified", "date", "x-request-id", "content-length"}


@pytest.fixture
def clients(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    hot = create_app(settings)
    plain = create_app(settings)
    plain.router.routes[:] = [r for r in plain.router.routes if r not in HOT_ROUTES]
    assert len(plain.router.routes) == len(hot.router.routes) - len(HOT_ROUTES)
    with TestClient(hot) as hot_client, TestClient(plain) as plain_client:
        hot_client.put("/fhir/Patient/hot", json={"resourceType": "Patient", "id": "hot"})
        hot_client.put("/fhir/Patient/gone", json={"resourceType": "Patient", "id": "gone"})
        hot_client.delete("/fhir/Patient/gone")
        yield hot_client, plain_client


def _normalised(response: Any, token: str) -> tuple[int, dict[str, str], Any]:
    def scrub(value: bytes) -> bytes:
        value = value.replace(token.encode(), b"<app>")
        return _INSTANT.sub(b"<instant>", _UUID.sub(b"<id>", value))

    headers = {
        k: scrub(v.encode()).decode()
        for k, v in response.headers.items()
        if k not in _HTTP_DATE_HEADERS
    }
    body = scrub(response.content)
    return response.status_code, headers, orjson.loads(body) if body else None


REQUESTS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    # creates
    ("POST", "/fhir/Observation", FHIR, orjson.dumps(PAIN)),
    ("POST", "/fhir/Observation?_pretty=true", FHIR, orjson.dumps(PAIN)),
    ("POST", "/fhir/Observation", {**FHIR, "prefer": "return=minimal"}, orjson.dumps(PAIN)),
    (
        "POST",
        "/fhir/Observation",
        {**FHIR, "prefer": "return=OperationOutcome"},
        orjson.dumps(PAIN),
    ),
    ("POST", "/fhir/Observation", {"content-type": "application/json"}, orjson.dumps(PAIN)),
    ("POST", "/fhir/Observation", {"content-type": "application/xml"}, b"<Observation/>"),
    ("POST", "/fhir/Observation", {**FHIR, "accept": "application/fhir+xml"}, orjson.dumps(PAIN)),
    ("POST", "/fhir/Observation?_format=xml", FHIR, orjson.dumps(PAIN)),
    ("POST", "/fhir/Observation", FHIR, b'{"resourceType": "Observation",'),
    ("POST", "/fhir/Observation", FHIR, b"[1, 2]"),
    ("POST", "/fhir/Observation", FHIR, orjson.dumps({**PAIN, "valueInteger": 11})),
    ("POST", "/fhir/Observation", FHIR, orjson.dumps({**PAIN, "colour": "blue"})),
    ("POST", "/fhir/Observation", FHIR, orjson.dumps({**PAIN, "resourceType": "Patient"})),
    ("POST", "/fhir/Unicorn", FHIR, orjson.dumps({"resourceType": "Unicorn"})),
    ("POST", "/fhir/AuditEvent", FHIR, orjson.dumps({"resourceType": "AuditEvent"})),
    (
        "POST",
        "/fhir/Patient",
        {**FHIR, "if-none-exist": "identifier=urn:mrn|{app}"},
        orjson.dumps(
            {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "{app}"}]}
        ),
    ),
    ("POST", "/fhir/Patient", {**FHIR, "if-none-exist": "colour=blue"}, b'{"resourceType":"X"}'),
    # reads and vreads
    ("GET", "/fhir/Patient/hot", {}, None),
    ("GET", "/fhir/Patient/hot?_pretty=true", {}, None),
    ("GET", "/fhir/Patient/hot", {"accept": "application/fhir+xml"}, None),
    ("GET", "/fhir/Patient/hot?_format=json", {}, None),
    ("GET", "/fhir/Patient/nobody", {}, None),
    ("GET", "/fhir/Patient/gone", {}, None),
    ("GET", "/fhir/Unicorn/hot", {}, None),
    ("GET", "/fhir/Patient/hot/_history/1", {}, None),
    ("GET", "/fhir/Patient/hot/_history/7", {}, None),
    ("GET", "/fhir/Patient/gone/_history/2", {}, None),
    ("GET", "/fhir/Patient/hot/_history/one", {}, None),
    # what the hot routes leave alone, for completeness
    ("GET", "/fhir/Patient?_id=hot", {}, None),
    ("POST", "/fhir/Patient/_search", {"content-type": FORM}, b"_id=hot"),
]


@pytest.mark.parametrize(("method", "url", "headers", "body"), REQUESTS)
def test_a_hot_route_answers_as_the_fastapi_route_does(
    clients: tuple[TestClient, TestClient],
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    hot, plain = clients

    def send(client: TestClient, token: str) -> tuple[int, dict[str, str], Any]:
        # Both apps share one database: what one creates conditionally, the other must not
        # find, so each app's identifier carries its own token.
        named = {k: v.replace("{app}", token) for k, v in headers.items()}
        content = None if body is None else body.replace(b"{app}", token.encode())
        return _normalised(client.request(method, url, headers=named, content=content), token)

    # The conditional create runs twice on each app: 201, then 200 with the same resource.
    for _ in range(2 if "if-none-exist" in headers else 1):
        assert send(hot, "hot-app") == send(plain, "plain-app")
