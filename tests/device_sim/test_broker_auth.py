"""The broker's dynamic-security config, checked against mosquitto_ctrl and a real Mosquitto 2.0:
a device publishes only on its own topic and subscribes to nothing, the gateway subscribes only
to its shared subscription and publishes nothing."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.broker_auth import (
    BrokerAuthError,
    Login,
    add_devices,
    check_password,
    hash_password,
    read_config,
    remove_device,
    write_broker_auth,
)
from devstack.mosquitto import Mosquitto
from protocol.topics import SUBSCRIPTION, shared_subscription, telemetry_topic
from tests.support.mqtt_login import NOT_AUTHORIZED, V311_SUBACK_FAILURE, MqttLogin

DEVICES = {"sol-a-0001": "pw-one-1234567890", "sol-a-0002": "pw-two-1234567890"}
GATEWAY = Login("gateway", "gw-secret-123")
ADMIN = Login("admin", "admin-secret-123")
LOADER = Login("loadgen", "load-secret-123")
GROUP = "assetproof-gateway"


def test_password_fields_match_mosquitto_ctrl(tmp_path: Path) -> None:
    binary = shutil.which("mosquitto_ctrl")
    if binary is None:
        pytest.fail("mosquitto_ctrl is not installed (apt-get install mosquitto)", pytrace=False)
    path = tmp_path / "init.json"
    subprocess.run([binary, "dynsec", "init", str(path), "alice", "s3cret"], check=True, capture_output=True)
    (client,) = json.loads(path.read_text())["clients"]
    assert check_password("s3cret", client)
    assert not check_password("s3cret!", client)
    # Same salt and iterations in, same hash out: our fields are the plugin's byte for byte.
    salt = base64.b64decode(client["salt"])
    assert hash_password("s3cret", salt=salt, iterations=client["iterations"])["password"] == client["password"]
    ours = hash_password("s3cret")
    assert len(base64.b64decode(ours["salt"])) == 12
    assert check_password("s3cret", ours)
    assert not check_password("s3cret", {"password": "not base64!", "salt": ours["salt"], "iterations": 101})
    with pytest.raises(BrokerAuthError, match="12-byte"):
        hash_password("s3cret", salt=b"short")


def test_file_is_private_and_bad_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dynsec.json"
    write_broker_auth(path=path, devices=DEVICES, gateway=GATEWAY, admin=ADMIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = read_config(path)
    assert config["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert [(a["acltype"], a["topic"]) for a in roles["assetproof-device-sol-a-0001"]] == [
        ("publishClientSend", telemetry_topic("sol-a-0001"))
    ]
    before = path.read_text()
    for bad in [{"bad:user": "x"}, {"sol-a-0003": "two\nlines"}, {"sol-a-0003": ""}]:
        with pytest.raises(BrokerAuthError):
            write_broker_auth(path=path, devices=bad, gateway=GATEWAY, admin=ADMIN)
    with pytest.raises(BrokerAuthError, match="must differ"):
        write_broker_auth(path=path, devices=DEVICES, gateway=Login("sol-a-0001", "x"), admin=ADMIN)
    with pytest.raises(BrokerAuthError, match="must differ"):
        write_broker_auth(path=path, devices=DEVICES, gateway=GATEWAY, admin=Login("gateway", "y"))
    with pytest.raises(BrokerAuthError, match="already exist"):
        add_devices(path=path, devices={"sol-a-0002": "x"})
    assert path.read_text() == before
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(BrokerAuthError, match="not a dynamic-security config"):
        add_devices(path=tmp_path / "junk.json", devices={"sol-a-0003": "x"})
    with pytest.raises(BrokerAuthError, match="cannot read"):
        remove_device(path=tmp_path / "missing.json", device_id="sol-a-0001")
    assert remove_device(path=path, device_id="sol-a-0001")
    assert not remove_device(path=path, device_id="sol-a-0001")
    assert {c["username"] for c in read_config(path)["clients"]} == {"sol-a-0002", "gateway", "admin"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Mosquitto]:
    path = tmp_path / "auth" / "dynsec.json"
    path.parent.mkdir(mode=0o700)
    write_broker_auth(
        path=path,
        devices={"sol-a-0001": DEVICES["sol-a-0001"]},
        gateway=GATEWAY,
        admin=ADMIN,
        share_group=GROUP,
        load_writer=LOADER,
    )
    # Adding to the file is how later provisioning reaches a stopped broker; it must read the result.
    add_devices(path=path, devices={"sol-a-0002": DEVICES["sol-a-0002"]})
    with Mosquitto(tmp_path / "broker", dynsec_file=path) as broker:
        yield broker


def test_device_publishes_on_its_own_topic_only_and_subscribes_to_nothing(secured: Mosquitto) -> None:
    one = MqttLogin(secured.port, "sol-a-0001", DEVICES["sol-a-0001"])
    old = MqttLogin(secured.port, "sol-a-0002", DEVICES["sol-a-0002"], protocol="3.1.1")
    try:
        for topic_filter in (
            "#",
            SUBSCRIPTION,
            shared_subscription(GROUP),  # joining the gateways' group: what made Mosquitto drop messages
            shared_subscription("elsewhere"),
            telemetry_topic("sol-a-0001"),
            "$CONTROL/dynamic-security/#",
        ):
            assert one.subscribe(topic_filter) == NOT_AUTHORIZED, topic_filter
        assert old.subscribe(SUBSCRIPTION) == V311_SUBACK_FAILURE
        assert old.subscribe(shared_subscription(GROUP)) == V311_SUBACK_FAILURE
        assert one.publish(telemetry_topic("sol-a-0001"), b"own") < 0x80  # 0x10: accepted, nobody subscribed
        assert one.publish(telemetry_topic("sol-a-0002"), b"impersonation") == NOT_AUTHORIZED
        assert one.publish("$CONTROL/dynamic-security/v1", b'{"commands":[]}') == NOT_AUTHORIZED
    finally:
        one.close()
        old.close()


def test_gateway_subscribes_to_its_share_only_and_cannot_publish(secured: Mosquitto) -> None:
    gateway = MqttLogin(secured.port, GATEWAY.username, GATEWAY.password, client_id="gw-1")
    one = MqttLogin(secured.port, "sol-a-0001", DEVICES["sol-a-0001"])
    two = MqttLogin(secured.port, "sol-a-0002", DEVICES["sol-a-0002"])
    loader = MqttLogin(secured.port, LOADER.username, LOADER.password)
    admin = MqttLogin(secured.port, ADMIN.username, ADMIN.password)
    try:
        assert gateway.subscribe(shared_subscription(GROUP)) == 1
        for wider in ("#", "assetproof/#", shared_subscription("other-group"), f"$share/{GROUP}/#"):
            assert gateway.subscribe(wider) == NOT_AUTHORIZED, wider
        assert gateway.publish(telemetry_topic("sol-a-0001"), b"forged by the gateway") == NOT_AUTHORIZED
        assert loader.subscribe(SUBSCRIPTION) == NOT_AUTHORIZED
        assert admin.subscribe(SUBSCRIPTION) == NOT_AUTHORIZED  # the admin changes logins, reads nothing
        assert one.publish(telemetry_topic("sol-a-0001"), b"own topic") == 0
        assert two.publish(telemetry_topic("sol-a-0002"), b"second device") == 0
        assert loader.publish(telemetry_topic("sol-a-0002"), b"load") == 0
        gateway.wait(lambda: len(gateway.messages) >= 3, "three deliveries")
        assert sorted(p for _, p in gateway.messages) == [b"load", b"own topic", b"second device"]
    finally:
        for c in (gateway, one, two, loader, admin):
            c.close()


def test_wrong_password_and_unknown_login_are_refused(secured: Mosquitto) -> None:
    for user, password in (("sol-a-0001", "wrong"), ("sol-a-0009", "anything"), (GATEWAY.username, "")):
        login = MqttLogin(secured.port, user, password)
        assert login.refused
        assert str(login.connacks[-1]) == "Not authorized"
