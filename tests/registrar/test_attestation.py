"""registrar.attestation: a device key's manufacturer certificate chain, checked against the
registrar's roots; every way it can fail has its own error, and the hash is the leaf's DER."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from device_sim.manufacturer import NO_EXPIRY, ManufacturerCA
from protocol.errors import InvalidKeyError, UnsupportedAlgorithmError, VerificationError
from protocol.signing import DeviceKey
from registrar.attestation import (
    AttestationError,
    BrokenChainError,
    CertificateExpiredError,
    ForeignRootError,
    MalformedCertificateError,
    WrongDeviceIdError,
    WrongKeyError,
    verify_device_certificate,
)

ISSUED = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
AT = ISSUED + dt.timedelta(days=30)
DEVICE = "sol-hk-rooftops-0001"


@pytest.fixture(scope="module")
def ca() -> ManufacturerCA:
    return ManufacturerCA.create(now=ISSUED)


@pytest.fixture(scope="module")
def other_ca() -> ManufacturerCA:
    return ManufacturerCA.create(now=ISSUED, organization="Another Maker")


def issue(ca: ManufacturerCA, key: DeviceKey, device_id: str = DEVICE) -> bytes:
    return ca.issue(device_id=device_id, alg=key.alg, public_key=key.public_key, now=ISSUED)


def verify(chain: bytes, roots: list[bytes], key: DeviceKey, *, device_id: str = DEVICE, at: dt.datetime = AT) -> bytes:
    return verify_device_certificate(
        chain_pem=chain, roots=roots, device_id=device_id, alg=key.alg, public_key=key.public_key, at=at
    )


def leaf_of(chain: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain)[0]


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
def test_a_genuine_chain_gives_the_leafs_der_hash(ca: ManufacturerCA, alg: str) -> None:
    key = DeviceKey.generate(alg)
    chain = issue(ca, key)
    digest = verify(chain, [ca.root_pem], key)
    leaf = leaf_of(chain)
    assert digest == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).digest()
    assert digest == leaf.fingerprint(hashes.SHA256())  # the certificate's usual SHA-256 fingerprint
    assert len(digest) == 32
    # What was issued: CN = device id, the device's own key, not a CA, no expiry.
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEVICE
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.not_valid_after_utc == NO_EXPIRY
    assert len(x509.load_pem_x509_certificates(chain)) == 2  # leaf and intermediate, no root


def test_the_root_may_ride_along_and_several_roots_may_be_trusted(ca: ManufacturerCA, other_ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("es256")
    chain = issue(ca, key)
    expected = verify(chain, [ca.root_pem], key)
    assert verify(chain + ca.root_pem, [ca.root_pem], key) == expected
    assert verify(chain, [other_ca.root_pem, ca.root_pem], key) == expected
    assert verify(chain, [other_ca.root_pem + ca.root_pem], key) == expected  # one PEM bundle


def test_a_compressed_p256_key_is_the_same_key(ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("es256")
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key.public_key)
    compressed = point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    verify_device_certificate(
        chain_pem=issue(ca, key), roots=[ca.root_pem], device_id=DEVICE, alg="es256", public_key=compressed, at=AT
    )


# --- each failure, by its own error ---------------------------------------------------------------


def test_foreign_root(ca: ManufacturerCA, other_ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("ed25519")
    with pytest.raises(ForeignRootError, match="none of the trusted manufacturer roots") as caught:
        verify(issue(other_ca, key), [ca.root_pem], key)
    assert caught.value.reason == "foreign_root"
    with pytest.raises(ForeignRootError, match="no manufacturer root is configured"):
        verify(issue(ca, key), [], key)


def test_a_root_impostor_with_the_same_name_is_foreign(ca: ManufacturerCA) -> None:
    """A CA that copies the real root's name but holds another key."""
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor_root = (
        x509.CertificateBuilder()
        .subject_name(ca.root.subject)
        .issuer_name(ca.root.subject)
        .public_key(impostor_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ISSUED - dt.timedelta(days=1))
        .not_valid_after(ISSUED + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(impostor_key, hashes.SHA256())
    )
    impostor = ManufacturerCA(
        impostor_root, impostor_key, *_sub_ca(impostor_root, impostor_key, ca.intermediate.subject)
    )
    key = DeviceKey.generate("es256")
    with pytest.raises(ForeignRootError):
        verify(issue(impostor, key), [ca.root_pem], key)


def test_wrong_key(ca: ManufacturerCA) -> None:
    key, other = DeviceKey.generate("ed25519"), DeviceKey.generate("ed25519")
    with pytest.raises(WrongKeyError, match="certifies another key") as caught:
        verify(issue(ca, other), [ca.root_pem], key)
    assert caught.value.reason == "wrong_key"
    # The same device, registered with a key of the other algorithm.
    p256 = DeviceKey.generate("es256")
    with pytest.raises(WrongKeyError, match=r"another key \(ed25519\) than the device's es256 key"):
        verify(issue(ca, key), [ca.root_pem], p256)


def test_wrong_device_id(ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("es256")
    with pytest.raises(WrongDeviceIdError, match="'sol-hk-rooftops-0002', not the device id") as caught:
        verify(issue(ca, key, "sol-hk-rooftops-0002"), [ca.root_pem], key)
    assert caught.value.reason == "wrong_device_id"
    # A prefix or different case is another id.
    with pytest.raises(WrongDeviceIdError):
        verify(issue(ca, key, DEVICE.upper()), [ca.root_pem], key)


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (ISSUED - dt.timedelta(days=1), "is not valid until"),  # before the factory issued it
        (dt.datetime(2051, 6, 1, tzinfo=dt.UTC), "intermediate certificate .* expired at 2051-01-01"),
        (dt.datetime(2057, 1, 1, tzinfo=dt.UTC), "expired"),  # the root too, by then
    ],
)
def test_expired_or_not_yet_valid(ca: ManufacturerCA, at: dt.datetime, message: str) -> None:
    key = DeviceKey.generate("ed25519")
    with pytest.raises(CertificateExpiredError, match=message) as caught:
        verify(issue(ca, key), [ca.root_pem], key, at=at)
    assert caught.value.reason == "certificate_expired"


def _sub_ca(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, name: x509.Name, *, path_length: int | None = 0
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ISSUED - dt.timedelta(days=1))
        .not_valid_after(ISSUED + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    ca: bool = False,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEVICE)]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(ISSUED - dt.timedelta(days=1))
        .not_valid_after(NO_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def es256_key() -> tuple[ec.EllipticCurvePrivateKey, DeviceKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    number = private.private_numbers().private_value.to_bytes(32, "big")
    return private, DeviceKey.from_private_bytes("es256", number)


def test_broken_chain_intermediate_of_another_maker(ca: ManufacturerCA, other_ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("ed25519")
    leaf = issue(ca, key).split(b"-----END CERTIFICATE-----\n")[0] + b"-----END CERTIFICATE-----\n"
    with pytest.raises(BrokenChainError, match="is not issued by the next certificate") as caught:
        verify(leaf + other_ca.intermediate.public_bytes(serialization.Encoding.PEM), [ca.root_pem], key)
    assert caught.value.reason == "broken_chain"


def test_broken_chain_in_the_wrong_order(ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("ed25519")
    certificates = x509.load_pem_x509_certificates(issue(ca, key))
    with pytest.raises(BrokenChainError, match="is a CA certificate"):
        verify(pem(*reversed(certificates)), [ca.root_pem], key)


def test_broken_chain_a_tampered_signature(ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("es256")
    der = bytearray(leaf_of(issue(ca, key)).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature's integers
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(BrokenChainError, match="is not issued by"):
        verify(pem(tampered, ca.intermediate), [ca.root_pem], key)


def test_broken_chain_issued_by_a_device_not_a_ca(ca: ManufacturerCA) -> None:
    """A device certificate's key (CA:FALSE) signing another device certificate."""
    device_private, _ = es256_key()
    device_cert = _leaf(ca.intermediate, ca.intermediate_key, device_private.public_key())
    victim_private, victim = es256_key()
    forged = _leaf(device_cert, device_private, victim_private.public_key())
    with pytest.raises(BrokenChainError, match="is not a CA"):
        verify(pem(forged, device_cert, ca.intermediate), [ca.root_pem], victim)


def test_broken_chain_past_the_path_length(ca: ManufacturerCA) -> None:
    """The intermediate (pathlen 0) may issue devices only, not another CA."""
    sub, sub_key = _sub_ca(
        ca.intermediate, ca.intermediate_key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue sub-CA")])
    )
    private, key = es256_key()
    with pytest.raises(BrokenChainError, match="pathlen"):
        verify(pem(_leaf(sub, sub_key, private.public_key()), sub, ca.intermediate), [ca.root_pem], key)


def test_a_leaf_that_is_a_ca_is_refused(ca: ManufacturerCA) -> None:
    private, key = es256_key()
    with pytest.raises(BrokenChainError, match="is a CA certificate"):
        verify(
            pem(_leaf(ca.intermediate, ca.intermediate_key, private.public_key(), ca=True), ca.intermediate),
            [ca.root_pem],
            key,
        )


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        b"\x00\xff" * 40,
    ],
)
def test_garbage_pem(ca: ManufacturerCA, garbage: bytes) -> None:
    key = DeviceKey.generate("ed25519")
    with pytest.raises(MalformedCertificateError, match=r"not PEM-encoded X\.509") as caught:
        verify(garbage, [ca.root_pem], key)
    assert caught.value.reason == "malformed_certificate"
    with pytest.raises(MalformedCertificateError, match="manufacturer root 2"):
        verify(issue(ca, key), [ca.root_pem, garbage or b"x"], key)


def test_der_instead_of_pem_is_malformed(ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("ed25519")
    der = leaf_of(issue(ca, key)).public_bytes(serialization.Encoding.DER)
    with pytest.raises(MalformedCertificateError):
        verify(der, [ca.root_pem], key)
    with pytest.raises(MalformedCertificateError):
        verify(base64.b64encode(der), [ca.root_pem], key)


def test_bad_device_key_or_algorithm(ca: ManufacturerCA) -> None:
    key = DeviceKey.generate("ed25519")
    chain = issue(ca, key)
    with pytest.raises(UnsupportedAlgorithmError):
        verify_device_certificate(
            chain_pem=chain, roots=[ca.root_pem], device_id=DEVICE, alg="rs256", public_key=key.public_key, at=AT
        )
    with pytest.raises(InvalidKeyError):
        verify_device_certificate(
            chain_pem=chain, roots=[ca.root_pem], device_id=DEVICE, alg="es256", public_key=b"\x04" + bytes(64), at=AT
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(chain, [ca.root_pem], key, at=AT.replace(tzinfo=None))


def test_errors_are_one_tree() -> None:
    errors = (
        BrokenChainError,
        CertificateExpiredError,
        ForeignRootError,
        MalformedCertificateError,
        WrongDeviceIdError,
        WrongKeyError,
    )
    assert all(issubclass(e, AttestationError) and issubclass(e, VerificationError) for e in errors)
    assert len({e.reason for e in errors}) == len(errors)
