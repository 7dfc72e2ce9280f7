// Portfolio view: the asset tokens (share and hashrate), each asset's distributions beside its
// attested net per epoch with the yield per token (a hashrate token's per TH/s per day beside the
// hashprice the tariff implies), and an investor's holdings and claimable amounts across assets
// for an address the user enters (kept in this browser: "pinned").
//
// Token figures come from the API, which reads them from the chain: a convenience copy. The
// contract is what pays: it caps each funding at the investors' share of the attested net and
// pays claims pro rata (`assetproof claim`), whatever this page shows.

import { get } from "../api.js";
import { esc, hexHTML, majorUnits, moneyHTML, num, pct } from "../format.js";

const STORAGE_KEY = "assetproof.investor";
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
let lastKey = null;

function savedAddress() {
  try {
    return localStorage.getItem(STORAGE_KEY) || "";
  } catch {
    return "";
  }
}

function pinAddress(address) {
  try {
    if (address) localStorage.setItem(STORAGE_KEY, address);
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage refused (private mode): the address still holds for this page.
  }
}

let address = "";

export function mount(el) {
  address = savedAddress();
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Portfolio</h1>
        <p class="lede">Each asset's token, its distributions beside the attested net of every anchored epoch, and an
        investor's holdings. The chain caps every funding at the investors' share of the attested net and pays the
        claims; these figures are the API's copy of what the chain holds.</p>
      </div>
    </div>
    <div class="card">
      <form class="verify-form investor-form">
        <div class="row">
          <label>Investor address <input name="address" placeholder="0x…" autocomplete="off" spellcheck="false" size="44" /></label>
          <button type="submit" class="primary">Show holdings</button>
          <button type="button" class="forget">Forget</button>
        </div>
      </form>
      <div class="holdings" data-testid="holdings"></div>
    </div>
    <div class="tokens"></div>`;
  const form = el.querySelector(".investor-form");
  form.address.value = address;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = form.address.value.trim();
    if (value && !ADDRESS.test(value)) {
      el.querySelector(".holdings").innerHTML = `<p class="bad-text" data-testid="holdings-error">Not an address: 0x and 40 hex digits.</p>`;
      return;
    }
    address = value;
    pinAddress(address);
    lastKey = null;
    refresh(el);
  });
  el.querySelector(".forget").addEventListener("click", () => {
    address = "";
    form.address.value = "";
    pinAddress("");
    lastKey = null;
    refresh(el);
  });
}

export function route(el, ctx) {
  const [given] = ctx.route;
  if (given && ADDRESS.test(given) && given !== address) {
    address = given;
    el.querySelector(".investor-form").address.value = given;
    lastKey = null;
  }
}

export async function refresh(el) {
  const tokens = await get("/v1/tokens");
  const distributions = await Promise.all(
    tokens.items.map((t) => get(`/v1/tokens/${encodeURIComponent(t.asset)}/distributions`)),
  );
  const holdings = address ? await get(`/v1/investors/${encodeURIComponent(address)}/holdings`) : null;
  const key = JSON.stringify([address, tokens, distributions, holdings]);
  if (key === lastKey) return;
  lastKey = key;
  el.querySelector(".holdings").innerHTML = holdings ? holdingsHTML(holdings, tokens.items) : placeholder();
  el.querySelector(".tokens").innerHTML = tokens.items.length
    ? tokens.items.map((t, i) => tokenCard(t, distributions[i].items)).join("")
    : `<div class="card empty">No asset tokens yet: <code>assetproof token deploy</code> adds one to the deployment file.</div>`;
}

function placeholder() {
  return `<p class="muted">Enter an investor's address to see what it holds and can claim. It is kept in this browser only.</p>`;
}

function currencyOf(tokens) {
  return tokens[0]?.currency || "HKD";
}

function holdingsHTML(holdings, tokens) {
  const currency = currencyOf(tokens);
  if (!holdings.items.length) {
    return `<p class="muted" data-testid="holdings-empty">${hexHTML(holdings.address)} holds no asset token.</p>`;
  }
  const rows = holdings.items
    .map(
      (h) => `
      <tr data-holding="${esc(h.asset)}">
        <td>${esc(h.asset)}</td>
        <td>${esc(h.symbol)} <span class="muted">${esc(h.kind === "hashrate" ? "TH/s" : "shares")}</span></td>
        <td class="num" data-field="balance">${num(h.balance)}</td>
        <td class="num">${pct(h.share, 1)}</td>
        <td class="num" data-field="claimable">${moneyHTML(h.claimable, h.currency)}</td>
        <td class="num" data-field="claimed">${moneyHTML(h.claimed, h.currency)}</td>
        <td>${h.allowed ? '<span class="ok-text">allowlisted</span>' : '<span class="warn-text">not allowlisted</span>'}</td>
      </tr>`,
    )
    .join("");
  return `
    <div class="kpis">
      <div class="kpi"><label>Claimable now</label><strong data-testid="total-claimable">${moneyHTML(holdings.total_claimable, currency)}</strong>
        <small>paid by the token contract: <code>assetproof claim</code></small></div>
      <div class="kpi"><label>Claimed so far</label><strong>${moneyHTML(holdings.total_claimed, currency)}</strong>
        <small>across ${num(holdings.items.length)} asset token(s)</small></div>
    </div>
    <div class="scroll"><table class="table holdings-table">
      <thead><tr><th>Asset</th><th>Token</th><th class="num">Balance</th><th class="num">Share of supply</th>
        <th class="num">Claimable</th><th class="num">Claimed</th><th>Transfers</th></tr></thead>
      <tbody>${rows}</tbody>
    </table></div>`;
}

// A rate can be a fraction of a minor unit (cents per TH/s per day): four significant digits.
function rateHTML(minor, currency) {
  const text = majorUnits(minor, currency).toLocaleString("en", { maximumSignificantDigits: 4 });
  return `<span class="money" title="${esc(`${minor} minor units of ${currency}`)}">${esc(text)} ${esc(currency)}</span>`;
}

function yieldCell(d, token) {
  if (!d.funded) return '<span class="muted">not funded</span>';
  if (token.kind === "hashrate") {
    return `${rateHTML(d.yield_per_th_day, token.currency)} <span class="muted">per TH/s per day</span>`;
  }
  return `${rateHTML(d.yield_per_token, token.currency)} <span class="muted">per token</span>`;
}

function tokenCard(token, epochs) {
  const currency = token.currency;
  const hashrate = token.kind === "hashrate";
  const rows = epochs
    .slice()
    .reverse()
    .map(
      (d) => `
      <tr data-epoch="${d.epoch}">
        <td>${num(d.epoch)}</td>
        <td class="num" data-field="net">${moneyHTML(d.attested_net, currency)}</td>
        <td class="num">${d.cap === null ? "—" : moneyHTML(d.cap, currency)}</td>
        <td class="num" data-field="funded">${d.amount === null ? '<span class="muted">—</span>' : moneyHTML(d.amount, currency)}</td>
        <td class="num">${d.claimed === null ? "—" : moneyHTML(d.claimed, currency)}</td>
        <td class="num" data-field="yield">${yieldCell(d, token)}</td>
        ${hashrate ? `<td class="num" data-field="hashprice">${rateHTML(d.hashprice_per_th_day, currency)} <span class="muted">gross</span></td>` : ""}
      </tr>`,
    )
    .join("");
  return `
    <div class="card token-card" data-token="${esc(token.asset)}">
      <div class="asset-head">
        <h2>${esc(token.asset)} <span class="chip">${esc(hashrate ? "hashrate token" : "share token")}</span></h2>
        <span class="muted">${esc(token.symbol)} · ${hexHTML(token.address)}</span>
      </div>
      <div class="kpis">
        <div class="kpi"><label>Supply</label><strong>${num(token.total_supply)}</strong>
          <small>of ${num(token.max_supply)} ${hashrate ? "TH/s registered" : "shares"}</small></div>
        <div class="kpi"><label>Investors' share</label><strong>${pct(token.investor_share_bps / 10_000, 1)}</strong>
          <small>of the attested net</small></div>
        <div class="kpi"><label>Funded · claimed</label><strong>${moneyHTML(token.total_funded, currency)}</strong>
          <small>${moneyHTML(token.total_claimed, currency)} claimed · dust ${moneyHTML(token.dust, currency)}</small></div>
        <div class="kpi"><label>Cap left</label><strong>${moneyHTML(token.cap, currency)}</strong>
          <small>fundable now; next epoch ${num(token.next_epoch)}</small></div>
      </div>
      ${
        epochs.length
          ? `<div class="scroll"><table class="table distributions-table">
        <thead><tr><th>Epoch</th><th class="num">Attested net</th><th class="num">Cap</th><th class="num">Funded</th>
          <th class="num">Claimed</th><th class="num">Yield</th>${hashrate ? '<th class="num" title="Revenue of 1 TH/s for a day under the epoch\'s tariff, after the pool fee, before power">Hashprice</th>' : ""}</tr></thead>
        <tbody>${rows}</tbody>
      </table></div>`
          : '<p class="muted">No anchored epoch yet.</p>'
      }
    </div>`;
}
