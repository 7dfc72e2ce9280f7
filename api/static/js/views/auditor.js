// Auditor view: the anchored checkpoints, each checked in this browser against the chain
// (AnchorRegistry.verifyCheckpoint) and against its predecessor (an RFC 9162 consistency proof
// verified with WebCrypto SHA-256), with the export files and proof bundles to take away.

import { bundleURL, get } from "../api.js";
import { ago, esc, hexHTML, num, time } from "../format.js";
import { hexToBytes, verifyConsistency } from "../merkle.js";
import { bytes32Word, calldata, decodeRevert, rpc, RpcError, uintWord } from "../rpc.js";

const SHOWN = 25;
const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB");
const onChain = new Map(); // `${epoch}:${root}` -> {ok, detail}
const consistent = new Map(); // `${from}:${to}:${root1}:${root2}` -> {ok, detail}
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

async function checkOnChain(chain, e) {
  const key = `${e.number}:${e.root}`;
  if (onChain.has(key)) return onChain.get(key);
  let result;
  if (!chain.rpc_url) {
    result = { ok: null, detail: "no public RPC: not checked on chain" };
  } else {
    try {
      const data = calldata(chain.selectors.verifyCheckpoint, [
        uintWord(e.number),
        uintWord(e.leaves_to),
        bytes32Word(hexToBytes(e.root)),
        bytes32Word(hexToBytes(e.meta_hash)),
        uintWord(e.block_number),
        uintWord(e.block_timestamp),
      ]);
      const answer = await rpc(chain.rpc_url, "eth_call", [{ to: chain.anchor_registry, data }, "latest"]);
      result = BigInt(answer) === 1n
        ? { ok: true, detail: `AnchorRegistry.verifyCheckpoint(${e.number}, …) = true` }
        : { ok: false, detail: "the chain holds a different checkpoint for this epoch" };
    } catch (err) {
      const named = err instanceof RpcError ? decodeRevert(err.data, chain.selectors) : null;
      result = named ? { ok: false, detail: `reverted: ${named}` } : { ok: null, detail: `chain unreachable: ${err.message}` };
      if (!named) return result; // not cached: try again on the next poll
    }
  }
  onChain.set(key, result);
  return result;
}

async function checkConsistency(prev, e) {
  const key = `${prev.number}:${e.number}:${prev.root}:${e.root}`;
  if (consistent.has(key)) return consistent.get(key);
  let result;
  try {
    const answer = await get("/v1/consistency", { from: prev.number, to: e.number });
    if (answer.from.tree_size !== prev.leaves_to || answer.to.tree_size !== e.leaves_to) {
      throw new Error("the proof is for other tree sizes");
    }
    // The roots are the checkpoints' (as anchored), not the ones the proof response carries.
    await verifyConsistency({
      size1: prev.leaves_to,
      size2: e.leaves_to,
      proof: answer.proof.map(hexToBytes),
      root1: hexToBytes(prev.root),
      root2: hexToBytes(e.root),
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
  const epochs = (await get("/v1/epochs", { limit: 200 })).items;
  const anchored = epochs.filter((e) => e.status === "anchored");
  const shown = anchored.slice(0, SHOWN);
  const byNumber = new Map(epochs.map((e) => [e.number, e]));
  const chainChecks = await Promise.all(shown.map((e) => checkOnChain(ctx.chain, e)));
  const consistency = await Promise.all(
    shown.map((e) => {
      const prev = byNumber.get(e.number - 1);
      if (e.number === 0) return { ok: true, detail: "the first checkpoint: nothing before it" };
      if (!prev) return { ok: null, detail: "previous checkpoint not listed" };
      return checkConsistency(prev, e);
    }),
  );
  const key = JSON.stringify([epochs, chainChecks, consistency]);
  if (key === lastKey) return;
  lastKey = key;

  const bad = chainChecks.filter((r) => r.ok === false).length + consistency.filter((r) => r.ok === false).length;
  const chainDone = chainChecks.filter((r) => r.ok === true).length;
  const consDone = consistency.filter((r) => r.ok === true).length;
  el.querySelector(".audit-summary").innerHTML = `
    <div class="card kpis">
      <div class="kpi"><label>Anchored checkpoints</label><strong>${num(anchored.length)}</strong>
        <small>${anchored[0] ? `latest: epoch ${anchored[0].number}, ${num(anchored[0].leaves_to)} leaves` : "none yet"}</small></div>
      <div class="kpi" data-testid="consistency-summary"><label>Consistent with the previous</label>
        <strong class="${consDone === shown.length ? "ok-text" : "bad-text"}">${consDone} / ${shown.length}</strong>
        <small>verified in this browser</small></div>
      <div class="kpi"><label>Held on chain</label>
        <strong class="${ctx.chain.rpc_url ? (chainDone === shown.length ? "ok-text" : "bad-text") : "dim"}">${ctx.chain.rpc_url ? `${chainDone} / ${shown.length}` : "not checked"}</strong>
        <small>${ctx.chain.rpc_url ? `eth_call to ${esc(ctx.chain.rpc_url)}` : "no public RPC URL: roots come through the API"}</small></div>
      <div class="kpi"><label>Findings</label><strong class="${bad ? "bad-text" : "ok-text"}">${bad ? num(bad) : "none"}</strong>
        <small>${bad ? "see the rows marked ✗" : "history only ever grew"}</small></div>
    </div>`;

  el.querySelector(".checkpoints").innerHTML = shown.length
    ? `<table class="table checkpoints-table">
      <thead><tr><th>Epoch</th><th class="num">Tree size</th><th>Root</th><th>metaHash</th><th class="num">Block</th>
        <th>Transaction</th><th>On chain</th><th>Extends previous</th><th>Take away</th></tr></thead>
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
