// The cohort page: status tiles, key rates, the pain-per-repetition chart, the response mix
// and the worklist, from /analytics/cohorts/report and /dashboard/api/worklist.

import {
  dataTable, formatNumber, html, legendGlyph, lineChart, markerKind, parseDay, shortDay, stackedBars,
} from "./charts.js";
import {
  LoadError, RESPONSES, STATUSES, WEEK_COLOURS, dayDiff, fetchJson, percent, plural,
  setStatus, statusLabel,
} from "./common.js";

const WORKLIST = ["clinician-review", "retry-overdue", "retry-due", "on-hold"];
const MIN_SESSIONS = 3;
const MIN_SHARE = 0.1;

function cleanQuery(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (String(value).trim()) params.append(key, String(value).trim());
  }
  return params;
}

function tiles(report) {
  const list = document.getElementById("status-tiles");
  list.replaceChildren();
  const counts = report.patients_by_status;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  for (const status of STATUSES) {
    const n = counts[status.key] ?? 0;
    const item = html("li", { className: `tile status-${status.key}`, "data-status": status.key }, null, list);
    const body = WORKLIST.includes(status.key) && n
      ? html("a", { href: `#worklist-${status.key}` }, null, item)
      : html("span", { className: "tile-body" }, null, item);
    html("span", { className: "tile-count" }, formatNumber(n, 0), body);
    html("span", { className: "tile-label" }, status.label, body);
    html("span", { className: "tile-share" }, total ? `${percent(n / total)} of ${plural(total, "patient")}` : "no patients", body);
  }
}

function rateItem(list, label, value, detail) {
  const item = html("div", { className: "rate" }, null, list);
  html("dt", {}, label, item);
  const dd = html("dd", {}, value, item);
  if (detail) html("small", {}, detail, dd);
}

function shareDetail(rate, noun) {
  return rate.of ? `${formatNumber(rate.count, 0)} of ${formatNumber(rate.of, 0)} ${noun}` : `no ${noun}`;
}

function rates(report) {
  const list = document.getElementById("rates");
  list.replaceChildren();
  const resume = report.hold_to_resume_days;
  rateItem(list, "Retry tolerated", percent(report.retry_success.rate), shareDetail(report.retry_success, "retries"));
  rateItem(list, "Holds overdue for retry", percent(report.retry_overdue.rate), shareDetail(report.retry_overdue, "open holds"));
  rateItem(list, "Holds with a premature retry", percent(report.premature_retry.rate), shareDetail(report.premature_retry, "holds"));
  rateItem(list, "Days from hold to resumed (median)", resume.median === null ? "–" : formatNumber(resume.median, 1),
    resume.episodes ? `${plural(resume.episodes, "episode")}` : "no hold resumed yet");
  rateItem(list, "Sessions at the prescribed dose", percent(report.dosage_adherence.sessions.rate), shareDetail(report.dosage_adherence.sessions, "sessions"));
  rateItem(list, "Flexion followed by the Cobra", percent(report.extension_adherence.rate), shareDetail(report.extension_adherence, "sessions"));
  rateItem(list, "Sessions with a form fault", percent(report.form_faults.sessions.rate), shareDetail(report.form_faults.sessions, "sessions"));
  const outcome = report.pain_outcome;
  rateItem(list, "Pain responders (≥ 2 points or ≥ 30%)", percent(outcome.responders.rate),
    outcome.mean_change === null ? "no pain diary yet" : `${shareDetail(outcome.responders, "patients")}; mean change ${formatNumber(outcome.mean_change, 1)}`);
}

function emptyChart(container, text) {
  container.replaceChildren(html("p", { className: "empty" }, text));
}

function curveChart(report) {
  const container = document.getElementById("curve-chart");
  const rows = report.pain_per_repetition;
  if (!rows.length) {
    emptyChart(container, "No rated flexion sessions in this cohort yet.");
    return;
  }
  const weeks = [...new Set(rows.map((r) => r.week))].sort((a, b) => a - b);
  const lastWeek = weeks[weeks.length - 1];
  // A repetition index few sessions reach (beyond the prescribed dose) is noise on a mean:
  // the lines leave it out, the table keeps it.
  const plotted = (r) => {
    const most = Math.max(...rows.filter((x) => x.week === r.week).map((x) => x.sessions));
    return r.sessions >= Math.max(MIN_SESSIONS, most * MIN_SHARE);
  };
  const series = weeks.map((week, i) => ({
    key: String(week),
    label: `Week ${week}`,
    colour: WEEK_COLOURS[i % WEEK_COLOURS.length],
    emphasis: week === lastWeek,
    points: rows.filter((r) => r.week === week && plotted(r)).map((r) => ({
      x: r.repetition_index,
      y: r.mean_pain,
      note: `${plural(r.sessions, "session")}, median ${formatNumber(r.median_pain, 1)}`,
    })),
  }));
  const first = series[0].points;
  const latest = series[series.length - 1].points;
  const description = `Mean pain by repetition for weeks ${weeks[0]} to ${lastWeek} since start. `
    + `Week ${weeks[0]} runs from ${formatNumber(first[0]?.y, 1)} at repetition 1 to ${formatNumber(first[first.length - 1]?.y, 1)}; `
    + `week ${lastWeek} from ${formatNumber(latest[0]?.y, 1)} to ${formatNumber(latest[latest.length - 1]?.y, 1)}. The table below has every value.`;
  const chart = lineChart({
    title: "Mean pain per repetition, one line per week since start",
    description,
    series,
    xLabel: "Repetition",
    yLabel: "Mean pain (0–10)",
  });
  const legend = html("ul", { className: "legend", "aria-label": "Weeks shown (press to show or hide)" });
  series.forEach((s, i) => {
    const button = html("button", { type: "button", "aria-pressed": "true", "data-week": s.key }, null, html("li", {}, null, legend));
    button.append(legendGlyph(s.colour, markerKind(i)), document.createTextNode(s.label));
    button.addEventListener("click", () => {
      const shown = button.getAttribute("aria-pressed") !== "true";
      button.setAttribute("aria-pressed", String(shown));
      chart.setVisible(s.key, shown);
    });
  });
  const maxIndex = Math.max(...rows.map((r) => r.repetition_index));
  const slopes = new Map(report.slope_by_week.map((s) => [s.week, s]));
  const headers = ["Week", "Sessions", "Mean slope (points per rep)"];
  for (let i = 1; i <= maxIndex; i += 1) headers.push(`Rep ${i} mean pain`);
  const tableRows = weeks.map((week) => {
    const slope = slopes.get(week);
    const cells = [`Week ${week}`, slope ? formatNumber(slope.sessions, 0) : "–", slope ? formatNumber(slope.mean_slope, 2) : "–"];
    for (let i = 1; i <= maxIndex; i += 1) {
      const row = rows.find((r) => r.week === week && r.repetition_index === i);
      cells.push(row ? `${formatNumber(row.mean_pain, 2)} (n=${row.sessions})` : "–");
    }
    return cells;
  });
  const hint = html("p", { className: "legend-hint" },
    `Press a week to hide or show its line. Repetitions reached by fewer than ${MIN_SHARE * 100}% of a week's sessions are left out of its line (the data table has them).`);
  container.replaceChildren(
    chart.element,
    legend,
    hint,
    dataTable("Mean pain per repetition by week since start", headers, tableRows),
  );
}

function mixChart(report) {
  const container = document.getElementById("mix-chart");
  const weeks = report.responses_by_week;
  if (!weeks.length) {
    emptyChart(container, "No rated flexion sessions in this cohort yet.");
    return;
  }
  const bars = weeks.map((w) => ({ label: String(w.week), values: w.sessions_by_response }));
  const totals = Object.fromEntries(RESPONSES.map((r) => [r.key, report.sessions_by_response[r.key] ?? 0]));
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  const description = `Pain response of ${formatNumber(all, 0)} sessions over ${plural(weeks.length, "week")}: `
    + RESPONSES.map((r) => `${r.label.toLowerCase()} ${percent(all ? totals[r.key] / all : null)}`).join(", ") + ".";
  const chart = stackedBars({
    title: "Share of sessions by pain response, per week since start",
    description,
    categories: RESPONSES,
    bars,
    xLabel: "Week since start",
    yLabel: "Share of sessions",
  });
  const legend = html("ul", { className: "legend", "aria-label": "Pain responses" });
  for (const r of [...RESPONSES].reverse()) {
    const item = html("li", {}, null, legend);
    const swatch = html("span", { className: "swatch", "aria-hidden": "true" }, null, item);
    swatch.style.setProperty("--swatch", r.colour);
    item.append(document.createTextNode(r.label));
  }
  const headers = ["Week", "Sessions", ...RESPONSES.map((r) => r.label)];
  const rows = weeks.map((w) => {
    const total = RESPONSES.reduce((sum, r) => sum + (w.sessions_by_response[r.key] ?? 0), 0);
    return [`Week ${w.week}`, formatNumber(total, 0), ...RESPONSES.map((r) => {
      const n = w.sessions_by_response[r.key] ?? 0;
      return `${n} (${percent(total ? n / total : null)})`;
    })];
  });
  container.replaceChildren(chart.element, legend, dataTable("Sessions by pain response and week since start", headers, rows));
}

function dueText(entry, asOf) {
  switch (entry.status) {
    case "on-hold": {
      const days = dayDiff(asOf, entry.retry_from);
      return `window opens in ${plural(days, "day")}`;
    }
    case "retry-due": {
      const days = dayDiff(asOf, entry.retry_until);
      return days === 0 ? "last day of the window" : `${plural(days, "day")} left`;
    }
    case "retry-overdue":
      return `${plural(dayDiff(entry.retry_until, asOf), "day")} overdue`;
    case "clinician-review":
      return "review before any retry";
    default:
      return "";
  }
}

function dateCell(parent, iso) {
  if (!iso) {
    parent.append(document.createTextNode("–"));
    return;
  }
  html("time", { datetime: iso, title: iso }, shortDay(parseDay(iso)), parent);
}

function worklistTable(data, query, protocolNames) {
  const container = document.getElementById("worklist");
  container.replaceChildren();
  if (!data.patients.length) {
    html("p", { className: "worklist-empty" }, "Nobody is on hold, due or overdue for a retry, or waiting for review.", container);
    return;
  }
  for (const status of WORKLIST) {
    const entries = data.patients.filter((p) => p.status === status);
    if (!entries.length) continue;
    const section = html("section", { id: `worklist-${status}`, "aria-labelledby": `worklist-${status}-title`, tabindex: "-1" }, null, container);
    const heading = html("h3", { id: `worklist-${status}-title` }, null, section);
    html("span", { className: `badge status-${status}` }, statusLabel(status), heading);
    heading.append(document.createTextNode(` ${plural(entries.length, "patient")}`));
    const scroll = html("div", { className: "table-scroll" }, null, section);
    const table = html("table", { className: "data worklist", "data-status": status }, null, scroll);
    html("caption", { className: "visually-hidden" }, `${statusLabel(status)}: ${plural(entries.length, "patient")}`, table);
    const head = html("tr", {}, null, html("thead", {}, null, table));
    for (const h of ["Patient", "Clinic", "Protocol", "Hold since", "Retry window", "When", "Failed retries"]) {
      html("th", { scope: "col", className: h === "Failed retries" ? "num" : null }, h, head);
    }
    const body = html("tbody", {}, null, table);
    for (const entry of entries) {
      const row = html("tr", {}, null, body);
      const who = html("th", { scope: "row" }, null, row);
      const link = html("a", {
        href: `/dashboard/patients/${encodeURIComponent(entry.patient)}?${query}#protocol-${entry.protocol}`,
        className: "patient-link",
      }, entry.name ?? entry.patient, who);
      link.setAttribute("data-patient", entry.patient);
      if (entry.name) html("div", { className: "muted" }, entry.patient, who);
      html("td", {}, entry.organization_name ?? entry.organization ?? "–", row);
      html("td", { title: protocolNames.get(entry.protocol) ?? null }, entry.protocol, row);
      dateCell(html("td", { className: "date" }, null, row), entry.hold_since);
      const window = html("td", { className: "date" }, null, row);
      if (entry.retry_from) {
        dateCell(window, entry.retry_from);
        window.append(document.createTextNode(" – "));
        dateCell(window, entry.retry_until);
      } else {
        window.textContent = "–";
      }
      html("td", {}, dueText(entry, data.as_of), row);
      html("td", { className: "num" }, entry.failed_retries, row);
    }
  }
}

async function main() {
  const root = document.getElementById("main");
  if (root?.dataset.page !== "cohort") return;
  const form = document.getElementById("cohort-picker");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.location.assign(`/dashboard?${cleanQuery(form)}`);
  });
  const query = root.dataset.query;
  document.getElementById("csv-link").href = `/analytics/cohorts/report.csv?${query}`;
  try {
    const [report, worklist] = await Promise.all([
      fetchJson(`/analytics/cohorts/report?${query}`),
      fetchJson(`/dashboard/api/worklist?${query}`),
    ]);
    tiles(report);
    rates(report);
    curveChart(report);
    mixChart(report);
    const protocolNames = new Map([...document.querySelectorAll("#protocol option")]
      .filter((o) => o.value).map((o) => [o.value, o.textContent]));
    worklistTable(worklist, query, protocolNames);
    const patients = report.cohort.patients;
    setStatus(`${plural(patients, "patient")} in this cohort as of ${report.as_of}.`);
    root.dataset.ready = "true";
  } catch (error) {
    setStatus(`The cohort report could not be loaded: ${error instanceof LoadError ? error.message : "unexpected error"}`, { error: true });
    root.dataset.ready = "error";
  }
}

main();
