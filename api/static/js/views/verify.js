// Verify view: pick a reading (or name one, or open a bundle file), fetch its proof bundle and
// check it in this browser against the chain the user pinned (pin.js): the panel at the top shows
// which RPC URL and registries the checks use and where each came from, and edits the setting.

import { ApiError, bundleURL, currency as currencyOf, get } from "../api.js";
import { ago, esc, hexHTML, moneyHTML, num, time } from "../format.js";
import { chainTarget, clearSaved, FIELDS, loadSaved, save, SOURCE_TEXT } from "../pin.js";
import { CHECKS, verifyBundle } from "../verify.js";

const RECENT = 40;
let lastKey = null;
let currency = "HKD";

export function mount(el, ctx) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Verify a reading yourself</h1>
        <p class="lede">Fetch a reading's proof bundle and check it here, with this browser's own cryptography and
        the chain asked directly by this page, not through the API: the leaf and its inclusion proof, the checkpoint
        the AnchorRegistry holds, the epoch metadata against its anchored metaHash, and the signature under the key
        the DeviceRegistry holds for the device at the anchor's chain time.</p>
      </div>
    </div>
    <div class="card chain-pin" data-testid="chain-pin"></div>
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
        <p class="small muted bundle-file">Or check a bundle file you hold: <input type="file" name="bundle" accept=".json,application/json" /></p>
        <div class="result" aria-live="polite">${intro()}</div>
      </div>
      <div class="card recent-card">
        <h2>Recent readings</h2>
        <div class="recent"></div>
      </div>
    </div>`;
  drawPin(el, ctx);
  el.querySelector(".bundle-file input").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    let bundle;
    try {
      bundle = JSON.parse(await file.text());
    } catch (err) {
      showError(el, `${file.name} is not JSON: ${err.message}`);
      return;
    }
    routed = "";
    check(el, ctx, bundle, { file: file.name });
  });
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
  leaf: "SHA-256(0x00 ‖ message): the leaf the Merkle log holds for this reading.",
  inclusion: "The RFC 6962 audit path from that leaf up to the checkpoint's root.",
  checkpoint: "The epoch's Anchored event and block time, confirmed by AnchorRegistry.verifyCheckpoint, and the first checkpoint that included the leaf.",
  metadata: "SHA-256 of the epoch metadata's canonical bytes against the metaHash anchored on chain.",
  device: "DeviceRegistry.device and profile: the algorithm, kind and reporting window the registrar registered.",
  signature: "The Ed25519 or ECDSA P-256 signature with WebCrypto, under the key the DeviceRegistry holds (never the key the bundle names).",
  key: "DeviceRegistry.acceptsReading: the key counts for a reading of this date anchored at that chain time.",
};

function intro() {
  return `<div class="intro"><p>Pick a reading from the list, or name one above. These checks run in this browser:</p>
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
  await check(el, ctx, bundle, { which, reading });
}

async function check(el, ctx, bundle, { which = null, reading = null, file = null }) {
  const result = el.querySelector(".result");
  result.innerHTML = `<div class="placeholder">Checking the bundle against the chain…</div>`;
  const target = chainTarget(ctx.chain);
  let outcome;
  try {
    outcome = await verifyBundle(bundle, {
    target,
    recordedLeaf: reading?.leaf_hash ?? null,
    apiCheckpoint: async (epoch) => {
      try {
        const e = await get(`/v1/epochs/${epoch}`);
        return e.status === "anchored" ? { root: e.root, tree_size: e.leaves_to, meta_hash: e.meta_hash } : null;
      } catch {
        return null;
      }
    },
    apiMetadata: async (epoch) => get(`/v1/export/epoch-${String(epoch).padStart(6, "0")}/metadata.json`),
  });
  } catch (err) {
    showError(el, `the bundle could not be checked: ${err.message}`);
    return;
  }
  const v = outcome.verdict;
  const b = outcome.decoded;
  const name = file ?? (which.logIndex !== undefined ? `log index ${which.logIndex}` : `${which.device} #${which.seq}`);
  const download = which ? bundleURL(which) : null;
  // Only a verdict on the user's own chain is green; the stylesheet's amber is "incomplete".
  const css = { verified: "verified", failed: "failed", pending: "pending" }[v.kind] ?? "incomplete";
  const chip = { api: "not checked against the chain", unpinned: "chain named by the API, not pinned by you" }[v.kind];
  result.innerHTML = `
    <div class="verdict ${css}" data-verdict="${v.title}" data-kind="${v.kind}" data-failed="${v.failed.join(" ")}">
      <div class="verdict-title"><span class="verdict-icon">${v.kind === "verified" ? "✓" : v.kind === "failed" ? "✗" : "!"}</span>
        <strong>${esc(v.title)}</strong>${chip ? `<span class="chip warn">${esc(chip)}</span>` : ""}<span class="muted">${esc(name)}</span></div>
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
    <p class="small muted" data-testid="checked-against">${esc(checkedAgainst(outcome))}${download ? ` <a href="${download}" download>Download this bundle</a>.` : ""}</p>`;
}

function checkedAgainst(outcome) {
  const t = outcome.target;
  if (!outcome.chain) return "Nothing was read from the chain.";
  const origin = (f) => SOURCE_TEXT[t[f].source];
  return `Read from chain ${outcome.chain.chainId} at ${t.rpc.value} (${origin("rpc")}): AnchorRegistry ${t.anchor.value} (${origin("anchor")}), DeviceRegistry ${t.devices.value} (${origin("devices")}).`;
}

/** The chain settings panel: what the checks use, where each value came from, and the user's setting. */
function drawPin(el, ctx) {
  const box = el.querySelector(".chain-pin");
  const target = chainTarget(ctx.chain);
  const saved = loadSaved();
  const rows = FIELDS.map(
    ([f, label]) => `<tr data-pin="${f}" data-source="${target[f].source}"><th>${esc(label)}</th>
      <td><code>${esc(target[f].value ?? "none")}</code></td>
      <td><span class="chip ${target[f].source === "link" || target[f].source === "saved" ? "ok" : "warn"}">${esc(SOURCE_TEXT[target[f].source])}</span></td></tr>`,
  ).join("");
  box.innerHTML = `
    <h2>The chain these checks read</h2>
    <table class="table compact"><tbody>${rows}</tbody></table>
    <p class="small ${target.pinned ? "muted" : "bad-text"}" data-testid="pin-state">${
      target.pinned
        ? "Pinned by you: compare these with your own deployment file (or your auditor's) before trusting a VERIFIED."
        : "Not pinned: a reading cannot be VERIFIED against a node or contracts the API names. Pin your own below, from your deployment file, or open a link with ?rpc=…&amp;anchor=…&amp;devices=…"
    }${target.refused.length ? ` Ignored malformed link values: ${esc(target.refused.join(", "))}.` : ""}</p>
    <form class="pin-form inline">
      ${FIELDS.map(([f, label]) => `<label>${esc(label)} <input name="${f}" value="${esc(saved[f] ?? "")}" placeholder="${f === "rpc" ? "http://127.0.0.1:8545" : "0x…"}" autocomplete="off" /></label>`).join("")}
      <button type="submit">Save in this browser</button>
      <button type="button" class="ghost clear-pin">Forget</button>
    </form>
    <p class="small muted pin-message"></p>`;
  const form = box.querySelector(".pin-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const bad = save(Object.fromEntries(FIELDS.map(([f]) => [f, form[f].value.trim()])));
    if (bad.length) {
      box.querySelector(".pin-message").textContent = `Not saved: ${bad.join(", ")} malformed (an http(s) URL; 0x and 40 hex digits).`;
      return;
    }
    drawPin(el, ctx);
    box.querySelector(".pin-message").textContent = "Saved in this browser. Verify again to use it.";
  });
  box.querySelector(".clear-pin").addEventListener("click", () => {
    clearSaved();
    drawPin(el, ctx);
  });
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
