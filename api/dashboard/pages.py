"""The dashboard's HTML: small server-rendered shells that the page scripts fill in.

Plain string templates (no template engine is installed): every value that comes from a
request or the database goes through `html.escape`. No inline script or style, so the
Content-Security-Policy can forbid both; parameters reach the scripts as `data-` attributes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from string import Template
from typing import Final
from urllib.parse import urlencode

from api.dashboard.data import Choice, PickerChoices

STATIC: Final = "/dashboard/static"

_LAYOUT: Final = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · reptrend</title>
<link rel="icon" href="$static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="$static/dashboard.css">
$script
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="site-header">
  <p class="brand"><a href="/dashboard">reptrend</a>
  <span class="brand-sub">clinic outcomes · flexion exercise programme</span></p>
</header>
<main id="main" tabindex="-1" $data>
$body
</main>
<footer class="site-footer"><p>Synthetic demo data is marked “(synthetic)”. Pain is the
0–10 numeric rating scale reported at each repetition.</p></footer>
</body>
</html>
""")

_COHORT_BODY: Final = Template("""<h1>Cohort outcomes</h1>
<form class="picker" id="cohort-picker" action="/dashboard" method="get"
      aria-labelledby="picker-title">
  <h2 id="picker-title" class="visually-hidden">Choose a cohort</h2>
  <div class="field">
    <label for="organization">Clinic</label>
    <select id="organization" name="organization">$organizations</select>
  </div>
  <div class="field">
    <label for="group">Group</label>
    <select id="group" name="group">$groups</select>
  </div>
  <div class="field">
    <label for="protocol">Protocol</label>
    <select id="protocol" name="protocol">$protocols</select>
  </div>
  <div class="field">
    <label for="start_month">Start month</label>
    <input id="start_month" name="start_month" type="month" value="$start_month"
           pattern="[0-9]{4}-[0-9]{2}" placeholder="YYYY-MM" aria-describedby="start-month-hint">
    <small id="start-month-hint">Month of the first session (optional)</small>
  </div>
  <div class="field">
    <label for="as_of">As of</label>
    <input id="as_of" name="as_of" type="date" value="$as_of" required
           aria-describedby="as-of-hint">
    <small id="as-of-hint">Only data dated on or before this day counts</small>
  </div>
  <div class="field field-action">
    <button type="submit">Show cohort</button>
  </div>
</form>

<p id="load-status" class="load-status" role="status" aria-live="polite">Loading the cohort
report…</p>

<section class="panel" aria-labelledby="status-title">
  <h2 id="status-title">Patients by stop-rule status</h2>
  <p class="panel-note" id="status-note">Each patient on a protocol with the stop rule
  (stop, wait one to two weeks, try again).</p>
  <ul class="tiles" id="status-tiles" aria-describedby="status-note"></ul>
</section>

<section class="panel" aria-labelledby="rates-title">
  <h2 id="rates-title">Key rates</h2>
  <dl class="rates" id="rates"></dl>
</section>

<div class="chart-row">
  <section class="panel" aria-labelledby="curve-title">
    <h2 id="curve-title">Pain per repetition, by week since start</h2>
    <p class="panel-note">Mean pain at each repetition of a session (flexion exercises), one
    line per week since the patient's first session. Falling lines: pain wears off as the
    session goes on.</p>
    <div class="chart" id="curve-chart"></div>
  </section>
  <section class="panel" aria-labelledby="mix-title">
    <h2 id="mix-title">Pain response mix over time</h2>
    <p class="panel-note">Share of sessions in each pain-response class, by week since
    start; the number above each bar is how many sessions it counts.</p>
    <div class="chart" id="mix-chart"></div>
  </section>
</div>

<section class="panel" aria-labelledby="worklist-title">
  <h2 id="worklist-title">Worklist</h2>
  <p class="panel-note">Patients on hold, due or overdue for their retry, or waiting for
  clinician review, with their hold and retry windows.</p>
  <div id="worklist"></div>
</section>

<p class="downloads"><a id="csv-link" href="#">Download the patient-level table (CSV)</a></p>
""")

_PATIENT_BODY: Final = Template("""<nav class="crumbs" aria-label="Breadcrumb">
  <a href="$back">← Back to the cohort</a>
</nav>
<h1>$name</h1>
<p class="subtitle">Patient <code>$patient</code> · as of <time datetime="$as_of">$as_of</time></p>
<p id="load-status" class="load-status" role="status" aria-live="polite">Loading sessions…</p>
<div id="protocols"></div>
""")

_NOT_FOUND_BODY: Final = Template("""<h1>Not found</h1>
<p>$message</p>
<p><a href="/dashboard">Back to the dashboard</a></p>
""")


def _data_attributes(data: Mapping[str, str]) -> str:
    return " ".join(f'data-{name}="{escape(value)}"' for name, value in data.items())


def _layout(title: str, script: str | None, data: Mapping[str, str], body: str) -> str:
    tag = f'<script type="module" src="{STATIC}/{script}"></script>' if script else ""
    return _LAYOUT.substitute(
        title=escape(title),
        static=STATIC,
        script=tag,
        data=_data_attributes(data),
        body=body,
    )


def _options(choices: Sequence[Choice], selected: str | None, everyone: str) -> str:
    rows = [f'<option value="">{escape(everyone)}</option>']
    for choice in choices:
        mark = " selected" if choice.value == selected else ""
        rows.append(f'<option value="{escape(choice.value)}"{mark}>{escape(choice.label)}</option>')
    return "\n".join(rows)


def cohort_query(cohort: Mapping[str, str | None], as_of: dt.date) -> str:
    """The query string of a cohort (empty fields left out)."""
    pairs = [(k, v) for k, v in cohort.items() if v]
    return urlencode([*pairs, ("as_of", as_of.isoformat())])


def cohort_page(choices: PickerChoices, cohort: Mapping[str, str | None], as_of: dt.date) -> str:
    body = _COHORT_BODY.substitute(
        organizations=_options(choices.organizations, cohort.get("organization"), "All clinics"),
        groups=_options(choices.groups, cohort.get("group"), "Any group"),
        protocols=_options(choices.protocols, cohort.get("protocol"), "All protocols"),
        start_month=escape(cohort.get("start_month") or ""),
        as_of=as_of.isoformat(),
    )
    return _layout(
        "Cohort outcomes",
        "cohort.js",
        {"page": "cohort", "query": cohort_query(cohort, as_of)},
        body,
    )


def patient_page(patient_id: str, name: str | None, as_of: dt.date, back_query: str) -> str:
    body = _PATIENT_BODY.substitute(
        back=escape(f"/dashboard?{back_query}"),
        name=escape(name or f"Patient {patient_id}"),
        patient=escape(patient_id),
        as_of=as_of.isoformat(),
    )
    data = {"page": "patient", "patient": patient_id, "as-of": as_of.isoformat()}
    return _layout(name or f"Patient {patient_id}", "patient.js", data, body)


def not_found_page(message: str) -> str:
    body = _NOT_FOUND_BODY.substitute(message=escape(message))
    return _layout("Not found", None, {"page": "missing"}, body)
