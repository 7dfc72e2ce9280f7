"""The gateway and the device publisher in MQTT 3.1.1 mode against the embedded amqtt broker
(real processes and sockets, no mocks): everything stored once, across a gateway restart; the
broker enforces Mosquitto's password and ACL files."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine, select

from device_sim.broker_auth import hash_password, write_broker_auth
from device_sim.outbox import Outbox, OutboxMessage
from device_sim.publisher import Publisher
from gateway.amqtt_broker import AmqttBroker, acl_allows, check_password, parse_acl, read_passwords
from gateway.mosquitto import BrokerError
from gateway.service import Gateway, GatewayConfig
from protocol.topics import SUBSCRIPTION, telemetry_topic
from store.db import make_engine, migrate
from store.tables import DeviceState, Quarantine, Reading
from tests.gateway.helpers import NOW_MS, TARIFF, SimDevice, register
from tests.mqtt_helpers import REPO, count_rows, wait_for

GATEWAY_USER = "gateway"


class Auth:
    def __init__(self, directory: Path, device_ids: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.passwords = directory / "passwords"
        self.acl = directory / "acl"
        self.devices = {d: secrets.token_urlsafe(24) for d in device_ids}
        self.gateway_password = secrets.token_urlsafe(24)
        write_broker_auth(
            password_file=self.passwords,
            acl_file=self.acl,
            devices=self.devices,
            gateway_user=GATEWAY_USER,
            gateway_password=self.gateway_password,
        )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'assetproof.db'}"
    writer = make_engine(url)
    migrate(writer)
    writer.dispose()
    reader = make_engine(url, writer=False)
    yield url, reader
    reader.dispose()


def _readings(devices: list[SimDevice], per_device: int) -> list[OutboxMessage]:
    return [
        OutboxMessage(d.id, d.topic, d.next(ts_ms=min(d.ts_ms + 1_000, NOW_MS)).raw)
        for _ in range(per_device)
        for d in devices
    ]


class GatewayThread:
    def __init__(self, url: str, port: int, auth: Auth) -> None:
        self.gateway = Gateway(
            GatewayConfig(
                database_url=url,
                tariff=TARIFF,
                broker_port=port,
                username=GATEWAY_USER,
                password=auth.gateway_password,
                client_id="gw-311",
                protocol="3.1.1",
                hold_ms=5_000,
                migrate=False,
            )
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.gateway.run, args=(self.stop,), daemon=True)
        self.thread.start()
        assert self.gateway.wait_subscribed(10), "the gateway did not subscribe"

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


class GatewayProcess:
    """The gateway in its own process, to be killed with SIGKILL."""

    SCRIPT = (
        "import json, logging, sys, threading\n"
        "from gateway.service import Gateway, GatewayConfig\n"
        "from tests.gateway.helpers import TARIFF\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "Gateway(GatewayConfig(tariff=TARIFF, **json.loads(sys.argv[1]))).run(threading.Event())\n"
    )

    def __init__(self, url: str, port: int, auth: Auth, log: Path) -> None:
        config = {
            "database_url": url,
            "broker_port": port,
            "username": GATEWAY_USER,
            "password": auth.gateway_password,
            "client_id": "gw-311",
            "protocol": "3.1.1",
            "hold_ms": 5_000,
            "migrate": False,
        }
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", self.SCRIPT, json.dumps(config)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(lambda: "subscribed to " in log.read_text(errors="replace"), timeout_s=20, what="gateway subscription")

    def halt(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_gateway_stores_every_reading_across_a_restart(db: tuple[str, Engine], tmp_path: Path, how: str) -> None:
    url, engine = db
    devices = register(make_engine(url), 10)
    auth = Auth(tmp_path / "auth", [d.id for d in devices])
    first, second = _readings(devices, 300), _readings(devices, 200)  # 5,000 readings
    box = Outbox(tmp_path / "outbox.sqlite")
    with AmqttBroker(tmp_path / "broker", password_file=auth.passwords, acl_file=auth.acl) as broker:
        first_gateway: GatewayThread | GatewayProcess
        if how == "stop":
            first_gateway = GatewayThread(url, broker.port, auth)
        else:
            first_gateway = GatewayProcess(url, broker.port, auth, tmp_path / "gw.log")
        gateway: GatewayThread | None = None
        publisher = Publisher(box, port=broker.port, passwords=auth.devices, protocol="3.1.1")
        publisher.start()
        try:
            box.enqueue_many(first)
            publisher.wake()
            wait_for(lambda: count_rows(engine, Reading) >= 500, what="first commits")
            # Mid-stream (as a rule: how far it got depends on timing, so it is not asserted): what was
            # in flight to it is sent again after the restart; amqtt 0.12.1 alone would drop it.
            first_gateway.halt()
            stopped_at = count_rows(engine, Reading)
            box.enqueue_many(second)  # queued at the broker for the gateway's persistent session
            publisher.wake()
            assert publisher.wait_until_drained(60), "the broker did not take every reading"
            assert count_rows(engine, Reading) == stopped_at  # nobody else consumed them
            gateway = GatewayThread(url, broker.port, auth)
            wait_for(lambda: count_rows(engine, Reading) == 5_000, timeout_s=60, what="every reading after restart")
            time.sleep(0.5)  # a late duplicate or a held reading would show now
            assert publisher.stats().rejected == 0
        finally:
            publisher.stop()
            first_gateway.halt()
            if gateway is not None:
                gateway.halt()
    assert count_rows(engine, Reading) == 5_000
    assert count_rows(engine, Quarantine) == 0
    with engine.connect() as conn:
        assert set(conn.execute(select(DeviceState.last_seq)).scalars()) == {500}


def _connect(port: int, user: str, password: str, client_id: str) -> tuple[mqtt.Client, object]:
    result: dict[str, object] = {}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(user, password)

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        result["reason"] = reason
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert done.wait(5), "no CONNACK"
    return client, result["reason"]


def test_amqtt_enforces_the_password_and_acl_files(tmp_path: Path) -> None:
    auth = Auth(tmp_path / "auth", ["dev-a", "dev-b"])
    with AmqttBroker(tmp_path / "broker", password_file=auth.passwords, acl_file=auth.acl) as broker:
        intruder, reason = _connect(broker.port, "dev-a", "wrong", "c-intruder")
        intruder.loop_stop()
        assert getattr(reason, "is_failure", False), reason

        received: list[str] = []
        subscribed = threading.Event()
        granted: list[ReasonCode] = []
        gw, reason = _connect(broker.port, GATEWAY_USER, auth.gateway_password, "c-gw")
        assert not getattr(reason, "is_failure", True), reason
        gw.on_message = lambda _c, _u, m: received.append(m.topic)
        gw.on_subscribe = lambda _c, _u, _m, codes, _p: (granted.extend(codes), subscribed.set())
        gw.subscribe(SUBSCRIPTION, qos=1)
        assert subscribed.wait(5)
        assert not any(c.is_failure for c in granted)

        device, reason = _connect(broker.port, "dev-a", auth.devices["dev-a"], "c-dev-a")
        assert not getattr(reason, "is_failure", True), reason
        denied = threading.Event()
        device.on_subscribe = lambda _c, _u, _m, codes, _p: denied.set() if codes[0].is_failure else None
        device.subscribe(SUBSCRIPTION, qos=1)  # a device may not read the others' telemetry
        assert denied.wait(5)
        device.publish(telemetry_topic("dev-b"), b"speaking for dev-b", qos=1).wait_for_publish(5)
        device.publish(telemetry_topic("dev-a"), b"its own", qos=1).wait_for_publish(5)
        wait_for(lambda: received == [telemetry_topic("dev-a")], timeout_s=5, what="only the allowed message")
        time.sleep(0.3)
        assert received == [telemetry_topic("dev-a")]
        for client in (gw, device):
            client.disconnect()
            client.loop_stop()


def test_the_mosquitto_files_are_read_as_mosquitto_reads_them(tmp_path: Path) -> None:
    auth = Auth(tmp_path, ["dev-a", "dev-b"])
    users = read_passwords(auth.passwords)
    assert set(users) == {"dev-a", "dev-b", GATEWAY_USER}
    assert check_password(auth.devices["dev-a"], users["dev-a"])
    assert not check_password(auth.devices["dev-b"], users["dev-a"])
    assert check_password("pw", hash_password("pw"))
    assert not check_password("pw", "$6$not-mosquitto-2")
    rules = parse_acl(auth.acl.read_text())
    assert acl_allows(rules, "dev-a", telemetry_topic("dev-a"), "write")
    assert not acl_allows(rules, "dev-a", telemetry_topic("dev-b"), "write")
    assert not acl_allows(rules, "dev-a", telemetry_topic("dev-a"), "read")
    assert not acl_allows(rules, None, telemetry_topic("dev-a"), "write")
    assert acl_allows(rules, GATEWAY_USER, SUBSCRIPTION, "read")
    assert acl_allows(rules, GATEWAY_USER, telemetry_topic("dev-b"), "read")
    assert not acl_allows(rules, GATEWAY_USER, "assetproof/v1/devices/#", "read")  # wider than granted
    assert not acl_allows(rules, GATEWAY_USER, telemetry_topic("dev-b"), "write")
    with pytest.raises(BrokerError):
        parse_acl("pattern write x/%u\n")


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="unsupported MQTT protocol"):
        GatewayConfig(database_url="sqlite://", tariff=TARIFF, protocol="4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported MQTT protocol"):
        Publisher(Path("unused.sqlite"), protocol="3.1")  # type: ignore[arg-type]
    assert GatewayConfig(database_url="sqlite://", tariff=TARIFF).subscription.startswith("$share/")
    assert GatewayConfig(database_url="sqlite://", tariff=TARIFF, protocol="3.1.1").subscription == SUBSCRIPTION


def test_a_broker_that_cannot_start_says_why(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("pattern write assetproof/v1/devices/%u/telemetry\n")
    broker = AmqttBroker(tmp_path / "broker", acl_file=acl)
    with pytest.raises(BrokerError, match=r"amqtt exited with 1: .*ACL line 1: unsupported rule"):
        broker.start()
    assert broker.process is None
