// Tabs, polling and the header. Each view module has mount(el, ctx), called once, and
// refresh(el, ctx), called when it is shown and then on every poll while it stays shown.
// `?poll=MS` changes the polling period (tests use a short one).

import * as api from "./api.js";
import { esc, hexHTML } from "./format.js";
import { chainTarget } from "./pin.js";
import * as auditor from "./views/auditor.js";
import * as credit from "./views/credit.js";
import * as fleet from "./views/fleet.js";
import * as investor from "./views/investor.js";
import * as portfolio from "./views/portfolio.js";
import * as verify from "./views/verify.js";

const VIEWS = { investor, verify, fleet, auditor, portfolio, credit };
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(500, Number(params.get("poll")) || 4000);

const ctx = { chain: null, route: [], poll: POLL_MS };
const mounted = new Set();
let current = null;
let timer = null;
let generation = 0;

function setLive(state, text) {
  const el = document.getElementById("live");
  el.className = `live ${state}`;
  el.querySelector("span").textContent = text;
  el.title = `${text}. The page asks the API for new figures every few seconds`;
}

function showBanner(text) {
  const el = document.getElementById("banner");
  el.hidden = !text;
  el.textContent = text || "";
}

function chainBadge(chain) {
  const el = document.getElementById("chain-badge");
  if (!chain.anchor_registry) {
    el.innerHTML = "no chain deployment";
    el.className = "badge muted";
  } else if (chain.rpc_url || chainTarget(chain).pinned) {
    // Green only for a chain the user pinned (pin.js): the API's is the operator's word.
    const target = chainTarget(chain);
    el.innerHTML = `chain ${esc(chain.chain_id)} · registry ${hexHTML(target.anchor.value, { head: 6, tail: 4 })}${target.pinned ? " · pinned" : " · not pinned"}`;
    el.className = target.pinned ? "badge ok" : "badge warn";
    el.title = target.pinned
      ? `Checked from this browser against ${target.rpc.value}, pinned by you`
      : `Checked from this browser against ${target.rpc.value}, named by the API: pin your own chain in the Verify view`;
  } else {
    el.innerHTML = `chain ${esc(chain.chain_id)} · no public RPC`;
    el.className = "badge warn";
    el.title = "The chain has no JSON-RPC endpoint this browser can reach: anchored roots come through the API";
  }
}

async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const view = VIEWS[current];
  try {
    await view.refresh(document.getElementById(`view-${current}`), ctx);
    if (mine !== generation) return;
    showBanner("");
    setLive("ok", `live · ${new Date().toLocaleTimeString("en-GB")}`);
  } catch (err) {
    if (mine !== generation) return;
    console.error(err);
    setLive("down", "API unreachable, retrying");
    showBanner(`Could not load figures: ${err.message}`);
  }
  if (mine === generation) timer = setTimeout(refresh, POLL_MS);
}

function route() {
  const [name, ...rest] = location.hash.replace(/^#/, "").split("/");
  const next = VIEWS[name] ? name : "investor";
  ctx.route = rest.map(decodeURIComponent);
  for (const a of document.querySelectorAll("[data-tab]")) a.classList.toggle("active", a.dataset.tab === next);
  for (const section of document.querySelectorAll(".view")) section.hidden = section.dataset.view !== next;
  const el = document.getElementById(`view-${next}`);
  if (!mounted.has(next)) {
    VIEWS[next].mount(el, ctx);
    mounted.add(next);
  }
  VIEWS[next].route?.(el, ctx);
  current = next;
  refresh();
}

async function start() {
  try {
    ctx.chain = await api.chain();
  } catch (err) {
    ctx.chain = { chain_id: null, rpc_url: null, anchor_registry: null, selectors: {}, signatures: {} };
    showBanner(`Chain details unavailable: ${err.message}`);
  }
  chainBadge(ctx.chain);
  window.addEventListener("hashchange", route);
  route();
}

start();
