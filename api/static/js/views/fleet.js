// Fleet view for engineers: devices online, readings per minute, rejects by reason, last seen.

import { get } from "../api.js";
import { columns, hbars } from "../charts.js";
import { ago, esc, hexHTML, KIND_LABEL, num } from "../format.js";

const MAX_ROWS = 200;
let lastKey = null;

export function mount(el) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Fleet</h1>
        <p class="lede">Ingest as the gateway sees it: who is online, how fast readings arrive, and why messages were
        refused. Every message is either stored or quarantined with a reason.</p>
      </div>
    </div>
    <div class="fleet-kpis"></div>
    <div class="card" data-testid="loss"><h2>Loss <small class="muted">readings the devices signed that never arrived, and devices gone quiet</small></h2><div class="loss"></div></div>
    <div class="grid two">
      <div class="card"><h2>Readings per minute <small class="muted">device time, last 15 minutes</small></h2><div class="rpm"></div></div>
      <div class="card"><h2>Rejected messages by reason</h2><div class="rejects"></div></div>
    </div>
    <div class="card"><h2>Devices <small class="muted devices-note">offline first</small></h2><div class="devices"></div></div>`;
}

export async function refresh(el) {
  const [health, devices, reasons] = await Promise.all([
    get("/v1/fleet/health", { minutes: 15, devices: 0 }),
    get("/v1/devices", { limit: MAX_ROWS }),
    get("/v1/quarantine/reasons"),
  ]);
  const key = JSON.stringify([health.devices, health.readings_per_minute, health.rejects, health.loss, devices, reasons]);
  const now = health.now_ms;
  if (key !== lastKey) {
    lastKey = key;
    render(el, health, devices, reasons, now);
  }
  // Relative times move on even when nothing else changed; measured on the server's clock.
  for (const cell of el.querySelectorAll("[data-seen]")) {
    cell.textContent = ago(cell.dataset.seen ? Number(cell.dataset.seen) : null, now);
  }
}

function render(el, health, devices, reasons, now) {
  const d = health.devices;
  el.querySelector(".fleet-kpis").innerHTML = `
    <div class="card kpis">
      <div class="kpi" data-testid="devices-online"><label>Devices online</label>
        <strong>${num(d.online)} <span class="dim">/ ${num(d.active)}</span></strong>
        <small>${d.never_seen ? `${d.never_seen} never seen · ` : ""}${d.revoked} revoked · ${d.total} registered</small></div>
      <div class="kpi"><label>Readings per minute</label><strong>${num(health.readings_per_minute_avg, 1)}</strong>
        <small>average over the last ${health.minutes} minutes</small></div>
      <div class="kpi"><label>Rejected, last ${health.minutes} min</label><strong class="${health.rejects_total ? "bad-text" : ""}">${num(health.rejects_total)}</strong>
        <small>${health.rejects.slice(0, 2).map((r) => `${esc(r.reason)} ${r.count}`).join(" · ") || "none"}</small></div>
      <div class="kpi"><label>Rejected, all time</label><strong>${num(reasons.total)}</strong>
        <small>kept in quarantine with their bytes</small></div>
    </div>`;

  el.querySelector(".loss").innerHTML = lossTable(health.loss);

  const minute = 60_000;
  const end = now - (now % minute);
  const counts = new Map(health.readings_per_minute.map((p) => [p.minute_ms, p.readings]));
  const points = [];
  for (let t = end - (health.minutes - 1) * minute; t <= end; t += minute) points.push({ t, value: counts.get(t) || 0 });
  el.querySelector(".rpm").innerHTML = columns(points, {
    color: "#4a86c5",
    unit: "readings",
    label: (t) => new Date(t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" }),
  });

  const recent = new Map(health.rejects.map((r) => [r.reason, r.count]));
  el.querySelector(".rejects").innerHTML = reasons.reasons.length
    ? `${hbars(reasons.reasons.map((r) => ({ label: r.reason.replace(/_/g, " "), value: r.count })))}
       <p class="muted small">All time. In the last ${health.minutes} minutes: ${
         [...recent].map(([r, n]) => `${esc(r.replace(/_/g, " "))} ${n}`).join(", ") || "none"
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
