// JSON-RPC straight from the browser to the chain node: the API is not in the path, so what
// comes back is what that node says. Selectors and error names are computed here with Keccak
// from the Solidity signatures this file holds (tests compare them with the committed ABIs), so
// nothing the API serves decides what is called or how an answer is read.

import { keccak256, selector } from "./keccak.js";
import { bytesToHex, hexToBytes } from "./merkle.js";

export class RpcError extends Error {
  constructor(message, data = null) {
    super(message);
    this.data = data;
  }
}

/** A custom error a contract reverted with, decoded by name. */
export class Revert extends Error {
  constructor(name, args) {
    super(`${name}(${args.map(String).join(", ")})`);
    this.name = "Revert";
    this.error = name;
    this.args = args;
  }
}

let nextId = 1;

export async function rpc(url, method, params = []) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
    });
  } catch (err) {
    throw new RpcError(`the chain node at ${url} is unreachable from this browser (${err.message})`);
  }
  if (!response.ok) throw new RpcError(`the chain node answered HTTP ${response.status}`);
  const body = await response.json();
  if (body.error) {
    const data = typeof body.error.data === "string" ? body.error.data : body.error.data?.data;
    throw new RpcError(body.error.message || "JSON-RPC error", data ?? null);
  }
  return body.result;
}

const word = (hex) => hex.padStart(64, "0");

export function uintWord(value) {
  const n = BigInt(value);
  if (n < 0n || n >= 1n << 256n) throw new RangeError(`${value} does not fit a uint256`);
  return word(n.toString(16));
}

export function bytes32Word(bytes) {
  if (bytes.length !== 32) throw new RangeError("bytes32 needs 32 bytes");
  return bytesToHex(bytes);
}

/** The functions, events and errors this page reads, as declared in chain/contracts/. */
export const SIGNATURES = {
  // AnchorRegistry
  verifyCheckpoint: "verifyCheckpoint(uint64,uint64,bytes32,bytes32,bytes32,uint64,uint64)",
  epochBlock: "epochBlock(uint64)",
  count: "count()",
  // DeviceRegistry
  device: "device(bytes32)",
  profile: "profile(bytes32)",
  keyCount: "keyCount(bytes32)",
  keyAt: "keyAt(bytes32,uint256)",
  keyInForceAt: "keyInForceAt(bytes32,uint64)",
  acceptsReading: "acceptsReading(bytes32,uint256,uint64,uint64)",
};
export const EVENTS = { Anchored: "Anchored(uint64,uint64,bytes32,bytes32,bytes32)" };
export const ERRORS = {
  UnknownEpoch: "UnknownEpoch(uint64)",
  CheckpointMismatch: "CheckpointMismatch(uint64)",
  UnknownDevice: "UnknownDevice(bytes32)",
  KeyIndexOutOfRange: "KeyIndexOutOfRange(bytes32,uint256,uint256)",
};

const SELECTOR = Object.fromEntries(Object.entries(SIGNATURES).map(([name, sig]) => [name, selector(sig)]));
const ERROR_BY_SELECTOR = new Map(Object.entries(ERRORS).map(([name, sig]) => [selector(sig), name]));

/** keccak256 of an event signature: its topic 0. */
export const topic = (signature) => `0x${bytesToHex(keccak256(new TextEncoder().encode(signature)))}`;

/** Name the custom error a revert carries, with its static arguments as BigInts. */
export function decodeRevert(data) {
  if (typeof data !== "string" || data.length < 10) return null;
  const name = ERROR_BY_SELECTOR.get(data.slice(0, 10).toLowerCase());
  if (!name) return null;
  const args = [];
  for (let at = 10; at + 64 <= data.length; at += 64) args.push(BigInt(`0x${data.slice(at, at + 64)}`));
  return new Revert(name, args);
}

/** The answer of eth_call as 32-byte words (hex strings, no 0x), with a way to read dynamic bytes. */
export class Words {
  constructor(hex) {
    this.hex = hex.startsWith("0x") ? hex.slice(2) : hex;
  }
  word(i) {
    const w = this.hex.slice(64 * i, 64 * i + 64);
    if (w.length !== 64) throw new RpcError(`the answer has no word ${i}: not the contract this page expects`);
    return w;
  }
  uint(i) {
    return BigInt(`0x${this.word(i)}`);
  }
  number(i) {
    const n = this.uint(i);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RpcError(`word ${i} is too large for this page`);
    return Number(n);
  }
  bool(i) {
    return this.uint(i) !== 0n;
  }
  bytes32(i) {
    return hexToBytes(this.word(i));
  }
  /** A `bytes` return value whose offset is word i. */
  bytes(i) {
    const offset = this.number(i) / 32;
    const length = this.number(offset);
    const hex = this.hex.slice(64 * (offset + 1), 64 * (offset + 1) + 2 * length);
    if (hex.length !== 2 * length) throw new RpcError("a bytes value runs past the answer");
    return hexToBytes(hex);
  }
}

/**
 * eth_call `name` (one of SIGNATURES) on `to` with static arguments (already ABI words) at
 * `block`; a revert with a known custom error is thrown as a Revert.
 */
export async function call(url, to, name, words, block = "latest") {
  const data = SELECTOR[name] + words.join("");
  try {
    return new Words(await rpc(url, "eth_call", [{ to, data }, block]));
  } catch (err) {
    const revert = err instanceof RpcError ? decodeRevert(err.data) : null;
    if (revert) throw revert;
    throw err;
  }
}
