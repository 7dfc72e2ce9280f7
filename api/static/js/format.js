// Numbers, money, times and hex as people read them. Money arrives as integer minor units of
// the tariff's currency; it is shown in major units, with the exact integer on hover.

const moneyFormats = new Map();

function moneyFormat(currency, compact) {
  const key = `${currency}|${compact}`;
  if (!moneyFormats.has(key)) {
    let fmt;
    try {
      fmt = new Intl.NumberFormat("en", {
        style: "currency",
        currency,
        notation: compact ? "compact" : "standard",
        maximumFractionDigits: compact ? 1 : undefined,
      });
    } catch {
      fmt = null; // not an ISO 4217 code: fall back to plain numbers
    }
    moneyFormats.set(key, fmt);
  }
  return moneyFormats.get(key);
}

/** Decimal places of a currency's minor unit (2 for HKD, 0 for JPY). */
export function minorDigits(currency) {
  const fmt = moneyFormat(currency || "XXX", false);
  return fmt ? fmt.resolvedOptions().maximumFractionDigits : 2;
}

export function majorUnits(minor, currency) {
  return minor / 10 ** minorDigits(currency);
}

export function money(minor, currency, { compact = false, sign = false } = {}) {
  const value = majorUnits(minor, currency);
  const fmt = moneyFormat(currency || "XXX", compact);
  let text = fmt ? fmt.format(value) : `${value.toFixed(minorDigits(currency))} ${currency || ""}`.trim();
  if (sign && minor > 0) text = `+${text}`;
  return text;
}

export function moneyTitle(minor, currency) {
  return `${minor.toLocaleString("en")} minor units of ${currency || "the tariff currency"}`;
}

/** A money figure as HTML: major units shown, the minor-unit integer on hover. */
export function moneyHTML(minor, currency, opts = {}) {
  const cls = ["money", minor < 0 ? "neg" : ""].join(" ").trim();
  return `<span class="${cls}" title="${esc(moneyTitle(minor, currency))}">${esc(money(minor, currency, opts))}</span>`;
}

export function num(n, digits = 0) {
  return Number(n).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function pct(ratio, digits = 0) {
  return `${(ratio * 100).toFixed(digits)}%`;
}

export function kwh(wh) {
  return wh >= 1e6 ? `${num(wh / 1e6, 2)} MWh` : `${num(wh / 1000, 1)} kWh`;
}

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Long hex shortened in the middle, the whole value on hover and selectable. */
export function hexHTML(hex, { head = 6, tail = 4, href = null } = {}) {
  if (!hex) return '<span class="muted">—</span>';
  const short = hex.length > head + tail + 2 ? `${hex.slice(0, head)}…${hex.slice(-tail)}` : hex;
  const inner = `<code class="hex" title="${esc(hex)}">${esc(short)}</code>`;
  return href ? `<a href="${esc(href)}">${inner}</a>` : inner;
}

export function time(ms) {
  return new Date(ms).toLocaleString("en-GB", {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    day: "numeric",
    month: "short",
  });
}

export function hourLabel(ms, granularity) {
  const d = new Date(ms);
  if (granularity === "day") return d.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
  return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}

export function ago(ms, now = Date.now()) {
  if (ms == null) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export const KIND_LABEL = { solar: "Solar", charger: "EV charging", miner: "Mining" };

// Device metrics (integers in fixed units, protocol/envelope.py METRICS) as people read them.
// `scale` turns the signed integer into `unit`; `si` picks a prefix for large values.
// tests/api/test_dashboard_format.py checks that every metric protocol/ defines is here.
export const METRIC_LABELS = {
  energy_wh: { label: "Energy", unit: "Wh", si: true },
  grid_wh: { label: "Grid energy", unit: "Wh", si: true },
  power_w: { label: "Power", unit: "W", si: true },
  irradiance_wm2: { label: "Irradiance", unit: "W/m²" },
  temp_dc: { label: "Temperature", unit: "°C", scale: 0.1, digits: 1 },
  sessions_started: { label: "Sessions started", unit: "" },
  sessions_ended: { label: "Sessions ended", unit: "" },
  active_s: { label: "Charging time", unit: "s" },
  hashes_gh: { label: "Hashes", unit: "H", scale: 1e9, si: true },
  hashrate_ghs: { label: "Hashrate", unit: "H/s", scale: 1e9, si: true },
  uptime_s: { label: "Hashing time", unit: "s" },
  curtailed_s: { label: "Curtailed", unit: "s" },
};

const SI = [
  [1e18, "E"],
  [1e15, "P"],
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
];

/** A metric's value with its unit: ("temp_dc", 482) -> "48.2 °C", ("hashes_gh", 17280000) -> "17.28 PH". */
export function metricValue(name, value) {
  const spec = METRIC_LABELS[name];
  if (!spec) return num(value);
  const v = value * (spec.scale ?? 1);
  if (spec.si && Math.abs(v) >= 1000) {
    const [factor, prefix] = SI.find(([f]) => Math.abs(v) >= f);
    return `${(v / factor).toLocaleString("en", { maximumFractionDigits: 2 })} ${prefix}${spec.unit}`;
  }
  return `${num(v, spec.digits ?? 0)}${spec.unit ? ` ${spec.unit}` : ""}`;
}

/** A metric's plain name: "temp_dc" -> "Temperature" (the raw name for one this page does not know). */
export function metricLabel(name) {
  return METRIC_LABELS[name]?.label ?? name;
}

/** A metric as HTML: its plain name and value with unit, the signed name and integer on hover. */
export function metricHTML(name, value) {
  return `<span class="metric" title="${esc(`${name} = ${value} (as signed)`)}"><span class="muted">${esc(metricLabel(name))}</span> ${esc(metricValue(name, value))}</span>`;
}
