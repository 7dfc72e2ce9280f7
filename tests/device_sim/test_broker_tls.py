"""TLS material: CA kept across re-provisioning, server SANs, client CNs, private keys 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from config.mqtt_tls import MqttTLSError, TLSFiles, client_context
from devstack.broker_tls import BrokerTLSDir, issue_client, issue_server


def _cn(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_server_certificate_names_localhost_loopback_and_extra_names(tmp_path: Path) -> None:
    tls = BrokerTLSDir(tmp_path)
    issue_server(tls, extra_names=["mosquitto"])
    cert = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "mosquitto"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(tls.ca_cert.read_bytes()))
    for key in (tls.ca_key, tls.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_reprovisioning_keeps_the_ca_and_existing_certificates(tmp_path: Path) -> None:
    tls = BrokerTLSDir(tmp_path)
    issue_server(tls)
    client = issue_client(tls, common_name="dev-0001")
    ca, server, cert = tls.ca_cert.read_bytes(), tls.server_cert.read_bytes(), client.cert.read_bytes()
    issue_server(tls)
    issue_client(tls, common_name="dev-0001")
    assert (tls.ca_cert.read_bytes(), tls.server_cert.read_bytes(), client.cert.read_bytes()) == (ca, server, cert)
    issue_server(tls, extra_names=["broker.example"])  # new names: new server cert, same CA
    assert tls.server_cert.read_bytes() != server
    assert tls.ca_cert.read_bytes() == ca


def test_client_certificate_cn_is_the_login_and_lives_where_asked(tmp_path: Path) -> None:
    tls = BrokerTLSDir(tmp_path / "tls")
    gateway = issue_client(tls, common_name="assetproof-gateway")
    assert _cn(gateway.cert) == "assetproof-gateway"
    device = issue_client(
        tls, common_name="dev-0002", files=TLSFiles(ca=tls.ca_cert, cert=tmp_path / "k/d.crt", key=tmp_path / "k/d.key")
    )
    assert _cn(device.cert) == "dev-0002"
    assert stat.S_IMODE(device.key.stat().st_mode) == 0o600
    client_context(device)  # loads


def test_a_certificate_from_another_ca_is_reissued(tmp_path: Path) -> None:
    other = issue_client(BrokerTLSDir(tmp_path / "other"), common_name="dev-0003")
    tls = BrokerTLSDir(tmp_path / "tls")
    files = issue_client(tls, common_name="dev-0003", files=other)
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(files.cert.read_bytes()).verify_directly_issued_by(ca)


def test_missing_files_are_a_specific_error(tmp_path: Path) -> None:
    with pytest.raises(MqttTLSError):
        client_context(TLSFiles(ca=tmp_path / "no.crt", cert=tmp_path / "no.crt", key=tmp_path / "no.key"))


def test_provisioning_puts_device_certificates_in_the_keystore(tmp_path: Path) -> None:
    from device_sim.keystore import Keystore
    from devstack.broker_tls import device_files, provision_broker_tls

    keystore = Keystore(tmp_path / "keys")
    tls = BrokerTLSDir(tmp_path / "tls")
    provision_broker_tls(tls, keystore=keystore, device_ids=["dev-0001"], logins=["assetproof-gateway"])
    ca = tls.ca_cert.read_bytes()
    provision_broker_tls(tls, keystore=keystore, device_ids=["dev-0002"], logins=["assetproof-gateway"])
    assert tls.ca_cert.read_bytes() == ca
    files = device_files(keystore, "dev-0001")
    assert files.ca.read_bytes() == ca
    assert _cn(files.cert) == "dev-0001"
    assert _cn(tls.client("assetproof-gateway").cert) == "assetproof-gateway"
    assert keystore.ids() == []  # certificates are not mistaken for devices
