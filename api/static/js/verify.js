// Checks one proof bundle in the browser, trusting neither the API nor this page's server:
//   1. the message is the canonical envelope and names the bundle's device;
//   2. the device signature over the body bytes (Ed25519, or ECDSA P-256/SHA-256 with the raw
//      64-byte r||s that WebCrypto takes as is) with the bundle's public key;
//   3. the leaf hash SHA-256(0x00 || message) (and, when known, that it is the leaf the log
//      recorded at that index);
//   4. the RFC 6962 inclusion proof from the leaf up to the checkpoint's root;
//   5. that checkpoint against the AnchorRegistry, by an eth_call from this browser to the chain.
// The key is the bundle's (the operator's claim): `assetproof verify` also reads the key the
// chain's DeviceRegistry held at the reading's time.

import { equalBytes, bytesToHex, hexToBytes, leafHash, ProofError, rootFromInclusionProof } from "./merkle.js";
import { bytes32Word, calldata, decodeRevert, rpc, RpcError, uintWord } from "./rpc.js";

const PREFIX = '{"alg":"';
const BODY = '","body":';
const SIG_HEAD = ',"sig":"';

export const CHECKS = [
  ["message", "Message"],
  ["signature", "Device signature"],
  ["leaf", "Leaf hash"],
  ["inclusion", "Inclusion proof"],
  ["chain", "Root on chain"],
];

function split(message) {
  // The signed bytes are cut out of the message, never re-encoded: what was signed is exactly
  // what was stored and anchored (protocol/envelope.py Message.signed_bytes). Compared as bytes,
  // since string offsets count UTF-16 units, not bytes.
  const doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(message));
  const encoder = new TextEncoder();
  const head = encoder.encode(`${PREFIX}${doc.alg}${BODY}`);
  const tail = encoder.encode(`${SIG_HEAD}${doc.sig}"}`);
  const tailStart = message.length - tail.length;
  if (
    typeof doc.sig !== "string" ||
    doc.sig.length !== 128 ||
    tailStart <= head.length ||
    !equalBytes(message.slice(0, head.length), head) ||
    !equalBytes(message.slice(tailStart), tail)
  ) {
    throw new Error("the message is not the canonical {alg, body, sig} envelope");
  }
  return { alg: doc.alg, body: doc.body, signed: message.slice(head.length, tailStart), signature: hexToBytes(doc.sig) };
}

async function verifySignature(alg, publicKey, signature, signed) {
  if (!globalThis.crypto?.subtle) {
    throw new Error("WebCrypto is unavailable: open the dashboard over https or on localhost");
  }
  if (alg === "ed25519") {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, signed);
  }
  if (alg === "es256") {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "ECDSA", namedCurve: "P-256" }, false, [
      "verify",
    ]);
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, signed);
  }
  throw new Error(`unsupported algorithm ${alg}`);
}

const short = (hex) => `${hex.slice(0, 10)}…${hex.slice(-6)}`;

/**
 * @param bundle the proof bundle (JSON, as the API serves it)
 * @param chain GET /v1/chain
 * @param recordedLeaf the leaf hash (hex) the log holds at the bundle's index, when known
 * @param apiCheckpoint (epoch) => the checkpoint the API lists, for when no RPC URL is configured
 */
export async function verifyBundle(bundle, { chain, recordedLeaf = null, apiCheckpoint = null }) {
  const checks = Object.fromEntries(CHECKS.map(([id, label]) => [id, { id, label, status: "skip", detail: "" }]));
  const pass = (id, detail) => Object.assign(checks[id], { status: "pass", detail });
  const fail = (id, detail) => Object.assign(checks[id], { status: "fail", detail });
  const result = { checks, decoded: null, rootSource: null, notice: null };

  let message;
  try {
    if (bundle.format !== "assetproof.bundle" || bundle.version !== 1) throw new Error("not an assetproof bundle v1");
    message = hexToBytes(bundle.message);
    const parts = split(message);
    result.decoded = parts.body;
    if (parts.alg !== bundle.device.alg) throw new Error(`signed with ${parts.alg}, the bundle's key is ${bundle.device.alg}`);
    if (parts.body.device !== bundle.device.id) throw new Error(`names device ${parts.body.device}, not ${bundle.device.id}`);
    pass("message", `${parts.body.device} #${parts.body.seq}, ${message.length} bytes, canonical envelope`);
    try {
      const ok = await verifySignature(parts.alg, hexToBytes(bundle.device.public_key), parts.signature, parts.signed);
      if (ok) pass("signature", `${parts.alg === "es256" ? "ECDSA P-256" : "Ed25519"} signature valid for key ${short(bundle.device.public_key)}`);
      else fail("signature", `the ${parts.alg} signature does not verify with the device key: the signed body was altered, or another key signed it`);
    } catch (err) {
      Object.assign(checks.signature, { status: "error", detail: `could not check the signature here: ${err.message}` });
    }
  } catch (err) {
    fail("message", `unreadable message: ${err.message}`);
  }

  let leaf = null;
  if (message) {
    leaf = await leafHash(message);
    const hex = bytesToHex(leaf);
    if (recordedLeaf && recordedLeaf !== hex) {
      fail("leaf", `the message hashes to ${short(hex)} but the log recorded ${short(recordedLeaf)} at index ${bundle.leaf_index}: the stored message changed after it was logged`);
    } else {
      pass("leaf", `SHA-256(0x00 ‖ message) = ${short(hex)}${recordedLeaf ? ", the leaf the log recorded" : ""}`);
    }
  }

  const cp = bundle.checkpoint;
  let root = null;
  try {
    root = hexToBytes(cp.root);
    if (bundle.tree_size !== cp.tree_size) throw new ProofError(`proof for tree size ${bundle.tree_size}, checkpoint of ${cp.tree_size}`);
    if (leaf) {
      const proof = bundle.inclusion_proof.map(hexToBytes);
      const computed = await rootFromInclusionProof({ leaf, index: bundle.leaf_index, size: bundle.tree_size, proof });
      if (equalBytes(computed, root)) {
        pass("inclusion", `${proof.length} hashes lead from leaf ${bundle.leaf_index} to the root ${short(cp.root)} of the ${bundle.tree_size}-leaf tree (epoch ${cp.epoch})`);
      } else {
        fail("inclusion", `the proof leads to ${short(bytesToHex(computed))}, not to the checkpoint's root ${short(cp.root)}: this message is not the leaf at index ${bundle.leaf_index}`);
      }
    }
  } catch (err) {
    fail("inclusion", `bad proof: ${err.message}`);
  }

  await checkRoot(bundle, chain, checks, result, apiCheckpoint);
  result.verdict = verdictOf(checks, result);
  return result;
}

async function checkRoot(bundle, chain, checks, result, apiCheckpoint) {
  const cp = bundle.checkpoint;
  const anchor = bundle.anchor;
  const set = (status, detail) => Object.assign(checks.chain, { status, detail });
  if (!anchor) {
    set("pending", `epoch ${cp.epoch} is closed but its checkpoint is not anchored yet: retry in a moment`);
    return;
  }
  if (!chain.rpc_url) {
    result.rootSource = "api";
    result.notice =
      "The root came through the API, not from the chain: this deployment's chain has no JSON-RPC endpoint " +
      "this browser can reach (an in-process eth-tester, or no public RPC URL configured). " +
      "Check it against a chain node with `assetproof verify`.";
    const listed = apiCheckpoint ? await apiCheckpoint(cp.epoch) : null;
    if (!listed) set("fail", `the API lists no anchored checkpoint for epoch ${cp.epoch}`);
    else if (listed.root !== cp.root || listed.tree_size !== cp.tree_size || listed.meta_hash !== cp.meta_hash) {
      set("fail", `the bundle's checkpoint differs from the one the API lists for epoch ${cp.epoch}`);
    } else {
      set("warn", `matches the checkpoint the API lists for epoch ${cp.epoch} (block ${anchor.block_number}); not read from the chain`);
    }
    return;
  }
  result.rootSource = "chain";
  try {
    const chainId = Number(BigInt(await rpc(chain.rpc_url, "eth_chainId")));
    if (chainId !== anchor.chain_id) {
      set("fail", `the bundle names chain ${anchor.chain_id} but the node at ${chain.rpc_url} is chain ${chainId}`);
      return;
    }
    if (anchor.contract.toLowerCase() !== String(chain.anchor_registry).toLowerCase()) {
      set("fail", `the bundle names registry ${anchor.contract}, this deployment's is ${chain.anchor_registry}`);
      return;
    }
    const data = calldata(chain.selectors.verifyCheckpoint, [
      uintWord(cp.epoch),
      uintWord(cp.tree_size),
      bytes32Word(hexToBytes(cp.root)),
      bytes32Word(hexToBytes(cp.meta_hash)),
      uintWord(anchor.block_number),
      uintWord(anchor.block_timestamp),
    ]);
    const answer = await rpc(chain.rpc_url, "eth_call", [{ to: chain.anchor_registry, data }, "latest"]);
    if (BigInt(answer) === 1n) {
      set("pass", `AnchorRegistry ${short(chain.anchor_registry)} on chain ${chainId} holds this checkpoint for epoch ${cp.epoch} (block ${anchor.block_number}, tx ${short(anchor.tx_hash)})`);
    } else {
      set("fail", `the chain holds a different checkpoint for epoch ${cp.epoch}: root, tree size, metaHash or block differ`);
    }
  } catch (err) {
    if (err instanceof RpcError && err.data) {
      const named = decodeRevert(err.data, chain.selectors);
      if (named?.startsWith("UnknownEpoch")) {
        set("fail", `epoch ${cp.epoch} is not anchored on chain ${anchor.chain_id} (${named})`);
        return;
      }
    }
    set("error", `could not ask the chain: ${err.message}`);
  }
}

function verdictOf(checks, result) {
  const all = Object.values(checks);
  const failed = all.filter((c) => c.status === "fail");
  if (failed.length) {
    return { kind: "failed", title: "FAILED", why: failed.map((c) => `${c.label.toLowerCase()}: ${c.detail}`), failed: failed.map((c) => c.id) };
  }
  if (all.some((c) => c.status === "error")) {
    return { kind: "incomplete", title: "NOT VERIFIED", why: all.filter((c) => c.status === "error").map((c) => c.detail), failed: [] };
  }
  if (checks.chain.status === "pending") {
    return { kind: "pending", title: "NOT ANCHORED YET", why: [checks.chain.detail], failed: [] };
  }
  if (result.rootSource === "api") {
    return { kind: "api", title: "VERIFIED", why: ["signature, leaf and inclusion proof hold; the root came through the API, not from the chain"], failed: [] };
  }
  return { kind: "verified", title: "VERIFIED", why: ["signature, leaf, inclusion proof and the root on chain all hold"], failed: [] };
}
