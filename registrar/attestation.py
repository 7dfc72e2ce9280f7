"""Device attestation: check a device key's manufacturer certificate chain before registering it.

Secure elements (Microchip ATECC608 Trust&GO, TPM 2.0, SIM-based key stores) generate their key
inside the chip and ship with a certificate for it, signed by the manufacturer's CA. A registrar
that checks that chain against the manufacturer roots it trusts knows the key lives in such a
part, not in a file the operator made; it then records the certificate's hash on chain with the
key, so anyone can later ask for the certificate and check it too.

:func:`verify_device_certificate` accepts a chain only if all of these hold:

1. ``chain_pem`` is one or more PEM certificates: the device (leaf) certificate first, then
   each issuer in turn (the root may be included at the end or left out);
2. each certificate is directly issued by the next (issuer name = next subject, signature
   verifies under the next one's key), and the last by one of ``roots`` (same test);
3. every issuing certificate, roots included, is a CA (basicConstraints ``CA:TRUE``, keyCertSign
   where keyUsage is present) whose ``pathlen`` allows the CAs below it; the leaf is not a CA;
4. every certificate on the path, roots included, is valid at ``at`` (notBefore <= at <= notAfter);
5. the leaf's public key is the device key (``alg`` and bytes as registered);
6. the leaf's subject has exactly one common name and it equals ``device_id``.

The result is the **certificate hash** the DeviceRegistry stores (a ``bytes32``):
SHA-256 of the leaf certificate's DER encoding, the same bytes as ``openssl x509 -outform DER
| sha256sum`` and as a certificate's usual "SHA-256 fingerprint". Only the leaf is hashed: it
names its issuer, so it pins the chain that verified it, and the roots are the registrar's
configuration, not the device's.

Failures raise an :class:`AttestationError` subclass naming the rule, each with its own stable
``reason`` code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from protocol.errors import InvalidKeyError, VerificationError
from protocol.signing import parse_algorithm

__all__ = [
    "CERT_HASH_BYTES",
    "AttestationError",
    "BrokenChainError",
    "CertificateExpiredError",
    "ForeignRootError",
    "MalformedCertificateError",
    "WrongDeviceIdError",
    "WrongKeyError",
    "certificate_hash",
    "verify_device_certificate",
]

CERT_HASH_BYTES: Final = 32


class AttestationError(VerificationError):
    """A device's manufacturer certificate chain does not attest its key."""

    reason = "bad_attestation"


class MalformedCertificateError(AttestationError):
    """The chain (or a configured root) is not PEM-encoded X.509 certificates."""

    reason = "malformed_certificate"


class BrokenChainError(AttestationError):
    """A certificate of the chain is not issued by the next, or an issuer is not a CA allowed to
    issue it (basic constraints, key usage, path length), or the leaf is itself a CA."""

    reason = "broken_chain"


class ForeignRootError(AttestationError):
    """The chain is whole but does not lead to any manufacturer root the registrar trusts."""

    reason = "foreign_root"


class CertificateExpiredError(AttestationError):
    """A certificate on the path is expired, or not yet valid, at the time checked."""

    reason = "certificate_expired"


class WrongKeyError(AttestationError):
    """The certificate certifies another key (or another algorithm) than the device's."""

    reason = "wrong_key"


class WrongDeviceIdError(AttestationError):
    """The certificate's subject common name is not the device id."""

    reason = "wrong_device_id"


def certificate_hash(certificate: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER: the 32 bytes recorded on chain."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()


def _load_pem(data: bytes, *, what: str) -> list[x509.Certificate]:
    if not isinstance(data, bytes):
        raise MalformedCertificateError(f"{what} must be PEM bytes, got {type(data).__name__}")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise MalformedCertificateError(f"{what} is not PEM-encoded X.509 certificates: {exc}") from None
    if not certificates:  # pragma: no cover - cryptography raises for no certificate at all
        raise MalformedCertificateError(f"{what} holds no certificate")
    return certificates


def _describe(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_ca(issuer: x509.Certificate, *, cas_below: int) -> None:
    """``issuer`` may issue a certificate with ``cas_below`` CA certificates under it (0: it
    issues the leaf directly)."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise BrokenChainError(f"{_describe(issuer)} issued a certificate but has no basicConstraints") from None
    if not constraints.ca:
        raise BrokenChainError(f"{_describe(issuer)} issued a certificate but is not a CA (CA:FALSE)")
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise BrokenChainError(
            f"{_describe(issuer)} allows {constraints.path_length} CA(s) below it (pathlen), the chain has {cas_below}"
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise BrokenChainError(f"{_describe(issuer)} issued a certificate but its key usage lacks keyCertSign")


def _check_not_ca(leaf: x509.Certificate) -> None:
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if constraints.ca:
        raise BrokenChainError(f"the device certificate {_describe(leaf)} is a CA certificate (CA:TRUE)")


def _check_validity(certificate: x509.Certificate, *, at: dt.datetime, role: str) -> None:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if at < start:
        raise CertificateExpiredError(
            f"the {role} certificate {_describe(certificate)} is not valid until {start.isoformat()} "
            f"(checked at {at.isoformat()})"
        )
    if at > end:
        raise CertificateExpiredError(
            f"the {role} certificate {_describe(certificate)} expired at {end.isoformat()} "
            f"(checked at {at.isoformat()})"
        )


def _device_key_der(alg: str, public_key: bytes) -> bytes:
    """The device key as DER SubjectPublicKeyInfo, the form a certificate's key compares in."""
    algorithm = parse_algorithm(alg)
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    try:
        if algorithm == "ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
        else:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(f"the device's {alg} public key is not valid: {exc}") from None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_name(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "es256" if isinstance(key.curve, ec.SECP256R1) else f"ECDSA {key.curve.name}"
    return type(key).__name__


def verify_device_certificate(
    *,
    chain_pem: bytes,
    roots: Sequence[bytes],
    device_id: str,
    alg: str,
    public_key: bytes,
    at: dt.datetime,
) -> bytes:
    """The certificate hash to record on chain (SHA-256 of the leaf's DER) if ``chain_pem``
    attests that ``public_key`` (an ``alg`` key, as registered) belongs to ``device_id``,
    chaining to one of ``roots`` (PEM, one or more certificates each) at time ``at``
    (timezone-aware). Raises an :class:`AttestationError` subclass naming the rule broken (see
    the module docstring); :class:`~protocol.errors.UnsupportedAlgorithmError` or
    :class:`~protocol.errors.InvalidKeyError` for a bad ``alg`` or ``public_key``."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware (UTC)")
    device_der = _device_key_der(alg, public_key)
    chain = _load_pem(chain_pem, what="the certificate chain")
    anchors = [cert for i, root in enumerate(roots) for cert in _load_pem(root, what=f"manufacturer root {i + 1}")]
    if not anchors:
        raise ForeignRootError("no manufacturer root is configured: nothing can be trusted")
    # A chain that carries its root at the end: drop it, the configured copy is the one trusted.
    anchor_ders = {a.public_bytes(serialization.Encoding.DER) for a in anchors}
    while len(chain) > 1 and chain[-1].public_bytes(serialization.Encoding.DER) in anchor_ders:
        chain.pop()

    leaf = chain[0]
    _check_not_ca(leaf)
    for below, (certificate, issuer) in enumerate(itertools.pairwise(chain)):
        if not _issued_by(certificate, issuer):
            raise BrokenChainError(
                f"{_describe(certificate)} is not issued by the next certificate in the chain, {_describe(issuer)}"
            )
        _check_ca(issuer, cas_below=below)
    top = chain[-1]
    root = next((a for a in anchors if _issued_by(top, a)), None)
    if root is None:
        raise ForeignRootError(
            f"the chain ends at {_describe(top)}, issued by {top.issuer.rfc4514_string()}, "
            "which is none of the trusted manufacturer roots"
        )
    _check_ca(root, cas_below=len(chain) - 1)
    for role, certificate in (("device", leaf), *(("intermediate", c) for c in chain[1:]), ("root", root)):
        _check_validity(certificate, at=at, role=role)

    leaf_key = leaf.public_key()
    leaf_der = leaf_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf_der != device_der:
        raise WrongKeyError(
            f"the certificate certifies another key ({_key_name(leaf_key)}) than the device's "
            f"{alg} key {public_key.hex()}"
        )
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        found = ", ".join(repr(n.value) for n in names) or "none"
        raise WrongDeviceIdError(f"the certificate's subject common name is {found}, not the device id {device_id!r}")
    return certificate_hash(leaf)
