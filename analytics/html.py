"""The cohort report as one self-contained HTML page: inline CSS and SVG, no script, no asset
from anywhere else (clinics may be offline), readable printed or on a tablet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

# Colour-blind-safe (Okabe-Ito), each at least 3:1 against white for lines and markers.
_PALETTE: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_WIDTH, _HEIGHT, _MARGIN = 640, 320, 48


def _percent(rate: Mapping[str, Any]) -> str:
    value = rate.get("rate")
    share = "n/a" if value is None else f"{100 * value:.1f}%"
    return f"{share} ({rate['count']} of {rate['of']})"


def _shown(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(caption: str, rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th scope=row>{escape(str(label))}</th><td>{escape(_shown(value))}</td></tr>"
        for label, value in rows
    )
    return f"<table><caption>{escape(caption)}</caption>{body}</table>"


def _curve_svg(points: Sequence[Mapping[str, Any]]) -> str:
    """Mean pain at each repetition index, one line per week since start."""
    if not points:
        return "<p>No rated repetitions in this cohort.</p>"
    weeks = sorted({p["week"] for p in points})
    max_index = int(max(p["repetition_index"] for p in points))
    plot_w, plot_h = _WIDTH - 2 * _MARGIN, _HEIGHT - 2 * _MARGIN

    def x(index: int) -> float:
        return _MARGIN + (index - 1) * plot_w / max(1, max_index - 1)

    def y(pain: float) -> float:
        return _MARGIN + plot_h - pain * plot_h / 10

    parts = [
        f'<svg role="img" aria-labelledby="curve-title curve-desc" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        '<title id="curve-title">Mean pain at each repetition, by week since start</title>',
        f'<desc id="curve-desc">{len(weeks)} weeks; repetition index on the x axis, '
        "mean pain 0 to 10 on the y axis.</desc>",
    ]
    for pain in range(0, 11, 2):
        parts.append(
            f'<line x1="{_MARGIN}" x2="{_WIDTH - _MARGIN}" y1="{y(pain):.1f}" y2="{y(pain):.1f}" '
            'stroke="#d0d0d0"/>'
            f'<text x="{_MARGIN - 8}" y="{y(pain) + 4:.1f}" text-anchor="end">{pain}</text>'
        )
    for index in range(1, max_index + 1):
        parts.append(
            f'<text x="{x(index):.1f}" y="{_HEIGHT - _MARGIN + 18}" '
            f'text-anchor="middle">{index}</text>'
        )
    parts.append(
        f'<text x="{_WIDTH / 2}" y="{_HEIGHT - 6}" text-anchor="middle">repetition</text>'
        f'<text x="14" y="{_HEIGHT / 2}" transform="rotate(-90 14 {_HEIGHT / 2})" '
        'text-anchor="middle">mean pain</text>'
    )
    for n, week in enumerate(weeks):
        colour = _PALETTE[n % len(_PALETTE)]
        line = sorted((p["repetition_index"], p["mean_pain"]) for p in points if p["week"] == week)
        path = " ".join(f"{x(i):.1f},{y(pain):.1f}" for i, pain in line)
        parts.append(
            f'<g class="week"><title>week {week}</title>'
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
            + "".join(
                f'<circle cx="{x(i):.1f}" cy="{y(pain):.1f}" r="3" fill="{colour}">'
                f"<title>week {week}, repetition {i}: {pain:.2f}</title></circle>"
                for i, pain in line
            )
            + "</g>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{_PALETTE[n % len(_PALETTE)]}"></span>'
        f"week {week}</li>"
        for n, week in enumerate(weeks)
    )
    return "".join(parts) + f'<ul class="legend" aria-label="weeks">{legend}</ul>'


_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a;max-width:60rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;min-width:20rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border:1px solid #c8c8c8;padding:.3rem .6rem;text-align:left}
td{text-align:right}svg text{font-size:12px;fill:#1a1a1a}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
.swatch{display:inline-block;width:1rem;height:.6rem;margin-right:.3rem}
"""


def report_html(summary: Mapping[str, Any]) -> str:
    cohort = summary["cohort"]
    filters = ", ".join(
        f"{key} {value}" for key, value in cohort.items() if key != "patients" and value
    )
    outcome = summary["pain_outcome"]
    dosage = summary["dosage_adherence"]
    holds = summary["hold_to_resume_days"]
    sections = [
        f"<h1>Cohort outcomes as of {escape(summary['as_of'])}</h1>",
        f"<p>{escape(filters or 'All patients')}: {cohort['patients']} patients.</p>",
        "<h2>Pain per repetition, by week since start</h2>",
        _curve_svg(summary["pain_per_repetition"]),
        "<h2>Stop rule</h2>",
        _table("Patients by status", list(summary["patients_by_status"].items())),
        _table(
            "Holds and retries",
            [
                ("retry success", _percent(summary["retry_success"])),
                ("premature retries (holds)", _percent(summary["premature_retry"])),
                ("overdue (open holds)", _percent(summary["retry_overdue"])),
                ("hold episodes resumed", holds["episodes"]),
                ("median days from hold to resumed", holds["median"]),
            ],
        ),
        "<h2>Sessions</h2>",
        _table("Sessions by pain response", list(summary["sessions_by_response"].items())),
        _table(
            "Mean within-session slope by week",
            [
                (f"week {row['week']}", f"{row['mean_slope']:+.2f}")
                for row in summary["slope_by_week"]
            ],
        ),
        "<h2>Adherence, form and progression</h2>",
        _table(
            "Adherence",
            [
                ("sessions within the dose", _percent(dosage["sessions"])),
                ("days within the sessions a day", _percent(dosage["days"])),
                ("followed by extension in lying", _percent(summary["extension_adherence"])),
                ("started before ready", _percent(summary["started_before_ready"])),
                ("sessions with a form fault", _percent(summary["form_faults"]["sessions"])),
                ("progressing sessions", _percent(summary["progression"])),
            ],
        ),
        "<h2>Pain outcome</h2>",
        _table(
            "General pain, first week to latest",
            [
                ("patients", outcome["patients"]),
                ("mean first week", outcome["mean_first_week_pain"]),
                ("mean latest week", outcome["mean_latest_week_pain"]),
                ("mean change", outcome["mean_change"]),
                ("responders (>= 2 points or >= 30%)", _percent(outcome["responders"])),
            ],
        ),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>reptrend cohort report {escape(summary['as_of'])}</title>"
        f"<style>{_STYLE}</style></head><body><main>{''.join(sections)}</main></body></html>"
    )
