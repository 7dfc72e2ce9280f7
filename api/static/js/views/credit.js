// Asset-credit view, for a lender: an asset's attested net cash flow per anchored epoch, the
// distributions funded against it, coverage (cumulative net over cumulative funded) and the
// debt-service coverage ratio of a schedule of distributions (each epoch's net over the amount
// scheduled for it; by default the mean funded amount). The nets are anchored: each is provable
// against the chain with /v1/assets/{name}/epochs/{n}/totals-proof.

import { get } from "../api.js";
import { esc, moneyHTML, num } from "../format.js";

let asset = "";
let scheduled = "";
let lastKey = null;

export function mount(el) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Asset credit</h1>
        <p class="lede">Finance an asset on its devices' attested cash flow: net per anchored epoch, the distributions
        funded against it, and how well the net covers a schedule of payments.</p>
      </div>
    </div>
    <div class="card">
      <form class="verify-form credit-form">
        <div class="row">
          <label>Asset <select name="asset"></select></label>
          <label class="narrow">Scheduled per epoch (minor units) <input name="scheduled" type="number" min="1" placeholder="mean funded" /></label>
          <button type="submit" class="primary">Show</button>
        </div>
      </form>
    </div>
    <div class="credit"></div>`;
  el.querySelector(".credit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.target;
    asset = form.asset.value;
    scheduled = form.scheduled.value.trim();
    lastKey = null;
    refresh(el);
  });
}

export function route(el, ctx) {
  const [given] = ctx.route;
  if (given) asset = given;
}

function ratio(x) {
  return x === null || x === undefined ? "—" : `${num(x, 2)}×`;
}

export async function refresh(el) {
  const assets = await get("/v1/assets");
  const select = el.querySelector(".credit-form select");
  const names = assets.items.map((a) => a.name);
  if (!names.includes(asset)) asset = names[0] || "";
  if (select.options.length !== names.length) {
    select.innerHTML = names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join("");
  }
  select.value = asset;
  if (!asset) {
    el.querySelector(".credit").innerHTML = `<div class="card empty">No assets yet.</div>`;
    return;
  }
  const credit = await get(`/v1/assets/${encodeURIComponent(asset)}/credit`, { scheduled: scheduled || null });
  const key = JSON.stringify(credit);
  if (key === lastKey) return;
  lastKey = key;
  el.querySelector(".credit").innerHTML = creditHTML(credit);
}

function creditHTML(c) {
  const cur = c.currency || "HKD";
  const rows = c.epochs
    .slice()
    .reverse()
    .map(
      (e) => `
      <tr data-epoch="${e.epoch}">
        <td>${num(e.epoch)}</td>
        <td class="num" data-field="net">${moneyHTML(e.net, cur)}</td>
        <td class="num">${e.funded === null ? '<span class="muted">—</span>' : moneyHTML(e.funded, cur)}</td>
        <td class="num" data-field="dscr">${ratio(e.dscr)}</td>
      </tr>`,
    )
    .join("");
  return `
    <div class="card" data-credit="${esc(c.asset)}">
      <div class="kpis">
        <div class="kpi"><label>Attested net</label><strong data-testid="cumulative-net">${moneyHTML(c.cumulative_net, cur)}</strong>
          <small>${num(c.positive_epochs)} of ${num(c.epochs.length)} epochs positive</small></div>
        <div class="kpi"><label>Coverage</label><strong data-testid="coverage">${ratio(c.coverage)}</strong>
          <small>net over ${moneyHTML(c.total_funded, cur)} distributed</small></div>
        <div class="kpi"><label>DSCR</label><strong data-testid="dscr-mean">${ratio(c.dscr_mean)}</strong>
          <small>minimum ${ratio(c.dscr_min)} · scheduled ${c.scheduled === null ? "—" : moneyHTML(c.scheduled, cur)} per epoch</small></div>
      </div>
      ${
        c.epochs.length
          ? `<div class="scroll"><table class="table credit-table">
        <thead><tr><th>Epoch</th><th class="num">Attested net</th><th class="num">Distributed</th><th class="num">DSCR</th></tr></thead>
        <tbody>${rows}</tbody></table></div>`
          : '<p class="muted">No anchored epoch yet.</p>'
      }
    </div>`;
}
