"""Device signatures: Ed25519 and ECDSA P-256 with SHA-256 (``es256``).

Keys and signatures are raw bytes: an Ed25519 public key is 32 bytes and its signature 64; an
``es256`` public key is a SEC1 point (65 bytes uncompressed, the form devices register because a
contract can use it without decompressing; 33 bytes compressed is accepted too) and its
signature is 64 bytes ``r || s``, big-endian. The verifier accepts any ``s`` in ``1..n-1``, as
the EVM's P-256 precompile does; devices sign deterministically (RFC 6979) and with low ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final, Literal, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from protocol.errors import BadSignatureError, InvalidKeyError, UnsupportedAlgorithmError

__all__ = [
    "ALGORITHMS",
    "P256_ORDER",
    "Algorithm",
    "DeviceKey",
    "VerifyingKey",
    "parse_algorithm",
    "verify_signature",
]

Algorithm = Literal["ed25519", "es256"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = get_args(Algorithm)

P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA_VERIFY: Final = ec.ECDSA(hashes.SHA256())
_ECDSA_SIGN: Final = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def parse_algorithm(value: object) -> Algorithm:
    """``value`` as an :data:`Algorithm`, or :class:`UnsupportedAlgorithmError`."""
    if value in ALGORITHMS:
        return value
    raise UnsupportedAlgorithmError(f"unsupported signature algorithm {value!r}")


def _load_public_key(alg: Algorithm, public_key: object) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    if not isinstance(public_key, bytes):
        raise InvalidKeyError(f"public key must be bytes, got {type(public_key).__name__}")
    try:
        if alg == "ed25519":
            if len(public_key) != 32:
                raise InvalidKeyError(f"an ed25519 public key is 32 bytes, got {len(public_key)}")
            return ed25519.Ed25519PublicKey.from_public_bytes(public_key)
        if len(public_key) not in (33, 65):
            raise InvalidKeyError(f"an es256 public key is a 33- or 65-byte SEC1 point, got {len(public_key)} bytes")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except InvalidKeyError:
        raise
    except Exception as exc:  # cryptography raises ValueError and friends for bad points
        raise InvalidKeyError(f"not a valid {alg} public key: {exc}") from None


def verify_signature(*, alg: str, public_key: bytes, message: bytes, signature: bytes) -> None:
    """Return if ``signature`` over ``message`` verifies under ``public_key``; raise a
    :class:`~protocol.errors.VerificationError` subclass otherwise, whatever the inputs."""
    if not isinstance(public_key, bytes):
        raise InvalidKeyError(f"public key must be bytes, got {type(public_key).__name__}")
    _cached_key(parse_algorithm(alg), public_key).verify(message=message, signature=signature)


@lru_cache(maxsize=16_384)
def _cached_key(alg: Algorithm, public_key: bytes) -> VerifyingKey:
    # Parsing a P-256 point costs about as much as a verification, and a fleet signs with the
    # same few thousand keys over and over (the gateway, bundles of one device). Invalid keys
    # raise and are not cached.
    return VerifyingKey.from_bytes(alg, public_key)


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key parsed once, for checking many signatures (an audit re-verifies every reading
    of a device with the same key; parsing a P-256 point costs about as much as a verification)."""

    alg: Algorithm
    public_key: bytes
    _key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey = field(repr=False, compare=False)

    @classmethod
    def from_bytes(cls, alg: str, public_key: bytes) -> VerifyingKey:
        """The key, or :class:`~protocol.errors.InvalidKeyError` /
        :class:`~protocol.errors.UnsupportedAlgorithmError`."""
        algorithm = parse_algorithm(alg)
        return cls(algorithm, public_key, _load_public_key(algorithm, public_key))

    def verify(self, *, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` over ``message`` verifies; raise
        :class:`~protocol.errors.BadSignatureError` otherwise."""
        if not isinstance(message, bytes):
            raise BadSignatureError(f"message must be bytes, got {type(message).__name__}")
        if not isinstance(signature, bytes) or len(signature) != 64:
            shown = f"{len(signature)} bytes" if isinstance(signature, bytes) else type(signature).__name__
            raise BadSignatureError(f"a {self.alg} signature is 64 bytes, got {shown}")
        key = self._key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
                return
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
                raise BadSignatureError("es256 signature r or s is out of range")
            key.verify(encode_dss_signature(r, s), message, _ECDSA_VERIFY)
        except InvalidSignature:
            raise BadSignatureError(f"{self.alg} signature does not verify") from None


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A device's signing key. ``private_bytes`` is the Ed25519 seed or the P-256 scalar (32
    bytes); it is excluded from ``repr`` so it never lands in a log by accident."""

    alg: Algorithm
    private_bytes: bytes = field(repr=False)
    public_key: bytes
    _key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    @classmethod
    def generate(cls, alg: str) -> DeviceKey:
        """A fresh random key for ``alg``."""
        algorithm = parse_algorithm(alg)
        if algorithm == "ed25519":
            seed = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        else:
            seed = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
        return cls.from_private_bytes(algorithm, seed)

    @classmethod
    def from_private_bytes(cls, alg: str, private_bytes: bytes) -> DeviceKey:
        """The key whose 32-byte secret is ``private_bytes``."""
        algorithm = parse_algorithm(alg)
        if not isinstance(private_bytes, bytes) or len(private_bytes) != 32:
            raise InvalidKeyError("a private key is 32 bytes")
        key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
        try:
            if algorithm == "ed25519":
                key = ed25519.Ed25519PrivateKey.from_private_bytes(private_bytes)
                public = key.public_key().public_bytes_raw()
            else:
                key = ec.derive_private_key(int.from_bytes(private_bytes, "big"), ec.SECP256R1())
                public = key.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
        except ValueError as exc:
            raise InvalidKeyError(f"not a valid {algorithm} private key: {exc}") from None
        return cls(algorithm, private_bytes, public, key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature over ``message`` (deterministic; low ``s`` for es256)."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(message)
        r, s = decode_dss_signature(self._key.sign(message, _ECDSA_SIGN))
        s = min(s, P256_ORDER - s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
