// Checks one proof bundle in the browser. The bundle comes from the API (the operator's word);
// what decides the verdict comes from this page's own cryptography and from the chain, read by
// eth_call from this browser to the node and contracts the user pinned (pin.js):
//   1. the message is the canonical envelope; its leaf hash SHA-256(0x00 || message) (and, when
//      known, that it is the leaf the log recorded);
//   2. the RFC 6962 inclusion proof from the leaf up to the checkpoint's root;
//   3. the checkpoint as the AnchorRegistry holds it: its Anchored event's fields and block time,
//      confirmed by verifyCheckpoint, and the first checkpoint that included the leaf (key
//      validity is judged at that anchor's chain time);
//   4. SHA-256 of the epoch metadata's canonical bytes against the anchored metaHash;
//   5. the device as the DeviceRegistry holds it (algorithm, kind, reporting window);
//   6. the signature over the body bytes with the REGISTRY's key (the key in force at the anchor,
//      then the device's other keys), never the key the bundle names;
//   7. DeviceRegistry.acceptsReading for that key, the anchor's time and the reading's ts_ms.
// VERIFIED only when every check ran against the chain and the chain's RPC URL and addresses are
// the user's; otherwise the page says exactly which checks it could not make, and why.

import { bytesToHex, equalBytes, hexToBytes, leafHash, ProofError, rootFromInclusionProof, sha256 } from "./merkle.js";
import {
  acceptsReading,
  anchoredCheckpoint,
  ChainMismatch,
  firstCheckpoint,
  importableKey,
  keyAt,
  keyInForceAt,
  MAX_OTHER_KEYS,
  registeredDevice,
  sameKey,
  shortHex as short,
} from "./onchain.js";
import { cspRefusal, unpinnedReason } from "./pin.js";
import { Revert, rpc } from "./rpc.js";

const PREFIX = '{"alg":"';
const BODY = '","body":';
const SIG_HEAD = ',"sig":"';

export const CHECKS = [
  ["message", "Message"],
  ["leaf", "Leaf hash"],
  ["inclusion", "Inclusion proof"],
  ["checkpoint", "Checkpoint on chain"],
  ["metadata", "Epoch metadata"],
  ["device", "Device on chain"],
  ["signature", "Signature with the registry's key"],
  ["key", "Key valid at the anchor"],
];
const CHAIN_CHECKS = ["checkpoint", "metadata", "device", "signature", "key"];

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
    // WebCrypto takes the 64-byte r||s as is, and SEC1 uncompressed points.
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, signed);
  }
  throw new Error(`unsupported algorithm ${alg}`);
}

const ALG_NAME = { es256: "ECDSA P-256", ed25519: "Ed25519" };
const when = (seconds) => new Date(seconds * 1000).toISOString().replace(".000Z", "Z");

/**
 * RFC 8785 (JCS) bytes of a JSON value built of objects, arrays, strings and integers: what
 * metaHash covers. Keys sort by UTF-16 code units (JavaScript's default order, as JCS says);
 * strings and integers serialise as JSON.stringify does. A number JavaScript cannot hold exactly
 * is refused rather than hashed wrong (the metadata schema keeps integers below 2^53).
 */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`${value} is not an integer this page can encode exactly`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
}

/**
 * @param bundle the proof bundle (JSON, as the API serves it, or as a file the user opened)
 * @param target pin.chainTarget(): the RPC URL and registries, each with where it came from
 * @param recordedLeaf the leaf hash (hex) the log holds at the bundle's index, when known
 * @param apiCheckpoint (epoch) => the checkpoint the API lists, used only when no chain is reachable
 * @param apiMetadata (epoch) => the epoch metadata the API serves, when the bundle carries none
 */
export async function verifyBundle(bundle, { target, recordedLeaf = null, apiCheckpoint = null, apiMetadata = null }) {
  const checks = Object.fromEntries(CHECKS.map(([id, label]) => [id, { id, label, status: "skip", detail: "" }]));
  const set = (id, status, detail) => Object.assign(checks[id], { status, detail });
  const result = { checks, decoded: null, chain: null, notice: null, target };

  let message;
  let parts = null;
  try {
    if (bundle.format !== "assetproof.bundle" || bundle.version !== 1) throw new Error("not an assetproof bundle v1");
    message = hexToBytes(bundle.message);
    parts = split(message);
    result.decoded = parts.body;
    if (parts.body.device !== bundle.device?.id) throw new Error(`names device ${parts.body.device}, the bundle says ${bundle.device?.id}`);
    set("message", "pass", `${parts.body.device} #${parts.body.seq}, ${message.length} bytes, canonical envelope`);
  } catch (err) {
    parts = null;
    set("message", "fail", `unreadable message: ${err.message}`);
  }

  let leaf = null;
  if (message) {
    leaf = await leafHash(message);
    const hex = bytesToHex(leaf);
    if (recordedLeaf && recordedLeaf !== hex) {
      set("leaf", "fail", `the message hashes to ${short(hex)} but the log recorded ${short(recordedLeaf)} at index ${bundle.leaf_index}: the stored message changed after it was logged`);
    } else {
      set("leaf", "pass", `SHA-256(0x00 ‖ message) = ${short(hex)}${recordedLeaf ? ", the leaf the log recorded" : ""}`);
    }
  }

  const cp = bundle.checkpoint;
  let computedRoot = null;
  try {
    if (bundle.tree_size !== cp.tree_size) throw new ProofError(`proof for tree size ${bundle.tree_size}, checkpoint of ${cp.tree_size}`);
    if (leaf) {
      const proof = bundle.inclusion_proof.map(hexToBytes);
      computedRoot = bytesToHex(await rootFromInclusionProof({ leaf, index: bundle.leaf_index, size: bundle.tree_size, proof }));
      if (computedRoot === cp.root) {
        set("inclusion", "pass", `${proof.length} hashes lead from leaf ${bundle.leaf_index} to the root ${short(cp.root)} of the ${bundle.tree_size}-leaf tree (epoch ${cp.epoch})`);
      } else {
        set("inclusion", "fail", `the proof leads to ${short(computedRoot)}, not to the checkpoint's root ${short(cp.root)}: this message is not the leaf at index ${bundle.leaf_index}`);
      }
    }
  } catch (err) {
    set("inclusion", "fail", `bad proof: ${err.message}`);
  }

  const metadata = await metadataOf(bundle, apiMetadata);
  if (!bundle.anchor) {
    set("checkpoint", "pending", `epoch ${cp.epoch} is closed but its checkpoint is not anchored yet: retry in a moment`);
    await withoutChain(bundle, parts, metadata, set, "its checkpoint is not anchored yet");
  } else {
    const refusal = !target.rpc.value || !target.anchor.value || !target.devices.value ? null : await cspRefusal(target.rpc.value);
    if (!target.rpc.value || !target.anchor.value || !target.devices.value || refusal) {
      const why = refusal
        ? `the chain node cannot be reached: ${refusal}`
        : `no ${target.missing.join(", ")} is known to this page: pin the chain in the settings above`;
      result.notice = `Nothing was read from the chain: ${why}. What the page could check offline is shown; run \`assetproof verify\` against a chain node for the rest.`;
      await apiRoot(bundle, apiCheckpoint, set);
      await withoutChain(bundle, parts, metadata, set, why);
    } else {
      try {
        await onChain({ bundle, parts, metadata, target, set, result, checks });
      } catch (err) {
        const detail = `could not ask the chain: ${err.message}`;
        for (const id of CHAIN_CHECKS) if (checks[id].status === "skip") set(id, "error", detail);
      }
    }
  }
  result.verdict = verdictOf(checks, target);
  return result;
}

async function metadataOf(bundle, apiMetadata) {
  if (bundle.metadata) return { value: bundle.metadata, from: "the bundle" };
  if (!apiMetadata) return null;
  try {
    const value = await apiMetadata(bundle.checkpoint.epoch);
    return value ? { value, from: "the API's export" } : null;
  } catch {
    return null;
  }
}

async function metaHashOf(metadata) {
  return bytesToHex(await sha256(new TextEncoder().encode(canonicalJson(metadata.value))));
}

/** No chain: the root the API lists, the metaHash and the key the bundle names, each said to be the API's. */
async function withoutChain(bundle, parts, metadata, set, why) {
  const cp = bundle.checkpoint;
  if (metadata) {
    try {
      const hash = await metaHashOf(metadata);
      if (hash !== cp.meta_hash) set("metadata", "fail", `the metadata hashes to ${short(hash)}, not to the bundle's metaHash ${short(cp.meta_hash)}`);
      else set("metadata", "warn", `hashes to the metaHash the API gave (${short(hash)}), not checked against the chain: ${why}`);
    } catch (err) {
      set("metadata", "error", `could not hash the metadata: ${err.message}`);
    }
  } else {
    set("metadata", "skip", "no epoch metadata to hash");
  }
  set("device", "skip", `not checked against the DeviceRegistry: ${why}`);
  set("key", "skip", `key validity not checked against the DeviceRegistry: ${why}`);
  if (!parts) return;
  try {
    const ok = await verifySignature(parts.alg, hexToBytes(bundle.device.public_key), parts.signature, parts.signed);
    if (ok) set("signature", "warn", `${ALG_NAME[parts.alg]} signature valid for ${short(bundle.device.public_key)}, but that key is from the API, not checked against the chain`);
    else set("signature", "fail", `the ${parts.alg} signature does not verify even with the key the bundle names: the signed body was altered, or another key signed it`);
  } catch (err) {
    set("signature", "error", `could not check the signature here: ${err.message}`);
  }
}

async function apiRoot(bundle, apiCheckpoint, set) {
  const cp = bundle.checkpoint;
  const listed = apiCheckpoint ? await apiCheckpoint(cp.epoch) : null;
  if (!listed) set("checkpoint", "warn", `not read from the chain, and the API lists no anchored checkpoint for epoch ${cp.epoch}`);
  else if (listed.root !== cp.root || listed.tree_size !== cp.tree_size || listed.meta_hash !== cp.meta_hash) {
    set("checkpoint", "fail", `the bundle's checkpoint differs from the one the API lists for epoch ${cp.epoch}`);
  } else {
    set("checkpoint", "warn", `matches the checkpoint the API lists for epoch ${cp.epoch}: the root came from the API, not from the chain`);
  }
}

async function onChain({ bundle, parts, metadata, target, set, result, checks }) {
  const url = target.rpc.value;
  const anchorRegistry = target.anchor.value;
  const deviceRegistry = target.devices.value;
  const cp = bundle.checkpoint;
  const anchor = bundle.anchor;

  // 3. The checkpoint, as the chain holds it.
  const chainId = Number(BigInt(await rpc(url, "eth_chainId")));
  result.chain = { chainId, url };
  if (chainId !== anchor.chain_id) {
    set("checkpoint", "fail", `the bundle names chain ${anchor.chain_id} but the node at ${url} is chain ${chainId}`);
  } else if (anchor.contract.toLowerCase() !== anchorRegistry.toLowerCase()) {
    set("checkpoint", "fail", `the bundle names AnchorRegistry ${anchor.contract}, the chain's is ${anchorRegistry}`);
  }
  let held = null;
  let first = null;
  if (checks.checkpoint.status === "skip") {
    try {
      held = await anchoredCheckpoint(url, anchorRegistry, cp.epoch);
    } catch (err) {
      if (err instanceof Revert && err.error === "UnknownEpoch") {
        set("checkpoint", "fail", `epoch ${cp.epoch} is not anchored in AnchorRegistry ${short(anchorRegistry)} on chain ${chainId}`);
      } else if (err instanceof ChainMismatch) {
        set("checkpoint", "fail", err.message);
      } else throw err;
    }
  }
  if (held) {
    const differ = [];
    if (held.treeSize !== cp.tree_size) differ.push(`tree size ${cp.tree_size} (chain: ${held.treeSize})`);
    if (held.root !== cp.root) differ.push(`root ${short(cp.root)} (chain: ${short(held.root)})`);
    if (held.metaHash !== cp.meta_hash) differ.push(`metaHash ${short(cp.meta_hash)} (chain: ${short(held.metaHash)})`);
    if (held.blockNumber !== anchor.block_number) differ.push(`block ${anchor.block_number} (chain: ${held.blockNumber})`);
    if (held.timestamp !== anchor.block_timestamp) differ.push(`block time ${anchor.block_timestamp} (chain: ${held.timestamp})`);
    if (held.txHash?.toLowerCase() !== anchor.tx_hash.toLowerCase()) differ.push(`transaction ${short(anchor.tx_hash)} (chain: ${short(held.txHash ?? "none")})`);
    if (differ.length) {
      set("checkpoint", "fail", `the bundle's checkpoint for epoch ${cp.epoch} is not the one anchored: ${differ.join(", ")}`);
    } else {
      // The bundle's root is the anchored one, so the inclusion check above is against the chain's root.
      first = await firstCheckpoint(url, anchorRegistry, bundle.leaf_index, held);
      const firstText =
        first.epoch === held.epoch ? "the first checkpoint to include this leaf" : `the leaf was first anchored in epoch ${first.epoch} (block ${first.blockNumber}, ${when(first.timestamp)})`;
      set("checkpoint", "pass", `AnchorRegistry ${short(anchorRegistry)} on chain ${chainId} holds epoch ${cp.epoch}: Anchored event in block ${held.blockNumber} (${when(held.timestamp)}), verifyCheckpoint true; ${firstText}`);
    }
  }

  // 4. The metadata against the anchored metaHash.
  if (!metadata) set("metadata", "skip", "no epoch metadata to hash: the bundle carries none and the API served none");
  else if (!held) set("metadata", "skip", "no anchored metaHash to compare with (see the checkpoint)");
  else {
    const hash = await metaHashOf(metadata);
    const m = metadata.value;
    if (hash !== held.metaHash) {
      set("metadata", "fail", `metaHash mismatch: the epoch metadata from ${metadata.from} hashes to ${short(hash)}, the chain anchored ${short(held.metaHash)} for epoch ${cp.epoch}: its totals or tariff were altered`);
    } else if (m.assets_root !== held.assetsRoot) {
      set("metadata", "fail", `assetsRoot mismatch: the metadata hashes right but states assets root ${short(m.assets_root ?? "none")}, the chain anchored ${short(held.assetsRoot)} for epoch ${cp.epoch}`);
    } else if (m.epoch !== cp.epoch || m.leaves?.to !== held.treeSize) {
      set("metadata", "fail", `the metadata hashes right but describes epoch ${m.epoch} ending at leaf ${m.leaves?.to}, not epoch ${cp.epoch} of ${held.treeSize} leaves`);
    } else {
      set("metadata", "pass", `SHA-256 of its canonical bytes is ${short(hash)}, the metaHash anchored for epoch ${cp.epoch}; its assets root is the assetsRoot anchored`);
    }
  }

  // 5-7. The device, its key and the key's validity, from the DeviceRegistry.
  if (!parts) {
    for (const id of ["device", "signature", "key"]) set(id, "skip", "the message is unreadable");
    return;
  }
  const body = parts.body;
  const device = await registeredDevice(url, deviceRegistry, body.device);
  if (!device) {
    set("device", "fail", `${body.device} is not registered in DeviceRegistry ${short(deviceRegistry)} (unknown_device): no key on chain can vouch for this reading`);
    set("signature", "skip", "no registry key to check it with");
    set("key", "skip", "no registry key");
    return;
  }
  const wrong = [];
  if (device.alg !== parts.alg) wrong.push(`algorithm ${parts.alg} (registered: ${device.alg})`);
  if (device.kind !== body.kind) wrong.push(`kind ${body.kind} (registered: ${device.kind})`);
  if (device.windowS !== body.window_s) wrong.push(`window_s ${body.window_s} (registered: ${device.windowS})`);
  if (wrong.length) set("device", "fail", `the reading does not match ${body.device} as registered: ${wrong.join(", ")}`);
  else set("device", "pass", `${body.device}: ${device.alg}, ${device.kind}, ${device.windowS} s window, ${device.keyCount} key${device.keyCount === 1 ? "" : "s"}${device.revoked ? `, revoked ${when(device.revokedTime)}` : ""}`);
  if (device.alg !== parts.alg) {
    set("signature", "skip", "the registered algorithm differs");
    set("key", "skip", "the registered algorithm differs");
    return;
  }
  if (!first) {
    set("signature", "skip", "no anchored checkpoint to judge the key at");
    set("key", "skip", "no anchored checkpoint to judge the key at");
    return;
  }

  // The signing key: the one in force at the anchor's chain time, then the others, newest first.
  const inForce = await keyInForceAt(url, deviceRegistry, device, first.timestamp);
  const order = inForce === null ? [] : [inForce];
  for (let i = device.keyCount - 1; i >= 0 && order.length < MAX_OTHER_KEYS + 1; i--) if (i !== inForce) order.push(i);
  const named = hexToBytes(bundle.device.public_key);
  let signer = null;
  const tried = [];
  for (const index of order) {
    const k = await keyAt(url, deviceRegistry, device, index);
    tried.push(k);
    if (await verifySignature(parts.alg, importableKey(parts.alg, k.key), parts.signature, parts.signed)) {
      signer = k;
      break;
    }
  }
  if (!signer) {
    const namedIsRegistry = tried.some((k) => sameKey(parts.alg, named, k.key));
    const current = tried.find((k) => k.index === inForce) ?? tried[0];
    set(
      "signature",
      "fail",
      namedIsRegistry
        ? `the ${parts.alg} signature does not verify under the registry's key: the signed body was altered, or another key signed it`
        : `key mismatch: the bundle names key ${short(named)}, which is not the DeviceRegistry's (${current ? `key #${current.index} ${short(current.key)}` : "none"}); the signature does not verify under any of the device's ${tried.length} registered key${tried.length === 1 ? "" : "s"}`,
    );
    set("key", "skip", "no registered key signed this reading");
    return;
  }
  const note = sameKey(parts.alg, named, signer.key) ? "" : `; the bundle named another key (${short(named)}), ignored`;
  set("signature", "pass", `${ALG_NAME[parts.alg]} signature valid under the DeviceRegistry's key #${signer.index} ${short(signer.key)}${note}`);

  const [verdict, meaning] = await acceptsReading(url, deviceRegistry, device, { index: signer.index, anchoredAt: first.timestamp, tsMs: body.ts_ms });
  const span = `key #${signer.index} in force from ${when(signer.fromTime)}${signer.untilTime ? ` until ${when(signer.untilTime)} (${signer.endReason === 2 ? "revoked" : "rotated out"})` : ""}`;
  if (verdict === "Valid") {
    set("key", "pass", `DeviceRegistry.acceptsReading: Valid. ${span}; first anchored ${when(first.timestamp)}`);
  } else {
    set("key", "fail", `DeviceRegistry.acceptsReading refused the key: ${verdict}: ${meaning} (${span}; first anchored ${when(first.timestamp)}; reading dated ${new Date(body.ts_ms).toISOString()})`);
  }
}

function verdictOf(checks, target) {
  const all = Object.values(checks);
  const of = (status) => all.filter((c) => c.status === status);
  const failed = of("fail");
  if (failed.length) {
    return { kind: "failed", title: "FAILED", why: failed.map((c) => `${c.label.toLowerCase()}: ${c.detail}`), failed: failed.map((c) => c.id) };
  }
  if (of("error").length) {
    return { kind: "incomplete", title: "NOT VERIFIED", why: of("error").map((c) => `${c.label.toLowerCase()}: ${c.detail}`), failed: [] };
  }
  if (checks.checkpoint.status === "pending") {
    return { kind: "pending", title: "NOT ANCHORED YET", why: [checks.checkpoint.detail], failed: [] };
  }
  const unchecked = all.filter((c) => c.status === "warn" || c.status === "skip");
  if (unchecked.length) {
    return {
      kind: "api",
      title: "NOT VERIFIED",
      why: ["nothing failed, but these were not checked against the chain:", ...unchecked.map((c) => `${c.label.toLowerCase()}: ${c.detail || "not checked"}`)],
      failed: [],
    };
  }
  const unpinned = unpinnedReason(target);
  if (unpinned) {
    return {
      kind: "unpinned",
      title: "NOT VERIFIED",
      why: [`every check passed against the chain, but ${unpinned}`],
      failed: [],
    };
  }
  return { kind: "verified", title: "VERIFIED", why: ["the signature under the DeviceRegistry's key, the key's validity at the anchor, the inclusion proof, the anchored checkpoint and the metaHash all hold on the chain you pinned"], failed: [] };
}
