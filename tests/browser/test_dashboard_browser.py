"""The dashboard in a real browser (headless Chromium) against the real service and a slice of
the demo data: it loads, its charts draw marks, nothing fails in the console or the network,
the worklist leads to patient pages that show sessions and holds, and it works from the
keyboard and on a tablet. Screenshots go to test-artifacts/ (and docs/ for the README)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.browser.conftest import REPO, DemoServer, Tab, save_screenshot
from tests.browser.demo_slice import ANCHOR

pytestmark = pytest.mark.timeout(180)

COHORT = f"/dashboard?as_of={ANCHOR}"
WORKLIST_STATUSES = ("on-hold", "retry-due", "retry-overdue", "clinician-review")
DOCS_SCREENSHOT = REPO / "docs" / "dashboard.png"
DOCS_LIMIT = 300_000  # bytes: the README's screenshot is committed


def assert_nothing_failed(tab: Tab) -> None:
    assert tab.problems.console == [], "console errors"
    assert tab.problems.requests == [], "failed requests"


def test_the_dashboard_shows_the_demo_cohort_with_drawn_charts(
    tab: Tab, demo_server: DemoServer
) -> None:
    tab.open(COHORT)
    page = tab.page
    assert page.get_attribute("main", "data-ready") == "true"

    expected = Counter(demo_server.data.statuses.values())
    for status, count in expected.items():
        tile = page.locator(f'#status-tiles [data-status="{status}"] .tile-count')
        assert tile.inner_text() == str(count), status

    weeks = page.locator("#curve-chart svg g[data-series]")
    assert weeks.count() >= 2
    lines = page.locator("#curve-chart svg g[data-series] > path[fill='none']")
    assert lines.count() == weeks.count()
    assert all(
        "L" in (d or "") for d in lines.evaluate_all("ps => ps.map(p => p.getAttribute('d'))")
    )
    assert page.locator("#curve-chart table tbody tr").count() == weeks.count()

    segments = page.locator("#mix-chart svg rect[data-category]")
    assert segments.count() >= weeks.count()
    worsening = page.locator('#mix-chart svg rect[data-category="worsening"]')
    assert worsening.count() >= 1  # the slice has patients whose sessions worsened

    # Every chart is an image with a name, and the worklist lists who needs attention.
    named = page.locator("svg[role='img']").evaluate_all(
        "svgs => svgs.map(s => document.getElementById("
        "s.getAttribute('aria-labelledby').split(' ')[0]).textContent)"
    )
    assert named and all(name.strip() for name in named)
    rows = page.locator("table.worklist tbody tr")
    assert rows.count() == sum(expected[s] for s in WORKLIST_STATUSES)

    save_screenshot(page, "dashboard.png")
    page.set_viewport_size({"width": 1280, "height": 1480})
    page.evaluate("window.scrollTo(0, 0)")
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_SCREENSHOT))
    assert DOCS_SCREENSHOT.stat().st_size < DOCS_LIMIT
    assert_nothing_failed(tab)


def test_worklist_links_open_the_patient_page_with_sessions_and_holds(
    tab: Tab, demo_server: DemoServer
) -> None:
    tab.open(COHORT)
    page = tab.page
    listed = {
        status: page.locator(f'table.worklist[data-status="{status}"] a.patient-link').evaluate_all(
            "links => links.map(a => a.dataset.patient)"
        )
        for status in WORKLIST_STATUSES
    }
    intended = demo_server.data.statuses
    for status, patients in listed.items():
        assert sorted(patients) == sorted(p for p, s in intended.items() if s == status)

    overdue = page.locator('table.worklist[data-status="retry-overdue"] a.patient-link').first
    patient_id = overdue.get_attribute("data-patient")
    overdue.click()
    page.wait_for_url(f"**/dashboard/patients/{patient_id}?**")
    page.wait_for_selector("main[data-ready]", timeout=30_000)
    assert page.get_attribute("main", "data-ready") == "true"

    flexion = page.locator('section[data-protocol="flexion-in-lying"]')
    assert flexion.locator("h2 .badge").get_attribute("data-status") == "retry-overdue"
    assert "Retry window" in flexion.locator(".status-card").inner_text()
    panels = flexion.locator(".multiples li")
    assert panels.count() > 0
    assert flexion.locator(".multiples svg path").count() > 0
    timeline = flexion.locator(".timeline-chart svg")
    assert timeline.locator("[data-response]").count() > 0  # a mark per session
    bands = timeline.locator("rect[data-band]").evaluate_all("rs => rs.map(r => r.dataset.band)")
    assert {"hold", "window", "overdue"} <= set(bands)
    save_screenshot(page, "patient.png")

    page.get_by_role("link", name="Back to the cohort").click()
    page.wait_for_selector("main[data-ready]", timeout=30_000)
    assert page.get_attribute("main", "data-page") == "cohort"
    assert_nothing_failed(tab)


def test_keyboard_tab_order_reaches_every_control_of_the_cohort_picker(tab: Tab) -> None:
    tab.open(COHORT)
    page = tab.page
    focused: list[str] = []
    for _ in range(16):
        page.keyboard.press("Tab")
        name = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.id || e.getAttribute('type') || e.textContent.trim(); }"
        )
        if not focused or focused[-1] != name:  # a date input takes a Tab per segment
            focused.append(name)
    assert focused[0] == "Skip to main content"
    picker = ["organization", "group", "protocol", "start_month", "as_of", "submit"]
    positions = [focused.index(control) for control in picker]
    assert positions == sorted(positions), focused

    # Focus is visible, and every picker control has a label.
    page.focus("#organization")
    outline = page.eval_on_selector("#organization", "e => getComputedStyle(e).outlineStyle")
    assert outline not in ("", "none")
    unlabelled = page.eval_on_selector_all(
        "#cohort-picker select, #cohort-picker input",
        "cs => cs.filter(c => !c.labels.length).length",
    )
    assert unlabelled == 0

    # The week legend works from the keyboard: Space hides a week's line.
    first_week = page.locator("#curve-chart .legend button").first
    first_week.focus()
    page.keyboard.press("Space")
    assert first_week.get_attribute("aria-pressed") == "false"
    week = first_week.get_attribute("data-week")
    hidden = page.get_attribute(f'#curve-chart g[data-series="{week}"]', "visibility")
    assert hidden == "hidden"
    assert_nothing_failed(tab)


def test_choosing_a_clinic_in_the_picker_narrows_the_cohort(
    tab: Tab, demo_server: DemoServer
) -> None:
    tab.open(COHORT)
    page = tab.page
    clinic = "demo-clinic-1"
    page.select_option("#organization", clinic)
    page.focus("#cohort-picker button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/dashboard?organization={clinic}*")
    page.wait_for_selector("main[data-ready]", timeout=30_000)

    in_clinic = Counter(
        status
        for patient, status in demo_server.data.statuses.items()
        if demo_server.data.patients[patient].clinic.id == clinic
    )
    shown = {
        status: int(page.inner_text(f'#status-tiles [data-status="{status}"] .tile-count'))
        for status in in_clinic
    }
    assert shown == dict(in_clinic)
    assert page.input_value("#organization") == clinic
    assert_nothing_failed(tab)


def test_the_dashboard_fits_a_tablet_screen(tab: Tab) -> None:
    tab.page.set_viewport_size({"width": 768, "height": 1024})
    tab.open(COHORT)
    page = tab.page
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    box = page.locator("#curve-chart svg[role=img]").bounding_box()
    assert box is not None and box["width"] <= 768
    path = save_screenshot(page, "dashboard-tablet.png")
    assert Path(path).exists()
    assert_nothing_failed(tab)
