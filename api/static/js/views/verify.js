// Verify view: pick a reading (or name one), fetch its proof bundle and check it in this browser.

import { ApiError, bundleURL, currency as currencyOf, get } from "../api.js";
import { ago, esc, hexHTML, moneyHTML, num, time } from "../format.js";
import { CHECKS, verifyBundle } from "../verify.js";

const RECENT = 40;
let lastKey = null;
let currency = "HKD";

export function mount(el, ctx) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Verify a reading yourself</h1>
        <p class="lede">Fetch a reading's proof bundle and check it here, with this browser's own cryptography: the device's
        signature, the leaf hash, the Merkle inclusion proof up to the checkpoint root, and that root against the
        chain${ctx.chain.rpc_url ? " (asked directly by this page, not through the API)" : ""}.</p>
      </div>
    </div>
    <div class="grid verify-grid">
      <div class="card verify-card">
        <form class="verify-form">
          <div class="row">
            <label>Device <input name="device" placeholder="evc-kowloon-hub-0001" autocomplete="off" /></label>
            <label class="narrow">Seq <input name="seq" type="number" min="1" placeholder="41" /></label>
            <span class="or">or</span>
            <label class="narrow">Log index <input name="log" type="number" min="0" placeholder="120" /></label>
            <button type="submit" class="primary">Verify</button>
          </div>
        </form>
        <div class="result" aria-live="polite">${intro()}</div>
      </div>
      <div class="card recent-card">
        <h2>Recent readings</h2>
        <div class="recent"></div>
      </div>
    </div>`;
  const form = el.querySelector(".verify-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const log = form.log.value.trim();
    const device = form.device.value.trim();
    const seq = form.seq.value.trim();
    const target = log !== "" ? `#verify/log/${log}` : device && seq ? `#verify/dev/${encodeURIComponent(device)}/${seq}` : null;
    if (target === null) showError(el, "Name a reading: a device and its seq, or a log index.");
    else if (location.hash === target) run(el, ctx, log !== "" ? { logIndex: Number(log) } : { device, seq: Number(seq) });
    else location.hash = target;
  });
  el.querySelector(".recent").addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-device]");
    if (button) location.hash = `#verify/dev/${encodeURIComponent(button.dataset.device)}/${button.dataset.seq}`;
  });
}

const EXPLAIN = {
  message: "The bundle's message is the device's canonical {alg, body, sig} envelope.",
  signature: "The device's Ed25519 or ECDSA P-256 signature over the body bytes, with WebCrypto.",
  leaf: "SHA-256(0x00 ‖ message): the leaf the Merkle log holds for this reading.",
  inclusion: "The RFC 6962 audit path from that leaf up to the checkpoint's root.",
  chain: "AnchorRegistry.verifyCheckpoint on chain, by a JSON-RPC eth_call from this browser.",
};

function intro() {
  return `<div class="intro"><p>Pick a reading from the list, or name one above. Five checks run in this browser:</p>
    <ol class="checks">${CHECKS.map(
      ([id, label]) => `<li class="check-row"><span class="check-icon">${CHECKS.findIndex((c) => c[0] === id) + 1}</span>
        <div><b>${esc(label)}</b><p>${esc(EXPLAIN[id])}</p></div></li>`,
    ).join("")}</ol></div>`;
}

let routed = "";

export function route(el, ctx) {
  const [how, a, b] = ctx.route;
  const key = ctx.route.join("/");
  if (!how || key === routed) return;
  routed = key;
  const form = el.querySelector(".verify-form");
  if (how === "log") {
    form.log.value = a;
    form.device.value = form.seq.value = "";
    run(el, ctx, { logIndex: Number(a) });
  } else if (how === "dev") {
    form.device.value = a;
    form.seq.value = b;
    form.log.value = "";
    run(el, ctx, { device: a, seq: Number(b) });
  }
}

export async function refresh(el) {
  currency = await currencyOf();
  // The API lists readings oldest first, so the newest come from a short recent window, widened
  // only while it holds too few (a quiet fleet, or device clocks behind this browser's).
  let items = [];
  for (const minutes of [2, 15, 120, 1440, null]) {
    const from = minutes === null ? undefined : Date.now() - minutes * 60_000;
    items = (await get("/v1/readings", { from, limit: 200 })).items;
    if (items.length >= RECENT) break;
  }
  items = items.slice(-RECENT).reverse();
  const key = JSON.stringify(items.map((r) => [r.id, r.epoch_status]));
  if (key === lastKey) return;
  lastKey = key;
  el.querySelector(".recent").innerHTML = items.length
    ? `<table class="table compact recent-table"><thead><tr><th>Reading</th><th title="Device time">Time</th><th class="num">Net</th><th>Status</th><th></th></tr></thead>
      <tbody>${items
        .map(
          (r) => `<tr>
          <td><code>${esc(r.device_id)}</code> <span class="muted">#${r.seq}</span></td>
          <td class="muted" title="${esc(time(r.ts_ms))}">${esc(clock(r.ts_ms))}</td>
          <td class="num">${moneyHTML(r.net, currency)}</td>
          <td>${statusChip(r.epoch_status)}</td>
          <td class="actions">${
            r.epoch_status
              ? `<button type="button" class="small" data-device="${esc(r.device_id)}" data-seq="${r.seq}">Verify</button>
                 <a class="small" href="${bundleURL({ device: r.device_id, seq: r.seq })}" download="bundle-${esc(r.device_id)}-${r.seq}.json" title="Download the proof bundle">⤓</a>`
              : `<span class="muted small" title="No proof exists until its epoch closes">no proof yet</span>`
          }</td></tr>`,
        )
        .join("")}</tbody></table>`
    : `<p class="empty">No readings yet.</p>`;
}

const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });

function statusChip(status) {
  if (status === "anchored") return `<span class="chip ok">anchored</span>`;
  if (status) return `<span class="chip warn">${esc(status)}</span>`;
  return `<span class="chip">pending</span>`;
}

function showError(el, text) {
  el.querySelector(".result").innerHTML = `<div class="verdict incomplete"><strong>Cannot verify</strong><p>${esc(text)}</p></div>`;
}

const ICON = { pass: "✓", fail: "✗", warn: "!", pending: "…", error: "?", skip: "–" };

async function run(el, ctx, which) {
  const result = el.querySelector(".result");
  result.innerHTML = `<div class="placeholder">Fetching the proof bundle and checking it…</div>`;
  let bundle;
  try {
    bundle = await get(bundleURL(which));
  } catch (err) {
    const text = err instanceof ApiError && err.reason === "pending" ? `${err.message}.` : err.message;
    showError(el, text);
    return;
  }
  // The log's own record of the reading: its leaf hash as appended, and what it earned.
  let reading = null;
  try {
    const body = JSON.parse(new TextDecoder().decode(Uint8Array.from(bundle.message.match(/../g), (h) => parseInt(h, 16))));
    const detail = await get(`/v1/devices/${encodeURIComponent(bundle.device.id)}/readings/${which.seq ?? body.body.seq}`);
    if (detail.log_index === bundle.leaf_index) reading = detail;
  } catch {
    reading = null; // an unreadable message is reported by the checks themselves
  }
  const outcome = await verifyBundle(bundle, {
    chain: ctx.chain,
    recordedLeaf: reading?.leaf_hash ?? null,
    apiCheckpoint: async (epoch) => {
      try {
        const e = await get(`/v1/epochs/${epoch}`);
        return e.status === "anchored" ? { root: e.root, tree_size: e.leaves_to, meta_hash: e.meta_hash } : null;
      } catch {
        return null;
      }
    },
  });
  const v = outcome.verdict;
  const b = outcome.decoded;
  const name = which.logIndex !== undefined ? `log index ${which.logIndex}` : `${which.device} #${which.seq}`;
  const download = bundleURL(which);
  result.innerHTML = `
    <div class="verdict ${v.kind}" data-verdict="${v.title}" data-failed="${v.failed.join(" ")}">
      <div class="verdict-title"><span class="verdict-icon">${v.kind === "verified" || v.kind === "api" ? "✓" : v.kind === "failed" ? "✗" : "…"}</span>
        <strong>${esc(v.title)}</strong>${v.kind === "api" ? '<span class="chip warn">root via the API, not the chain</span>' : ""}<span class="muted">${esc(name)}</span></div>
      <ul class="why">${v.why.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>
    </div>
    ${outcome.notice ? `<div class="notice" data-testid="root-source">${esc(outcome.notice).replace(/`([^`]+)`/g, "<code>$1</code>")}</div>` : ""}
    <ol class="checks">
      ${CHECKS.map(([id]) => {
        const c = outcome.checks[id];
        return `<li class="check-row ${c.status}" data-check="${id}" data-status="${c.status}">
          <span class="check-icon">${ICON[c.status]}</span><div><b>${esc(c.label)}</b><p>${esc(c.detail || "not checked")}</p></div></li>`;
      }).join("")}
    </ol>
    ${
      b
        ? `<p class="facts-title${v.kind === "failed" ? " bad" : ""}">${
            v.kind === "failed" ? "What the message claims: do not rely on it, it failed the checks above." : "The reading, as the device signed it:"
          }</p>${readingFacts(b, reading, bundle)}`
        : ""
    }
    <p class="small muted">Signature checked with the key the bundle names; <code>assetproof verify</code> also reads the key the
      chain's DeviceRegistry held at the reading's time. <a href="${download}" download>Download this bundle</a>.</p>`;
}

function readingFacts(body, reading, bundle) {
  const metrics = Object.entries(body.metrics || {})
    .map(([k, v]) => `<span class="metric"><span class="muted">${esc(k)}</span> ${num(v)}</span>`)
    .join("");
  const anchor = bundle.anchor;
  const fact = (label, value) => `<div><label>${label}</label><div>${value}</div></div>`;
  return `<div class="facts">
    ${fact("Device", `<code>${esc(body.device)}</code> <span class="muted">#${esc(body.seq)} · ${esc(bundle.device.alg)}</span>`)}
    ${fact("Device time", `${esc(time(body.ts_ms))} <span class="muted">· ${esc(ago(body.ts_ms))} · ${esc(body.window_s)} s window</span>`)}
    ${fact("Metrics", `<span class="metrics">${metrics}</span>`)}
    ${
      reading
        ? fact(
            "Earned",
            `${moneyHTML(reading.net, currency)} <span class="muted">= ${moneyHTML(reading.revenue, currency)} revenue − ${moneyHTML(reading.cost, currency)} cost · tariff ${esc(reading.tariff_id)}</span>`,
          )
        : ""
    }
    ${fact("Checkpoint", `epoch ${bundle.checkpoint.epoch} · leaf ${num(bundle.leaf_index)} of ${num(bundle.tree_size)} · root ${hexHTML(bundle.checkpoint.root, { head: 8, tail: 6 })}`)}
    ${fact("Anchor", anchor ? `block ${num(anchor.block_number)} · tx ${hexHTML(anchor.tx_hash, { head: 10, tail: 6 })} · chain ${anchor.chain_id}` : '<span class="muted">not anchored yet</span>')}
  </div>`;
}
