"""A slice of the demo data set for dashboard tests: a few patients of every stop-rule status
(the worklist needs on-hold, retry-due, retry-overdue and clinician-review ones), two on other
protocols, the clinics and the clinic Groups, all built around one fixed anchor day."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from cli.demo_data import (
    DemoPatient,
    demo_bundles,
    demo_patients,
    expected_statuses,
    groups_bundle,
)

ANCHOR: Final = date(2026, 3, 11)

# Patients wanted per flexion-in-lying status (cli.demo_data.expected_statuses), and on the
# protocols without the stop rule (None).
BROWSER_QUOTA: Final[Mapping[str | None, int]] = {
    "on-hold": 3,
    "retry-due": 3,
    "retry-overdue": 3,
    "clinician-review": 2,
    "active": 3,
    "resumed": 2,
    "no-sessions": 2,
    None: 2,
}


@dataclass(frozen=True)
class DemoSlice:
    patients: dict[str, DemoPatient]  # id -> who
    statuses: dict[str, str]  # id -> intended flexion-in-lying status (stop-rule patients only)
    bundles: list[dict[str, Any]]  # transaction Bundles in load order


def owner(bundle: Mapping[str, Any]) -> str | None:
    """`demo-p017` for a Bundle of patient demo-p017's data (its resource ids start with it);
    None for the organizations and Groups bundles."""
    first_id: str = bundle["entry"][0]["resource"]["id"]
    return "-".join(first_id.split("-")[:2]) if first_id.startswith("demo-p") else None


def choose(quota: Mapping[str | None, int]) -> dict[str, DemoPatient]:
    """The first patients (in id order) of each status until each quota is met."""
    expected = expected_statuses(ANCHOR)
    left = dict(quota)
    chosen: dict[str, DemoPatient] = {}
    for patient in demo_patients():
        status = expected.get(patient.id)
        if left.get(status, 0) > 0:
            left[status] -= 1
            chosen[patient.id] = patient
    return chosen


def clinic_groups(chosen: Mapping[str, DemoPatient]) -> dict[str, Any]:
    """The demo's Groups bundle with only the chosen patients as members: building the real
    one means building all 200 patients."""
    return groups_bundle(list(chosen.values()))


def demo_slice(quota: Mapping[str | None, int], *, with_groups: bool = True) -> DemoSlice:
    """The organizations, the chosen patients' Bundles (the demo's own), and the Groups."""
    chosen = choose(quota)
    expected = expected_statuses(ANCHOR)
    last = max(chosen)
    bundles: list[dict[str, Any]] = []
    for bundle in demo_bundles(ANCHOR):
        who = owner(bundle)
        if who is None or who in chosen:
            bundles.append(bundle)
        if who is not None and who >= last:
            break  # the patients after the last chosen one are not built at all
    if with_groups:
        bundles.append(clinic_groups(chosen))
    return DemoSlice(
        patients=chosen,
        statuses={p: expected[p] for p in chosen if p in expected},
        bundles=bundles,
    )
