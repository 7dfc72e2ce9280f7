"""The signed telemetry envelope: a device's reading, its canonical bytes, and the message on the
wire.

A reading's *body* is signed over its RFC 8785 (JCS) encoding. The *message* is the RFC 8785
encoding of ``{"alg", "body", "sig"}``; a decoder refuses any message whose bytes are not already
canonical, so the bytes a device sent are exactly the bytes stored and anchored (the Merkle leaf).

Wire form of the body (hex for byte strings, integers in fixed units, never floats)::

    {"v": 1, "device": "sol-0001", "seq": 7, "ts_ms": 1763700000000, "kind": "solar",
     "window_s": 60, "metrics": {"energy_wh": 81, ...}, "prev": "<64 hex chars>"}

``seq`` starts at 1 and grows by one per reading; ``prev`` is the SHA-256 of the device's previous
message bytes (32 zero bytes before the first), so each device's readings form a hash chain.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from protocol._strict import MAX_INT, require_int, require_object
from protocol.errors import (
    BadSignatureError,
    MalformedError,
    NonCanonicalError,
    OversizedError,
)
from protocol.signing import Algorithm, DeviceKey, parse_algorithm, verify_signature

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_PREV",
    "MAX_INT",
    "MAX_MESSAGE_BYTES",
    "METRICS",
    "Body",
    "DeviceKind",
    "Message",
    "MetricSpec",
    "canonical_json",
    "chain_hash",
    "decode_and_verify",
    "decode_message",
    "sign_body",
    "validate_device_id",
]

FORMAT_VERSION: Final = 1
MAX_MESSAGE_BYTES: Final = 4096
GENESIS_PREV: Final = bytes(32)

_DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{128}")


class DeviceKind(StrEnum):
    SOLAR = "solar"
    CHARGER = "charger"
    MINER = "miner"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric a device kind reports: its unit and the range the schema admits (physical
    plausibility for a given device's rating is the gateway's check, not this one)."""

    unit: str
    description: str
    minimum: int = 0
    maximum: int = MAX_INT


_TEMPERATURE = MetricSpec("0.1 degC", "temperature in tenths of a degree Celsius", -600, 2000)

METRICS: Final[Mapping[DeviceKind, Mapping[str, MetricSpec]]] = MappingProxyType(
    {
        DeviceKind.SOLAR: MappingProxyType(
            {
                "energy_wh": MetricSpec("Wh", "energy exported to the grid in the window"),
                "power_w": MetricSpec("W", "average AC output power over the window"),
                "irradiance_wm2": MetricSpec("W/m2", "average plane-of-array irradiance", 0, 2000),
                "temp_dc": _TEMPERATURE,
            }
        ),
        DeviceKind.CHARGER: MappingProxyType(
            {
                "energy_wh": MetricSpec("Wh", "energy delivered to vehicles in the window"),
                "grid_wh": MetricSpec("Wh", "energy drawn from the grid in the window (losses included)"),
                "sessions_started": MetricSpec("count", "charging sessions started in the window"),
                "sessions_ended": MetricSpec("count", "charging sessions ended in the window"),
                "active_s": MetricSpec("s", "seconds in the window with a vehicle charging"),
                "power_w": MetricSpec("W", "average delivered power over the window"),
            }
        ),
        DeviceKind.MINER: MappingProxyType(
            {
                "hashes_gh": MetricSpec("GH", "hashes computed in the window, in units of 10^9"),
                "hashrate_ghs": MetricSpec("GH/s", "average hashrate while hashing: hashes_gh / uptime_s"),
                "power_w": MetricSpec("W", "average power drawn over the window"),
                "energy_wh": MetricSpec("Wh", "energy drawn in the window"),
                "uptime_s": MetricSpec("s", "seconds in the window spent hashing"),
                "curtailed_s": MetricSpec("s", "seconds in the window curtailed on purpose"),
                "temp_dc": _TEMPERATURE,
            }
        ),
    }
)

_BODY_START: Final = len('{"alg":"') + len('","body":')  # the alg name goes between
_BODY_END: Final = len(',"sig":"') + 128 + len('"}')
_BODY_FIELDS: Final = frozenset({"v", "device", "seq", "ts_ms", "kind", "window_s", "metrics", "prev"})
_MESSAGE_FIELDS: Final = frozenset({"alg", "body", "sig"})


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of an object that passed the schema.

    The schema admits only ASCII keys, ASCII strings without escapes and integers within
    +-(2**53-1); for such values sorted-key compact ``json.dumps`` is byte-identical to RFC 8785
    (a property test checks this against the ``rfc8785`` package) and about five times faster,
    which matters on the gateway's hot path.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(message: bytes) -> bytes:
    """The ``prev`` value a device puts in the reading that follows ``message``."""
    return hashlib.sha256(message).digest()


def validate_device_id(value: object, *, field_name: str = "device") -> str:
    """``value`` if it is a valid device id (lowercase letters, digits and ``-``, 1-63 chars,
    safe in MQTT topics, file names and broker user names)."""
    if not isinstance(value, str) or not _DEVICE_ID.fullmatch(value):
        raise MalformedError(f"{field_name} must match [a-z0-9][a-z0-9-]{{0,62}}, got {value!r}", field=field_name)
    return value


def _malformed(message: str, path: str) -> MalformedError:
    return MalformedError(message, field=path)


def _int_field(obj: dict[str, Any], name: str, *, minimum: int, maximum: int, path: str = "body") -> int:
    value = obj[name]
    if type(value) is float and value.is_integer():
        # RFC 8785 writes an integral number without fraction or exponent: this is the right
        # value in a non-canonical spelling, not a wrong type.
        raise NonCanonicalError(f"{path}.{name} is written as {value!r}; its canonical form is an integer")
    return require_int(obj, name, path, error=_malformed, minimum=minimum, maximum=maximum)


def _require_fields(obj: object, expected: frozenset[str], path: str) -> dict[str, Any]:
    return require_object(obj, expected, path, error=_malformed)


@dataclass(frozen=True, slots=True)
class Body:
    """What a device signs: one reading."""

    device: str
    seq: int
    ts_ms: int
    kind: DeviceKind
    window_s: int
    metrics: Mapping[str, int]
    prev: bytes
    v: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # Validate through the same path as decoding, so a device cannot build what a gateway
        # would refuse.
        checked = Body.from_json(self.to_json())
        object.__setattr__(self, "metrics", checked.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "device": self.device,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "kind": str(self.kind),
            "window_s": self.window_s,
            "metrics": dict(self.metrics),
            "prev": self.prev.hex() if isinstance(self.prev, bytes) else self.prev,
        }

    @classmethod
    def from_json(cls, obj: object) -> Body:
        body = _require_fields(obj, _BODY_FIELDS, "body")
        if type(body["v"]) is not int or body["v"] != FORMAT_VERSION:
            raise MalformedError(f"body.v must be {FORMAT_VERSION}, got {body['v']!r}", field="body.v")
        device = validate_device_id(body["device"], field_name="body.device")
        seq = _int_field(body, "seq", minimum=1, maximum=MAX_INT)
        ts_ms = _int_field(body, "ts_ms", minimum=0, maximum=MAX_INT)
        window_s = _int_field(body, "window_s", minimum=1, maximum=86_400)
        try:
            kind = DeviceKind(body["kind"])
        except (ValueError, TypeError):
            raise MalformedError(
                f"body.kind must be one of {[k.value for k in DeviceKind]}, got {body['kind']!r}", field="body.kind"
            ) from None
        specs = METRICS[kind]
        metrics_obj = _require_fields(body["metrics"], frozenset(specs), "body.metrics")
        metrics = {
            name: _int_field(metrics_obj, name, minimum=spec.minimum, maximum=spec.maximum, path="body.metrics")
            for name, spec in specs.items()
        }
        prev = body["prev"]
        if not isinstance(prev, str) or not _HEX32.fullmatch(prev):
            raise MalformedError("body.prev must be 64 lowercase hex characters", field="body.prev")
        result = object.__new__(cls)
        for name, value in (
            ("device", device),
            ("seq", seq),
            ("ts_ms", ts_ms),
            ("kind", kind),
            ("window_s", window_s),
            ("metrics", MappingProxyType(metrics)),
            ("prev", bytes.fromhex(prev)),
            ("v", FORMAT_VERSION),
        ):
            object.__setattr__(result, name, value)
        return result

    def signing_bytes(self) -> bytes:
        """The exact bytes a device signs: the RFC 8785 encoding of the body."""
        return canonical_json(self.to_json())


@dataclass(frozen=True, slots=True)
class Message:
    """A signed reading as it travels and is stored. ``raw`` is the canonical wire bytes: the
    Merkle leaf. Build one with :func:`decode_message` or :func:`sign_body`, never by hand: both
    guarantee ``raw`` is canonical and ``body`` is what it encodes."""

    body: Body
    alg: Algorithm
    signature: bytes = field(repr=False)
    raw: bytes = field(repr=False)

    @property
    def leaf_hash(self) -> bytes:
        return hashlib.sha256(b"\x00" + self.raw).digest()

    @property
    def chain_hash(self) -> bytes:
        """The ``prev`` the device's next reading must carry."""
        return chain_hash(self.raw)

    @property
    def signed_bytes(self) -> bytes:
        """The body's canonical bytes, cut out of ``raw`` rather than re-encoded.

        ``raw`` is canonical (decoding refused anything else; signing produced it), so it is
        exactly ``{"alg":"<alg>","body":<body>,"sig":"<128 hex>"}`` and the body sits at fixed
        offsets. This is also what the signature must cover: the bytes that are stored.
        """
        return self.raw[len(self.alg) + _BODY_START : -_BODY_END]

    def verify(self, *, alg: str, public_key: bytes) -> None:
        """Raise unless this message is signed by ``public_key`` under the algorithm the key is
        registered for (``alg``)."""
        if self.alg != alg:
            raise BadSignatureError(f"message is signed with {self.alg} but the device's key is {alg}")
        verify_signature(alg=alg, public_key=public_key, message=self.signed_bytes, signature=self.signature)


def sign_body(body: Body, key: DeviceKey) -> Message:
    """Sign ``body`` with the device's key and encode the wire message."""
    signature = key.sign(body.signing_bytes())
    raw = canonical_json({"alg": key.alg, "body": body.to_json(), "sig": signature.hex()})
    return Message(body=body, alg=key.alg, signature=signature, raw=raw)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MalformedError("duplicate key in a JSON object")
    return result


def _reject_constant(name: str) -> None:
    raise MalformedError(f"{name} is not JSON")


def parse_json(data: bytes, *, what: str = "message") -> Any:
    """Strict JSON from UTF-8 bytes: no BOM, no duplicate keys, no NaN or Infinity."""
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant)
    except MalformedError:
        raise
    except UnicodeDecodeError:
        raise MalformedError(f"{what} is not UTF-8") from None
    except RecursionError:
        raise MalformedError(f"{what} nests too deeply") from None
    except ValueError as exc:
        raise MalformedError(f"{what} is not JSON: {exc}") from None


def decode_message(data: bytes) -> Message:
    """Parse and schema-check a wire message without checking its signature (the key is looked
    up by the device id inside). Raises a specific ``VerificationError`` for every rejection."""
    if not isinstance(data, bytes):
        raise MalformedError(f"message must be bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise OversizedError(f"message is {len(data)} bytes, more than {MAX_MESSAGE_BYTES}")
    obj = parse_json(data)
    message = _require_fields(obj, _MESSAGE_FIELDS, "message")
    alg = parse_algorithm(message["alg"])
    body = Body.from_json(message["body"])
    sig = message["sig"]
    if not isinstance(sig, str) or not _HEX64.fullmatch(sig):
        raise MalformedError("sig must be 128 lowercase hex characters (64 bytes)", field="sig")
    if canonical_json(obj) != data:
        raise NonCanonicalError("message bytes are not the RFC 8785 canonical encoding")
    return Message(body=body, alg=alg, signature=bytes.fromhex(sig), raw=data)


def decode_and_verify(data: bytes, *, alg: str, public_key: bytes) -> Message:
    """:func:`decode_message`, then check the signature against the device's registered key."""
    message = decode_message(data)
    message.verify(alg=alg, public_key=public_key)
    return message
