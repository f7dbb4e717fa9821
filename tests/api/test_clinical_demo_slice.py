"""A slice of the demo data set, posted over HTTP: the status endpoint must give every scenario
patient the flexion-in-lying status the scenario intends (cli.demo_data.expected_statuses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from fastapi.testclient import TestClient

from cli.demo_data import demo_bundles, demo_patients, expected_statuses
from tests.api.conftest import FHIR

ANCHOR = date(2026, 3, 11)


def _slice() -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The first patient of each status (in load order) and the Bundles that carry their data."""
    expected = expected_statuses(ANCHOR)
    chosen: dict[str, str] = {}
    for p in demo_patients():
        status = expected.get(p.id)
        if status is not None and status not in chosen.values():
            chosen[p.id] = status
    last = max(chosen)
    bundles = []
    for bundle in _patient_bundles():
        owner = _owner(bundle)
        if owner in chosen:
            bundles.append(bundle)
        if owner > last:
            break
    return chosen, bundles


def _patient_bundles() -> Iterator[dict[str, Any]]:
    bundles = demo_bundles(ANCHOR)
    next(bundles)  # the organizations: references are not enforced, so they can stay out
    yield from bundles


def _owner(bundle: dict[str, Any]) -> str:
    """demo-p017 for every resource of patient demo-p017 (ids are prefixed with it)."""
    first_id: str = bundle["entry"][0]["resource"]["id"]
    return "-".join(first_id.split("-")[:2])


def test_the_status_of_demo_patients_matches_their_scenarios(client: TestClient) -> None:
    chosen, bundles = _slice()
    assert set(chosen.values()) == set(expected_statuses(ANCHOR).values())  # every status
    for bundle in bundles:
        response = client.post("/fhir", json=bundle, headers=FHIR)
        assert response.status_code == 200, response.text
    found = {
        patient: client.get(
            f"/analytics/patients/{patient}/protocols/flexion-in-lying/status?as_of={ANCHOR}"
        ).json()["status"]
        for patient in chosen
    }
    assert found == chosen
