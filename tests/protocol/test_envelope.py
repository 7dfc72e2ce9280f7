"""The signed envelope: golden bytes, round trips, and one test per rejection reason."""

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.envelope import (
    GENESIS_PREV,
    MAX_INT,
    MAX_MESSAGE_BYTES,
    METRICS,
    Body,
    DeviceKind,
    Message,
    chain_hash,
    decode_and_verify,
    decode_message,
    sign_body,
)
from protocol.errors import (
    BadSignatureError,
    MalformedError,
    NonCanonicalError,
    OversizedError,
    VerificationError,
)
from protocol.signing import DeviceKey
from tests.protocol.conftest import load_vector
from tests.support.envelopes import METRICS_BY_KIND, body

ED_SEED = bytes.fromhex(load_vector("rfc8032_ed25519_section7_1.json")["vectors"][0]["secret_key"])
P256_SEED = bytes.fromhex(load_vector("rfc6979_ecdsa_p256_sha256.json")["private_key_x"])
GOLDEN = load_vector("envelope_golden.json")


@pytest.fixture(params=["ed25519", "es256"])
def key(request: pytest.FixtureRequest) -> DeviceKey:
    return DeviceKey.from_private_bytes(request.param, ED_SEED if request.param == "ed25519" else P256_SEED)


def test_golden_messages() -> None:
    """Exact bytes, pinned: a change here breaks every anchored proof."""
    for case in GOLDEN["cases"]:
        key = DeviceKey.from_private_bytes(case["alg"], bytes.fromhex(case["private_key"]))
        message = sign_body(Body.from_json(case["body"]), key)
        assert message.raw.decode() == case["message"]
        assert message.leaf_hash.hex() == case["leaf_hash"]
        assert message.chain_hash.hex() == case["chain_hash"]
        assert message.raw == rfc8785.dumps(json.loads(case["message"]))


def test_round_trip_every_kind(key: DeviceKey) -> None:
    prev = GENESIS_PREV
    for seq, kind in enumerate(DeviceKind, start=1):
        message = sign_body(body(kind, seq=seq, prev=prev), key)
        decoded = decode_and_verify(message.raw, alg=key.alg, public_key=key.public_key)
        assert decoded == message
        assert decoded.body.metrics == METRICS_BY_KIND[kind]
        assert decoded.body.prev == prev
        prev = chain_hash(message.raw)
        assert prev == message.chain_hash


def test_signed_bytes_are_the_canonical_body(key: DeviceKey) -> None:
    message = sign_body(body(), key)
    parsed = json.loads(message.raw)
    assert message.body.signing_bytes() == rfc8785.dumps(parsed["body"])


# --- one test per rejection reason --------------------------------------------------------------


def _reason(data: bytes) -> str:
    with pytest.raises(VerificationError) as caught:
        decode_message(data)
    return caught.value.reason


def _mutated(key: DeviceKey, change: Any) -> bytes:
    obj = json.loads(sign_body(body(), key).raw)
    change(obj)
    # Plain sorted compact JSON, not rfc8785: it must also write what RFC 8785 refuses (2**53).
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_oversized(key: DeviceKey) -> None:
    raw = sign_body(body(), key).raw
    padded = raw[:-1] + b" " * (MAX_MESSAGE_BYTES + 1 - len(raw)) + b"}"
    with pytest.raises(OversizedError):
        decode_message(padded)
    assert _reason(b"{" * (MAX_MESSAGE_BYTES + 1)) == "oversized"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b"not json",
        b"[]",
        b"42",
        b'"text"',
        b'{"alg":"ed25519","alg":"ed25519","body":{},"sig":""}',
        b'{"alg":NaN}',
        b'{"alg":Infinity}',
        b"[" * 3000 + b"]" * 3000,
        '{"alg":"\ud800"}'.encode("utf-8", "surrogatepass"),
    ],
    ids=[
        "empty",
        "utf16",
        "bom",
        "text",
        "array",
        "number",
        "string",
        "duplicate",
        "nan",
        "infinity",
        "deep",
        "surrogate",
    ],
)
def test_malformed_bytes(data: bytes) -> None:
    assert _reason(data[:MAX_MESSAGE_BYTES]) == "malformed"


SCHEMA_BREAKERS: dict[str, Any] = {
    "missing field": lambda o: o["body"].pop("seq"),
    "unknown field": lambda o: o["body"].update(extra=1),
    "unknown top field": lambda o: o.update(extra=1),
    "missing sig": lambda o: o.pop("sig"),
    "float metric": lambda o: o["body"]["metrics"].update(energy_wh=1.5),
    "string metric": lambda o: o["body"]["metrics"].update(energy_wh="81"),
    "bool metric": lambda o: o["body"]["metrics"].update(energy_wh=True),
    "negative metric": lambda o: o["body"]["metrics"].update(energy_wh=-1),
    "too large metric": lambda o: o["body"]["metrics"].update(irradiance_wm2=5000),
    "unknown metric": lambda o: o["body"]["metrics"].update(hashes_gh=1),
    "missing metric": lambda o: o["body"]["metrics"].pop("power_w"),
    "seq zero": lambda o: o["body"].update(seq=0),
    "seq float": lambda o: o["body"].update(seq=2.5),
    "seq beyond 2**53": lambda o: o["body"].update(seq=MAX_INT + 1),
    "negative time": lambda o: o["body"].update(ts_ms=-5),
    "window zero": lambda o: o["body"].update(window_s=0),
    "window a day and more": lambda o: o["body"].update(window_s=86_401),
    "version 2": lambda o: o["body"].update(v=2),
    "unknown kind": lambda o: o["body"].update(kind="wind"),
    "device uppercase": lambda o: o["body"].update(device="SOL-1"),
    "device with slash": lambda o: o["body"].update(device="sol/1"),
    "device with wildcard": lambda o: o["body"].update(device="sol+1"),
    "device empty": lambda o: o["body"].update(device=""),
    "device too long": lambda o: o["body"].update(device="a" * 64),
    "device not a string": lambda o: o["body"].update(device=7),
    "prev short": lambda o: o["body"].update(prev="00" * 31),
    "prev uppercase": lambda o: o["body"].update(prev="AB" * 32),
    "prev not hex": lambda o: o["body"].update(prev="zz" * 32),
    "sig short": lambda o: o.update(sig="00" * 63),
    "sig uppercase": lambda o: o.update(sig=o["sig"].upper()),
    "body not object": lambda o: o.update(body=[1]),
    "metrics not object": lambda o: o["body"].update(metrics=[1]),
}


@pytest.mark.parametrize("name", list(SCHEMA_BREAKERS))
def test_schema_violations_are_malformed(key: DeviceKey, name: str) -> None:
    with pytest.raises(MalformedError) as caught:
        decode_message(_mutated(key, SCHEMA_BREAKERS[name]))
    assert caught.value.reason == "malformed"
    assert str(caught.value)


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda raw: raw.replace(b",", b", ", 1),
        lambda raw: raw + b"\n",
        lambda raw: b" " + raw,
        lambda raw: json.dumps(json.loads(raw), sort_keys=False).encode(),
        lambda raw: json.dumps(dict(reversed(list(json.loads(raw).items()))), separators=(",", ":")).encode(),
        lambda raw: raw.replace(b'"seq":1', b'"seq":1.0'),
        lambda raw: raw.replace(b'"seq":1', b'"seq":1e0'),
        lambda raw: raw.replace(b'"kind":"solar"', b'"kind":"sol\\u0061r"'),
        lambda raw: raw.replace(b'"temp_dc":453', b'"temp_dc":453.0'),
    ],
    ids=[
        "space",
        "newline",
        "leading",
        "unsorted-spaced",
        "reversed",
        "float-seq",
        "exponent",
        "escape",
        "float-metric",
    ],
)
def test_non_canonical(key: DeviceKey, rewrite: Any) -> None:
    raw = sign_body(body(), key).raw
    data = rewrite(raw)
    assert data != raw
    assert json.loads(data) == json.loads(raw)
    with pytest.raises(NonCanonicalError) as caught:
        decode_message(data)
    assert caught.value.reason == "non_canonical"


def test_unsupported_alg(key: DeviceKey) -> None:
    for alg in ("rs256", "ES256", "", None, 1):
        assert _reason(_mutated(key, lambda o, alg=alg: o.update(alg=alg))) == "unsupported_alg"


def test_bad_signature(key: DeviceKey) -> None:
    tampered = _mutated(key, lambda o: o["body"]["metrics"].update(energy_wh=82))
    message = decode_message(tampered)  # well formed: only the signature check can tell
    with pytest.raises(BadSignatureError) as caught:
        message.verify(alg=key.alg, public_key=key.public_key)
    assert caught.value.reason == "bad_signature"
    flipped = _mutated(key, lambda o: o.update(sig=("1" if o["sig"][0] == "0" else "0") + o["sig"][1:]))
    with pytest.raises(BadSignatureError):
        decode_and_verify(flipped, alg=key.alg, public_key=key.public_key)


def test_signature_by_another_key_or_alg(key: DeviceKey) -> None:
    raw = sign_body(body(), key).raw
    other = DeviceKey.generate(key.alg)
    with pytest.raises(BadSignatureError):
        decode_and_verify(raw, alg=key.alg, public_key=other.public_key)
    wrong_alg = "es256" if key.alg == "ed25519" else "ed25519"
    with pytest.raises(BadSignatureError, match="signed with"):
        decode_and_verify(raw, alg=wrong_alg, public_key=DeviceKey.generate(wrong_alg).public_key)


def test_body_constructor_validates() -> None:
    with pytest.raises(MalformedError):
        Body(device="x/y", seq=1, ts_ms=0, kind=DeviceKind.SOLAR, window_s=60, metrics={}, prev=GENESIS_PREV)
    b = body()
    with pytest.raises(TypeError):
        b.metrics["energy_wh"] = 1  # type: ignore[index]


def test_non_bytes_input() -> None:
    with pytest.raises(MalformedError):
        decode_message("{}")  # type: ignore[arg-type]


# --- the fast canonical encoder equals RFC 8785 on everything the schema admits ----------------


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    kind = draw(st.sampled_from(list(DeviceKind)))
    metrics = {name: draw(st.integers(spec.minimum, spec.maximum)) for name, spec in METRICS[kind].items()}
    return Body(
        device=draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)),
        seq=draw(st.integers(1, MAX_INT)),
        ts_ms=draw(st.integers(0, MAX_INT)),
        kind=kind,
        window_s=draw(st.integers(1, 86_400)),
        metrics=metrics,
        prev=draw(st.binary(min_size=32, max_size=32)),
    )


@settings(max_examples=200, deadline=None)
@given(b=bodies(), alg=st.sampled_from(["ed25519", "es256"]))
def test_property_fast_canonical_equals_rfc8785(b: Body, alg: str) -> None:
    assert b.signing_bytes() == rfc8785.dumps(b.to_json())
    key = DeviceKey.from_private_bytes(alg, ED_SEED if alg == "ed25519" else P256_SEED)
    message = sign_body(b, key)
    assert message.raw == rfc8785.dumps(json.loads(message.raw))
    assert message.signed_bytes == b.signing_bytes()
    assert decode_message(message.raw) == message


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_property_garbage_raises_only_verification_error(data: bytes) -> None:
    with pytest.raises(VerificationError):
        decode_message(data)


def test_message_is_frozen(key: DeviceKey) -> None:
    message = sign_body(body(), key)
    assert isinstance(message, Message)
    with pytest.raises(AttributeError):
        message.raw = b""  # type: ignore[misc]
