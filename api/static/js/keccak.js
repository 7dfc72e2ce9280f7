// Keccak-256 (the original padding Ethereum uses, not NIST SHA3-256): device ids are keyed on chain
// by keccak256(UTF-8 id), and function selectors are its first 4 bytes. WebCrypto has no Keccak,
// and taking either from the API would put the API back in the path this page checks.
// 64-bit lanes as pairs of 32-bit halves, so no BigInt in the permutation.

const RC = [
  [0x00000001, 0x00000000], [0x00008082, 0x00000000], [0x0000808a, 0x80000000], [0x80008000, 0x80000000],
  [0x0000808b, 0x00000000], [0x80000001, 0x00000000], [0x80008081, 0x80000000], [0x00008009, 0x80000000],
  [0x0000008a, 0x00000000], [0x00000088, 0x00000000], [0x80008009, 0x00000000], [0x8000000a, 0x00000000],
  [0x8000808b, 0x00000000], [0x0000008b, 0x80000000], [0x00008089, 0x80000000], [0x00008003, 0x80000000],
  [0x00008002, 0x80000000], [0x00000080, 0x80000000], [0x0000800a, 0x00000000], [0x8000000a, 0x80000000],
  [0x80008081, 0x80000000], [0x00008080, 0x80000000], [0x80000001, 0x00000000], [0x80008008, 0x80000000],
];
// Rotation offsets and the pi permutation, indexed by lane x + 5y.
const ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];
const PI = Array.from({ length: 25 }, (_, i) => {
  const x = i % 5;
  const y = Math.floor(i / 5);
  return y + 5 * ((2 * x + 3 * y) % 5); // B[y, 2x + 3y] = rot(A[x, y])
});

function rotl(lo, hi, n) {
  if (n === 0) return [lo, hi];
  if (n >= 32) [lo, hi, n] = [hi, lo, n - 32];
  if (n === 0) return [lo, hi];
  return [((lo << n) | (hi >>> (32 - n))) >>> 0, ((hi << n) | (lo >>> (32 - n))) >>> 0];
}

function permute(lo, hi) {
  const cLo = new Uint32Array(5);
  const cHi = new Uint32Array(5);
  const bLo = new Uint32Array(25);
  const bHi = new Uint32Array(25);
  for (let round = 0; round < 24; round++) {
    for (let x = 0; x < 5; x++) {
      cLo[x] = lo[x] ^ lo[x + 5] ^ lo[x + 10] ^ lo[x + 15] ^ lo[x + 20];
      cHi[x] = hi[x] ^ hi[x + 5] ^ hi[x + 10] ^ hi[x + 15] ^ hi[x + 20];
    }
    for (let x = 0; x < 5; x++) {
      const [rLo, rHi] = rotl(cLo[(x + 1) % 5], cHi[(x + 1) % 5], 1);
      const dLo = cLo[(x + 4) % 5] ^ rLo;
      const dHi = cHi[(x + 4) % 5] ^ rHi;
      for (let y = 0; y < 25; y += 5) {
        lo[x + y] ^= dLo;
        hi[x + y] ^= dHi;
      }
    }
    for (let i = 0; i < 25; i++) {
      const [rLo, rHi] = rotl(lo[i], hi[i], ROT[i]);
      bLo[PI[i]] = rLo;
      bHi[PI[i]] = rHi;
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) {
        lo[x + y] = bLo[x + y] ^ (~bLo[((x + 1) % 5) + y] & bLo[((x + 2) % 5) + y]);
        hi[x + y] = bHi[x + y] ^ (~bHi[((x + 1) % 5) + y] & bHi[((x + 2) % 5) + y]);
      }
    }
    lo[0] ^= RC[round][0];
    hi[0] ^= RC[round][1];
  }
}

const RATE = 136; // bytes: 1600 - 2 * 256 bits

/** keccak256(bytes) as a 32-byte Uint8Array. */
export function keccak256(data) {
  const padded = new Uint8Array((Math.floor(data.length / RATE) + 1) * RATE);
  padded.set(data);
  padded[data.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const lo = new Uint32Array(25);
  const hi = new Uint32Array(25);
  const view = new DataView(padded.buffer);
  for (let block = 0; block < padded.length; block += RATE) {
    for (let i = 0; i < RATE / 8; i++) {
      lo[i] ^= view.getUint32(block + 8 * i, true);
      hi[i] ^= view.getUint32(block + 8 * i + 4, true);
    }
    permute(lo, hi);
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) {
    outView.setUint32(8 * i, lo[i], true);
    outView.setUint32(8 * i + 4, hi[i], true);
  }
  return out;
}

/** The 4-byte selector of a Solidity signature such as "keyAt(bytes32,uint256)", as 0x-hex. */
export function selector(signature) {
  const digest = keccak256(new TextEncoder().encode(signature));
  return `0x${Array.from(digest.slice(0, 4), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
