"""Faulty messages, one per call, for testing that the gateway quarantines each kind of bad input.

Every fault is built from a snapshot of a device's genuine chain (:class:`DeviceSnapshot`).
Faults that must get past the decoder are properly signed and chained except for the one thing
they break, so the gateway's reason is the expected one and not an earlier check.

Two kinds:

- Most faults never take a link of the chain (bad signature, replay, fork, junk, ...): the
  gateway rejects them without advancing anything, and the device's next genuine reading still
  follows its last one.
- :data:`CHAINED` faults are "genuine but rejected": readings signed by the device and linked to
  its chain (seq = last + 1, prev = hash of the last message) whose content is rejected
  (implausible, clock skew either way, a wrong window, too soon after the last reading). The
  gateway quarantines them *chained*: they advance the device's chain, so the sender must
  advance too (:attr:`FaultMessage.seq` is set: the next
  reading follows it, ``prev`` = ``chain_hash(payload)``), and they count as quarantined, never
  as lost.

Each fault is returned with the topic to publish it on, because two of them (``unknown_device``,
``topic_mismatch``) only make sense on a topic other than the device's own. With the broker's
per-device ACL (:mod:`devstack.broker_auth`) those two never reach the gateway: the broker
refuses them (PUBACK "not authorized") and the publisher counts them as rejected. They reach the
gateway in the publisher's multiplexed mode or on a broker without ACLs.

``revoked_device`` is a scenario, not a message: revoke a device in the store while the fleet
runs; the runner simply keeps publishing that device's genuine readings, and the gateway
quarantines each of them as ``revoked_device``. (``assetproof devices revoke`` also removes the
device's broker login, after which the broker refuses its connection and its readings wait in
its outbox.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from protocol.cashflow import HOUR_MS
from protocol.envelope import GENESIS_PREV, MAX_MESSAGE_BYTES, Body, DeviceKind, canonical_json, sign_body
from protocol.errors import AssetproofError
from protocol.plausibility import plausible_maxima
from protocol.quarantine import QuarantineReason
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic

__all__ = [
    "BROKER_REFUSED",
    "CHAINED",
    "EXPECTED_REASON",
    "FAULTS",
    "DeviceSnapshot",
    "FaultError",
    "FaultMessage",
    "make_fault",
]

_FALLBACK_RATING: Final = MappingProxyType({"rated_power_w": 10_000, "rated_hashrate_ghs": 1})


class FaultError(AssetproofError, ValueError):
    """A fault was asked for that does not exist or cannot be built from this snapshot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSnapshot:
    """A device's genuine chain at some moment, and what a next reading would look like."""

    device_id: str
    kind: DeviceKind
    key: DeviceKey
    seq: int
    """The last seq the device used (0 before its first reading)."""
    prev: bytes
    """The ``prev`` its next genuine reading will carry (hash of the last message)."""
    ts_ms: int
    """A device time for the faulty reading, no earlier than the last accepted reading's."""
    window_s: int
    metrics: Mapping[str, int]
    """Plausible metrics for one reading of this device (its last reading's, say)."""
    rating: Mapping[str, int] = field(default_factory=dict)
    now_ms: int | None = None
    """Wall-clock time, for faults judged against the gateway's clock (default: ``ts_ms``)."""
    last_ts_ms: int | None = None
    """The ``ts_ms`` of the device's last accepted reading, for faults judged by the spacing
    rule of :mod:`protocol.timing` (default: ``ts_ms``)."""


@dataclass(frozen=True, slots=True)
class FaultMessage:
    fault: str
    topic: str
    payload: bytes = field(repr=False)
    seq: int | None = None
    """Set for a :data:`CHAINED` fault: the seq it takes in the device's chain. The sender's
    next reading must carry ``seq + 1`` and ``prev = chain_hash(payload)``."""

    @property
    def advances(self) -> bool:
        """Whether the device's chain moves on to this message."""
        return self.seq is not None


def _body(s: DeviceSnapshot, **changes: Any) -> Body:
    fields: dict[str, Any] = {
        "device": s.device_id,
        "seq": s.seq + 1,
        "ts_ms": s.ts_ms,
        "kind": s.kind,
        "window_s": s.window_s,
        "metrics": dict(s.metrics),
        "prev": s.prev,
    }
    fields.update(changes)
    return Body(**fields)


def _signed(s: DeviceSnapshot, **changes: Any) -> bytes:
    return sign_body(_body(s, **changes), s.key).raw


def _message(name: str, s: DeviceSnapshot, payload: bytes) -> FaultMessage:
    return FaultMessage(name, telemetry_topic(s.device_id), payload)


def _chained(name: str, s: DeviceSnapshot, **changes: Any) -> FaultMessage:
    """The device's next link, signed, with ``changes`` that make the gateway reject its content."""
    return FaultMessage(name, telemetry_topic(s.device_id), _signed(s, **changes), s.seq + 1)


def _rewrite(raw: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = json.loads(raw)
    change(obj)
    return canonical_json(obj)


def tampered_metric(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """A genuine next reading whose energy figure was raised after signing."""

    def inflate(obj: dict[str, Any]) -> None:
        metrics = obj["body"]["metrics"]
        metrics["energy_wh"] = metrics["energy_wh"] * 11 // 10 + 1 + rng.randrange(10)

    return _message("tampered_metric", s, _rewrite(_signed(s), inflate))


def bad_signature(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """The genuine next body under 64 random signature bytes."""

    def forge(obj: dict[str, Any]) -> None:
        obj["sig"] = rng.randbytes(64).hex()

    return _message("bad_signature", s, _rewrite(_signed(s), forge))


def replayed_seq(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """A new, properly signed reading that re-uses the last seq the device used."""
    if s.seq < 1:
        raise FaultError("replayed_seq needs a device that has used at least one seq")
    metrics = dict(s.metrics)
    metrics["energy_wh"] += 1
    return _message("replayed_seq", s, _signed(s, seq=s.seq, prev=rng.randbytes(32), metrics=metrics))


def skipped_seq(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """seq + 2 linked to the head: the reading in between is declared missing."""
    return _message("skipped_seq", s, _signed(s, seq=s.seq + 2))


def wrong_prev(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """The next seq, linked to a message that never existed (a fork)."""
    return _message("wrong_prev", s, _signed(s, prev=rng.randbytes(32)))


def unknown_device(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """A well-formed first reading from a device nobody registered, on its own topic."""
    ghost = f"ghost-{rng.getrandbits(48):012x}"
    # Derived from rng, not the OS, so a seeded fleet injects the same ghost every time.
    key = DeviceKey.from_private_bytes(s.key.alg, rng.randbytes(32))
    body = _body(s, device=ghost, seq=1, prev=GENESIS_PREV)
    return FaultMessage("unknown_device", telemetry_topic(ghost), sign_body(body, key).raw)


def topic_mismatch(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """The genuine next reading, published on another device's topic."""
    return FaultMessage("topic_mismatch", telemetry_topic(f"ghost-{rng.getrandbits(48):012x}"), _signed(s))


def non_canonical(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """The genuine next message's bytes with whitespace added: same JSON, other bytes."""
    obj = json.loads(_signed(s))
    return _message("non_canonical", s, json.dumps(obj, sort_keys=True, separators=(", ", ": ")).encode())


def malformed_json(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """The genuine next message cut short: not JSON at all."""
    raw = _signed(s)
    return _message("malformed_json", s, raw[: rng.randrange(1, len(raw) - 1)])


def oversized(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """A signed-looking message padded past the protocol's 4 KiB limit (but far below the
    broker's 64 KiB packet limit, so it reaches the gateway)."""
    size = MAX_MESSAGE_BYTES + 1 + rng.randrange(4 * MAX_MESSAGE_BYTES)

    def pad(obj: dict[str, Any]) -> None:
        obj["pad"] = ""
        obj["pad"] = "x" * (size - len(canonical_json(obj)))

    return _message("oversized", s, _rewrite(_signed(s), pad))


def unsupported_alg(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """The genuine next message claiming a signature algorithm the protocol does not know."""

    def rename(obj: dict[str, Any]) -> None:
        obj["alg"] = rng.choice(["rs256", "es384", "hmac-sha256"])

    return _message("unsupported_alg", s, _rewrite(_signed(s), rename))


def clock_skew(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """CHAINED: the next reading stamped an hour ahead of the gateway's clock (so its bytes
    depend on the wall clock, and so do the device's later readings, which link to it)."""
    now = s.ts_ms if s.now_ms is None else max(s.ts_ms, s.now_ms)
    return _chained("clock_skew", s, ts_ms=now + HOUR_MS + rng.randrange(60_000))


def clock_skew_past(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """CHAINED: the next reading stamped a window or more before the last reading."""
    return _chained("clock_skew_past", s, ts_ms=max(0, s.ts_ms - s.window_s * 1000 - 1 - rng.randrange(60_000)))


def implausible(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """CHAINED: the next reading claiming 100 times the energy protocol.plausibility allows for
    the device's rating (a 10 kW device if the snapshot has no rating)."""
    rating = {**_FALLBACK_RATING, **s.rating}
    metrics = dict(s.metrics)
    metrics["energy_wh"] = plausible_maxima(s.kind, rating, window_s=s.window_s)["energy_wh"] * 100
    if "grid_wh" in metrics:  # keep the charger's own balance consistent: only the size is wrong
        metrics["grid_wh"] = max(metrics["grid_wh"], metrics["energy_wh"])
    return _chained("implausible", s, metrics=metrics)


def wrong_window(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """CHAINED: the next reading claiming a window other than the registered one (twice it, or
    half of a day-long one): the device would be credited a longer window's energy."""
    window = s.window_s * 2 if s.window_s * 2 <= 86_400 else s.window_s // 2
    return _chained("wrong_window", s, window_s=window)


def too_soon(s: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    """CHAINED: the next reading dated half a window after the last accepted one (its window
    overlaps the last one's, so some device time would count twice)."""
    last = s.ts_ms if s.last_ts_ms is None else s.last_ts_ms
    return _chained("too_soon", s, ts_ms=last + s.window_s * 1000 // 2)


Fault = Callable[[DeviceSnapshot, random.Random], FaultMessage]

FAULTS: Final[Mapping[str, Fault]] = MappingProxyType(
    {
        "tampered_metric": tampered_metric,
        "bad_signature": bad_signature,
        "replayed_seq": replayed_seq,
        "skipped_seq": skipped_seq,
        "wrong_prev": wrong_prev,
        "unknown_device": unknown_device,
        "topic_mismatch": topic_mismatch,
        "non_canonical": non_canonical,
        "malformed_json": malformed_json,
        "oversized": oversized,
        "unsupported_alg": unsupported_alg,
        "clock_skew": clock_skew,
        "clock_skew_past": clock_skew_past,
        "implausible": implausible,
        "wrong_window": wrong_window,
        "too_soon": too_soon,
    }
)

EXPECTED_REASON: Final[Mapping[str, QuarantineReason]] = MappingProxyType(
    {
        "tampered_metric": QuarantineReason.BAD_SIGNATURE,
        "bad_signature": QuarantineReason.BAD_SIGNATURE,
        "replayed_seq": QuarantineReason.REPLAY,
        "skipped_seq": QuarantineReason.GAP,
        "wrong_prev": QuarantineReason.BAD_PREV,
        "unknown_device": QuarantineReason.UNKNOWN_DEVICE,
        "topic_mismatch": QuarantineReason.TOPIC_MISMATCH,
        "non_canonical": QuarantineReason.NON_CANONICAL,
        "malformed_json": QuarantineReason.MALFORMED,
        "oversized": QuarantineReason.OVERSIZED,
        "unsupported_alg": QuarantineReason.UNSUPPORTED_ALG,
        "clock_skew": QuarantineReason.CLOCK_SKEW,
        "clock_skew_past": QuarantineReason.CLOCK_SKEW,
        "implausible": QuarantineReason.IMPLAUSIBLE,
        "wrong_window": QuarantineReason.WRONG_WINDOW,
        "too_soon": QuarantineReason.TOO_SOON,
    }
)

CHAINED: Final = frozenset({"clock_skew", "clock_skew_past", "implausible", "wrong_window", "too_soon"})
"""Genuine but rejected: signed and linked, so they advance the device's chain (see the module
docstring); the gateway quarantines them ``chained``."""

BROKER_REFUSED: Final = frozenset({"unknown_device", "topic_mismatch"})
"""Faults a broker with per-device ACLs refuses before they reach the gateway."""


def make_fault(name: str, snapshot: DeviceSnapshot, rng: random.Random) -> FaultMessage:
    try:
        fault = FAULTS[name]
    except KeyError:
        raise FaultError(f"unknown fault {name!r}; known: {sorted(FAULTS)}") from None
    return fault(snapshot, rng)
