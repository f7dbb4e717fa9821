// A small SVG charting kit for the dashboard: line charts, stacked bars, a date timeline and
// small multiples. No dependencies. Every chart is an <svg role="img"> with a <title> and
// <desc>, and comes with a visually hidden data table holding the same numbers.

const SVG_NS = "http://www.w3.org/2000/svg";
let uid = 0;

export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

export function svg(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (parent) parent.appendChild(node);
  return node;
}

export function html(name, attrs = {}, text = null, parent = null) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  if (text !== null && text !== undefined) node.textContent = String(text);
  if (parent) parent.appendChild(node);
  return node;
}

function tooltip(node, text) {
  svg("title", {}, node).textContent = text;
}

// Round tick values ("nice numbers") covering [min, max].
export function niceTicks(min, max, count = 5) {
  if (max <= min) max = min + 1;
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Number(v.toFixed(6)));
  }
  return ticks;
}

export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en", {
    maximumFractionDigits: digits,
    minimumFractionDigits: 0,
  });
}

// The <svg> shell every chart shares: role=img named by its <title> and described by <desc>.
function frame(width, height, title, description) {
  const titleId = nextId("chart-title");
  const descId = nextId("chart-desc");
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`,
    preserveAspectRatio: "xMidYMid meet",
    focusable: "false",
  });
  svg("title", { id: titleId }, root).textContent = title;
  svg("desc", { id: descId }, root).textContent = description;
  return root;
}

export function dataTable(caption, headers, rows, { hidden = true } = {}) {
  const wrapper = html("div", { className: hidden ? "visually-hidden" : "table-scroll" });
  const table = html("table", { className: "data" }, null, wrapper);
  html("caption", {}, caption, table);
  const head = html("tr", {}, null, html("thead", {}, null, table));
  for (const header of headers) html("th", { scope: "col" }, header, head);
  const body = html("tbody", {}, null, table);
  for (const row of rows) {
    const tr = html("tr", {}, null, body);
    row.forEach((cell, index) => html(index === 0 ? "th" : "td", index === 0 ? { scope: "row" } : {}, cell, tr));
  }
  return wrapper;
}

const MARKERS = ["circle", "square", "triangle", "diamond", "triangle-down"];

function marker(kind, x, y, r, attrs, parent) {
  switch (kind) {
    case "square":
      return svg("rect", { x: x - r * 0.85, y: y - r * 0.85, width: r * 1.7, height: r * 1.7, ...attrs }, parent);
    case "triangle":
      return svg("path", { d: `M${x},${y - r * 1.1}L${x + r},${y + r * 0.8}L${x - r},${y + r * 0.8}Z`, ...attrs }, parent);
    case "triangle-down":
      return svg("path", { d: `M${x},${y + r * 1.1}L${x + r},${y - r * 0.8}L${x - r},${y - r * 0.8}Z`, ...attrs }, parent);
    case "diamond":
      return svg("path", { d: `M${x},${y - r * 1.2}L${x + r * 1.1},${y}L${x},${y + r * 1.2}L${x - r * 1.1},${y}Z`, ...attrs }, parent);
    default:
      return svg("circle", { cx: x, cy: y, r, ...attrs }, parent);
  }
}

export function markerKind(index) {
  return MARKERS[index % MARKERS.length];
}

// A tiny legend glyph: the series' line with its marker.
export function legendGlyph(colour, kind) {
  const glyph = svg("svg", { viewBox: "0 0 28 12", width: 28, height: 12, "aria-hidden": "true", focusable: "false" });
  svg("line", { x1: 1, y1: 6, x2: 27, y2: 6, stroke: colour, "stroke-width": 2.5 }, glyph);
  marker(kind, 14, 6, 3.6, { fill: colour, stroke: "#fff", "stroke-width": 1 }, glyph);
  return glyph;
}

function axes(root, { x0, x1, y0, y1, xTicks, yTicks, xScale, yScale, xLabel, yLabel, xFormat, yFormat }) {
  const grid = svg("g", { class: "grid", "aria-hidden": "true" }, root);
  for (const t of yTicks) svg("line", { x1: x0, x2: x1, y1: yScale(t), y2: yScale(t) }, grid);
  const axis = svg("g", { class: "axis", "aria-hidden": "true" }, root);
  svg("path", { d: `M${x0},${y1}V${y0}H${x1}`, fill: "none" }, axis);
  for (const t of yTicks) {
    svg("line", { x1: x0 - 4, x2: x0, y1: yScale(t), y2: yScale(t) }, axis);
    svg("text", { x: x0 - 7, y: yScale(t), "text-anchor": "end", "dominant-baseline": "middle" }, axis)
      .textContent = yFormat(t);
  }
  for (const t of xTicks) {
    svg("line", { x1: xScale(t), x2: xScale(t), y1: y0, y2: y0 + 4 }, axis);
    svg("text", { x: xScale(t), y: y0 + 17, "text-anchor": "middle" }, axis).textContent = xFormat(t);
  }
  if (xLabel) {
    svg("text", { class: "axis-title", x: (x0 + x1) / 2, y: y0 + 38, "text-anchor": "middle" }, axis)
      .textContent = xLabel;
  }
  if (yLabel) {
    const cy = (y0 + y1) / 2;
    svg("text", {
      class: "axis-title",
      x: 14,
      y: cy,
      "text-anchor": "middle",
      transform: `rotate(-90 14 ${cy})`,
    }, axis).textContent = yLabel;
  }
}

/**
 * Lines over a numeric x axis.
 * series: [{key, label, colour, points: [{x, y, note}]}]
 * Returns {element, setVisible(key, visible)}.
 */
export function lineChart({ title, description, series, xLabel, yLabel, yMin = 0, yMax = null, width = 560, height = 330 }) {
  const root = frame(width, height, title, description);
  const margin = { top: 14, right: 18, bottom: 50, left: 58 };
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const top = yMax ?? Math.max(1, Math.ceil(Math.max(...ys) + 0.5));
  const xScale = (x) => (xMax === xMin ? (x0 + x1) / 2 : x0 + ((x - xMin) / (xMax - xMin)) * (x1 - x0));
  const yScale = (y) => y0 - ((y - yMin) / (top - yMin)) * (y0 - y1);
  const xTicks = [];
  for (let x = xMin; x <= xMax; x += 1) xTicks.push(x);
  axes(root, {
    x0, x1, y0, y1, xTicks, yTicks: niceTicks(yMin, top, 5).filter((t) => t <= top),
    xScale, yScale, xLabel, yLabel, xFormat: String, yFormat: (t) => formatNumber(t, 1),
  });
  const groups = new Map();
  const plot = svg("g", { class: "series" }, root);
  series.forEach((s, index) => {
    const g = svg("g", { "data-series": s.key }, plot);
    const points = [...s.points].sort((a, b) => a.x - b.x);
    const d = points.map((p, i) => `${i ? "L" : "M"}${xScale(p.x).toFixed(1)},${yScale(p.y).toFixed(1)}`).join("");
    const line = svg("path", {
      d,
      fill: "none",
      stroke: s.colour,
      "stroke-width": s.emphasis ? 3.5 : 2.25,
      "stroke-linejoin": "round",
      "stroke-linecap": "round",
    }, g);
    tooltip(line, s.label);
    const kind = markerKind(index);
    for (const p of points) {
      const dot = marker(kind, xScale(p.x), yScale(p.y), 4, { fill: s.colour, stroke: "#fff", "stroke-width": 1.2 }, g);
      tooltip(dot, `${s.label}, ${xLabel.toLowerCase()} ${p.x}: ${formatNumber(p.y, 2)}${p.note ? ` (${p.note})` : ""}`);
    }
    groups.set(s.key, g);
  });
  return {
    element: root,
    setVisible(key, visible) {
      const g = groups.get(key);
      if (g) g.setAttribute("visibility", visible ? "visible" : "hidden");
    },
  };
}

/**
 * Stacked bars, each scaled to 100% of its total (the mix), total written above the bar.
 * categories: [{key, label, colour}] bottom to top; bars: [{label, values: {key: n}}]
 */
export function stackedBars({ title, description, categories, bars, xLabel, yLabel, width = 560, height = 330 }) {
  const root = frame(width, height, title, description);
  const margin = { top: 22, right: 18, bottom: 50, left: 58 };
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const band = (x1 - x0) / Math.max(bars.length, 1);
  const barWidth = Math.min(56, band * 0.7);
  const yScale = (share) => y0 - share * (y0 - y1);
  const xScale = (index) => x0 + band * index + band / 2;
  axes(root, {
    x0, x1, y0, y1,
    xTicks: bars.map((_, i) => i), yTicks: [0, 0.25, 0.5, 0.75, 1],
    xScale, yScale, xLabel, yLabel,
    xFormat: (i) => bars[i].label, yFormat: (t) => `${Math.round(t * 100)}%`,
  });
  const plot = svg("g", { class: "bars" }, root);
  bars.forEach((bar, index) => {
    const total = categories.reduce((sum, c) => sum + (bar.values[c.key] || 0), 0);
    const g = svg("g", { "data-bar": bar.label }, plot);
    let base = 0;
    for (const c of categories) {
      const n = bar.values[c.key] || 0;
      if (!total || !n) continue;
      const share = n / total;
      const rect = svg("rect", {
        x: (xScale(index) - barWidth / 2).toFixed(1),
        y: yScale(base + share).toFixed(1),
        width: barWidth.toFixed(1),
        height: Math.max(0, yScale(base) - yScale(base + share)).toFixed(1),
        fill: c.colour,
        stroke: "#fff",
        "stroke-width": 1,
        "data-category": c.key,
      }, g);
      tooltip(rect, `${xLabel} ${bar.label}: ${c.label} ${n} of ${total} sessions (${Math.round(share * 100)}%)`);
      base += share;
    }
    svg("text", { class: "bar-total", x: xScale(index), y: y1 - 6, "text-anchor": "middle" }, root)
      .textContent = total ? `n=${formatNumber(total, 0)}` : "none";
  });
  return { element: root };
}

const DAY = 86400000;

export function parseDay(text) {
  const [y, m, d] = text.split("-").map(Number);
  return Date.UTC(y, m - 1, d);
}

export function dayText(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

export function shortDay(ms) {
  return new Date(ms).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
}

/**
 * A date timeline with lanes: marks are dots on a day (stacked when several share a day) and
 * bands are day ranges [from, until] inclusive.
 * lanes: [{label, dots: [{day, colour, shape, text}], bands: [{from, until, colour, pattern, text, label}]}]
 */
export function timeline({ title, description, start, end, asOf, lanes, width = 900 }) {
  const laneHeight = 54;
  const margin = { top: 24, right: 16, bottom: 34, left: 92 };
  const height = margin.top + lanes.length * laneHeight + margin.bottom;
  const root = frame(width, height, title, description);
  const x0 = margin.left;
  const x1 = width - margin.right;
  const first = parseDay(start);
  const last = parseDay(end) + DAY;
  const xScale = (ms) => x0 + ((ms - first) / (last - first)) * (x1 - x0);
  const dayWidth = (x1 - x0) / ((last - first) / DAY);
  const yBottom = margin.top + lanes.length * laneHeight;

  const grid = svg("g", { class: "grid", "aria-hidden": "true" }, root);
  const axis = svg("g", { class: "axis", "aria-hidden": "true" }, root);
  const spanDays = (last - first) / DAY;
  const stepDays = spanDays > 120 ? 28 : spanDays > 35 ? 7 : spanDays > 14 ? 2 : 1;
  // Ticks on Mondays when weekly, so weeks read as weeks.
  let tick = first;
  if (stepDays >= 7) while (new Date(tick).getUTCDay() !== 1) tick += DAY;
  for (; tick < last; tick += stepDays * DAY) {
    const x = xScale(tick);
    svg("line", { x1: x, x2: x, y1: margin.top, y2: yBottom }, grid);
    svg("line", { x1: x, x2: x, y1: yBottom, y2: yBottom + 4 }, axis);
    svg("text", { x, y: yBottom + 17, "text-anchor": "middle" }, axis).textContent = shortDay(tick);
  }
  svg("path", { d: `M${x0},${yBottom}H${x1}`, fill: "none" }, axis);

  lanes.forEach((lane, index) => {
    const top = margin.top + index * laneHeight;
    svg("line", { x1: x0, x2: x1, y1: top + laneHeight, y2: top + laneHeight, stroke: "#e3e7ee" }, root);
    svg("text", { class: "chart-text", x: x0 - 8, y: top + laneHeight / 2, "text-anchor": "end", "dominant-baseline": "middle" }, root)
      .textContent = lane.label;
    const g = svg("g", { "data-lane": lane.label }, root);
    for (const band of lane.bands || []) {
      const from = Math.max(parseDay(band.from), first);
      const until = Math.min(parseDay(band.until) + DAY, last);
      if (until <= from) continue;
      const rect = svg("rect", {
        x: xScale(from).toFixed(1),
        y: top + 12,
        width: Math.max(2, xScale(until) - xScale(from)).toFixed(1),
        height: laneHeight - 24,
        fill: band.fill || band.colour,
        stroke: band.colour,
        "stroke-width": 1.5,
        rx: 3,
        "data-band": band.kind || "band",
      }, g);
      tooltip(rect, band.text);
      if (band.label && xScale(until) - xScale(from) > band.label.length * 6.8 + 10) {
        svg("text", {
          class: "band-label",
          x: (xScale(from) + 5).toFixed(1),
          y: top + laneHeight / 2,
          "dominant-baseline": "middle",
          "pointer-events": "none",
        }, g).textContent = band.label;
      }
    }
    const perDay = new Map();
    for (const dot of lane.dots || []) {
      const ms = parseDay(dot.day);
      if (ms < first || ms >= last) continue;
      const slot = perDay.get(ms) || 0;
      perDay.set(ms, slot + 1);
      const cx = xScale(ms) + dayWidth / 2;
      const cy = top + laneHeight - 9 - slot * Math.min(9, (laneHeight - 16) / 4);
      const r = Math.min(4, Math.max(2.5, dayWidth / 2.6));
      const node = marker(dot.shape || "circle", cx, cy, dot.ring ? r + 0.6 : r, {
        fill: dot.colour,
        stroke: dot.ring ? "#1d2433" : "#fff",
        "stroke-width": dot.ring ? 1.6 : 0.8,
        "data-response": dot.response || null,
        "data-role": dot.ring || null,
      }, g);
      tooltip(node, dot.text);
    }
  });

  if (asOf) {
    const ms = parseDay(asOf) + DAY;
    if (ms >= first && ms <= last) {
      const x = xScale(ms);
      svg("line", { x1: x, x2: x, y1: margin.top - 8, y2: yBottom, stroke: "#1d2433", "stroke-width": 1.5, "stroke-dasharray": "4 3" }, root);
      svg("text", { class: "band-label", x: x - 4, y: margin.top - 10, "text-anchor": "end" }, root)
        .textContent = `as of ${shortDay(parseDay(asOf))}`;
    }
  }
  return { element: root };
}

/**
 * One small panel: a line per session of pain over repetition index, shared scales.
 * sessions: [{label, colour, shape, pain: [..], repetitions: [..]}]
 */
export function miniLines({ title, description, sessions, maxReps, maxPain = 10, width = 150, height = 84 }) {
  const root = frame(width, height, title, description);
  const margin = { top: 6, right: 6, bottom: 14, left: 18 };
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const xScale = (i) => x0 + ((i - 1) / Math.max(1, maxReps - 1)) * (x1 - x0);
  const yScale = (p) => y0 - (p / maxPain) * (y0 - y1);
  const axis = svg("g", { class: "mini-axis", "aria-hidden": "true" }, root);
  for (const t of [0, 5, 10].filter((v) => v <= maxPain)) {
    svg("line", { x1: x0, x2: x1, y1: yScale(t), y2: yScale(t), stroke: "#e3e7ee" }, axis);
    svg("text", { x: x0 - 3, y: yScale(t), "text-anchor": "end", "dominant-baseline": "middle" }, axis)
      .textContent = String(t);
  }
  svg("path", { d: `M${x0},${y1}V${y0}H${x1}`, fill: "none", stroke: "#6b7585" }, axis);
  svg("text", { x: x0, y: height - 2 }, axis).textContent = "rep 1";
  svg("text", { x: x1, y: height - 2, "text-anchor": "end" }, axis).textContent = `rep ${maxReps}`;
  sessions.forEach((s) => {
    const g = svg("g", { "data-response": s.response }, root);
    const d = s.pain.map((p, i) => `${i ? "L" : "M"}${xScale(s.repetitions[i]).toFixed(1)},${yScale(p).toFixed(1)}`).join("");
    if (s.pain.length > 1) {
      const path = svg("path", { d, fill: "none", stroke: s.colour, "stroke-width": s.emphasis ? 2.4 : 1.6, "stroke-linejoin": "round" }, g);
      tooltip(path, s.label);
    }
    s.pain.forEach((p, i) => {
      const dot = marker(s.shape || "circle", xScale(s.repetitions[i]), yScale(p), 2.3, { fill: s.colour }, g);
      tooltip(dot, `${s.label}: repetition ${s.repetitions[i]}, pain ${p}`);
    });
  });
  return { element: root };
}
