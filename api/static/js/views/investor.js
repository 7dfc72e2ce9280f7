// Investor view: per asset, attested and pending cash flow over time, coverage and uptime, the
// asset-class mix, and which epochs (block, transaction) anchor the figures.

import { get } from "../api.js";
import { cashflowChart, cashflowLegend, COLORS, continuous, donut } from "../charts.js";
import { ago, esc, hexHTML, KIND_LABEL, kwh, moneyHTML, num, pct } from "../format.js";

// The one coverage definition (store/coverage.py, docs/cashflow.md), shown where coverage is.
const COVERAGE_TIP =
  "Coverage = min(1, readings received ÷ readings expected). Each device is expected once per " +
  "its reporting window in every whole hour from its first reading's hour through the newest " +
  "reading's hour of the selection (device time, UTC); silent hours count as expected.";

// The default, 48 hours, holds everything the open-ended demo replays (it starts 12 to 36 hours
// back: demo/options.py), so its figures show from the first minute.
const RANGES = {
  "24h": { label: "24 hours", granularity: "hour", span: 24 * 3_600_000 },
  "48h": { label: "48 hours, hourly", granularity: "hour", span: 48 * 3_600_000 },
  "7d": { label: "7 days", granularity: "day", span: 7 * 86_400_000 },
  "30d": { label: "30 days, daily", granularity: "day", span: 30 * 86_400_000 },
};
let range = "48h";
let lastKey = null;

export function mount(el) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Attested cash flow</h1>
        <p class="lede">What each asset earned, and how much of it is anchored on chain. Solid figures are in epochs whose
        checkpoint the chain holds; hatched ones are still pending.</p>
      </div>
      <div class="segmented" role="group" aria-label="Range">
        ${Object.entries(RANGES)
          .map(([k, r]) => `<button type="button" data-range="${k}" class="${k === range ? "on" : ""}">${esc(r.label)}</button>`)
          .join("")}
      </div>
    </div>
    <div class="summary"></div>
    <div class="assets"></div>`;
  el.querySelector(".segmented").addEventListener("click", (ev) => {
    const key = ev.target.closest("button")?.dataset.range;
    if (!key || key === range) return;
    range = key;
    for (const b of el.querySelectorAll("[data-range]")) b.classList.toggle("on", b.dataset.range === key);
    lastKey = null;
    refresh(el);
  });
}

export async function refresh(el) {
  const r = RANGES[range];
  const now = Date.now();
  const from = now - r.span;
  const [assets, epochs] = await Promise.all([get("/v1/assets"), get("/v1/epochs", { limit: 200 })]);
  const flows = await Promise.all(
    assets.items.map((a) => get(`/v1/assets/${encodeURIComponent(a.name)}/cashflow`, { granularity: r.granularity, from })),
  );
  const key = JSON.stringify([range, assets, epochs, flows]);
  if (key === lastKey) return; // nothing new: keep the DOM (and any open tooltip) as it is
  lastKey = key;
  const currency = flows.find((f) => f.currency)?.currency || "HKD";
  el.querySelector(".summary").innerHTML = summary(assets, epochs.items, flows, currency);
  el.querySelector(".assets").innerHTML = assets.items.length
    ? assets.items.map((a, i) => assetCard(a, flows[i], epochs.items, currency, r.granularity, now)).join("")
    : `<div class="card empty">No assets yet: provision devices with <code>assetproof devices provision</code>.</div>`;
  applyStyles(el);
}

// Colours and widths go through the CSSOM, not style="" attributes: the page's CSP refuses
// inline styles (style-src 'self'), and a value set here is never parsed as CSS text.
function applyStyles(root) {
  for (const e of root.querySelectorAll("[data-color]")) e.style.background = e.dataset.color;
  for (const e of root.querySelectorAll("[data-width]")) e.style.width = `${e.dataset.width}%`;
}

function summary(assets, epochs, flows, currency) {
  const sum = (f) => flows.reduce((n, x) => n + f(x.totals), 0);
  const attNet = sum((t) => t.attested.net);
  const attRev = sum((t) => t.attested.revenue);
  const attCost = sum((t) => t.attested.cost);
  const penNet = sum((t) => t.pending.net);
  const penReadings = sum((t) => t.pending.readings);
  const readings = sum((t) => t.readings);
  const expected = sum((t) => t.expected_readings);
  const uptimeWeighted = flows.reduce((n, x) => n + x.totals.uptime * x.totals.expected_readings, 0);
  const latest = epochs.find((e) => e.status === "anchored");
  const waiting = epochs.filter((e) => e.status !== "anchored").length;

  const byKind = new Map();
  assets.items.forEach((a, i) => {
    const k = byKind.get(a.kind) || { kind: a.kind, assets: 0, devices: 0, revenue: 0 };
    k.assets += 1;
    k.devices += a.devices;
    k.revenue += flows[i].totals.revenue;
    byKind.set(a.kind, k);
  });
  const kinds = [...byKind.values()].sort((a, b) => b.revenue - a.revenue);
  const totalRevenue = kinds.reduce((n, k) => n + k.revenue, 0);
  const devices = kinds.reduce((n, k) => n + k.devices, 0);
  const slices = kinds.map((k) => ({
    label: k.kind,
    value: totalRevenue ? k.revenue : k.devices,
    color: COLORS.kinds[k.kind] || "#999",
    title: `${KIND_LABEL[k.kind] || k.kind}: ${k.assets} asset(s), ${k.devices} devices`,
  }));

  return `
    <div class="card kpis">
      <div class="kpi">
        <label>Attested net</label>
        <strong>${moneyHTML(attNet, currency)}</strong>
        <small>revenue ${moneyHTML(attRev, currency)} − cost ${moneyHTML(attCost, currency)}</small>
      </div>
      <div class="kpi">
        <label><i class="swatch hatched"></i>Pending net</label>
        <strong class="pending-figure">${moneyHTML(penNet, currency)}</strong>
        <small>${num(penReadings)} readings not yet anchored</small>
      </div>
      <div class="kpi">
        <label title="${esc(COVERAGE_TIP)}">Coverage · uptime</label>
        <strong>${expected ? pct(Math.min(1, readings / expected)) : "—"} <span class="dim">·</span> ${expected ? pct(uptimeWeighted / expected) : "—"}</strong>
        <small>${num(readings)} of ${num(expected)} expected readings</small>
      </div>
      <div class="kpi" data-testid="latest-checkpoint" data-epoch="${latest ? latest.number : ""}">
        <label>Latest anchor</label>
        ${
          latest
            ? `<strong>epoch ${latest.number}</strong>
               <small>block ${num(latest.block_number)} · tx ${hexHTML(latest.tx_hash)} · ${esc(ago(latest.anchored_ms))}</small>`
            : `<strong class="dim">none yet</strong><small>no checkpoint anchored</small>`
        }
        ${waiting ? `<small class="warn-text">${waiting} closed epoch(s) awaiting anchor</small>` : ""}
      </div>
    </div>
    <div class="card mix">
      <h2>Asset-class mix</h2>
      <div class="mix-body">
        ${donut(slices, { size: 124, thickness: 18, center: `${assets.items.length}`, sub: assets.items.length === 1 ? "asset" : "assets" })}
        <ul class="mix-legend">
          ${kinds
            .map(
              (k) => `<li><i class="dot" data-color="${COLORS.kinds[k.kind] || "#999"}"></i>
              <span class="mix-name">${esc(KIND_LABEL[k.kind] || k.kind)}</span>
              <span class="mix-share">${totalRevenue ? pct(k.revenue / totalRevenue) : "—"}</span>
              <small>${k.assets} asset${k.assets === 1 ? "" : "s"} · ${k.devices} device${k.devices === 1 ? "" : "s"}</small></li>`,
            )
            .join("")}
        </ul>
      </div>
      <small class="muted">Share of revenue in the range; ${devices} devices in all.</small>
    </div>`;
}

function meter(ratio) {
  const v = Math.max(0, Math.min(1, ratio || 0));
  return `<span class="meter" title="${pct(v, 1)}"><span data-width="${(v * 100).toFixed(1)}"></span></span>`;
}

function assetCard(asset, flow, epochs, currency, granularity, now) {
  const t = flow.totals;
  const series = continuous(flow.buckets, granularity, now);
  const mine = epochs.filter((e) => e.metadata?.assets?.[asset.name]);
  const latest = mine.find((e) => e.status === "anchored");
  const rows = mine.slice(0, 4);
  const color = COLORS.kinds[asset.kind] || "#999";
  return `
  <article class="card asset" data-asset="${esc(asset.name)}">
    <header class="asset-head">
      <i class="dot" data-color="${color}"></i>
      <h2>${esc(asset.name)}</h2>
      <span class="chip">${esc(KIND_LABEL[asset.kind] || asset.kind)}</span>
      <span class="muted">${asset.devices} devices${asset.revoked_devices ? ` · ${asset.revoked_devices} revoked` : ""}${
        asset.description ? ` · ${esc(asset.description)}` : ""
      }</span>
    </header>
    <div class="asset-body">
      <div class="asset-chart">
        ${
          series.length
            ? `${cashflowChart(series, { currency, granularity })}${cashflowLegend()}`
            : `<div class="empty-chart">No readings in this range yet.</div>`
        }
      </div>
      <aside class="asset-side">
        <div class="figures">
          <div class="fig main"><label>Net, attested</label><strong>${moneyHTML(t.attested.net, currency)}</strong>
            <small>${kwh(t.energy_wh)} · ${num(t.readings)} readings</small></div>
          <div class="fig"><label>Revenue</label><span>${moneyHTML(t.attested.revenue, currency)}</span></div>
          <div class="fig"><label>Cost</label><span>${moneyHTML(t.attested.cost, currency)}</span></div>
          <div class="fig pending-col"><label><i class="swatch hatched"></i>Pending net</label><span>${moneyHTML(t.pending.net, currency)}</span>
            <small>${num(t.pending.readings)} readings not anchored</small></div>
          <div class="fig"><label title="${esc(COVERAGE_TIP)}">Coverage</label><span>${pct(t.coverage)}</span>${meter(t.coverage)}</div>
          <div class="fig"><label>Uptime</label><span>${pct(t.uptime)}</span>${meter(t.uptime)}</div>
        </div>
        <div class="anchoring">
          ${
            latest
              ? `<p><span class="chip ok">anchored</span> through epoch <b>${latest.number}</b> · block <b>${num(latest.block_number)}</b>
                 · tx ${hexHTML(latest.tx_hash)} <span class="muted">${esc(ago(latest.anchored_ms))}</span></p>`
              : `<p><span class="chip">pending</span> no epoch holding this asset's readings is anchored yet</p>`
          }
          ${
            rows.length
              ? `<table class="mini">
            <thead><tr><th>Epoch</th><th class="num">Readings</th><th class="num">Net</th><th class="num">Block</th><th>Transaction</th></tr></thead>
            <tbody>${rows
              .map((e) => {
                const a = e.metadata.assets[asset.name];
                const where =
                  e.status === "anchored"
                    ? `<td class="num">${num(e.block_number)}</td><td>${hexHTML(e.tx_hash)}</td>`
                    : `<td colspan="2"><span class="chip warn">${esc(e.status)}: awaiting anchor</span></td>`;
                return `<tr><td>${e.number}</td><td class="num">${num(a.readings)}</td><td class="num">${moneyHTML(a.net, currency)}</td>${where}</tr>`;
              })
              .join("")}</tbody></table>
            ${mine.length > rows.length ? `<p class="muted small more"><a href="#auditor">${mine.length - rows.length} earlier epoch(s) in the Auditor view</a></p>` : ""}`
              : ""
          }
        </div>
      </aside>
    </div>
  </article>`;
}
