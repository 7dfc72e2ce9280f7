// JSON-RPC straight from the browser to the chain node: the API is not in the path, so what
// comes back is what the chain says. Selectors come from GET /v1/chain (computed with Keccak on
// the server); this file only does ABI word encoding, which needs no hashing.

import { bytesToHex } from "./merkle.js";

export class RpcError extends Error {
  constructor(message, data = null) {
    super(message);
    this.data = data;
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

/** Calldata: the 4-byte selector (0x-prefixed hex) and static ABI words. */
export function calldata(selector, words) {
  return selector + words.join("");
}

/** Name the custom error a revert carries, from the selectors the API served. */
export function decodeRevert(data, selectors) {
  if (!data || data.length < 10) return null;
  const selector = data.slice(0, 10).toLowerCase();
  for (const [name, value] of Object.entries(selectors)) {
    if (value.toLowerCase() === selector) {
      const arg = data.length >= 74 ? BigInt(`0x${data.slice(10, 74)}`) : null;
      return arg === null ? name : `${name}(${arg})`;
    }
  }
  return null;
}
