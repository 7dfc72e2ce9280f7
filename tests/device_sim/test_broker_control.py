"""Changing logins of a real Mosquitto: through ``$CONTROL`` while it runs (at once, saved in its
file, a removed device disconnected), in the file while it is stopped, and the file whenever the
broker at the address is not this deployment's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.broker_auth import BrokerAuthDir, Login, read_config, write_broker_auth
from devstack.broker_control import (
    BrokerControlError,
    add_device_logins,
    parse_address,
    remove_device_login,
)
from devstack.mosquitto import Mosquitto, free_port
from protocol.topics import telemetry_topic
from tests.support.mqtt_login import MqttLogin

DEVICES = {"sol-a-0001": "pw-one-1234567890", "sol-a-0002": "pw-two-1234567890"}


@pytest.fixture
def auth(tmp_path: Path) -> BrokerAuthDir:
    directory = BrokerAuthDir(tmp_path / "auth")
    directory.directory.mkdir(mode=0o700)
    gateway, admin = Login("gw", "gw-secret-123"), Login("admin", "admin-secret-123")
    directory.write_login(directory.gateway_login_file, gateway)
    directory.write_login(directory.admin_login_file, admin)
    write_broker_auth(path=directory.config, devices=DEVICES, gateway=gateway, admin=admin)
    return directory


@pytest.fixture
def broker(tmp_path: Path, auth: BrokerAuthDir) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", dynsec_file=auth.config) as mosquitto:
        yield mosquitto


def address(broker: Mosquitto) -> str:
    return f"127.0.0.1:{broker.port}"


def users(auth: BrokerAuthDir) -> set[str]:
    return {c["username"] for c in read_config(auth.config)["clients"]}


def test_revoke_through_control_disconnects_at_once_and_lasts(auth: BrokerAuthDir, broker: Mosquitto) -> None:
    device = MqttLogin(broker.port, "sol-a-0001", DEVICES["sol-a-0001"])
    assert device.publish(telemetry_topic("sol-a-0001"), b"before") < 0x80
    change = remove_device_login(auth, device_id="sol-a-0001", broker=address(broker))
    assert change.via == "control"
    assert "disconnected" in change.detail
    # The plugin drops the connection itself; paho's reconnect is then refused.
    device.wait(lambda: "Administrative action" in device.disconnects, "the broker dropping the device")
    device.wait(lambda: len(device.connacks) >= 2 and device.refused, "the reconnect refused")
    device.close()
    assert "sol-a-0001" not in users(auth)  # the broker saved its file
    broker.restart()
    assert MqttLogin(broker.port, "sol-a-0001", DEVICES["sol-a-0001"]).refused
    other = MqttLogin(broker.port, "sol-a-0002", DEVICES["sol-a-0002"])
    assert not other.refused
    other.close()
    again = remove_device_login(auth, device_id="sol-a-0001", broker=address(broker))
    assert again.via == "control"
    assert "had no login" in again.detail


def test_add_through_control_works_at_once_and_lasts(auth: BrokerAuthDir, broker: Mosquitto) -> None:
    new = {f"sol-b-{i:04d}": f"new-password-{i:04d}-xyz" for i in range(1, 151)}  # two $CONTROL batches
    change = add_device_logins(auth, devices=new, broker=address(broker))
    assert change.via == "control"
    assert set(new) <= users(auth)
    device = MqttLogin(broker.port, "sol-b-0150", new["sol-b-0150"])
    assert device.publish(telemetry_topic("sol-b-0150"), b"own") < 0x80
    assert device.publish(telemetry_topic("sol-b-0001"), b"foreign") == 0x87
    assert device.subscribe("#") == 0x87
    device.close()
    broker.restart()
    assert not MqttLogin(broker.port, "sol-b-0001", new["sol-b-0001"]).refused
    with pytest.raises(BrokerControlError, match="already exist"):
        add_device_logins(auth, devices={"sol-b-0001": "x-password-123"}, broker=address(broker))


def test_stopped_broker_is_changed_in_its_file(tmp_path: Path, auth: BrokerAuthDir) -> None:
    port = free_port()
    change = remove_device_login(auth, device_id="sol-a-0001", broker=f"127.0.0.1:{port}")
    assert change.via == "file"
    assert "nothing answered" in change.detail
    added = add_device_logins(auth, devices={"sol-c-0001": "c-password-0123"}, broker=None)
    assert added.via == "file"
    with Mosquitto(tmp_path / "broker", port=port, dynsec_file=auth.config) as broker:
        assert MqttLogin(broker.port, "sol-a-0001", DEVICES["sol-a-0001"]).refused
        device = MqttLogin(broker.port, "sol-c-0001", "c-password-0123")
        assert device.publish(telemetry_topic("sol-c-0001"), b"own") < 0x80
        device.close()
    gone = remove_device_login(auth, device_id="sol-a-0001", broker=None)
    assert gone.via == "file"
    assert gone.detail.startswith("no login to remove")


def test_a_broker_that_is_not_this_deployments_is_not_changed(tmp_path: Path, auth: BrokerAuthDir) -> None:
    other = BrokerAuthDir(tmp_path / "other")
    other.directory.mkdir()
    write_broker_auth(
        path=other.config, devices={}, gateway=Login("gw", "x-123456789"), admin=Login("admin", "another-admin-pw")
    )
    with Mosquitto(tmp_path / "other-broker", dynsec_file=other.config) as foreign:
        change = remove_device_login(auth, device_id="sol-a-0002", broker=address(foreign))
    assert change.via == "file"
    assert "refused the admin login" in change.detail
    assert "sol-a-0002" not in users(auth)


@pytest.mark.parametrize("bad", ["localhost", "host:port", ":1883", "1883"])
def test_bad_broker_address(bad: str) -> None:
    with pytest.raises(BrokerControlError, match="HOST:PORT"):
        parse_address(bad)
