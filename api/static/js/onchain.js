// What the chain itself says about a checkpoint and a device, read by eth_call and eth_getLogs
// from this browser to the node the user pinned (pin.js). Nothing here comes from the API.

import { bytesToHex, equalBytes } from "./merkle.js";
import { bytes32Word, call, EVENTS, Revert, rpc, RpcError, topic, uintWord } from "./rpc.js";
import { keccak256 } from "./keccak.js";

const ANCHORED = topic(EVENTS.Anchored);
export const KINDS = { 1: "solar", 2: "charger", 3: "miner" };
export const ALGS = { 1: "ed25519", 2: "es256" };
/** DeviceRegistry.KeyVerdict, in declaration order, with what each refusal means. */
export const KEY_VERDICTS = [
  ["Valid", "the key counts for this reading"],
  ["UnknownDevice", "no device is registered under this id"],
  ["NoSuchKey", "the device has no key of that index"],
  ["AnchoredBeforeKey", "the checkpoint was anchored before this key came in force"],
  ["AnchoredAfterKey", "the checkpoint was anchored after this key ended (rotated out past its grace, or revoked)"],
  ["DatedAfterKeyEnd", "the reading is dated after this key's end"],
  ["DatedBeforeBackfill", "the reading is dated further before this key's start than the registry's backfill bound"],
];
export const MAX_OTHER_KEYS = 16; // as ReadingVerifier: keys tried besides the one in force

export class ChainMismatch extends Error {}

/** deviceId on chain: keccak256 of the id's UTF-8 bytes. */
export const deviceKey = (id) => keccak256(new TextEncoder().encode(id));

/**
 * Epoch `epoch`'s checkpoint as anchored: the fields of its Anchored event in the block the
 * registry records for it, that block's timestamp, and verifyCheckpoint's "true" for all of them
 * (the registry stores only a commitment, so this is what makes the event's fields the chain's).
 * Throws Revert(UnknownEpoch) for an epoch not anchored.
 */
export async function anchoredCheckpoint(url, registry, epoch) {
  const blockNumber = (await call(url, registry, "epochBlock", [uintWord(epoch)])).number(0);
  const blockHex = `0x${blockNumber.toString(16)}`;
  const logs = await rpc(url, "eth_getLogs", [
    { address: registry, fromBlock: blockHex, toBlock: blockHex, topics: [ANCHORED, `0x${uintWord(epoch)}`] },
  ]);
  if (!Array.isArray(logs) || logs.length !== 1) {
    throw new ChainMismatch(`block ${blockNumber} holds ${logs?.length ?? 0} Anchored events for epoch ${epoch}, not one`);
  }
  const data = logs[0].data.slice(2);
  const fields = {
    epoch,
    treeSize: Number(BigInt(`0x${data.slice(0, 64)}`)),
    root: data.slice(64, 128),
    metaHash: data.slice(128, 192),
    assetsRoot: data.slice(192, 256),
    blockNumber,
    txHash: logs[0].transactionHash,
  };
  const block = await rpc(url, "eth_getBlockByNumber", [blockHex, false]);
  fields.timestamp = Number(BigInt(block.timestamp));
  const same = await call(url, registry, "verifyCheckpoint", [
    uintWord(epoch),
    uintWord(fields.treeSize),
    fields.root,
    fields.metaHash,
    fields.assetsRoot,
    uintWord(blockNumber),
    uintWord(fields.timestamp),
  ]);
  if (!same.bool(0)) {
    throw new ChainMismatch(`the Anchored event of epoch ${epoch} and its block do not match the registry's commitment`);
  }
  return fields;
}

/**
 * The first anchored checkpoint whose tree holds leaf `index`, given a checkpoint `known` that
 * holds it: key validity is judged at the first one (the chain time a key must cover). Walks back
 * by bisection over the epochs before `known`, reading each probed checkpoint from the chain.
 */
export async function firstCheckpoint(url, registry, index, known) {
  let first = known;
  let low = 0; // epochs below `low` do not hold the leaf
  let high = known.epoch; // `first` (epoch high) holds it
  if (high === 0) return first;
  const previous = await anchoredCheckpoint(url, registry, high - 1);
  if (previous.treeSize <= index) return first;
  first = previous;
  high = previous.epoch;
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    const probe = await anchoredCheckpoint(url, registry, mid);
    if (probe.treeSize > index) {
      first = probe;
      high = mid;
    } else {
      low = mid + 1;
    }
  }
  return first;
}

/** The device as registered: null when unknown; else alg, kind, window and key count. */
export async function registeredDevice(url, registry, id) {
  const key = bytes32Word(deviceKey(id));
  let profile;
  let device;
  try {
    device = await call(url, registry, "device", [key]);
    profile = await call(url, registry, "profile", [key]);
  } catch (err) {
    if (err instanceof Revert && err.error === "UnknownDevice") return null;
    throw err;
  }
  return {
    key,
    alg: ALGS[device.number(1)] ?? `algorithm ${device.number(1)}`,
    keyCount: device.number(2),
    revoked: device.bool(3),
    revokedTime: device.number(5),
    kind: KINDS[profile.number(0)] ?? `kind ${profile.number(0)}`,
    windowS: profile.number(1),
    ratedPowerW: profile.uint(2),
  };
}

/** Key `index` of the device: its bytes and validity [fromTime, untilTime) (untilTime 0 while in force). */
export async function keyAt(url, registry, device, index) {
  const w = await call(url, registry, "keyAt", [device.key, uintWord(index)]);
  return { index, key: w.bytes(0), fromTime: w.number(2), untilTime: w.number(4), endReason: w.number(5) };
}

/** The key in force at block time `at` (no grace), or null (before the first key, or revoked). */
export async function keyInForceAt(url, registry, device, at) {
  const w = await call(url, registry, "keyInForceAt", [device.key, uintWord(at)]);
  return w.bool(0) ? w.number(1) : null;
}

/** DeviceRegistry.acceptsReading: [name, meaning] of its KeyVerdict. */
export async function acceptsReading(url, registry, device, { index, anchoredAt, tsMs }) {
  const w = await call(url, registry, "acceptsReading", [device.key, uintWord(index), uintWord(anchoredAt), uintWord(tsMs)]);
  const verdict = w.number(0);
  return KEY_VERDICTS[verdict] ?? [`verdict ${verdict}`, "a refusal this page does not know"];
}

/** The registry's key bytes in the form WebCrypto imports: ed25519 raw, es256 SEC1 uncompressed. */
export function importableKey(alg, key) {
  if (alg === "es256") {
    if (key.length !== 64) throw new RpcError(`an es256 key on chain is 64 bytes, got ${key.length}`);
    const sec1 = new Uint8Array(65);
    sec1[0] = 4;
    sec1.set(key, 1);
    return sec1;
  }
  if (key.length !== 32) throw new RpcError(`an ed25519 key on chain is 32 bytes, got ${key.length}`);
  return key;
}

/** Whether the key a bundle names is `registryKey` (SEC1 compressed or uncompressed for es256). */
export function sameKey(alg, named, registryKey) {
  if (alg !== "es256") return equalBytes(named, registryKey);
  if (named.length === 65 && named[0] === 4) return equalBytes(named.slice(1), registryKey);
  if (named.length === 33 && (named[0] === 2 || named[0] === 3)) {
    return equalBytes(named.slice(1), registryKey.slice(0, 32)) && (named[0] & 1) === (registryKey[63] & 1);
  }
  return false;
}

export const shortHex = (bytes) => {
  const hex = typeof bytes === "string" ? bytes : bytesToHex(bytes);
  return hex.length > 20 ? `${hex.slice(0, 10)}…${hex.slice(-6)}` : hex;
};
