// Auditor view: the anchored checkpoints, each read from the chain by this browser (the epoch's
// Anchored event and block, confirmed by AnchorRegistry.verifyCheckpoint) and compared with what
// the API lists, each epoch's metadata hashed against its anchored metaHash, and each checkpoint
// checked against its predecessor (an RFC 9162 consistency proof between the roots ON CHAIN,
// verified with WebCrypto SHA-256); with the export files and proof bundles to take away.
// This is not an audit: the summary names what it checked and what only `assetproof audit` does.

import { bundleURL, get } from "../api.js";
import { ago, esc, hexHTML, num, time } from "../format.js";
import { bytesToHex, hexToBytes, sha256, verifyConsistency } from "../merkle.js";
import { anchoredCheckpoint, ChainMismatch } from "../onchain.js";
import { chainTarget, cspRefusal, SOURCE_TEXT, unpinnedReason } from "../pin.js";
import { Revert } from "../rpc.js";
import { canonicalJson } from "../verify.js";

const SHOWN = 25;
const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB");
const onChain = new Map(); // `${epoch}:${root}` -> {ok, detail}
const consistent = new Map(); // `${from}:${to}:${root1}:${root2}` -> {ok, detail}
const metaChecked = new Map(); // `${epoch}:${metaHash}` -> {ok, detail}
let lastKey = null;

export function mount(el) {
  el.innerHTML = `
    <div class="view-head">
      <div>
        <h1>Checkpoints</h1>
        <p class="lede">Every anchored checkpoint, checked here: the chain must hold exactly it, and each must extend the
        one before (an RFC 9162 consistency proof, verified in this browser). Take the export files and bundles to
        <code>assetproof audit</code> and <code>assetproof verify</code> to check everything else.</p>
      </div>
    </div>
    <div class="audit-summary"></div>
    <div class="card"><div class="checkpoints"></div></div>
    <div class="grid two">
      <div class="card">
        <h2>Proof bundle of any reading</h2>
        <form class="bundle-form inline">
          <label>Log index <input name="log" type="number" min="0" required placeholder="e.g. 41" /></label>
          <button type="submit">Download bundle</button>
          <a class="button ghost verify-link" href="#verify">Verify in the browser</a>
        </form>
        <p class="muted small">The JSON file <code>assetproof verify bundle.json --rpc URL</code> takes.</p>
      </div>
      <div class="card"><h2>Awaiting anchor</h2><div class="waiting"></div></div>
    </div>`;
  const form = el.querySelector(".bundle-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const log = form.log.value;
    const a = document.createElement("a");
    a.href = bundleURL({ logIndex: log });
    a.download = `bundle-${log}.json`;
    a.click();
  });
  form.log.addEventListener("input", () => {
    el.querySelector(".verify-link").href = form.log.value ? `#verify/log/${form.log.value}` : "#verify";
  });
}

/** Epoch e as the chain holds it, compared with the API's listing: {ok, detail, held}. */
async function checkOnChain(target, e) {
  const key = `${target.rpc.value}:${target.anchor.value}:${e.number}:${e.root}`;
  if (onChain.has(key)) return onChain.get(key);
  let result;
  if (!target.rpc.value || !target.anchor.value) {
    return { ok: null, detail: "no RPC URL or AnchorRegistry known: not checked on chain" };
  }
  const refusal = await cspRefusal(target.rpc.value);
  if (refusal) return { ok: null, detail: `not checked on chain: ${refusal}` };
  try {
    const held = await anchoredCheckpoint(target.rpc.value, target.anchor.value, e.number);
    const differ = [];
    if (held.treeSize !== e.leaves_to) differ.push(`tree size (chain: ${held.treeSize})`);
    if (held.root !== e.root) differ.push("root");
    if (held.metaHash !== e.meta_hash) differ.push("metaHash");
    if (held.blockNumber !== e.block_number) differ.push(`block (chain: ${held.blockNumber})`);
    result = differ.length
      ? { ok: false, detail: `the API lists another checkpoint than the chain holds: ${differ.join(", ")} differ`, held }
      : { ok: true, detail: `Anchored event in block ${held.blockNumber}, verifyCheckpoint true`, held };
  } catch (err) {
    if (err instanceof Revert && err.error === "UnknownEpoch") {
      result = { ok: false, detail: `the API lists epoch ${e.number} as anchored; the chain has no such epoch` };
    } else if (err instanceof ChainMismatch) {
      result = { ok: false, detail: err.message };
    } else {
      return { ok: null, detail: `chain unreachable: ${err.message}` }; // not cached: try again on the next poll
    }
  }
  onChain.set(key, result);
  return result;
}

/** SHA-256 of the epoch's metadata (from the API's export) against the metaHash the chain holds. */
async function checkMetadata(e, chainCheck) {
  if (!chainCheck.held) return { ok: null, detail: "no anchored metaHash read from the chain" };
  const key = `${e.number}:${chainCheck.held.metaHash}`;
  if (metaChecked.has(key)) return metaChecked.get(key);
  let result;
  try {
    const metadata = await get(`/v1/export/epoch-${String(e.number).padStart(6, "0")}/metadata.json`);
    const hash = bytesToHex(await sha256(new TextEncoder().encode(canonicalJson(metadata))));
    result = hash === chainCheck.held.metaHash
      ? { ok: true, detail: "SHA-256 of the canonical metadata is the anchored metaHash" }
      : { ok: false, detail: `metaHash mismatch: the metadata the API serves hashes to ${hash.slice(0, 10)}…, not to the anchored one` };
  } catch (err) {
    return { ok: null, detail: `metadata not checked: ${err.message}` };
  }
  metaChecked.set(key, result);
  return result;
}

async function checkConsistency(prev, e, roots) {
  const key = `${prev.number}:${e.number}:${prev.root}:${e.root}`;
  if (consistent.has(key)) return consistent.get(key);
  let result;
  try {
    const answer = await get("/v1/consistency", { from: prev.number, to: e.number });
    if (answer.from.tree_size !== prev.leaves_to || answer.to.tree_size !== e.leaves_to) {
      throw new Error("the proof is for other tree sizes");
    }
    // The roots are the checkpoints' as read from the chain when it was read (else as the API
    // lists them), never the ones the proof response carries.
    await verifyConsistency({
      size1: prev.leaves_to,
      size2: e.leaves_to,
      proof: answer.proof.map(hexToBytes),
      root1: hexToBytes(roots?.[0] ?? prev.root),
      root2: hexToBytes(roots?.[1] ?? e.root),
    });
    result = { ok: true, detail: `${answer.proof.length} hashes: ${num(e.leaves_to)} leaves extend ${num(prev.leaves_to)}` };
  } catch (err) {
    result = { ok: false, detail: err.message };
  }
  consistent.set(key, result);
  return result;
}

function mark(r, passText) {
  if (r.ok === true) return `<span class="check-chip pass" title="${esc(r.detail)}">✓ ${esc(passText)}</span>`;
  if (r.ok === false) return `<span class="check-chip fail" title="${esc(r.detail)}">✗ ${esc(r.detail)}</span>`;
  return `<span class="check-chip skip" title="${esc(r.detail)}">not checked</span>`;
}

export async function refresh(el, ctx) {
  const target = chainTarget(ctx.chain);
  const epochs = (await get("/v1/epochs", { limit: 200 })).items;
  const anchored = epochs.filter((e) => e.status === "anchored");
  const shown = anchored.slice(0, SHOWN);
  const byNumber = new Map(epochs.map((e) => [e.number, e]));
  const chainChecks = await Promise.all(shown.map((e) => checkOnChain(target, e)));
  const metaChecks = await Promise.all(shown.map((e, i) => checkMetadata(e, chainChecks[i])));
  const consistency = await Promise.all(
    shown.map((e) => {
      const prev = byNumber.get(e.number - 1);
      if (e.number === 0) return { ok: true, detail: "the first checkpoint: nothing before it" };
      if (!prev) return { ok: null, detail: "previous checkpoint not listed" };
      return checkConsistency(prev, e);
    }),
  );
  const key = JSON.stringify([epochs, chainChecks, metaChecks, consistency, target]);
  if (key === lastKey) return;
  lastKey = key;

  const count = (list, ok) => list.filter((r) => r.ok === ok).length;
  const bad = count(chainChecks, false) + count(metaChecks, false) + count(consistency, false);
  const chainDone = count(chainChecks, true);
  const metaDone = count(metaChecks, true);
  const consDone = count(consistency, true);
  const unchecked = count(chainChecks, null) + count(metaChecks, null) + count(consistency, null);
  const unpinned = unpinnedReason(target);
  const chainNote = chainChecks.find((r) => r.ok === null)?.detail;
  // What this page ran itself, and what it did not: "no findings" here is never a clean audit.
  const ran = [
    `${consDone} of ${shown.length} consistency proofs`,
    `${chainDone} of ${shown.length} checkpoints read from the chain`,
    `${metaDone} of ${shown.length} metadata hashes against the anchored metaHash`,
  ];
  el.querySelector(".audit-summary").innerHTML = `
    <div class="card kpis">
      <div class="kpi"><label>Anchored checkpoints</label><strong>${num(anchored.length)}</strong>
        <small>${anchored[0] ? `latest: epoch ${anchored[0].number}, ${num(anchored[0].leaves_to)} leaves (the API's list)` : "none yet"}</small></div>
      <div class="kpi" data-testid="consistency-summary"><label>Consistent with the previous</label>
        <strong class="${consDone === shown.length ? "ok-text" : "bad-text"}">${consDone} / ${shown.length}</strong>
        <small>verified in this browser</small></div>
      <div class="kpi" data-testid="chain-summary"><label>Held on chain</label>
        <strong class="${chainDone === shown.length && !unpinned ? "ok-text" : chainDone === shown.length ? "" : "bad-text"}">${chainDone} / ${shown.length}</strong>
        <small>${target.rpc.value ? `read from ${esc(target.rpc.value)} (${esc(SOURCE_TEXT[target.rpc.source])})` : "no RPC URL known: not checked"}</small></div>
      <div class="kpi" data-testid="findings"><label>Findings of these checks</label>
        <strong class="${bad ? "bad-text" : "dim"}">${bad ? num(bad) : unchecked ? "not all checked" : "0"}</strong>
        <small>${bad ? "see the rows marked ✗" : `of the ${shown.length} newest checkpoints only: not an audit`}</small></div>
    </div>
    <div class="card audit-scope small" data-testid="audit-scope">
      <p><b>Checked in this browser:</b> ${esc(ran.join("; "))}.${chainNote ? ` <span class="bad-text">${esc(chainNote)}.</span>` : ""}</p>
      ${unpinned ? `<p class="bad-text" data-testid="auditor-unpinned">The chain read here is not pinned by you: ${esc(unpinned)} (see the Verify view).</p>` : ""}
      <p><b>Not checked here:</b> device signatures and keys against the DeviceRegistry, key validity at each anchor, each epoch's
      totals and quarantine root against its leaves, the tariff against the pricing authority's, per-device completeness, and
      checkpoints older than the newest ${SHOWN}. <code>assetproof audit</code> checks all of them; the Verify view checks one reading.</p>
    </div>`;

  el.querySelector(".checkpoints").innerHTML = shown.length
    ? `<table class="table checkpoints-table">
      <thead><tr><th>Epoch</th><th class="num">Tree size</th><th>Root</th><th>metaHash</th><th class="num">Block</th>
        <th>Transaction</th><th>On chain</th><th>metaHash</th><th>Extends previous</th><th>Take away</th></tr></thead>
      <tbody>${shown
        .map((e, i) => {
          const dir = `/v1/export/epoch-${String(e.number).padStart(6, "0")}`;
          return `<tr data-epoch="${e.number}">
            <td><b>${e.number}</b><div class="muted small">${esc(ago(e.anchored_ms))}</div></td>
            <td class="num">${num(e.leaves_to)}<div class="muted small">+${num(e.readings)}</div></td>
            <td>${hexHTML(e.root, { head: 8, tail: 4 })}</td><td>${hexHTML(e.meta_hash, { head: 6, tail: 4 })}</td>
            <td class="num">${num(e.block_number)}<div class="muted small" title="${esc(time(e.block_timestamp * 1000))}">${esc(clock(e.block_timestamp * 1000))}</div></td>
            <td>${hexHTML(e.tx_hash, { head: 6, tail: 4 })}</td>
            <td class="chain-cell">${mark(chainChecks[i], "held")}</td>
            <td class="meta-cell">${mark(metaChecks[i], "matches")}</td>
            <td class="consistency-cell">${mark(consistency[i], e.number === 0 ? "first" : `extends ${e.number - 1}`)}</td>
            <td class="links"><a href="${dir}/checkpoint.json" download>checkpoint</a> · <a href="${dir}/metadata.json" download>metadata</a>
              · <a href="${dir}/leaves" download="epoch-${e.number}-leaves">leaves</a>
              · <a href="${bundleURL({ logIndex: e.leaves_from })}" download="bundle-${e.leaves_from}.json" title="Proof bundle of the epoch's first reading, log index ${e.leaves_from}">bundle</a></td>
          </tr>`;
        })
        .join("")}</tbody></table>
      ${anchored.length > SHOWN ? `<p class="muted small">The newest ${SHOWN} of ${anchored.length}; <code>assetproof audit</code> checks them all.</p>` : ""}`
    : `<p class="empty">No checkpoint anchored yet.</p>`;

  const waiting = epochs.filter((e) => e.status !== "anchored");
  el.querySelector(".waiting").innerHTML = waiting.length
    ? `<ul class="plain">${waiting
        .map((e) => `<li>epoch <b>${e.number}</b> · ${num(e.readings)} readings · <span class="chip warn">${esc(e.status)}</span> ${e.tx_hash ? `tx ${hexHTML(e.tx_hash)}` : ""}</li>`)
        .join("")}</ul>`
    : `<p class="muted">Every closed epoch is anchored.</p>`;
}
