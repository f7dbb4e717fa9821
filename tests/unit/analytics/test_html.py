"""The HTML report (analytics.html): one self-contained page with the curve drawn inline."""

from __future__ import annotations

from datetime import timedelta

from analytics.cohorts import Cohort
from analytics.html import report_html
from analytics.report import cohort_report
from tests.unit.analytics.builders import DAY0, FLEXION, Session, Tenant, at, reps


def _page() -> str:
    tenant = Tenant(
        sessions=[
            Session("a", "p<script>", FLEXION, at(0), reps(4, 3, 2)),
            Session("b", "p<script>", FLEXION, at(8), reps(2, 1, 0)),
        ]
    )
    summary = cohort_report(tenant.facts(), Cohort(), DAY0 + timedelta(days=10)).summary
    return report_html(summary)


def test_the_page_draws_one_line_per_week_in_inline_svg() -> None:
    page = _page()
    assert page.count("<polyline") == 2  # weeks 0 and 1
    assert '<title id="curve-title">' in page and "week 1" in page


def test_the_page_needs_nothing_from_anywhere_else() -> None:
    page = _page()
    assert "<script" not in page and "<link" not in page and 'src="' not in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
