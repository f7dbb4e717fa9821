// The patient page: per protocol, the stop-rule status (from the status endpoint), the sessions
// and hold windows on a timeline, and each day's sessions as small multiples of pain per
// repetition (from /dashboard/api/patients/{id}).

import {
  dataTable, dayText, html, legendGlyph, miniLines, parseDay, shortDay, timeline,
} from "./charts.js";
import {
  LoadError, RESPONSES, fetchJson, plural, response, setStatus, statusLabel,
} from "./common.js";

const DAY = 86400000;
const HOLD = { colour: "#b42318", fill: "#fbe4e2", label: "hold" };
const WINDOW = { colour: "#8a4b00", fill: "#fdf0d5", label: "retry window" };
const OVERDUE = { colour: "#6b21a8", fill: "#efe3fb", label: "overdue" };
const NOT_RATED = { key: "not-rated", label: "No rated repetitions", colour: "#4a5568", shape: "circle" };

function statusCard(section, status) {
  const card = html("dl", { className: "status-card" }, null, section);
  const item = (label, value) => {
    const div = html("div", {}, null, card);
    html("dt", {}, label, div);
    const dd = html("dd", {}, null, div);
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value;
  };
  item("Readiness for flexion", status.readiness);
  item("Hold", status.hold ? `since ${status.hold.since}` : "none open");
  item("Retry window", status.hold ? `${status.hold.retry_from} to ${status.hold.retry_until}` : "–");
  item("Failed retries", String(status.failed_retries));
  item("Premature retries", String(status.premature_retries));
  item("Last session", status.last_session ? `${status.last_session.date}, ${response(status.last_session.response).label.toLowerCase()}` : "none");
  const why = html("details", { className: "explanation" }, null, section);
  html("summary", {}, "How this status was decided", why);
  html("p", {}, status.explanation, why);
}

// Hold episodes as timeline bands: the hold itself, the retry window, and any overdue days.
// A failed or restarted hold ends the day before the next hold opens (the same day).
function holdBands(holds, asOf, status) {
  const bands = [];
  for (const hold of holds) {
    const from = parseDay(hold.since);
    const windowStart = parseDay(hold.retry_from);
    const windowEnd = parseDay(hold.retry_until);
    const closed = hold.closed_on ? parseDay(hold.closed_on) : null;
    const followed = hold.outcome === "failed" || hold.outcome === "restarted";
    const lastDay = closed === null ? null : followed ? closed - DAY : closed;
    const outcome = hold.outcome ? `; ended ${hold.closed_on} (${hold.outcome})` : "; still open";
    const text = `Hold since ${hold.since}, retry window ${hold.retry_from} to ${hold.retry_until}${outcome}`;
    const holdEnd = lastDay !== null && lastDay < windowStart ? lastDay : windowStart - DAY;
    if (holdEnd >= from) {
      bands.push({ from: hold.since, until: dayText(holdEnd), colour: HOLD.colour, fill: HOLD.fill, label: HOLD.label, text, kind: "hold" });
    }
    if (lastDay === null || lastDay >= windowStart) {
      const until = lastDay === null ? windowEnd : Math.min(windowEnd, lastDay);
      bands.push({ from: hold.retry_from, until: dayText(until), colour: WINDOW.colour, fill: WINDOW.fill, label: WINDOW.label, text, kind: "window" });
    }
    if (closed === null && status === "retry-overdue" && parseDay(asOf) > windowEnd) {
      bands.push({ from: dayText(windowEnd + DAY), until: asOf, colour: OVERDUE.colour, fill: OVERDUE.fill, label: OVERDUE.label, text: `${text}; retry overdue`, kind: "overdue" });
    }
  }
  return bands;
}

// How a session is drawn: its pain response, or "not rated" when no repetition has a pain score
// (typical of the Cobra, where the response class says nothing).
function look(s) {
  return s.pain.length ? response(s.response) : NOT_RATED;
}

function sessionText(s) {
  const time = s.start.slice(11, 16);
  const role = s.role ? ` (${s.role.replace("-", " ")})` : "";
  if (!s.pain.length) return `${s.date} ${time}${role}: no rated repetitions`;
  return `${s.date} ${time}${role}: ${response(s.response).label.toLowerCase()}, pain ${s.pain.join(", ")}`;
}

function responseLegend(parent, keys) {
  const legend = html("ul", { className: "legend", "aria-label": "Pain responses" }, null, parent);
  for (const r of [...RESPONSES, NOT_RATED].filter((x) => keys.has(x.key))) {
    const item = html("li", {}, null, legend);
    item.append(legendGlyph(r.colour, r.shape), document.createTextNode(r.label));
  }
  return legend;
}

function bandLegend(parent, kinds) {
  const legend = html("ul", { className: "legend", "aria-label": "Stop-rule periods" }, null, parent);
  for (const band of [HOLD, WINDOW, OVERDUE].filter((b) => kinds.has(b.label))) {
    const item = html("li", {}, null, legend);
    const swatch = html("span", { className: "swatch", "aria-hidden": "true" }, null, item);
    swatch.style.setProperty("--swatch", band.colour);
    item.append(document.createTextNode(band.label));
  }
}

function timelineFigure(section, protocol, asOf) {
  const sessions = protocol.sessions;
  const holds = protocol.holds;
  const days = [...sessions.map((s) => parseDay(s.date)), ...holds.map((h) => parseDay(h.since))];
  const start = dayText(Math.min(...days) - DAY);
  const openHold = holds.find((h) => !h.closed_on);
  const ends = [parseDay(asOf)];
  if (openHold) ends.push(parseDay(openHold.retry_until));
  const end = dayText(Math.max(...ends) + DAY);
  const lanes = [{
    label: "Sessions",
    dots: sessions.map((s) => ({
      day: s.date,
      colour: look(s).colour,
      shape: look(s).shape,
      response: look(s).key,
      ring: s.role,
      text: sessionText(s),
    })),
  }];
  const bands = protocol.stop_rule ? holdBands(holds, asOf, protocol.status) : [];
  if (protocol.stop_rule) lanes.push({ label: "Stop rule", bands });
  const worsening = sessions.filter((s) => s.response === "worsening").length;
  const description = `${plural(sessions.length, "session")} from ${sessions[0]?.date ?? "–"} to ${sessions[sessions.length - 1]?.date ?? "–"}, `
    + `${worsening} worsening; ${plural(holds.length, "hold")}`
    + (openHold ? `, one open since ${openHold.since} with its retry window ${openHold.retry_from} to ${openHold.retry_until}.` : ", none open.");
  const chart = timeline({
    title: `${protocol.name}: sessions and hold windows`,
    description,
    start,
    end,
    asOf,
    lanes,
    // One SVG unit per CSS pixel, so the labels keep their size on any screen.
    width: Math.max(480, Math.round(section.clientWidth - 34)),
  });
  const figure = html("div", { className: "chart timeline-chart" }, null, section);
  figure.append(chart.element);
  responseLegend(figure, new Set(sessions.map((s) => look(s).key)));
  if (bands.length) bandLegend(figure, new Set(bands.map((b) => b.label)));
  if (sessions.some((s) => s.role)) {
    html("p", { className: "legend-hint" }, "A dark ring marks a retry or a premature retry (a session inside the hold, before its window).", figure);
  }
  if (holds.length) {
    figure.append(dataTable(`${protocol.name}: holds`, ["Hold since", "Retry window", "Ended", "Outcome"],
      holds.map((h) => [h.since, `${h.retry_from} to ${h.retry_until}`, h.closed_on ?? "open", h.outcome ?? "–"])));
  }
}

function multiples(section, protocol) {
  const rated = protocol.sessions.filter((s) => s.pain.length);
  if (!rated.length) {
    html("p", { className: "muted" }, `None of the ${plural(protocol.sessions.length, "session")} has rated repetitions.`, section);
    return;
  }
  const byDay = new Map();
  for (const s of rated) {
    if (!byDay.has(s.date)) byDay.set(s.date, []);
    byDay.get(s.date).push(s);
  }
  const maxReps = Math.max(6, ...rated.flatMap((s) => s.repetitions));
  const maxPain = Math.max(...rated.flatMap((s) => s.pain)) <= 5 ? 5 : 10;
  const list = html("ul", { className: "multiples", "aria-label": `${protocol.name}: pain per repetition, one panel per day` }, null, section);
  for (const [day, sessions] of byDay) {
    const item = html("li", { className: sessions.some((s) => s.response === "worsening") ? "has-worsening" : null }, null, list);
    const label = html("div", { className: "day" }, shortDay(parseDay(day)), item);
    html("span", {}, plural(sessions.length, "session"), label);
    const chart = miniLines({
      title: `${day}: pain per repetition`,
      description: sessions.map(sessionText).join("; "),
      sessions: sessions.map((s) => ({
        label: sessionText(s),
        colour: response(s.response).colour,
        shape: response(s.response).shape,
        response: s.response,
        emphasis: s.response === "worsening",
        pain: s.pain,
        repetitions: s.repetitions,
      })),
      maxReps,
      maxPain,
    });
    item.append(chart.element);
  }
  section.append(dataTable(`${protocol.name}: every session`, ["Session start", "Response", "Role", "Pain per repetition", "Slope"],
    rated.map((s) => [s.start.slice(0, 16).replace("T", " "), response(s.response).label, s.role ?? "–", s.pain.join(", "),
      s.slope === null ? "–" : s.slope.toFixed(2)])));
}

async function protocolSection(container, patientId, protocol, asOf) {
  const id = `protocol-${protocol.protocol}`;
  const section = html("section", { className: "panel protocol", id, "aria-labelledby": `${id}-title`, "data-protocol": protocol.protocol }, null, container);
  const heading = html("h2", { id: `${id}-title` }, `${protocol.name} `, section);
  if (protocol.stop_rule) {
    html("span", { className: `badge status-${protocol.status}`, "data-status": protocol.status }, statusLabel(protocol.status), heading);
  } else {
    html("span", { className: "badge" }, "no stop rule", heading);
  }
  if (protocol.stop_rule) {
    const status = await fetchJson(`/analytics/patients/${encodeURIComponent(patientId)}/protocols/${encodeURIComponent(protocol.protocol)}/status?as_of=${asOf}`);
    statusCard(section, status);
  }
  if (!protocol.sessions.length) {
    html("p", { className: "muted" }, "Prescribed; no session yet.", section);
    return;
  }
  html("h3", {}, "Sessions and hold windows", section);
  timelineFigure(section, protocol, asOf);
  html("h3", {}, "Pain per repetition, day by day", section);
  multiples(section, protocol);
}

async function main() {
  const root = document.getElementById("main");
  if (root?.dataset.page !== "patient") return;
  const patientId = root.dataset.patient;
  const asOf = root.dataset.asOf;
  try {
    const detail = await fetchJson(`/dashboard/api/patients/${encodeURIComponent(patientId)}?as_of=${asOf}`);
    const container = document.getElementById("protocols");
    container.replaceChildren();
    const subtitle = document.querySelector(".subtitle");
    if (subtitle && detail.organization_name) subtitle.append(document.createTextNode(` · ${detail.organization_name}`));
    if (!detail.protocols.length) {
      html("p", {}, "No prescription and no session yet.", container);
    }
    for (const protocol of detail.protocols) {
      await protocolSection(container, patientId, protocol, asOf);
    }
    const sessions = detail.protocols.reduce((n, p) => n + p.sessions.length, 0);
    setStatus(`${plural(sessions, "session")} on ${plural(detail.protocols.length, "protocol")} as of ${asOf}.`);
    if (window.location.hash) document.getElementById(window.location.hash.slice(1))?.scrollIntoView();
    root.dataset.ready = "true";
  } catch (error) {
    setStatus(`The patient's sessions could not be loaded: ${error instanceof LoadError ? error.message : "unexpected error"}`, { error: true });
    root.dataset.ready = "error";
  }
}

main();
