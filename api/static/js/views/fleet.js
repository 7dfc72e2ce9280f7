// Fleet view for engineers: devices online, readings per minute, rejects by reason (each a link
// to its quarantined messages, #fleet/quarantine/REASON), last seen.

import { get } from "../api.js";
import { columns, hbars } from "../charts.js";
import { ago, esc, hexHTML, KIND_LABEL, num, time } from "../format.js";

const MAX_ROWS = 200;
const MAX_MESSAGES = 50;
const RANGES = { 15: "15 min", 60: "1 hour", 360: "6 hours", 1440: "24 hours" };
let minutes = 15;
let lastKey = null;

/** The hash of the quarantined messages of one reason (the fleet view's sub-page). */
export function quarantineHref(reason) {
  return `#fleet/quarantine/${encodeURIComponent(reason)}`;
}

export function mount(el) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Fleet</h1>
        <p class="lede">Ingest as the gateway sees it: who is online, how fast readings arrive, and why messages were
        refused. Every message is either stored or quarantined with a reason.</p>
      </div>
      <div class="segmented" role="group" aria-label="Range" data-testid="fleet-range">
        ${Object.entries(RANGES)
          .map(([m, label]) => `<button type="button" data-minutes="${m}" class="${Number(m) === minutes ? "on" : ""}">${esc(label)}</button>`)
          .join("")}
      </div>
    </div>
    <div class="quarantined" hidden></div>
    <div class="fleet-kpis"></div>
    <div class="card" data-testid="loss"><h2>Loss <small class="muted">readings the devices signed that never arrived, and devices gone quiet</small></h2><div class="loss"></div></div>
    <div class="grid two">
      <div class="card"><h2>Readings per minute <small class="muted rpm-note">by arrival time (the gateway's clock)</small></h2>
        <div class="rpm" data-testid="arrivals"></div>
        <h2 class="sub">By device time <small class="muted">the time each reading carries: behind arrival while a replay or a backlog drains</small></h2>
        <div class="rpm-device" data-testid="device-time"></div></div>
      <div class="card"><h2>Rejected messages by reason <small class="muted">all time · click a reason for its messages</small></h2><div class="rejects"></div></div>
    </div>
    <div class="card"><h2>Devices <small class="muted devices-note">offline first</small></h2><div class="devices"></div></div>`;
  el.querySelector(".segmented").addEventListener("click", (ev) => {
    const m = Number(ev.target.closest("button")?.dataset.minutes);
    if (!m || m === minutes) return;
    minutes = m;
    for (const b of el.querySelectorAll("[data-minutes]")) b.classList.toggle("on", Number(b.dataset.minutes) === m);
    lastKey = null;
    refresh(el, { route: currentRoute });
  });
}

let currentRoute = [];

export function route(el, ctx) {
  currentRoute = ctx.route;
  lastKey = null;
}

export async function refresh(el, ctx) {
  currentRoute = ctx?.route || currentRoute;
  const reason = currentRoute[0] === "quarantine" && currentRoute[1] ? currentRoute[1] : null;
  const [health, devices, reasons, messages] = await Promise.all([
    get("/v1/fleet/health", { minutes, devices: 0 }),
    get("/v1/devices", { limit: MAX_ROWS }),
    get("/v1/quarantine/reasons"),
    reason ? get("/v1/quarantine", { reason, limit: MAX_MESSAGES }) : null,
  ]);
  const key = JSON.stringify([minutes, reason, health.devices, health.readings_per_minute, health.arrivals_per_minute, health.rejects, health.loss, devices, reasons, messages]);
  const now = health.now_ms;
  if (key !== lastKey) {
    lastKey = key;
    render(el, health, devices, reasons, now);
    renderQuarantined(el.querySelector(".quarantined"), reason, messages, reasons);
  }
  // Relative times move on even when nothing else changed; measured on the server's clock.
  for (const cell of el.querySelectorAll("[data-seen]")) {
    cell.textContent = ago(cell.dataset.seen ? Number(cell.dataset.seen) : null, now);
  }
}

function renderQuarantined(box, reason, messages, reasons) {
  box.hidden = !reason;
  if (!reason) {
    box.innerHTML = "";
    return;
  }
  const total = reasons.reasons.find((r) => r.reason === reason)?.count || 0;
  const rows = messages.items;
  box.innerHTML = `
    <div class="card" data-testid="quarantined" data-reason="${esc(reason)}">
      <h2>Quarantined: ${esc(reason.replace(/_/g, " "))}
        <small class="muted">${rows.length < total ? `the newest ${rows.length} of ${num(total)}` : `${num(total)} message${total === 1 ? "" : "s"}`}, newest first · <a href="#fleet">close</a></small></h2>
      ${
        rows.length
          ? `<div class="scroll"><table class="table compact">
        <thead><tr><th>Received</th><th>Device</th><th class="num">Seq</th><th>Why</th><th class="num">Bytes</th><th>Kept as</th></tr></thead>
        <tbody>${rows
          .map(
            (q) => `<tr data-quarantine-id="${q.id}"><td>${esc(time(q.received_ms))}</td><td><code>${esc(q.device_id || "—")}</code></td>
            <td class="num">${q.seq ?? "—"}</td><td>${esc(q.detail)}</td><td class="num">${num(q.raw_size)}</td>
            <td><a href="/v1/quarantine/${q.id}" title="The message as stored, its bytes in hex (JSON)">#${q.id}</a></td></tr>`,
          )
          .join("")}</tbody></table></div>`
          : `<p class="empty">No message was quarantined for this reason.</p>`
      }
    </div>`;
}

/** Per-minute counts as evenly spaced columns over the window, merged into at most 60 bars. */
function perMinute(series, now, span) {
  const minute = 60_000;
  const end = now - (now % minute);
  const step = Math.max(1, Math.ceil(span / 60));
  const counts = new Map(series.map((p) => [p.minute_ms, p.readings]));
  const points = [];
  for (let t = end - (span - 1) * minute; t <= end; t += step * minute) {
    let value = 0;
    for (let k = 0; k < step; k += 1) value += counts.get(t + k * minute) || 0;
    points.push({ t, value: Math.round((value / step) * 10) / 10 });
  }
  return points;
}

function render(el, health, devices, reasons, now) {
  const d = health.devices;
  el.querySelector(".fleet-kpis").innerHTML = `
    <div class="card kpis">
      <div class="kpi" data-testid="devices-online"><label>Devices online</label>
        <strong>${num(d.online)} <span class="dim">/ ${num(d.active)}</span></strong>
        <small>${d.never_seen ? `${d.never_seen} never seen · ` : ""}${d.revoked} revoked · ${d.total} registered</small></div>
      <div class="kpi" data-testid="arrival-rate"><label title="Counted by when each reading reached the gateway, not by the time the device put in it">Readings per minute</label><strong>${num(health.arrivals_per_minute_avg, 1)}</strong>
        <small>by arrival time, ${esc(rangeLabel(health.minutes))}</small></div>
      <div class="kpi"><label>Rejected, last ${esc(RANGES[health.minutes] || `${health.minutes} min`)}</label><strong class="${health.rejects_total ? "bad-text" : ""}">${num(health.rejects_total)}</strong>
        <small>${health.rejects.slice(0, 2).map((r) => `<a href="${quarantineHref(r.reason)}">${esc(r.reason.replace(/_/g, " "))} ${r.count}</a>`).join(" · ") || "none"}</small></div>
      <div class="kpi"><label>Rejected, all time</label><strong>${num(reasons.total)}</strong>
        <small>kept in quarantine with their bytes</small></div>
    </div>`;

  el.querySelector(".loss").innerHTML = lossTable(health.loss);

  const span = health.minutes;
  const label = (t) => new Date(t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  const unit = span > 60 ? "readings per minute (average)" : "readings";
  el.querySelector(".rpm-note").textContent = `by arrival time (the gateway's clock), ${rangeLabel(span)}`;
  el.querySelector(".rpm").innerHTML = columns(perMinute(health.arrivals_per_minute, now, span), { color: "#4a86c5", unit, label });
  el.querySelector(".rpm-device").innerHTML = columns(perMinute(health.readings_per_minute, now, span), {
    color: "#9db8d6",
    unit,
    label,
    height: 120,
  });

  const recent = new Map(health.rejects.map((r) => [r.reason, r.count]));
  el.querySelector(".rejects").innerHTML = reasons.reasons.length
    ? `${hbars(reasons.reasons.map((r) => ({ label: r.reason.replace(/_/g, " "), value: r.count, href: quarantineHref(r.reason) })))}
       <p class="muted small">In the last ${esc(rangeLabel(health.minutes).replace(/^over the last /, ""))}: ${
         [...recent].map(([r, n]) => `<a href="${quarantineHref(r)}">${esc(r.replace(/_/g, " "))} ${n}</a>`).join(", ") || "none"
       }.</p>`
    : `<p class="empty">Nothing rejected: every message verified.</p>`;

  el.querySelector(".devices-note").textContent =
    d.total > devices.items.length ? `offline first · the first ${devices.items.length} of ${d.total} by id` : "offline first";
  const rows = [...devices.items].sort((a, b) => Number(a.online) - Number(b.online) || a.id.localeCompare(b.id));
  el.querySelector(".devices").innerHTML = `
    <table class="table">
      <thead><tr><th></th><th>Device</th><th>Asset</th><th>Kind</th><th>Key</th><th>Last seen</th>
        <th class="num">Readings</th><th class="num">Quarantined</th><th class="num">Duplicates</th><th class="num">Last seq</th></tr></thead>
      <tbody>${rows
        .map(
          (v) => `<tr class="${v.online ? "" : "offline"}">
          <td><i class="state ${v.status === "revoked" ? "revoked" : v.online ? "on" : "off"}" title="${v.status === "revoked" ? "revoked" : v.online ? "online" : "offline"}"></i></td>
          <td><code>${esc(v.id)}</code></td><td>${esc(v.asset)}</td><td>${esc(KIND_LABEL[v.kind] || v.kind)}</td>
          <td><span class="alg">${esc(v.alg)}</span> ${hexHTML(v.public_key, { head: 6, tail: 4 })}</td>
          <td data-seen="${v.last_seen_ms ?? ""}">${esc(ago(v.last_seen_ms))}</td>
          <td class="num">${num(v.readings)}</td><td class="num ${v.quarantined ? "bad-text" : ""}">${num(v.quarantined)}</td>
          <td class="num">${num(v.duplicates)}</td><td class="num">${num(v.last_seq)}</td></tr>`,
        )
        .join("")}</tbody>
    </table>`;
}

function rangeLabel(span) {
  return `over the last ${RANGES[span] || `${span} min`}`;
}

function seqRanges(ranges) {
  return ranges.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
}

function lossTable(loss) {
  if (!loss.length) return `<p class="empty">None: every active device is reporting and no signed reading is missing.</p>`;
  return `
    <table class="table">
      <thead><tr><th>State</th><th>Device</th><th>Asset</th><th class="num">Missing</th><th>Missing seqs</th>
        <th class="num">Waiting</th><th class="num">Chain head</th><th>Last seen</th></tr></thead>
      <tbody>${loss
        .map(
          (d) => `<tr data-loss="${esc(d.state)}">
          <td><strong class="bad-text">${d.state === "stalled" ? "stalled" : "silent"}</strong></td>
          <td><code>${esc(d.device_id)}</code></td><td>${esc(d.asset)}</td>
          <td class="num">${num(d.missing)}</td><td>${esc(seqRanges(d.missing_ranges)) || "—"}</td>
          <td class="num">${num(d.waiting)}</td><td class="num">${num(d.head_seq)}</td>
          <td data-seen="${d.last_seen_ms ?? ""}">${esc(ago(d.last_seen_ms))}</td></tr>`,
        )
        .join("")}</tbody>
    </table>
    <p class="muted small">Stalled: the device's chain shows readings it signed that the gateway cannot accept until
    the missing ones arrive (or the device is resynchronised: <code>assetproof devices resync</code>).</p>`;
}
