"""The broker's TLS material: a private CA, the broker's server certificate, client certificates.

Generated at provisioning with ``cryptography`` (ECDSA P-256, SHA-256). Layout of ``directory``
(normally ``<broker_auth>/tls``):

- ``ca.key`` (0600, never leaves the provisioning host) and ``ca.crt`` (given to every client
  so it can verify the broker, and to the broker so it can verify clients);
- ``server.crt`` / ``server.key``: the broker's; SAN = localhost, 127.0.0.1 and any extra names
  (e.g. ``mosquitto``, the compose service name), so clients can check the host name;
- ``clients/<name>.crt`` / ``.key``: one per gateway login (and per device when no keystore path
  is given), CN = the login or device id.

Idempotent: an existing CA is kept (re-provisioning must not invalidate every issued
certificate); the server certificate is reissued when its names change; an existing client
certificate signed by this CA is kept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config.mqtt_tls import MqttTLSError, TLSFiles, client_context, provisioned_client
from device_sim.keystore import Keystore, write_private_file

__all__ = [
    "DEFAULT_SERVER_NAMES",
    "PROVISIONED_NAMES",
    "BrokerTLSDir",
    "BrokerTLSError",
    "TLSFiles",
    "client_context",
    "device_files",
    "ensure_ca",
    "issue_client",
    "issue_server",
    "provision_broker_tls",
]

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
PROVISIONED_NAMES = ("mosquitto",)
"""Extra names provisioning puts in the broker's certificate: the compose service name."""
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity browsers' CA/B rules ever allowed; we follow the habit


class BrokerTLSError(MqttTLSError):
    """TLS material is missing, unreadable, or not issued by this CA."""


@dataclass(frozen=True, slots=True)
class BrokerTLSDir:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    def client(self, name: str) -> TLSFiles:
        return provisioned_client(self.directory, name)


def _now() -> dt.datetime:
    # Certificate validity is the one place real time matters: the peer checks it against its clock.
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private_file(path, pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BrokerTLSError(f"{path} is not a PEM certificate: {exc}") from None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BrokerTLSError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BrokerTLSError(f"{path} is not an EC private key")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "assetproof"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_ca(tls: BrokerTLSDir, *, common_name: str = "assetproof broker CA") -> x509.Certificate:
    """The CA certificate, created (with its 0600 key) only if ``ca.crt`` or ``ca.key`` is missing."""
    if tls.ca_cert.exists() and tls.ca_key.exists():
        return _load_cert(tls.ca_cert)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(tls.ca_key, key)
    _write_cert(tls.ca_cert, cert)
    return cert


def _issue(
    tls: BrokerTLSDir,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    san: Sequence[x509.GeneralName],
    cert_path: Path,
    key_path: Path,
) -> None:
    ca_cert = ensure_ca(tls)
    ca_key = _load_key(tls.ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # chain building
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    _write_key(key_path, key)
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _signed_by_ca(tls: BrokerTLSDir, cert_path: Path, key_path: Path) -> x509.Certificate | None:
    if not (cert_path.exists() and key_path.exists()):
        return None
    cert = _load_cert(cert_path)
    try:
        cert.verify_directly_issued_by(_load_cert(tls.ca_cert))
    except (ValueError, TypeError, InvalidSignature):  # another CA's, or not ours: reissue
        return None
    return cert


def issue_server(tls: BrokerTLSDir, *, extra_names: Iterable[str] = ()) -> Path:
    """The broker's certificate for localhost, 127.0.0.1 and ``extra_names``; kept when it already
    names exactly those and was signed by this CA."""
    names = list(dict.fromkeys([*DEFAULT_SERVER_NAMES, *extra_names]))
    wanted = {_general_name(n) for n in names}
    ensure_ca(tls)
    existing = _signed_by_ca(tls, tls.server_cert, tls.server_key)
    if existing is not None:
        try:
            have = set(existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            have = set()
        if have == wanted:
            return tls.server_cert
    _issue(
        tls,
        common_name=names[0],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[_general_name(n) for n in names],
        cert_path=tls.server_cert,
        key_path=tls.server_key,
    )
    return tls.server_cert


def issue_client(tls: BrokerTLSDir, *, common_name: str, files: TLSFiles | None = None) -> TLSFiles:
    """A client certificate (CN = ``common_name``: the device id or the gateway login) at
    ``files`` (default ``clients/<common_name>.crt``); kept if one signed by this CA is there."""
    files = files or tls.client(common_name)
    ensure_ca(tls)
    if _signed_by_ca(tls, files.cert, files.key) is None:
        _issue(
            tls,
            common_name=common_name,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            san=[],
            cert_path=files.cert,
            key_path=files.key,
        )
    return TLSFiles(ca=tls.ca_cert, cert=files.cert, key=files.key)


def device_files(keystore: Keystore, device_id: str) -> TLSFiles:
    """A device's TLS files, kept in its keystore beside its signing key."""
    ca, cert, key = keystore.tls_paths(device_id)
    return TLSFiles(ca=ca, cert=cert, key=key)


def provision_broker_tls(
    tls: BrokerTLSDir,
    *,
    keystore: Keystore,
    device_ids: Iterable[str],
    logins: Iterable[str],
    server_names: Iterable[str] = PROVISIONED_NAMES,
) -> None:
    """CA (kept if present), the broker's certificate, one client certificate per device (in the
    keystore, with a copy of the CA certificate so the device can verify the broker) and one per
    service login (in ``tls``'s ``clients/``)."""
    ensure_ca(tls)
    issue_server(tls, extra_names=server_names)
    ca_pem = tls.ca_cert.read_bytes()
    for device_id in device_ids:
        files = device_files(keystore, device_id)
        if not files.ca.exists() or files.ca.read_bytes() != ca_pem:
            files.ca.write_bytes(ca_pem)
        issue_client(tls, common_name=device_id, files=files)
    for login in logins:
        issue_client(tls, common_name=login)
