"""On-chain identifiers and key forms.

A device is ``keccak256(UTF-8 device id)`` (:func:`device_id_hash`), an asset
``keccak256(UTF-8 asset name)`` (:func:`asset_id_hash`). Keys: ed25519 32 bytes; es256 on chain
is the 64-byte ``x || y`` of the point, and these functions take and return the 65-byte
uncompressed SEC1 form that :mod:`protocol.signing` uses (33-byte compressed is accepted too).
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_utils.crypto import keccak

from chain.types import RoleName
from protocol.envelope import DeviceKind, validate_device_id
from protocol.errors import InvalidKeyError
from protocol.signing import Algorithm, parse_algorithm

__all__ = [
    "ALG_CODES",
    "ALG_NAMES",
    "KIND_CODES",
    "KIND_NAMES",
    "ROLE_IDS",
    "ROLE_NAMES",
    "RoleName",
    "asset_id_hash",
    "cert_hash_from_chain",
    "cert_hash_to_chain",
    "device_id_hash",
    "key_from_chain",
    "key_to_chain",
]

ALG_CODES: Final[dict[Algorithm, int]] = {"ed25519": 1, "es256": 2}
"""The DeviceRegistry's algorithm codes."""
ALG_NAMES: Final[dict[int, Algorithm]] = {code: name for name, code in ALG_CODES.items()}

KIND_CODES: Final[dict[DeviceKind, int]] = {DeviceKind.SOLAR: 1, DeviceKind.CHARGER: 2, DeviceKind.MINER: 3}
"""The DeviceRegistry's kind codes."""
KIND_NAMES: Final[dict[int, DeviceKind]] = {code: kind for kind, code in KIND_CODES.items()}

ROLE_IDS: Final[dict[RoleName, bytes]] = {
    "governor": keccak(b"assetproof.role.governor"),
    "attestor": keccak(b"assetproof.role.attestor"),
    "registrar": keccak(b"assetproof.role.registrar"),
    "pricing_authority": keccak(b"assetproof.role.pricing"),
}
"""``bytes32`` role ids as the contracts define them (``GOVERNOR_ROLE``, ``ATTESTOR_ROLE``,
``REGISTRAR_ROLE``, ``PRICING_ROLE``)."""
ROLE_NAMES: Final[dict[bytes, RoleName]] = {role_id: name for name, role_id in ROLE_IDS.items()}


def device_id_hash(device_id: str) -> bytes:
    """The on-chain id of a device: keccak256 of its id string's UTF-8 bytes."""
    return keccak(validate_device_id(device_id).encode())


def asset_id_hash(asset: str) -> bytes:
    """The on-chain id of an asset: keccak256 of its name's UTF-8 bytes."""
    if not isinstance(asset, str) or not asset:
        raise ValueError("asset must be a non-empty string")
    return keccak(asset.encode())


def key_to_chain(alg: str, public_key: bytes) -> bytes:
    """The key bytes the DeviceRegistry stores: ed25519 as is; es256 as ``x || y``."""
    algorithm = parse_algorithm(alg)
    if algorithm == "ed25519":
        if len(public_key) != 32:
            raise InvalidKeyError(f"an ed25519 public key is 32 bytes, got {len(public_key)}")
        return bytes(public_key)
    if len(public_key) == 64:
        public_key = b"\x04" + public_key
    if len(public_key) not in (33, 65):
        raise InvalidKeyError(f"an es256 public key is a 33- or 65-byte SEC1 point, got {len(public_key)} bytes")
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except ValueError as exc:
        raise InvalidKeyError(f"not a valid es256 public key: {exc}") from None
    return point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]


def key_from_chain(alg: str, raw: bytes) -> bytes:
    """The protocol form of a key read from the registry (es256: 65-byte uncompressed SEC1)."""
    return b"\x04" + raw if parse_algorithm(alg) == "es256" else raw


def cert_hash_to_chain(cert_hash: bytes) -> bytes:
    """The ``bytes32`` the DeviceRegistry stores for a key's certificate hash: ``b""`` (no
    certificate) is zero."""
    if not isinstance(cert_hash, bytes) or len(cert_hash) not in (0, 32):
        raise ValueError("cert_hash must be 32 bytes (SHA-256 of the certificate), or b'' for none")
    if cert_hash == bytes(32):
        raise ValueError("cert_hash of 32 zero bytes means 'no certificate' on chain: pass b'' for none")
    return cert_hash or bytes(32)


def cert_hash_from_chain(raw: bytes) -> bytes:
    """A certificate hash read from the registry: ``b""`` for none (zero on chain)."""
    return b"" if raw == bytes(32) else bytes(raw)
