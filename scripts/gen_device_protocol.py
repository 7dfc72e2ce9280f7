"""Regenerate the tables of docs/device-protocol.md from protocol/ (and the gateway's defaults),
so the page a device vendor implements from cannot drift from the code that judges the device.

    .venv/bin/python scripts/gen_device_protocol.py          # rewrite the generated blocks
    .venv/bin/python scripts/gen_device_protocol.py --check  # exit 1 if the page is stale

The page is prose written by hand with blocks between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->``; only those blocks are rewritten. Every block is a function of
what protocol/ holds when it runs: a metric, a device kind, a limit or a quarantine reason added
there appears here at the next regeneration (tests/protocol/test_device_protocol_doc.py fails
until it is run).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from protocol import errors as protocol_errors  # noqa: E402 - after the path set-up
from protocol import plausibility  # noqa: E402
from protocol.envelope import FORMAT_VERSION, GENESIS_PREV, MAX_INT, MAX_MESSAGE_BYTES, METRICS, DeviceKind  # noqa: E402
from protocol.quarantine import QuarantineReason  # noqa: E402
from protocol.signing import ALGORITHMS  # noqa: E402
from protocol.topics import SUBSCRIPTION, telemetry_topic  # noqa: E402

DOC = REPO / "docs" / "device-protocol.md"

EXAMPLE_RATINGS = {
    DeviceKind.SOLAR: {"rated_power_w": 5_000},
    DeviceKind.CHARGER: {"rated_power_w": 22_000},
    DeviceKind.MINER: {"rated_power_w": 3_500, "rated_hashrate_ghs": 200_000},
}
"""Ratings the worked limits are computed for (a 5 kW rooftop string, a 22 kW AC charger, a
200 TH/s rig); the limits scale with the device's own registered rating."""
EXAMPLE_WINDOW_S = 60

# What the device can do about each reason. A reason protocol/ gains without an entry here gets a
# pointer to the detail the gateway stores with the message, until someone writes one.
FIXES: dict[str, tuple[str, str]] = {
    "oversized": ("the message is larger than the size limit", "send fewer bytes: no extra whitespace or fields"),
    "malformed": (
        "not UTF-8 JSON, or not the schema (a field missing, extra or of the wrong type, a metric"
        " missing or unknown for the kind, a value outside its schema range, a bad device id)",
        "compare with the schema and the metric table; the stored detail names the field",
    ),
    "non_canonical": (
        "valid JSON whose bytes are not its RFC 8785 encoding (key order, spaces, escapes, 1.0 for 1)",
        "serialise with an RFC 8785 (JCS) encoder and send exactly those bytes",
    ),
    "unsupported_alg": (
        f"``alg`` is not one of {', '.join(ALGORITHMS)}",
        "sign with a supported algorithm",
    ),
    "invalid_key": (
        "the registered public key is unusable for its algorithm",
        "re-register the device's key (an installer's job: `assetproof devices rotate`)",
    ),
    "bad_signature": (
        "the signature does not verify with the device's registered key (or is signed with another algorithm)",
        "sign the body's canonical bytes (not the message's) with the registered key; r||s for es256",
    ),
    "verification_failed": (
        "a verification failure without a more specific code",
        "read the stored detail",
    ),
    "topic_mismatch": (
        "the body's device is not the device whose topic carried it",
        "publish on ``assetproof/v1/devices/<your id>/telemetry`` with your own id in the body",
    ),
    "unknown_device": ("the device id is not registered", "have the device registered before it sends"),
    "revoked_device": (
        "the device's registration was revoked",
        "nothing on the device: a revoked device is replaced, not revived",
    ),
    "replay": (
        "a ``seq`` already used by another message (a different message, not a redelivered copy)",
        "never reuse a seq: persist the counter before sending; after a lost state ask for `devices resync`",
    ),
    "gap": (
        "``prev`` links to the head but ``seq`` skips numbers (or a held message waited 30 s for its"
        " predecessor in vain)",
        "increment seq by exactly 1 per signed message and keep unsent messages until they are acknowledged",
    ),
    "bad_prev": (
        "``prev`` is not the SHA-256 of the device's previous message bytes",
        "hash the whole previous message (the wire bytes, not the body); 64 zeros only before seq 1",
    ),
    "kind_mismatch": (
        "the body's ``kind`` differs from the registered kind (chained: the device goes on)",
        "send the kind the device was registered as",
    ),
    "clock_skew": (
        "``ts_ms`` is before the previous accepted reading's or too far in the future (chained)",
        "keep the clock on UTC (NTP or the network time) and never step it backwards",
    ),
    "implausible": (
        "a figure the device cannot physically produce for its rating (chained)",
        "check the meter's scaling and units; the detail names the figure and its limit",
    ),
}

_CHAINED = {"kind_mismatch", "clock_skew", "implausible"}


def _error_doc(reason: str) -> str | None:
    """The docstring of the protocol error class whose code is ``reason``, if one has it."""
    for value in vars(protocol_errors).values():
        if (
            isinstance(value, type)
            and issubclass(value, protocol_errors.VerificationError)
            and value.reason == reason
            and value.__doc__
        ):
            return " ".join(value.__doc__.split())
    return None


def envelope_block() -> str:
    rows = [
        ("format version ``body.v``", str(FORMAT_VERSION)),
        ("message size limit", f"{MAX_MESSAGE_BYTES:,} bytes (the whole wire message)"),
        ("signature algorithms ``alg``", ", ".join(f"``{a}``" for a in ALGORITHMS)),
        ("device id", "``[a-z0-9][a-z0-9-]{0,62}`` (1 to 63 characters)"),
        ("``seq``", f"integer 1 .. {MAX_INT:,} (2^53 - 1)"),
        ("``ts_ms``", f"integer 0 .. {MAX_INT:,}: milliseconds since 1970-01-01 UTC"),
        ("``window_s``", "integer 1 .. 86,400 seconds"),
        ("``prev`` before the first reading", f"``{GENESIS_PREV.hex()}`` (32 zero bytes)"),
        ("any integer", f"-{MAX_INT:,} .. {MAX_INT:,}; never a float"),
        ("device topic", f"``{SUBSCRIPTION.replace('+', '<device-id>')}`` (e.g. ``{telemetry_topic('sol-0001')}``)"),
        ("gateways subscribe to", f"``$share/<group>/{SUBSCRIPTION}``"),
    ]
    return _table(("what", "value"), rows)


def gateway_block() -> str:
    """The gateway's defaults a device meets (deployment settings may change them)."""
    from dataclasses import fields

    from config.settings import Settings
    from gateway.service import GatewayConfig

    defaults = {f.name: f.default for f in fields(GatewayConfig)}
    budget = Settings.model_fields
    rows = [
        (
            "clock skew: how far ``ts_ms`` may run ahead of the gateway's clock",
            f"{defaults['max_future_skew_ms'] // 1000} s",
        ),
        (
            "hold: how long a message that arrived before its predecessor waits",
            f"{defaults['hold_ms'] // 1000} s, then ``gap``",
        ),
        ("MQTT protocol", "v5 (3.1.1 accepted by the embedded demo broker)"),
        (
            "gateway session expiry (messages for a stopped gateway wait at the broker)",
            f"{defaults['session_expiry_s'] // 3600} h",
        ),
        (
            "quarantine budget per publishing device",
            f"{budget['quarantine_budget_messages'].default:,} messages or"
            f" {budget['quarantine_budget_bytes'].default // (1024 * 1024)} MiB per"
            f" {budget['quarantine_budget_window_s'].default // 60} min; past it counted, not stored"
            " (chained rejections always stored)",
        ),
    ]
    return _table(("gateway default", "value"), rows)


def metrics_block() -> str:
    parts = []
    for kind in DeviceKind:
        rating = EXAMPLE_RATINGS.get(kind)
        maxima = plausibility.plausible_maxima(kind, rating, window_s=EXAMPLE_WINDOW_S) if rating is not None else {}
        shown = ", ".join(f"{k} {v:,}" for k, v in (rating or {}).items())
        parts.append(f"**{kind.value}** (plausible maximum for {shown}, {EXAMPLE_WINDOW_S} s window)\n")
        rows = []
        for name, spec in METRICS[kind].items():
            limit = maxima.get(name)
            if name == "temp_dc":
                plaus = f"{plausibility.MIN_TEMP_DC:,} .. {plausibility.MAX_TEMP_DC:,}"
            else:
                plaus = "-" if limit is None else f"<= {limit:,}"
            rows.append((f"``{name}``", spec.unit, f"{spec.minimum:,} .. {spec.maximum:,}", plaus, spec.description))
        parts.append(_table(("metric", "unit", "schema range", "plausible", "meaning"), rows))
    return "\n".join(parts)


def plausibility_block() -> str:
    p = plausibility
    rows = [
        ("margin above the rating", f"{p.MARGIN_PERCENT - 100} % (``MARGIN_PERCENT`` = {p.MARGIN_PERCENT})"),
        ("``power_w``, ``hashrate_ghs``", f"<= rating x {p.MARGIN_PERCENT} / 100 (integer division)"),
        (
            "``energy_wh``",
            f"<= rated_power_w x {p.MARGIN_PERCENT} x window_s / (100 x 3600) + 1 (a meter may carry one Wh)",
        ),
        ("``hashes_gh`` (miner)", f"<= rated_hashrate_ghs x {p.MARGIN_PERCENT} x window_s / 100"),
        ("``temp_dc``", f"{p.MIN_TEMP_DC} .. {p.MAX_TEMP_DC} tenths of a degree Celsius"),
        ("``irradiance_wm2`` (solar)", f"<= {p.MAX_IRRADIANCE_WM2}"),
        ("``active_s`` (charger)", "<= window_s"),
        ("``sessions_started`` (charger)", f"<= window_s / {p.SESSION_START_S} + 1"),
        ("``grid_wh`` (charger)", ">= energy_wh (a charger cannot deliver more than it draws)"),
        ("``uptime_s + curtailed_s`` (miner)", "<= window_s"),
    ]
    return _table(("rule", "limit"), rows)


def reasons_block() -> str:
    rows = []
    for reason in QuarantineReason:
        meaning, fix = FIXES.get(
            reason.value,
            (_error_doc(reason.value) or "see protocol/quarantine.py", "read the detail stored with the message"),
        )
        rows.append((f"``{reason.value}``", "yes" if reason.value in _CHAINED else "no", meaning, fix))
    return _table(("reason", "chained", "what it means", "what to fix on the device"), rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "envelope": envelope_block,
    "gateway": gateway_block,
    "metrics": metrics_block,
    "plausibility": plausibility_block,
    "reasons": reasons_block,
}


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("``", "`").replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]) + "\n"


def render(text: str) -> str:
    """``text`` with every generated block rewritten (a block named in the page but unknown here,
    or a block missing from the page, is an error: the page and this script go together)."""
    found = set(re.findall(r"<!-- generated:(\w+) -->", text))
    if found != set(BLOCKS):
        raise SystemExit(f"{DOC}: generated blocks {sorted(found)} != {sorted(BLOCKS)}")
    for name, block in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        body = block()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not what it would be")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{DOC.relative_to(REPO)} is stale: run scripts/gen_device_protocol.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
