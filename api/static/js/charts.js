// Charts as SVG strings, drawn here rather than by a library so the dashboard works offline and
// ships no build step. Every chart scales to its container through its viewBox; hovering a mark
// shows its exact figures (SVG <title>).

import { esc, hourLabel, minorDigits, money, moneyTitle } from "./format.js";

let uid = 0;

export const COLORS = {
  revenue: "#2f8f83",
  revenueSoft: "#d5ece8",
  cost: "#d08159",
  costSoft: "#f6e2d7",
  net: "#24435f",
  grid: "#e8ebef",
  axis: "#8a94a3",
  kinds: { solar: "#d9a43b", charger: "#4a86c5", miner: "#8a6fbf" },
};

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const unit = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) * power;
  return unit || 1;
}

/** Ticks covering [lo, hi] (lo <= 0 <= hi) on round numbers. */
function ticks(lo, hi, count = 4) {
  const step = niceStep(hi - lo || 1, count);
  const first = Math.floor(lo / step) * step;
  const out = [];
  for (let v = first; ; v += step) {
    out.push(Math.round(v * 1e9) / 1e9 || 0); // `|| 0`: no "-0" label
    if (v >= hi - step * 1e-9) break;
  }
  return out;
}

/** Labels for money ticks (minor units): in full ("HK$0.25") when the ticks are less than ten
 *  major units apart, where compact notation would round them; otherwise compact ("HK$1.2K"),
 *  unless that makes two ticks read the same. */
export function moneyTicks(values, currency) {
  const step = values.length > 1 ? Math.abs(values[1] - values[0]) : 0;
  const full = values.map((v) => money(v, currency));
  if (step < 10 * 10 ** minorDigits(currency)) return full;
  const compact = values.map((v) => money(v, currency, { compact: true }));
  return new Set(compact).size === compact.length ? compact : full;
}

function hatch(id, color, soft) {
  return `<pattern id="${id}" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">
    <rect width="6" height="6" fill="${soft}"/><rect width="2.2" height="6" fill="${color}"/></pattern>`;
}

/** Fills the hours (or days) between the first bucket and `endMs` that hold no readings, so the
 *  x axis is time and a silent stretch shows as a gap rather than disappearing. */
export function continuous(buckets, granularity, endMs) {
  if (!buckets.length) return [];
  const step = granularity === "day" ? 86_400_000 : 3_600_000;
  const byStart = new Map(buckets.map((b) => [b.start_ms, b]));
  const last = Math.max(buckets[buckets.length - 1].start_ms, endMs - (endMs % step));
  const out = [];
  for (let t = buckets[0].start_ms; t <= last; t += step) out.push(byStart.get(t) || { start_ms: t, empty: true });
  return out;
}

/**
 * Revenue up, cost down, net as a line; attested solid, pending hatched on top of it.
 * `series`: buckets from GET /v1/assets/{name}/cashflow, gaps filled by continuous().
 */
export function cashflowChart(series, { currency, granularity, width = 680, height = 220 }) {
  const id = `cf${++uid}`;
  const m = { left: 62, right: 14, top: 14, bottom: 26 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const filled = series.filter((b) => !b.empty);
  // At least one major unit (HK$1) up: an all-zero or tiny series still gets an axis whose
  // ticks read as different amounts, not five times "HK$0".
  const maxRev = Math.max(10 ** minorDigits(currency), ...filled.map((b) => b.revenue));
  const maxCost = Math.max(0, ...filled.map((b) => b.cost));
  const minNet = Math.min(0, ...filled.map((b) => b.net));
  const lo = -Math.max(maxCost, -minNet);
  const yt = ticks(lo, maxRev, 4);
  const y0 = yt[0];
  const y1 = yt[yt.length - 1];
  const y = (v) => m.top + h - ((v - y0) / (y1 - y0)) * h;
  const slot = w / Math.max(series.length, 1);
  const bw = Math.max(2, Math.min(26, slot * 0.64));
  const x = (i) => m.left + slot * (i + 0.5);

  const parts = [];
  parts.push(`<defs>${hatch(`${id}-rev`, COLORS.revenue, COLORS.revenueSoft)}${hatch(`${id}-cost`, COLORS.cost, COLORS.costSoft)}</defs>`);
  const labels = moneyTicks(yt, currency);
  yt.forEach((v, k) => {
    parts.push(
      `<line class="gridline${v === 0 ? " zero" : ""}" x1="${m.left}" x2="${m.left + w}" y1="${y(v)}" y2="${y(v)}"/>` +
        `<text class="tick" x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end">${esc(labels[k])}</text>`,
    );
  });
  const labelEvery = Math.max(1, Math.ceil(54 / slot));
  series.forEach((b, i) => {
    if (i % labelEvery === 0 || i === series.length - 1) {
      if (i === series.length - 1 && i % labelEvery !== 0 && i % labelEvery < labelEvery / 2) return;
      parts.push(`<text class="tick" x="${x(i)}" y="${height - 8}" text-anchor="middle">${esc(hourLabel(b.start_ms, granularity))}</text>`);
    }
  });

  const rect = (cls, x0, ya, yb, fill) => {
    const top = Math.min(ya, yb);
    const hh = Math.abs(yb - ya);
    return hh > 0.01 ? `<rect class="${cls}" x="${x0 - bw / 2}" y="${top}" width="${bw}" height="${hh}" rx="1.5" fill="${fill}"/>` : "";
  };
  series.forEach((b, i) => {
    if (b.empty) return;
    const a = b.attested;
    const tip = [
      `${hourLabel(b.start_ms, granularity)} · ${b.readings} readings`,
      `revenue ${money(b.revenue, currency)} (attested ${money(a.revenue, currency)}, pending ${money(b.pending.revenue, currency)})`,
      `cost ${money(b.cost, currency)} (attested ${money(a.cost, currency)}, pending ${money(b.pending.cost, currency)})`,
      `net ${money(b.net, currency)} — ${moneyTitle(b.net, currency)}`,
      `coverage ${(b.coverage * 100).toFixed(0)}% · uptime ${(b.uptime * 100).toFixed(0)}%`,
    ].join("\n");
    parts.push(
      `<g class="bucket"><title>${esc(tip)}</title>` +
        `<rect class="hover" x="${x(i) - slot / 2}" y="${m.top}" width="${slot}" height="${h}"/>` +
        rect("bar revenue attested", x(i), y(0), y(a.revenue), COLORS.revenue) +
        rect("bar revenue pending", x(i), y(a.revenue), y(b.revenue), `url(#${id}-rev)`) +
        rect("bar cost attested", x(i), y(0), y(-a.cost), COLORS.cost) +
        rect("bar cost pending", x(i), y(-a.cost), y(-b.cost), `url(#${id}-cost)`) +
        `</g>`,
    );
  });
  const points = series.map((b, i) => (b.empty ? null : [x(i), y(b.net), b.pending.readings > 0]));
  const drawn = points.filter(Boolean);
  if (drawn.length > 1) {
    const d = drawn.map(([px, py], k) => `${k ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join("");
    parts.push(`<path class="net-line" d="${d}" fill="none" stroke="${COLORS.net}" stroke-width="2" stroke-linejoin="round"/>`);
  }
  for (const [px, py, pending] of drawn) {
    parts.push(`<circle class="net-dot${pending ? " pending" : ""}" cx="${px}" cy="${py}" r="3.2"/>`);
  }
  return `<svg class="chart cashflow" data-chart="cashflow" viewBox="0 0 ${width} ${height}" role="img" aria-label="Cash flow per ${granularity}">${parts.join("")}</svg>`;
}

/** The little legend every cash-flow chart shares. */
export function cashflowLegend() {
  const sw = (fill, extra = "") => `<svg width="14" height="10" aria-hidden="true"><rect width="14" height="10" rx="2" fill="${fill}" ${extra}/></svg>`;
  const hatchSw = (color, soft) =>
    `<svg width="14" height="10" aria-hidden="true"><defs>${hatch(`lg${++uid}`, color, soft)}</defs><rect width="14" height="10" rx="2" fill="url(#lg${uid})"/></svg>`;
  return `<div class="legend">
    <span>${sw(COLORS.revenue)} revenue</span><span>${sw(COLORS.cost)} cost</span>
    <span><svg width="18" height="10" aria-hidden="true"><line x1="0" x2="18" y1="5" y2="5" stroke="${COLORS.net}" stroke-width="2"/><circle cx="9" cy="5" r="3" fill="${COLORS.net}"/></svg> net</span>
    <span class="sep">solid: attested on chain</span>
    <span>${hatchSw(COLORS.revenue, COLORS.revenueSoft)}${hatchSw(COLORS.cost, COLORS.costSoft)} hatched: pending</span>
    <span class="sep" title="Each reading counts in the hour its device says it was made, not when it arrived">by device time</span>
  </div>`;
}

/** A ring of slices ({label, value, color, title}). */
export function donut(slices, { size = 140, thickness = 22, center = "", sub = "" } = {}) {
  const total = slices.reduce((n, s) => n + Math.max(0, s.value), 0);
  const r = size / 2 - 2;
  const inner = r - thickness;
  const c = size / 2;
  const parts = [`<circle cx="${c}" cy="${c}" r="${(r + inner) / 2}" fill="none" stroke="${COLORS.grid}" stroke-width="${thickness}"/>`];
  let angle = -Math.PI / 2;
  for (const s of slices) {
    if (!total || s.value <= 0) continue;
    const sweep = (s.value / total) * Math.PI * 2;
    const a1 = angle + Math.min(sweep, Math.PI * 2 - 1e-4);
    const large = sweep > Math.PI ? 1 : 0;
    const p = (rad, a) => `${(c + rad * Math.cos(a)).toFixed(2)},${(c + rad * Math.sin(a)).toFixed(2)}`;
    const d = `M${p(r, angle)}A${r},${r} 0 ${large} 1 ${p(r, a1)}L${p(inner, a1)}A${inner},${inner} 0 ${large} 0 ${p(inner, angle)}Z`;
    parts.push(`<path class="slice" d="${d}" fill="${s.color}"><title>${esc(s.title || s.label)}</title></path>`);
    angle += sweep;
  }
  parts.push(`<text class="donut-center" x="${c}" y="${c + 2}" text-anchor="middle">${esc(center)}</text>`);
  parts.push(`<text class="donut-sub" x="${c}" y="${c + 18}" text-anchor="middle">${esc(sub)}</text>`);
  return `<svg class="chart donut" data-chart="donut" viewBox="0 0 ${size} ${size}" width="${size}" height="${size}" role="img">${parts.join("")}</svg>`;
}

/** Vertical bars over time ({t, value}), e.g. readings per minute. */
export function columns(points, { width = 520, height = 190, color = "#4a86c5", label = (t) => hourLabel(t), unit = "" } = {}) {
  const m = { left: 34, right: 8, top: 10, bottom: 24 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const max = Math.max(1, ...points.map((p) => p.value));
  const yt = ticks(0, max, 3);
  const top = yt[yt.length - 1];
  const y = (v) => m.top + h - (v / top) * h;
  const slot = w / Math.max(points.length, 1);
  const bw = Math.max(2, Math.min(22, slot * 0.7));
  const parts = yt.map(
    (v) =>
      `<line class="gridline${v === 0 ? " zero" : ""}" x1="${m.left}" x2="${m.left + w}" y1="${y(v)}" y2="${y(v)}"/><text class="tick" x="${m.left - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`,
  );
  points.forEach((p, i) => {
    const cx = m.left + slot * (i + 0.5);
    const hh = y(0) - y(p.value);
    if (hh > 0) {
      parts.push(`<rect class="bar" x="${cx - bw / 2}" y="${y(p.value)}" width="${bw}" height="${hh}" rx="1.5" fill="${color}"><title>${esc(`${label(p.t)}: ${p.value} ${unit}`)}</title></rect>`);
    }
  });
  const every = Math.max(1, Math.ceil(60 / slot));
  points.forEach((p, i) => {
    if (i % every === 0) parts.push(`<text class="tick" x="${m.left + slot * (i + 0.5)}" y="${height - 7}" text-anchor="middle">${esc(label(p.t))}</text>`);
  });
  return `<svg class="chart columns" data-chart="columns" viewBox="0 0 ${width} ${height}" role="img">${parts.join("")}</svg>`;
}

/** Horizontal bars ({label, value, href?}) with the count at the end; a row with `href` links. */
export function hbars(items, { width = 420, row = 24, color = "#c46a5a" } = {}) {
  const labelW = 130;
  const max = Math.max(1, ...items.map((i) => i.value));
  const w = width - labelW - 48;
  const height = Math.max(row, items.length * row);
  const parts = items.map((it, k) => {
    const yy = k * row;
    const bw = Math.max(2, (it.value / max) * w);
    const mark = `<text class="hlabel" x="${labelW - 8}" y="${yy + row / 2 + 4}" text-anchor="end">${esc(it.label)}</text>
      <rect class="bar" x="${labelW}" y="${yy + 5}" width="${bw}" height="${row - 10}" rx="3" fill="${color}"><title>${esc(`${it.label}: ${it.value}`)}</title></rect>
      <text class="hvalue" x="${labelW + bw + 6}" y="${yy + row / 2 + 4}">${it.value}</text>`;
    return it.href ? `<a class="hlink" href="${esc(it.href)}">${mark}</a>` : mark;
  });
  return `<svg class="chart hbars" data-chart="hbars" viewBox="0 0 ${width} ${height}" role="img">${parts.join("")}</svg>`;
}
