// RFC 6962 / RFC 9162 Merkle proofs, verified in the browser with WebCrypto's SHA-256: a port of
// protocol/merkle.py (root_from_inclusion_proof, verify_consistency). Indexes and sizes are
// BigInt because JavaScript's bit operators work on 32 bits and logs are uint64.

export class ProofError extends Error {}

export function hexToBytes(hex) {
  const clean = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (clean.length % 2 || /[^0-9a-fA-F]/.test(clean)) throw new ProofError(`not hex: ${hex.slice(0, 20)}…`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export function leafHash(message) {
  return sha256(concat(LEAF, message));
}

export function nodeHash(left, right) {
  return sha256(concat(NODE, left, right));
}

const bitLength = (n) => (n === 0n ? 0 : n.toString(2).length);
const bitCount = (n) => n.toString(2).replace(/0/g, "").length;
const U64 = 1n << 64n;

function requireSize(name, value) {
  const n = BigInt(value);
  if (n < 0n || n >= U64) throw new ProofError(`${name} must be in 0..2**64-1, got ${value}`);
  return n;
}

function requireProof(proof, length) {
  if (proof.length !== length) throw new ProofError(`wrong proof length ${proof.length}, expected ${length}`);
  proof.forEach((h, i) => {
    if (h.length !== 32) throw new ProofError(`proof element ${i} must be 32 bytes, got ${h.length}`);
  });
  return proof;
}

function inclusionShape(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  const border = bitCount(index >> BigInt(inner));
  return [inner, border];
}

async function chainInner(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    seed = (index >> BigInt(i)) & 1n ? await nodeHash(proof[i], seed) : await nodeHash(seed, proof[i]);
  }
  return seed;
}

async function chainInnerRight(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    if ((index >> BigInt(i)) & 1n) seed = await nodeHash(proof[i], seed);
  }
  return seed;
}

async function chainBorderRight(seed, proof) {
  for (const h of proof) seed = await nodeHash(h, seed);
  return seed;
}

/** The root that `proof` leads to from `leaf` at `index` in a tree of `size` leaves. */
export async function rootFromInclusionProof({ leaf, index, size, proof }) {
  const i = requireSize("index", index);
  const n = requireSize("size", size);
  if (i >= n) throw new ProofError(`index ${i} is not below size ${n}`);
  if (leaf.length !== 32) throw new ProofError("leaf hash must be 32 bytes");
  const [inner, border] = inclusionShape(i, n);
  const checked = requireProof(proof, inner + border);
  return chainBorderRight(await chainInner(leaf, checked.slice(0, inner), i), checked.slice(inner));
}

/** Throws ProofError unless `proof` shows (size2, root2) extends (size1, root1). */
export async function verifyConsistency({ size1, size2, proof, root1, root2 }) {
  const s1 = requireSize("size1", size1);
  const s2 = requireSize("size2", size2);
  if (s2 < s1) throw new ProofError(`size2 ${s2} is smaller than size1 ${s1}`);
  if (s1 === s2 || s1 === 0n) {
    requireProof(proof, 0);
    if (s1 === 0n && !equalBytes(root1, await sha256(new Uint8Array()))) {
      throw new ProofError("the empty tree's root is not SHA-256 of nothing");
    }
    if (s1 === s2 && !equalBytes(root1, root2)) throw new ProofError("equal tree sizes with different roots");
    return;
  }
  const shift = bitLength(s1 & -s1) - 1;
  let [inner, border] = inclusionShape(s1 - 1n, s2);
  inner -= shift;
  const seeded = s1 === 1n << BigInt(shift); // a power of two: root1 itself is the seed
  const start = seeded ? 0 : 1;
  const checked = requireProof(proof, start + inner + border);
  const seed = seeded ? root1 : checked[0];
  const path = checked.slice(start);
  const mask = (s1 - 1n) >> BigInt(shift);
  const first = await chainBorderRight(await chainInnerRight(seed, path.slice(0, inner), mask), path.slice(inner));
  if (!equalBytes(first, root1)) throw new ProofError("the proof does not lead to the older root");
  const second = await chainBorderRight(await chainInner(seed, path.slice(0, inner), mask), path.slice(inner));
  if (!equalBytes(second, root2)) throw new ProofError("the proof does not lead to the newer root");
}
