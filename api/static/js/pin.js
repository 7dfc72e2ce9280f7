// Which chain this page checks against: the JSON-RPC URL and the AnchorRegistry and
// DeviceRegistry addresses. The API serves its own (GET /v1/chain), but the API is the operator's:
// a verdict resting on a node or contracts the operator names is the operator's word again. So a
// user pins them, from their own deployment file or auditor: in the link's query string
// (`?rpc=...&anchor=...&devices=...`) or in a setting this browser keeps (localStorage). Each
// value says where it came from; only when all three are the user's can a check be VERIFIED.

const STORAGE_KEY = "assetproof.chain-pin";
export const FIELDS = [
  ["rpc", "JSON-RPC URL"],
  ["anchor", "AnchorRegistry"],
  ["devices", "DeviceRegistry"],
];
export const SOURCE_TEXT = {
  link: "pinned by this link's query string",
  saved: "pinned in this browser's setting",
  api: "from the API (the operator's word)",
  none: "unknown",
};

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

function valid(field, value) {
  if (typeof value !== "string" || value === "") return false;
  if (field === "rpc") {
    try {
      const url = new URL(value);
      return (url.protocol === "http:" || url.protocol === "https:") && url.host !== "";
    } catch {
      return false;
    }
  }
  return ADDRESS.test(value);
}

export function loadSaved() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
    return Object.fromEntries(FIELDS.filter(([f]) => valid(f, saved[f])).map(([f]) => [f, saved[f]]));
  } catch {
    return {};
  }
}

/** Save what the user typed; returns the fields refused as malformed. */
export function save(values) {
  const bad = FIELDS.filter(([f]) => values[f] && !valid(f, values[f])).map(([, label]) => label);
  const keep = Object.fromEntries(FIELDS.filter(([f]) => valid(f, values[f])).map(([f]) => [f, values[f]]));
  if (!bad.length) localStorage.setItem(STORAGE_KEY, JSON.stringify(keep));
  return bad;
}

export function clearSaved() {
  localStorage.removeItem(STORAGE_KEY);
}

/**
 * The chain this page uses: {rpc, anchor, devices} each {value, source}, `pinned` when all
 * three are the user's, `fromApi` the fields taken from the API, `refused` malformed link values.
 * @param apiChain GET /v1/chain
 */
export function chainTarget(apiChain, search = location.search) {
  const query = new URLSearchParams(search);
  const saved = loadSaved();
  const api = { rpc: apiChain?.rpc_url, anchor: apiChain?.anchor_registry, devices: apiChain?.device_registry };
  const target = { refused: [] };
  for (const [field, label] of FIELDS) {
    const fromLink = query.get(field);
    if (fromLink !== null && !valid(field, fromLink)) target.refused.push(`${label} ${JSON.stringify(fromLink)}`);
    if (fromLink !== null && valid(field, fromLink)) target[field] = { value: fromLink, source: "link" };
    else if (saved[field]) target[field] = { value: saved[field], source: "saved" };
    else if (valid(field, api[field])) target[field] = { value: api[field], source: "api" };
    else target[field] = { value: null, source: "none" };
  }
  target.fromApi = FIELDS.filter(([f]) => target[f].source === "api").map(([, label]) => label);
  target.missing = FIELDS.filter(([f]) => target[f].source === "none").map(([, label]) => label);
  target.pinned = FIELDS.every(([f]) => target[f].source === "link" || target[f].source === "saved");
  return target;
}

/** Why a verdict against this target cannot be VERIFIED, or null when it is pinned. */
export function unpinnedReason(target) {
  if (target.pinned) return null;
  const parts = [];
  if (target.fromApi.length) parts.push(`${target.fromApi.join(", ")} came from the API, not from you`);
  if (target.missing.length) parts.push(`no ${target.missing.join(", ")} known`);
  return `${parts.join("; ")}: pin your own (from your deployment file) to verify against the chain you trust`;
}

/** The connect-src origins the page's Content-Security-Policy allows (read from its own headers). */
let allowedOrigins = null;
export async function cspConnectOrigins() {
  if (allowedOrigins === null) {
    try {
      const response = await fetch("/", { method: "HEAD" });
      const csp = response.headers.get("content-security-policy") || "";
      const directive = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("connect-src "));
      allowedOrigins = directive ? directive.split(/\s+/).slice(1) : ["*"];
    } catch {
      allowedOrigins = ["*"];
    }
  }
  return allowedOrigins;
}

/** Whether a CSP host source (scheme://host[:port|:*]) admits `origin` (scheme://host[:port]). */
function sourceMatches(source, origin) {
  const clean = source.replace(/\/$/, "");
  if (!clean.endsWith(":*")) return clean === origin;
  const base = clean.slice(0, -2);
  return origin === base || (origin.startsWith(`${base}:`) && /^\d+$/.test(origin.slice(base.length + 1)));
}

/** Null when this page may call `url`, else a sentence saying why not. */
export async function cspRefusal(url) {
  const origins = await cspConnectOrigins();
  const origin = new URL(url).origin;
  const ok = origins.some((o) => o === "*" || (o === "'self'" ? origin === location.origin : sourceMatches(o, origin)));
  if (ok) return null;
  return (
    `this page's Content-Security-Policy lets it call only ${origins.join(" ").replace("'self'", "its own origin")}, ` +
    `not ${origin}: run \`assetproof verify\` against that node, or open the dashboard served with ` +
    `ASSETPROOF_PUBLIC_RPC_URL set to it`
  );
}
