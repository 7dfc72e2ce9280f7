// The API, as this page uses it. Every figure here is the operator's claim; what the page checks
// itself (signatures, proofs, chain roots) lives in verify.js and merkle.js.

export class ApiError extends Error {
  constructor(status, detail, reason) {
    super(detail);
    this.status = status;
    this.reason = reason;
  }
}

export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) query.set(k, v);
  const url = query.size ? `${path}?${query}` : path;
  let response;
  try {
    response = await fetch(url, { headers: { accept: "application/json" } });
  } catch (err) {
    throw new ApiError(0, `the API is unreachable (${err.message})`, "unreachable");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.detail || `HTTP ${response.status}`, body?.reason || null);
  }
  return body;
}

let chainInfo = null;

/** GET /v1/chain, once per page load: where to check roots, and the selectors to call. */
export async function chain() {
  if (chainInfo === null) chainInfo = await get("/v1/chain");
  return chainInfo;
}

export function bundleURL({ logIndex = null, device = null, seq = null }) {
  if (logIndex !== null) return `/v1/readings/${encodeURIComponent(logIndex)}/bundle`;
  return `/v1/devices/${encodeURIComponent(device)}/readings/${encodeURIComponent(seq)}/bundle`;
}

let tariffCurrency = null;

/** The tariff's currency (money is in its minor units); the API reports it with cash flow. */
export async function currency() {
  if (tariffCurrency === null) {
    const assets = await get("/v1/assets");
    const first = assets.items[0];
    const flow = first
      ? await get(`/v1/assets/${encodeURIComponent(first.name)}/cashflow`, { granularity: "day", from: Date.now() - 86_400_000 })
      : null;
    if (!flow?.currency) return "HKD"; // nothing priced yet: ask again next time
    tariffCurrency = flow.currency;
  }
  return tariffCurrency;
}
