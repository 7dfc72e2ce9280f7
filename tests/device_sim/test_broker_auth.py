"""Broker password and ACL files, checked against mosquitto_passwd and a real Mosquitto 2.0."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from device_sim.broker_auth import BrokerAuthError, add_devices, check_password, hash_password, write_broker_auth
from gateway.mosquitto import Mosquitto
from protocol.topics import SUBSCRIPTION, shared_subscription, telemetry_topic
from tests.device_sim.conftest import Subscriber

DEVICES = {"sol-a-0001": "pw-one-1234567890", "sol-a-0002": "pw-two-1234567890"}


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        pytest.fail("mosquitto_passwd is not installed (apt-get install mosquitto)", pytrace=False)
    path = tmp_path / "pw"
    subprocess.run([binary, "-c", "-b", str(path), "alice", "s3cret"], check=True, capture_output=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "alice"
    assert check_password("s3cret", hashed)
    assert not check_password("s3cret!", hashed)
    # Same salt in, same line out: our format is mosquitto_passwd's byte for byte.
    salt = base64.b64decode(hashed.split("$")[3])
    assert hash_password("s3cret", salt=salt) == hashed
    ours = hash_password("s3cret")
    assert ours.startswith("$7$101$")
    assert len(base64.b64decode(ours.split("$")[3])) == 12
    assert check_password("s3cret", ours)


def test_files_are_private_and_bad_names_refused(tmp_path: Path) -> None:
    pw, acl = tmp_path / "pw", tmp_path / "acl"
    write_broker_auth(password_file=pw, acl_file=acl, devices=DEVICES, gateway_user="gw", gateway_password="g")
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert stat.S_IMODE(acl.stat().st_mode) == 0o600
    text = acl.read_text()
    assert f"user sol-a-0001\ntopic write {telemetry_topic('sol-a-0001')}\n" in text
    assert f"user gw\ntopic read {SUBSCRIPTION}\n" in text
    before = (pw.read_text(), acl.read_text())
    for bad in [{"bad:user": "x"}, {"sol-a-0003": "two\nlines"}]:
        with pytest.raises(BrokerAuthError):
            write_broker_auth(password_file=pw, acl_file=acl, devices=bad, gateway_user="gw", gateway_password="g")
    with pytest.raises(BrokerAuthError):
        write_broker_auth(
            password_file=pw, acl_file=acl, devices=DEVICES, gateway_user="sol-a-0001", gateway_password="g"
        )
    with pytest.raises(BrokerAuthError, match="already exist"):
        add_devices(password_file=pw, acl_file=acl, devices={"sol-a-0002": "x"})
    assert (pw.read_text(), acl.read_text()) == before


class Device:
    """A device's MQTT connection, recording CONNACK and PUBACK reason codes."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.acks: dict[int, ReasonCode] = {}
        self.connack: ReasonCode | None = None
        self._connected = threading.Event()
        self._acked = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(5)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        self.connack = reason
        self._connected.set()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        with self._acked:
            self.acks[mid] = reason
            self._acked.notify_all()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self.acks, 5)
            return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Mosquitto]:
    pw, acl = tmp_path / "pw", tmp_path / "acl"
    write_broker_auth(
        password_file=pw,
        acl_file=acl,
        devices={"sol-a-0001": DEVICES["sol-a-0001"]},
        gateway_user="gateway",
        gateway_password="gw-secret-123",
        load_user="loadgen",
        load_password="load-secret-123",
    )
    # Appending is how later provisioning adds devices; the broker must read the result.
    add_devices(password_file=pw, acl_file=acl, devices={"sol-a-0002": DEVICES["sol-a-0002"]})
    with Mosquitto(tmp_path / "broker", password_file=pw, acl_file=acl) as broker:
        yield broker


def test_real_broker_enforces_passwords_and_topics(secured: Mosquitto) -> None:
    gateway = Subscriber(
        secured.port, client_id="gw-1", topic=shared_subscription("gw"), username="gateway", password="gw-secret-123"
    )
    assert gateway.subscribed.wait(5)
    # Mosquitto 2.0.11 checks a shared subscription against the topic after $share/<group>/.
    assert [str(r) for r in gateway.suback] == ["Granted QoS 1"]
    one = Device(secured.port, "sol-a-0001", DEVICES["sol-a-0001"])
    two = Device(secured.port, "sol-a-0002", DEVICES["sol-a-0002"])
    loader = Device(secured.port, "loadgen", "load-secret-123")
    try:
        assert one.publish(telemetry_topic("sol-a-0001"), b"own topic").is_failure is False
        assert two.publish(telemetry_topic("sol-a-0002"), b"second device").is_failure is False
        # Another device's topic: Mosquitto 2.0.11 answers a v5 client with PUBACK 0x87.
        refused = one.publish(telemetry_topic("sol-a-0002"), b"impersonation")
        assert refused.is_failure
        assert refused.value == 0x87
        assert str(refused) == "Not authorized"
        assert loader.publish(telemetry_topic("sol-a-0002"), b"load").is_failure is False
        assert gateway.wait_for(3, 5)
        gateway.settle(0.2, 2)
        assert sorted(p for _, p in gateway.messages) == [b"load", b"own topic", b"second device"]
    finally:
        for c in (one, two, loader):
            c.close()
        gateway.close()


def test_real_broker_refuses_wrong_password_and_foreign_reads(secured: Mosquitto) -> None:
    wrong = Subscriber(secured.port, client_id="intruder", username="sol-a-0001", password="wrong")
    try:
        assert not wrong.connected.wait(1)
        assert str(wrong.connect_reason) == "Not authorized"
    finally:
        wrong.client.loop_stop()
    # A device may not read telemetry, shared or not. Mosquitto 2.0.11 grants the SUBSCRIBE
    # (its ACL file has no subscribe rule) but checks read access on every delivery.
    spies = [
        Subscriber(
            secured.port, client_id=f"spy-{i}", topic=topic, username="sol-a-0002", password=DEVICES["sol-a-0002"]
        )
        for i, topic in enumerate((SUBSCRIPTION, shared_subscription("g")))
    ]
    one = Device(secured.port, "sol-a-0001", DEVICES["sol-a-0001"])
    try:
        for spy in spies:
            assert spy.subscribed.wait(5)
        assert not one.publish(telemetry_topic("sol-a-0001"), b"private").is_failure
        for spy in spies:
            spy.settle(0.3, 1)
            assert spy.messages == []
    finally:
        one.close()
        for spy in spies:
            spy.close()
