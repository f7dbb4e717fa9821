"""The dashboard over HTTP: its pages and assets (types, security headers, nothing from another
origin) and its JSON endpoints (worklist, one patient) on both backends, on demo patients."""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.dashboard.assets import STATIC_FILES
from tests.api.conftest import FHIR
from tests.browser.demo_slice import ANCHOR, DemoSlice, demo_slice

# One patient whose hold is open before its window, one whose window has passed.
QUOTA: dict[str | None, int] = {"on-hold": 1, "retry-overdue": 1}
URL = re.compile(r"https?://[^\s\"'<>)\\]+")
# Not fetched from anywhere: the SVG namespace is an identifier the DOM API requires.
ALLOWED_URLS = frozenset({"http://www.w3.org/2000/svg"})
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@functools.cache
def _slice() -> DemoSlice:
    return demo_slice(QUOTA, with_groups=False)


def _post(client: TestClient, bundle: dict[str, Any]) -> None:
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text


@pytest.fixture
def demo(client: TestClient) -> DemoSlice:
    """The clinics and two demo patients, posted as their transaction Bundles."""
    data = _slice()
    for bundle in data.bundles:
        _post(client, bundle)
    return data


@pytest.fixture
def clinics(client: TestClient) -> DemoSlice:
    """Only the demo's clinics (its first Bundle)."""
    data = _slice()
    _post(client, data.bundles[0])
    return data


@pytest.fixture
def patient(client: TestClient) -> str:
    """A bare Patient: enough for the patient page to exist."""
    body = {"resourceType": "Patient", "id": "page-test", "name": [{"family": "Example"}]}
    response = client.put("/fhir/Patient/page-test", json=body, headers=FHIR)
    assert response.status_code in (200, 201), response.text
    return "page-test"


def patient_with(data: DemoSlice, status: str) -> str:
    return next(p for p, s in data.statuses.items() if s == status)


def test_pages_are_html_under_a_policy_that_allows_only_this_origin(
    client: TestClient, patient: str
) -> None:
    for path in (f"/dashboard?as_of={ANCHOR}", f"/dashboard/patients/{patient}?as_of={ANCHOR}"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "http" not in policy and "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in response.text  # no inline script: the policy would refuse it


def test_a_patient_page_for_an_unknown_patient_is_a_404_page(client: TestClient) -> None:
    response = client.get(f"/dashboard/patients/nobody?as_of={ANCHOR}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Not found" in response.text


def test_static_assets_are_served_with_their_content_types(client: TestClient) -> None:
    assert {".js", ".css", ".svg"} <= {path.suffix for path in STATIC_FILES.values()}
    for name, path in STATIC_FILES.items():
        response = client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == MEDIA_TYPES[path.suffix], name
        assert response.content == path.read_bytes()


def test_only_files_of_the_static_folder_are_served(client: TestClient) -> None:
    for name in ("missing.js", "..%2Fdata.py", "..%2F..%2Fapp.py", "routes.py"):
        assert client.get(f"/dashboard/static/{name}").status_code == 404, name


def test_no_page_or_asset_refers_to_another_origin(client: TestClient, patient: str) -> None:
    texts = {
        "cohort page": client.get(f"/dashboard?as_of={ANCHOR}").text,
        "patient page": client.get(f"/dashboard/patients/{patient}?as_of={ANCHOR}").text,
    }
    texts.update({name: client.get(f"/dashboard/static/{name}").text for name in STATIC_FILES})
    for name, text in texts.items():
        external = set(URL.findall(text)) - ALLOWED_URLS
        assert external == set(), name


def test_the_picker_offers_the_clinics_and_protocols_and_keeps_the_choice(
    client: TestClient, clinics: DemoSlice
) -> None:
    clinic = next(iter(clinics.patients.values())).clinic
    page = client.get(f"/dashboard?organization={clinic.id}&start_month=&as_of={ANCHOR}").text
    assert f'<option value="{clinic.id}" selected>{clinic.name}</option>' in page
    assert '<option value="flexion-in-lying">' in page
    assert f'data-query="organization={clinic.id}&amp;as_of={ANCHOR}"' in page  # empties dropped
    assert f'value="{ANCHOR}"' in page


def test_the_worklist_lists_held_patients_with_their_retry_windows_for_the_cohort(
    client: TestClient, demo: DemoSlice
) -> None:
    body = client.get(f"/dashboard/api/worklist?as_of={ANCHOR}").json()
    found = {entry["patient"]: entry for entry in body["patients"]}
    assert {p: e["status"] for p, e in found.items()} == demo.statuses
    assert [e["status"] for e in body["patients"]] == ["retry-overdue", "on-hold"]  # urgent first
    for entry in found.values():
        since = date.fromisoformat(entry["hold_since"])
        assert entry["retry_from"] == (since + timedelta(days=7)).isoformat()
        assert entry["retry_until"] == (since + timedelta(days=14)).isoformat()
        assert entry["name"] and entry["organization_name"]
    overdue = found[patient_with(demo, "retry-overdue")]
    assert date.fromisoformat(overdue["retry_until"]) < ANCHOR
    on_hold = found[patient_with(demo, "on-hold")]
    assert date.fromisoformat(on_hold["retry_from"]) > ANCHOR

    # It follows the cohort filter and the as-of date.
    clinic = demo.patients[on_hold["patient"]].clinic.id
    body = client.get(f"/dashboard/api/worklist?organization={clinic}&as_of={ANCHOR}").json()
    assert on_hold["patient"] in {e["patient"] for e in body["patients"]}
    assert {e["organization"] for e in body["patients"]} == {clinic}
    assert body["cohort"]["organization"] == clinic
    early = client.get("/dashboard/api/worklist?as_of=2025-01-01").json()
    assert early["patients"] == []  # before the data existed nobody was on hold


def test_a_patient_detail_has_each_session_pain_and_hold_window_up_to_as_of(
    client: TestClient, demo: DemoSlice
) -> None:
    patient = patient_with(demo, "retry-overdue")
    body = client.get(f"/dashboard/api/patients/{patient}?as_of={ANCHOR}").json()
    flexion = next(p for p in body["protocols"] if p["protocol"] == "flexion-in-lying")
    assert flexion["stop_rule"] is True
    assert flexion["status"] == "retry-overdue"
    sessions = flexion["sessions"]
    assert sessions and all(s["date"] <= ANCHOR.isoformat() for s in sessions)
    assert [s["start"] for s in sessions] == sorted(s["start"] for s in sessions)
    rated = [s for s in sessions if s["pain"]]
    assert rated and all(len(s["pain"]) == len(s["repetitions"]) for s in rated)
    assert any(s["response"] == "worsening" for s in sessions)
    # This patient's story: "premature retry, then missed the window".
    assert any(s["role"] == "premature-retry" for s in sessions)

    # The open hold is the one the status endpoint reports.
    status = client.get(
        f"/analytics/patients/{patient}/protocols/flexion-in-lying/status?as_of={ANCHOR}"
    ).json()
    open_hold = flexion["holds"][-1]
    assert open_hold["closed_on"] is None
    assert {k: open_hold[k] for k in ("since", "retry_from", "retry_until")} == status["hold"]

    # Only data dated on or before as_of counts: the day before the hold, there was none.
    earlier = date.fromisoformat(open_hold["since"]) - timedelta(days=1)
    then = client.get(f"/dashboard/api/patients/{patient}?as_of={earlier}").json()
    flexion_then = next(p for p in then["protocols"] if p["protocol"] == "flexion-in-lying")
    assert flexion_then["sessions"]
    assert all(s["date"] <= earlier.isoformat() for s in flexion_then["sessions"])
    assert len(flexion_then["sessions"]) < len(sessions)
    assert flexion_then["holds"] == [] and flexion_then["status"] == "active"


def test_dashboard_endpoints_refuse_unknown_patients_and_bad_parameters(
    client: TestClient,
) -> None:
    missing = client.get(f"/dashboard/api/patients/nobody?as_of={ANCHOR}")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    bad_month = client.get(f"/dashboard/api/worklist?start_month=2026-13&as_of={ANCHOR}")
    assert bad_month.status_code == 400
    bad_day = client.get("/dashboard/api/worklist?as_of=yesterday")
    assert bad_day.status_code == 400
