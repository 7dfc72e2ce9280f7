"""MQTT over TLS against a real Mosquitto (issue 12, point 8).

The broker runs the provisioned dynamic-security config, a TLS listener that requires a client
certificate from the provisioning CA, and its plaintext listener on loopback only. Refused: a
client that cannot verify the broker (no CA), a certificate from another CA, no client
certificate, plaintext on the TLS port. Accepted: a TLS device's readings reach a TLS gateway
(the ``assetproof gateway`` command with ``--tls-ca``) and are stored.
"""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from config.mqtt_tls import TLSFiles, client_context
from device_sim.outbox import Outbox, OutboxMessage
from device_sim.publisher import Publisher
from devstack.broker_auth import ADMIN_USER, GATEWAY_USER, BrokerAuthDir, Login, write_broker_auth
from devstack.broker_control import remove_device_login
from devstack.broker_tls import BrokerTLSDir, issue_client, issue_server
from devstack.mosquitto import Mosquitto
from store.db import make_engine, migrate
from store.tables import Reading
from tests.support.devices import register
from tests.support.processes import REPO, count_rows, stop_process, wait_for, wait_subscribed

DEVICE = "sol-0000"


@dataclass
class TlsBroker:
    broker: Mosquitto
    tls: BrokerTLSDir
    device: TLSFiles
    device_password: str
    gateway: Login
    home: Path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    tls = BrokerTLSDir(tmp_path / "auth" / "tls")
    issue_server(tls)
    device = issue_client(tls, common_name=DEVICE)
    issue_client(tls, common_name=GATEWAY_USER)
    issue_client(tls, common_name=ADMIN_USER)
    gateway, admin = Login(GATEWAY_USER, secrets.token_urlsafe(24)), Login(ADMIN_USER, secrets.token_urlsafe(24))
    password = secrets.token_urlsafe(24)
    auth = BrokerAuthDir(tmp_path / "auth")
    auth.write_login(auth.admin_login_file, admin)
    dynsec = auth.config
    write_broker_auth(path=dynsec, devices={DEVICE: password}, gateway=gateway, admin=admin)
    with Mosquitto(tmp_path / "broker", dynsec_file=dynsec, tls=tls) as broker:
        yield TlsBroker(broker, tls, device, password, gateway, tmp_path)


def try_connect(port: int, ctx: ssl.SSLContext | None, *, user: str, password: str) -> str:
    """``"connected"``, or how the connection failed: at the TLS handshake, or closed before any
    CONNACK (the broker dropped the TLS session or the plaintext bytes)."""
    done = threading.Event()
    outcome: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{secrets.token_hex(4)}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    if ctx is not None:
        client.tls_set_context(ctx)

    def on_connect(_c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        outcome.append("connected" if not reason.is_failure else f"refused: {reason}")
        done.set()

    def on_disconnect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome.append(f"closed: {reason}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("127.0.0.1", port, keepalive=5)
    except (ssl.SSLError, OSError) as exc:
        return f"handshake: {exc.__class__.__name__}: {exc}"
    client.loop_start()
    try:
        assert done.wait(10), "neither CONNACK nor a closed connection within 10 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


def test_a_device_with_the_ca_and_its_certificate_connects(tls_broker: TlsBroker) -> None:
    b = tls_broker
    assert try_connect(b.broker.tls_port, client_context(b.device), user=DEVICE, password=b.device_password) == (
        "connected"
    )


def test_plaintext_listener_is_loopback_only_and_tls_listener_requires_certificates(tls_broker: TlsBroker) -> None:
    config = tls_broker.broker.config_path.read_text().splitlines()
    assert f"listener {tls_broker.broker.port} 127.0.0.1" in config
    for line in ("require_certificate true", "tls_version tlsv1.2", f"cafile {tls_broker.tls.ca_cert}"):
        assert line in config


def test_without_the_ca_the_device_cannot_verify_the_broker(tls_broker: TlsBroker) -> None:
    b = tls_broker
    ctx = ssl.create_default_context()  # the system's CAs only: the private CA is unknown
    ctx.load_cert_chain(b.device.cert, b.device.key)
    outcome = try_connect(b.broker.tls_port, ctx, user=DEVICE, password=b.device_password)
    assert outcome.startswith("handshake: SSLCertVerificationError"), outcome


def test_a_certificate_from_another_ca_is_refused_by_the_broker(tls_broker: TlsBroker) -> None:
    b = tls_broker
    rogue = issue_client(BrokerTLSDir(b.home / "rogue-ca"), common_name=DEVICE)
    ctx = client_context(TLSFiles(ca=b.tls.ca_cert, cert=rogue.cert, key=rogue.key))
    outcome = try_connect(b.broker.tls_port, ctx, user=DEVICE, password=b.device_password)
    assert outcome != "connected"
    assert outcome.startswith(("handshake:", "closed:")), outcome


def test_no_client_certificate_is_refused_by_the_broker(tls_broker: TlsBroker) -> None:
    b = tls_broker
    ctx = ssl.create_default_context(cafile=str(b.tls.ca_cert))  # verifies the broker, shows no certificate
    outcome = try_connect(b.broker.tls_port, ctx, user=DEVICE, password=b.device_password)
    assert outcome != "connected"
    assert outcome.startswith(("handshake:", "closed:")), outcome


def test_plaintext_on_the_tls_port_is_refused(tls_broker: TlsBroker) -> None:
    b = tls_broker
    outcome = try_connect(b.broker.tls_port, None, user=DEVICE, password=b.device_password)
    assert outcome.startswith("closed:"), outcome


def test_a_tls_devices_readings_are_stored_by_a_tls_gateway(tls_broker: TlsBroker, tmp_path: Path) -> None:
    b = tls_broker
    db_url = f"sqlite:///{tmp_path / 'tls.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    (device,) = register(engine, 1, prefix="sol")
    assert device.id == DEVICE
    readings = [device.next() for _ in range(50)]
    log_path = tmp_path / "gw.log"
    gateway_client = b.tls.client(GATEWAY_USER)
    gw = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "gateway",
            "--database",
            db_url,
            "--broker",
            f"localhost:{b.broker.tls_port}",  # the certificate's name, checked by the client
            "--username",
            b.gateway.username,
            "--password",
            b.gateway.password,
            "--client-id",
            "gw-tls",
            "--tls-ca",
            str(b.tls.ca_cert),
            "--tls-cert",
            str(gateway_client.cert),
            "--tls-key",
            str(gateway_client.key),
        ],
        cwd=REPO,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_subscribed(log_path)
        outbox = Outbox(tmp_path / "outbox.sqlite")
        outbox.enqueue_many(OutboxMessage(DEVICE, device.topic, m.raw) for m in readings)
        publisher = Publisher(
            outbox,
            host="localhost",
            port=b.broker.tls_port,
            passwords={DEVICE: b.device_password},
            tls=lambda _login: b.device,
        )
        publisher.start()
        try:
            assert publisher.wait_until_drained(60)
        finally:
            publisher.stop()
        wait_for(lambda: count_rows(engine, Reading) == len(readings), what="readings stored over TLS")
    finally:
        assert stop_process(gw) == 0, log_path.read_text()[-2000:]


def test_revoke_reaches_the_broker_over_tls_and_the_device_can_no_longer_connect(tls_broker: TlsBroker) -> None:
    b = tls_broker
    change = remove_device_login(
        BrokerAuthDir(b.home / "auth"),
        device_id=DEVICE,
        broker=f"localhost:{b.broker.tls_port}",
        tls_ca=b.tls.ca_cert,
    )
    assert change.via == "control", change.detail
    outcome = try_connect(b.broker.tls_port, client_context(b.device), user=DEVICE, password=b.device_password)
    assert outcome.startswith("refused:"), outcome


def test_the_gateway_command_names_a_missing_tls_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    ca = tmp_path / "ca.crt"
    ca.write_text("not used: the client certificate is missing\n")
    env = {"ASSETPROOF_BROKER_AUTH": str(tmp_path / "auth"), "ASSETPROOF_DATABASE_URL": f"sqlite:///{tmp_path}/g.db"}
    result = CliRunner().invoke(app, ["gateway", "--tls-ca", str(ca)], env=env)
    assert result.exit_code == 2
    assert "assetproof-gateway.crt does not exist" in result.output
