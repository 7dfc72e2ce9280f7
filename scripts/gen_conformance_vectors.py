"""Write the device-protocol conformance vectors (tests/vectors/conformance/).

    .venv/bin/python scripts/gen_conformance_vectors.py          # rewrite them
    .venv/bin/python scripts/gen_conformance_vectors.py --check  # exit 1 if they differ

Everything is deterministic: the keys come from fixed seeds, both signature schemes sign
deterministically (Ed25519 by design, P-256 with RFC 6979 nonces and low s), and the times are
fixed, so the files are a pure function of protocol/ and this script. The vectors form one
ordered stream per device: each verdict depends on the messages before it, exactly as at a
gateway.

Files: ``devices.json`` (the registrations the vectors assume, private keys included: they are
test keys) and ``vectors.jsonl`` (one vector per line: ``name``, ``alg``, ``expected``,
``about``, ``topic`` and ``message``, the exact wire text). ``assetproof device check
vectors.jsonl --devices devices.json`` reads both as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from protocol.envelope import (  # noqa: E402 - after the path set-up
    GENESIS_PREV,
    MAX_MESSAGE_BYTES,
    Body,
    DeviceKind,
    Message,
    canonical_json,
    chain_hash,
    sign_body,
)
from protocol.signing import DeviceKey  # noqa: E402
from protocol.topics import telemetry_topic  # noqa: E402

OUT = REPO / "tests" / "vectors" / "conformance"
BASE_MS = 1_767_225_600_000
"""2026-01-01 00:00:00 UTC: every accepted vector is dated after it, and long before any
clock that judges them, so the verdicts hold for any gateway clock from 2026 to 2099."""
FUTURE_MS = 4_102_444_800_000
"""2100-01-01: further ahead of any gateway clock than the skew allowance."""
NOW_MS = BASE_MS + 86_400_000
"""The clock ``device check`` judges the vectors at in the tests (any later one gives the same)."""
ASSET = {"solar": "conformance-solar", "charger": "conformance-hub"}


def _key(name: str, alg: str) -> DeviceKey:
    return DeviceKey.from_private_bytes(alg, hashlib.sha256(b"assetproof conformance " + name.encode()).digest())


@dataclass
class Device:
    id: str
    kind: DeviceKind
    alg: str
    rating: dict[str, int]
    window_s: int = 60
    registered: bool = True
    key: DeviceKey = field(init=False)
    seq: int = 0
    prev: bytes = GENESIS_PREV
    ts_ms: int = BASE_MS

    def __post_init__(self) -> None:
        self.key = _key(self.id, self.alg)

    @property
    def topic(self) -> str:
        return telemetry_topic(self.id)

    def metrics(self, *, scale: int = 1) -> dict[str, int]:
        if self.kind is DeviceKind.SOLAR:
            return {"energy_wh": 70 * scale, "power_w": 4_200 * scale, "irradiance_wm2": 640, "temp_dc": 312}
        return {
            "energy_wh": 300 * scale,
            "grid_wh": 320 * scale,
            "sessions_started": 1,
            "sessions_ended": 0,
            "active_s": 60,
            "power_w": 18_000 * scale,
        }

    def body(self, *, seq: int | None = None, prev: bytes | None = None, ts_ms: int | None = None, **kw: Any) -> Body:
        return Body(
            device=self.id,
            seq=self.seq + 1 if seq is None else seq,
            ts_ms=self.ts_ms + self.window_s * 1000 if ts_ms is None else ts_ms,
            kind=kw.get("kind", self.kind),
            window_s=self.window_s,
            metrics=kw.get("metrics") or self.metrics(scale=kw.get("scale", 1)),
            prev=self.prev if prev is None else prev,
        )

    def sign(self, body: Body, *, key: DeviceKey | None = None) -> Message:
        return sign_body(body, key or self.key)

    def link(self, message: Message, *, dated: bool) -> None:
        """The device's chain moves to ``message`` (accepted, or a chained rejection); the next
        reading is dated a window later unless this one's date was the fault."""
        self.seq = message.body.seq
        self.prev = message.chain_hash
        if dated:
            self.ts_ms = message.body.ts_ms

    def registration(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "alg": self.alg,
            "public_key": self.key.public_key.hex(),
            "private_key": self.key.private_bytes.hex(),
            "rating": self.rating,
            "window_s": self.window_s,
            "asset": ASSET[self.kind.value],
        }


@dataclass
class Stream:
    vectors: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, name: str, device: Device, raw: bytes, expected: str, about: str, *, topic: str | None = None
    ) -> None:
        self.vectors.append(
            {
                "name": f"{device.alg}/{name}",
                "alg": device.alg,
                "expected": expected,
                "about": about,
                "topic": topic or device.topic,
                "message": raw.decode(),
            }
        )


def _spaced(message: Message) -> bytes:
    """The same object, signature still valid, in a non-canonical spelling."""
    return json.dumps(json.loads(message.raw), indent=None, separators=(", ", ": ")).encode()


def _flip_sig(message: Message) -> bytes:
    obj = json.loads(message.raw)
    sig = bytearray(bytes.fromhex(obj["sig"]))
    sig[10] ^= 0x01
    obj["sig"] = sig.hex()
    return canonical_json(obj)


def _with_metric(message: Message, name: str, value: float) -> bytes:
    obj = json.loads(message.raw)
    obj["body"]["metrics"][name] = value
    # json.dumps, not canonical_json: a float must keep its spelling (70.0 stays 70.0).
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def device_stream(s: Stream, d: Device, other: Device, stranger: Device) -> None:
    """One device's stream of valid and invalid messages, in the order a gateway judges them."""
    accepted = "accepted"

    def ok(name: str, about: str) -> Message:
        m = d.sign(d.body())
        s.add(name, d, m.raw, accepted, about)
        d.link(m, dated=True)
        return m

    def refused(name: str, raw: bytes, reason: str, about: str, **kw: str) -> None:
        s.add(name, d, raw, reason, about, **kw)

    def chained(name: str, m: Message, reason: str, about: str) -> None:
        s.add(name, d, m.raw, reason, about)
        d.link(m, dated=reason != "clock_skew")

    first = ok("first-reading", "seq 1, prev = 64 zeros, registered key and kind, plausible: accepted")
    ok("second-reading", "seq 2 links to seq 1 (prev = SHA-256 of seq 1's message bytes)")
    second = s.vectors[-1]["message"].encode()
    s.add("redelivery", d, second, "duplicate", "the same bytes again (a QoS 1 redelivery): counted once, not stored")
    nxt = d.sign(d.body())
    refused("bad-signature", _flip_sig(nxt), "bad_signature", "one bit of sig flipped")
    refused(
        "signed-by-another-key",
        d.sign(d.body(), key=_key("someone-else", d.alg)).raw,
        "bad_signature",
        "well formed and linked, signed by a key that is not the device's",
    )
    wrong_alg = "es256" if d.alg == "ed25519" else "ed25519"
    refused(
        "signed-with-the-other-algorithm",
        d.sign(d.body(), key=_key(d.id, wrong_alg)).raw,
        "bad_signature",
        f"signed with {wrong_alg}; the device is registered with {d.alg}",
    )
    refused("non-canonical", _spaced(nxt), "non_canonical", "valid signature, bytes not RFC 8785 (spaces)")
    refused(
        "unknown-metric",
        _with_metric(nxt, "voltage_v", 230),
        "malformed",
        "a metric the kind does not have (the schema admits exactly the kind's metrics)",
    )
    refused(
        "float-metric",
        _with_metric(nxt, "energy_wh", 70.5),
        "malformed",
        "a fraction where an integer is required (integers only, in fixed units)",
    )
    refused(
        "integer-written-as-float",
        _with_metric(nxt, "energy_wh", 70.0),
        "non_canonical",
        "70.0 for 70: the right value, not its canonical spelling",
    )
    refused(
        "oversized",
        nxt.raw[:-1] + b" " * (MAX_MESSAGE_BYTES + 1 - len(nxt.raw)) + b"}",
        "oversized",
        f"{MAX_MESSAGE_BYTES + 1} bytes: over the {MAX_MESSAGE_BYTES}-byte limit (checked before parsing)",
    )
    refused("not-json", b"reading 3: 70 Wh", "malformed", "not JSON")
    refused(
        "unsupported-alg",
        nxt.raw.replace(f'"alg":"{d.alg}"'.encode(), b'"alg":"rsa2048"', 1),
        "unsupported_alg",
        "alg names no supported algorithm",
    )
    refused(
        "on-another-devices-topic",
        nxt.raw,
        "topic_mismatch",
        f"this device's valid next reading, published on {other.id}'s topic",
        topic=other.topic,
    )
    chained(
        "implausible",
        d.sign(d.body(scale=40)),
        "implausible",
        "signed and linked, but power and energy 40x the rating allows: quarantined chained (seq 3 is used)",
    )
    chained(
        "clock-in-the-future",
        d.sign(d.body(ts_ms=FUTURE_MS)),
        "clock_skew",
        "dated 2100-01-01, far past the gateway clock plus the skew allowance: chained",
    )
    chained(
        "clock-backwards",
        d.sign(d.body(ts_ms=first.body.ts_ms)),
        "clock_skew",
        "dated before the previous accepted reading: chained",
    )
    other_kind = DeviceKind.CHARGER if d.kind is DeviceKind.SOLAR else DeviceKind.SOLAR
    swapped = Device(d.id, other_kind, d.alg, d.rating)
    chained(
        "wrong-kind",
        d.sign(d.body(kind=other_kind, metrics=swapped.metrics())),
        "kind_mismatch",
        f"a {other_kind.value} reading from a {d.kind.value}: chained",
    )
    six = ok("after-chained-rejections", "the next reading links to the chained rejections: accepted")
    refused(
        "replay",
        d.sign(d.body(seq=six.body.seq, prev=six.body.prev, ts_ms=six.body.ts_ms, scale=0)).raw,
        "replay",
        "another message with an already used seq",
    )
    refused(
        "gap",
        d.sign(d.body(seq=d.seq + 2)).raw,
        "gap",
        "prev links to the head but seq skips one",
    )
    refused(
        "bad-prev",
        d.sign(d.body(prev=chain_hash(b"not the previous message"))).raw,
        "bad_prev",
        "seq follows the head, prev is not the head's hash",
    )
    refused(
        "prev-of-the-body",
        d.sign(d.body(prev=hashlib.sha256(six.body.signing_bytes()).digest())).raw,
        "bad_prev",
        "prev hashes the previous body, not the previous whole message",
    )
    ok("back-on-the-chain", "the next reading, correctly linked: accepted")
    s.add(
        "unregistered-device",
        stranger,
        stranger.sign(stranger.body()).raw,
        "unknown_device",
        "signed and well formed, but the device is not registered",
    )


def build() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    solar = Device("conf-sol-ed25519", DeviceKind.SOLAR, "ed25519", {"rated_power_w": 5_000})
    charger = Device("conf-evc-es256", DeviceKind.CHARGER, "es256", {"rated_power_w": 22_000})
    strangers = {
        "ed25519": Device("conf-unregistered-ed25519", DeviceKind.SOLAR, "ed25519", {"rated_power_w": 5_000}),
        "es256": Device("conf-unregistered-es256", DeviceKind.CHARGER, "es256", {"rated_power_w": 22_000}),
    }
    stream = Stream()
    device_stream(stream, solar, charger, strangers["ed25519"])
    device_stream(stream, charger, solar, strangers["es256"])
    return [solar.registration(), charger.registration()], stream.vectors


def files() -> dict[str, bytes]:
    devices, vectors = build()
    return {
        "devices.json": (json.dumps({"now_ms": NOW_MS, "devices": devices}, indent=1) + "\n").encode(),
        "vectors.jsonl": b"".join(json.dumps(v).encode() + b"\n" for v in vectors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check the conformance vectors.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed vectors differ")
    args = parser.parse_args(argv)
    fresh = files()
    if args.check:
        stale = [n for n, data in fresh.items() if not (OUT / n).exists() or (OUT / n).read_bytes() != data]
        if stale:
            print(f"stale: {', '.join(stale)}: run scripts/gen_conformance_vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in fresh.items():
        (OUT / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
