"""Signatures against RFC 8032 and RFC 6979 vectors, and garbage of every kind."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import (
    BadSignatureError,
    InvalidKeyError,
    UnsupportedAlgorithmError,
    VerificationError,
)
from protocol.signing import P256_ORDER, DeviceKey, verify_signature
from tests.protocol.conftest import load_vector

H = bytes.fromhex
ED = load_vector("rfc8032_ed25519_section7_1.json")
P256 = load_vector("rfc6979_ecdsa_p256_sha256.json")
P256_PUBLIC = b"\x04" + H(P256["public_key_ux"]) + H(P256["public_key_uy"])


@pytest.mark.parametrize("vector", ED["vectors"], ids=lambda v: v["name"])
def test_ed25519_rfc8032(vector: dict[str, Any]) -> None:
    key = DeviceKey.from_private_bytes("ed25519", H(vector["secret_key"]))
    assert key.public_key.hex() == vector["public_key"]
    message = H(vector["message"])
    assert key.sign(message).hex() == vector["signature"]
    verify_signature(alg="ed25519", public_key=key.public_key, message=message, signature=H(vector["signature"]))
    with pytest.raises(BadSignatureError):
        verify_signature(
            alg="ed25519", public_key=key.public_key, message=message + b"x", signature=H(vector["signature"])
        )


@pytest.mark.parametrize("vector", P256["vectors"], ids=lambda v: v["message_ascii"])
def test_es256_rfc6979(vector: dict[str, Any]) -> None:
    key = DeviceKey.from_private_bytes("es256", H(P256["private_key_x"]))
    assert key.public_key == P256_PUBLIC
    message = H(vector["message"])
    r, s = int(vector["r"], 16), int(vector["s"], 16)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    # The vector's signature verifies as given (high S included, as the EVM precompile accepts).
    verify_signature(alg="es256", public_key=P256_PUBLIC, message=message, signature=raw)
    # Devices sign deterministically (RFC 6979) and normalise to low S.
    signed = key.sign(message)
    assert signed[:32] == r.to_bytes(32, "big")
    assert int.from_bytes(signed[32:], "big") == min(s, P256_ORDER - s)
    verify_signature(alg="es256", public_key=P256_PUBLIC, message=message, signature=signed)
    compressed = bytes([2 + (P256_PUBLIC[-1] & 1)]) + P256_PUBLIC[1:33]
    verify_signature(alg="es256", public_key=compressed, message=message, signature=raw)
    with pytest.raises(BadSignatureError):
        verify_signature(alg="es256", public_key=P256_PUBLIC, message=message + b"x", signature=raw)


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_generated_keys_round_trip(alg: str) -> None:
    key = DeviceKey.generate(alg)
    again = DeviceKey.from_private_bytes(alg, key.private_bytes)
    assert again.public_key == key.public_key
    signature = key.sign(b"reading")
    verify_signature(alg=alg, public_key=key.public_key, message=b"reading", signature=signature)
    other = DeviceKey.generate(alg)
    with pytest.raises(BadSignatureError):
        verify_signature(alg=alg, public_key=other.public_key, message=b"reading", signature=signature)
    assert key.private_bytes.hex() not in repr(key)


def test_es256_rejects_out_of_range_r_s() -> None:
    message = b"sample"
    for r, s in [(0, 1), (1, 0), (P256_ORDER, 1), (1, P256_ORDER), (2**256 - 1, 1)]:
        with pytest.raises(BadSignatureError):
            verify_signature(
                alg="es256",
                public_key=P256_PUBLIC,
                message=message,
                signature=r.to_bytes(32, "big") + s.to_bytes(32, "big"),
            )


def test_specific_errors() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        verify_signature(alg="rs256", public_key=b"", message=b"", signature=b"")
    with pytest.raises(InvalidKeyError):
        verify_signature(alg="ed25519", public_key=b"\x00" * 31, message=b"", signature=b"\x00" * 64)
    with pytest.raises(InvalidKeyError):
        verify_signature(alg="es256", public_key=b"\x04" + b"\x01" * 64, message=b"", signature=b"\x01" * 64)
    with pytest.raises(BadSignatureError):
        verify_signature(
            alg="ed25519", public_key=bytes(H(ED["vectors"][0]["public_key"])), message=b"", signature=b"\x00" * 63
        )
    with pytest.raises(InvalidKeyError):
        DeviceKey.from_private_bytes("es256", b"\x00" * 32)  # zero is not a valid scalar
    with pytest.raises(UnsupportedAlgorithmError):
        DeviceKey.generate("rsa")


anything = st.one_of(st.binary(max_size=100), st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers()))


@settings(max_examples=300, deadline=None)
@given(alg=st.sampled_from(["ed25519", "es256", "none", ""]), key=anything, message=anything, signature=anything)
def test_any_input_raises_only_verification_error(alg: str, key: Any, message: Any, signature: Any) -> None:
    with pytest.raises(VerificationError):
        verify_signature(alg=alg, public_key=key, message=message, signature=signature)


@settings(max_examples=100, deadline=None)
@given(
    alg=st.sampled_from(["ed25519", "es256"]),
    key=st.one_of(
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=33, max_size=33).map(lambda b: b"\x02" + b[1:]),
        st.binary(min_size=65, max_size=65).map(lambda b: b"\x04" + b[1:]),
    ),
    signature=st.binary(min_size=64, max_size=64),
)
def test_right_lengths_wrong_bytes_raise_only_verification_error(alg: str, key: bytes, signature: bytes) -> None:
    with pytest.raises(VerificationError):
        verify_signature(alg=alg, public_key=key, message=b"m", signature=signature)
