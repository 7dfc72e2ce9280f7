"""A simulated secure-element manufacturer: the certificate authority that vouches, at the
factory, for the key a device's chip generated.

Real parts ship this way: a Microchip ATECC608 Trust&GO or a TPM 2.0 generates its key inside
the chip, and the maker signs a device certificate for it under an intermediate "signer" CA that
chains to the maker's root. The registrar later checks the chain against the roots it trusts
(:func:`registrar.attestation.verify_device_certificate`) before it registers the key on chain.

Shape of what is issued (X.509 v3, all CA keys ECDSA P-256 with SHA-256 signatures):

- root: self-signed, ``CA:TRUE, pathlen:1``, keyCertSign and cRLSign, 30 years;
- intermediate ("signer"): ``CA:TRUE, pathlen:0``, 25 years;
- device: subject CN = the device id, the device's own public key (Ed25519 or P-256), ``CA:FALSE``,
  digitalSignature, extended key usage clientAuth, and no expiry (``notAfter`` 9999-12-31T23:59:59Z,
  RFC 5280's "no well-defined expiration date", as 802.1AR IDevIDs use; the chain still ends with
  the intermediate's validity).

A chain PEM is the device certificate followed by the intermediate (never the root: the
verifier brings its own roots). The CA's files live in one directory (``root.pem``,
``intermediate.pem`` and their ``.key`` files, mode 0600), created on first use.

Here and not in ``devstack`` because provisioning (:mod:`device_sim.provision`) issues the
certificates and ``device_sim`` imports no local-infrastructure package;
:mod:`devstack.manufacturer` re-exports it for the demo and the tests.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device_sim.keystore import KeystoreError, write_private_file
from protocol.errors import AssetproofError
from protocol.signing import parse_algorithm

__all__ = [
    "DEFAULT_MANUFACTURER",
    "NO_EXPIRY",
    "ManufacturerCA",
    "ManufacturerError",
    "device_public_key",
]

DEFAULT_MANUFACTURER: Final = "Simulated Secure Elements Ltd"
NO_EXPIRY: Final = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
ROOT_YEARS: Final = 30
INTERMEDIATE_YEARS: Final = 25
_BACKDATE: Final = dt.timedelta(hours=1)  # a clock a little behind the factory's still accepts a new cert
_FILES: Final = ("root.pem", "root.key", "intermediate.pem", "intermediate.key")


class ManufacturerError(AssetproofError):
    """The manufacturer CA cannot issue: a bad device key or algorithm, or unreadable CA files."""


def device_public_key(alg: str, public_key: bytes) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    """The device key as a ``cryptography`` key: ed25519 from its 32 raw bytes, es256 from its
    SEC1 point."""
    algorithm = parse_algorithm(alg)
    try:
        if algorithm == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(public_key)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except ValueError as exc:
        raise ManufacturerError(f"not a valid {alg} public key: {exc}") from None


def _years(start: dt.datetime, years: int) -> dt.datetime:
    return start.replace(year=start.year + years, month=1, day=1)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    path_length: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True, slots=True)
class ManufacturerCA:
    """A root and an intermediate CA with their keys. Build one with :meth:`create` or
    :meth:`load_or_create`."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, *, now: dt.datetime, organization: str = DEFAULT_MANUFACTURER) -> ManufacturerCA:
        """A new root and intermediate, valid from ``now`` (an hour earlier, for clock drift)."""
        start = now - _BACKDATE
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(f"{organization} Root CA", organization)
        root = _ca_certificate(
            subject=root_name,
            key=root_key,
            issuer=root_name,
            issuer_key=root_key,
            path_length=1,
            not_before=start,
            not_after=_years(start, ROOT_YEARS),
        )
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _ca_certificate(
            subject=_name(f"{organization} Signer CA", organization),
            key=intermediate_key,
            issuer=root_name,
            issuer_key=root_key,
            path_length=0,
            not_before=start,
            not_after=_years(start, INTERMEDIATE_YEARS),
        )
        return cls(root, root_key, intermediate, intermediate_key)

    @classmethod
    def load_or_create(
        cls, directory: Path, *, now: dt.datetime, organization: str = DEFAULT_MANUFACTURER
    ) -> ManufacturerCA:
        """The CA kept in ``directory`` (mode 0700), created there on first use."""
        directory = Path(directory)
        if all((directory / name).exists() for name in _FILES):
            return cls.load(directory)
        if any((directory / name).exists() for name in _FILES):
            raise ManufacturerError(f"{directory} holds part of a manufacturer CA; remove it or restore the rest")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        ca = cls.create(now=now, organization=organization)
        ca.save(directory)
        return ca

    @classmethod
    def load(cls, directory: Path) -> ManufacturerCA:
        try:
            certs = [
                x509.load_pem_x509_certificate((directory / n).read_bytes()) for n in ("root.pem", "intermediate.pem")
            ]
            keys = [
                serialization.load_pem_private_key((directory / n).read_bytes(), password=None)
                for n in ("root.key", "intermediate.key")
            ]
        except (OSError, ValueError) as exc:
            raise ManufacturerError(f"the manufacturer CA in {directory} is unreadable: {exc}") from None
        if not all(isinstance(k, ec.EllipticCurvePrivateKey) for k in keys):
            raise ManufacturerError(f"the manufacturer CA keys in {directory} are not P-256 keys")
        root_key, intermediate_key = keys
        assert isinstance(root_key, ec.EllipticCurvePrivateKey)  # for the type checker: checked above
        assert isinstance(intermediate_key, ec.EllipticCurvePrivateKey)
        return cls(certs[0], root_key, certs[1], intermediate_key)

    def save(self, directory: Path) -> None:
        """Write the CA to ``directory``; keys last, so a crash leaves no key without its cert."""
        pem = serialization.Encoding.PEM
        for name, data in (
            ("root.pem", self.root.public_bytes(pem)),
            ("intermediate.pem", self.intermediate.public_bytes(pem)),
            ("root.key", _private_pem(self.root_key)),
            ("intermediate.key", _private_pem(self.intermediate_key)),
        ):
            try:
                write_private_file(directory / name, data, overwrite=False)
            except KeystoreError as exc:
                raise ManufacturerError(str(exc)) from None

    @property
    def organization(self) -> str:
        names = self.intermediate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(names[0].value) if names else DEFAULT_MANUFACTURER

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def issue(self, *, device_id: str, alg: str, public_key: bytes, now: dt.datetime) -> bytes:
        """The chain PEM (device certificate, then the intermediate) for the device key."""
        leaf_key = device_public_key(alg, public_key)
        ca_key = self.intermediate_key
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(device_id, self.organization))
            .issuer_name(self.intermediate.subject)
            .public_key(leaf_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(NO_EXPIRY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        return leaf.public_bytes(pem) + self.intermediate.public_bytes(pem)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
