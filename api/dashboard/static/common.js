// What both dashboard pages share: labels and colours of statuses and pain responses, and JSON
// fetching that reports a failure on the page instead of the console.

export const STATUSES = [
  { key: "no-sessions", label: "No sessions yet" },
  { key: "active", label: "Active" },
  { key: "on-hold", label: "On hold" },
  { key: "retry-due", label: "Retry due" },
  { key: "retry-overdue", label: "Retry overdue" },
  { key: "resumed", label: "Resumed" },
  { key: "clinician-review", label: "Clinician review" },
];

export function statusLabel(key) {
  return STATUSES.find((s) => s.key === key)?.label ?? key;
}

// Bottom to top in the stacked bars; worsening sits on the baseline so its share compares
// easily across weeks, and similar hues are never adjacent. All >= 4.5:1 on white.
export const RESPONSES = [
  { key: "worsening", label: "Worsening", colour: "#b42318", shape: "triangle" },
  { key: "no-change", label: "No change", colour: "#667085", shape: "square" },
  { key: "fluctuating", label: "Fluctuating", colour: "#b54708", shape: "diamond" },
  { key: "insufficient", label: "Too few reps", colour: "#7c5cc4", shape: "triangle-down" },
  { key: "wears-off", label: "Wears off", colour: "#17703a", shape: "circle" },
  { key: "pain-free", label: "Pain-free", colour: "#1d6fc4", shape: "square" },
];

export function response(key) {
  return RESPONSES.find((r) => r.key === key) ?? { key, label: key, colour: "#4a5568", shape: "circle" };
}

// Week 0 warm to later weeks cool; every colour >= 4.5:1 on white.
export const WEEK_COLOURS = [
  "#c2410c", "#b91c5c", "#9333ea", "#4f46e5", "#1d6fc4",
  "#0e7490", "#15803d", "#4d7c0f", "#854d0e", "#475569",
];

export class LoadError extends Error {}

export async function fetchJson(url) {
  let answer;
  try {
    answer = await fetch(url, { headers: { accept: "application/json" } });
  } catch {
    throw new LoadError("The service could not be reached.");
  }
  if (!answer.ok) {
    let detail = `${answer.status} ${answer.statusText}`;
    try {
      const body = await answer.json();
      detail = body?.issue?.[0]?.diagnostics ?? detail;
    } catch {
      // not JSON: keep the status line
    }
    throw new LoadError(detail);
  }
  return answer.json();
}

export function setStatus(text, { error = false } = {}) {
  const node = document.getElementById("load-status");
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("error", error);
  if (error) node.setAttribute("role", "alert");
}

export function dayDiff(fromText, toText) {
  const [a, b] = [fromText, toText].map((t) => {
    const [y, m, d] = t.split("-").map(Number);
    return Date.UTC(y, m - 1, d);
  });
  return Math.round((b - a) / 86400000);
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)}%`;
}
