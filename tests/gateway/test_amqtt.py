"""The gateway and the device publisher in MQTT 3.1.1 mode against the embedded amqtt broker
(real processes and sockets, no mocks): everything stored once, across a gateway restart; the
broker enforces the same dynamic-security config as Mosquitto and decides as Mosquitto does."""

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

import pytest
from sqlalchemy import Engine, select

from device_sim.outbox import Outbox, OutboxMessage
from device_sim.publisher import Publisher
from devstack.amqtt_broker import AmqttBroker
from devstack.broker_auth import BrokerAuthDir, Login, remove_device, write_broker_auth
from devstack.broker_control import remove_device_login
from devstack.dynsec import DynsecError, load_policy, parse_policy
from devstack.mosquitto import BrokerError, Mosquitto
from gateway.service import Gateway, GatewayConfig
from protocol.topics import SUBSCRIPTION, shared_subscription, telemetry_topic
from store.db import make_engine, migrate
from store.tables import DeviceState, Quarantine, Reading
from tests.support.devices import NOW_MS, TARIFF, SimDevice, register
from tests.support.mqtt_login import NOT_AUTHORIZED, V311_SUBACK_FAILURE, MqttLogin
from tests.support.processes import REPO, count_rows, wait_for

GATEWAY_USER = "gateway"


class Auth:
    def __init__(self, directory: Path, device_ids: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = BrokerAuthDir(directory)
        self.dynsec = self.dir.config
        self.devices = {d: secrets.token_urlsafe(24) for d in device_ids}
        self.gateway_password = secrets.token_urlsafe(24)
        self.admin = Login("admin", secrets.token_urlsafe(24))
        self.dir.write_login(self.dir.admin_login_file, self.admin)
        write_broker_auth(
            path=self.dynsec,
            devices=self.devices,
            gateway=Login(GATEWAY_USER, self.gateway_password),
            admin=self.admin,
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
    """Readings a window apart (protocol.timing): a day's worth of room before ``NOW_MS``."""
    for d in devices:
        if d.seq == 0:
            d.ts_ms = NOW_MS - 24 * 3_600_000
    return [OutboxMessage(d.id, d.topic, d.next().raw) for _ in range(per_device) for d in devices]


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
        "from tests.support.devices import TARIFF\n"
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
    with AmqttBroker(tmp_path / "broker", dynsec_file=auth.dynsec) as broker:
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


# Who tries what, and whether the config allows it: one table for both brokers.
CASES: list[tuple[str, str, str, bool]] = [
    ("dev-a", "subscribe", "#", False),
    ("dev-a", "subscribe", SUBSCRIPTION, False),
    ("dev-a", "subscribe", shared_subscription("assetproof-gateway"), False),
    ("dev-a", "subscribe", telemetry_topic("dev-a"), False),
    ("dev-a", "publish", telemetry_topic("dev-a"), True),
    ("dev-a", "publish", telemetry_topic("dev-b"), False),
    ("dev-a", "publish", "assetproof/v1/other", False),
    (GATEWAY_USER, "subscribe", SUBSCRIPTION, True),
    (GATEWAY_USER, "subscribe", shared_subscription("assetproof-gateway"), True),
    (GATEWAY_USER, "subscribe", shared_subscription("another-group"), False),
    (GATEWAY_USER, "subscribe", "assetproof/#", False),
    (GATEWAY_USER, "publish", telemetry_topic("dev-a"), False),
    ("admin", "subscribe", SUBSCRIPTION, False),
    ("admin", "publish", telemetry_topic("dev-a"), False),
]


def _password(auth: Auth, user: str) -> str:
    return {GATEWAY_USER: auth.gateway_password, "admin": auth.admin.password}.get(user) or auth.devices[user]


def test_amqtt_decides_as_mosquitto_from_the_same_file(tmp_path: Path) -> None:
    auth = Auth(tmp_path / "auth", ["dev-a", "dev-b"])
    policy = load_policy(auth.dynsec)
    with Mosquitto(tmp_path / "mosquitto", dynsec_file=auth.dynsec) as mosquitto:
        for user, action, topic, allowed in CASES:
            assert policy.allows(user, action, topic) is allowed, (user, action, topic)  # type: ignore[arg-type]
            login = MqttLogin(mosquitto.port, user, _password(auth, user), client_id=f"m-{user}")
            if action == "subscribe":
                code = login.subscribe(topic)
                assert (code != NOT_AUTHORIZED) is allowed, (user, topic, code)
            else:
                code = login.publish(topic, b"x")
                assert (code != NOT_AUTHORIZED) is allowed, (user, topic, code)
            login.close()

    with AmqttBroker(tmp_path / "amqtt", dynsec_file=auth.dynsec) as broker:
        gateway = MqttLogin(broker.port, GATEWAY_USER, auth.gateway_password, client_id="c-gw", protocol="3.1.1")
        assert gateway.subscribe(SUBSCRIPTION) == 1
        for user, action, topic, allowed in CASES:
            login = MqttLogin(broker.port, user, _password(auth, user), client_id=f"a-{user}", protocol="3.1.1")
            if action == "subscribe":  # amqtt knows no $share/: the same literal filter, the same decision
                code = login.subscribe(topic)
                assert (code != V311_SUBACK_FAILURE) is allowed, (user, topic, code)
            else:
                login.publish(topic, f"{user} {topic}".encode())  # 3.1.1: acknowledged either way
            login.close()
        published = [f"{u} {t}".encode() for u, a, t, ok in CASES if a == "publish" and ok]
        gateway.wait(lambda: len(gateway.messages) >= len(published), "the allowed publishes")
        # A marker sent last: once it arrives, every refused publish before it would have too.
        marker = MqttLogin(broker.port, "dev-b", auth.devices["dev-b"], client_id="a-marker", protocol="3.1.1")
        marker.publish(telemetry_topic("dev-b"), b"marker")
        gateway.wait(lambda: (telemetry_topic("dev-b"), b"marker") in gateway.messages, "the marker")
        marker.close()
        assert [p for _, p in gateway.messages] == [*published, b"marker"]
        gateway.close()


def test_amqtt_refuses_logins_and_follows_the_file_without_restart(tmp_path: Path) -> None:
    auth = Auth(tmp_path / "auth", ["dev-a", "dev-b"])
    with AmqttBroker(tmp_path / "broker", dynsec_file=auth.dynsec) as broker:
        assert MqttLogin(broker.port, "dev-a", "wrong", client_id="c-intruder", protocol="3.1.1").refused
        assert MqttLogin(broker.port, "nobody", "x", client_id="c-nobody", protocol="3.1.1").refused
        gateway = MqttLogin(broker.port, GATEWAY_USER, auth.gateway_password, client_id="c-gw", protocol="3.1.1")
        assert gateway.subscribe(SUBSCRIPTION) == 1
        held = MqttLogin(broker.port, "dev-a", auth.devices["dev-a"], client_id="c-dev-a", protocol="3.1.1")
        held.publish(telemetry_topic("dev-a"), b"before")
        gateway.wait(lambda: len(gateway.messages) == 1, "the first reading")

        # amqtt has no $CONTROL: revocation falls back to the file, which the broker rereads.
        change = remove_device_login(auth.dir, device_id="dev-a", broker=f"127.0.0.1:{broker.port}")
        assert change.via == "file"
        assert "no CONNACK" in change.detail  # amqtt does not answer an MQTT v5 CONNECT
        assert MqttLogin(broker.port, "dev-a", auth.devices["dev-a"], client_id="c-dev-a2", protocol="3.1.1").refused
        held.publish(telemetry_topic("dev-a"), b"after revocation")  # its open connection lost its rights
        other = MqttLogin(broker.port, "dev-b", auth.devices["dev-b"], client_id="c-dev-b", protocol="3.1.1")
        other.publish(telemetry_topic("dev-b"), b"marker")
        gateway.wait(lambda: len(gateway.messages) >= 2, "the marker")
        assert [p for _, p in gateway.messages] == [b"before", b"marker"]

        # A file that no longer parses: the broker keeps the last good rules.
        auth.dynsec.write_text("{broken")
        assert MqttLogin(broker.port, "dev-b", auth.devices["dev-b"], client_id="c-dev-b2", protocol="3.1.1").connacks
        for client in (gateway, held, other):
            client.close()


def test_the_policy_reads_the_file_as_the_plugin_does(tmp_path: Path) -> None:
    auth = Auth(tmp_path, ["dev-a", "dev-b"])
    policy = load_policy(auth.dynsec)
    assert policy.authenticate("dev-a", auth.devices["dev-a"])
    assert not policy.authenticate("dev-a", auth.devices["dev-b"])
    assert not policy.authenticate(None, "x")
    assert not policy.authenticate("dev-a", None)
    assert not policy.allows(None, "publish", telemetry_topic("dev-a"))
    assert policy.allows(GATEWAY_USER, "receive", telemetry_topic("dev-b"))
    assert not policy.allows("dev-a", "receive", telemetry_topic("dev-a"))
    assert policy.allows("admin", "subscribe", "$CONTROL/dynamic-security/v1/response")
    assert not policy.allows("admin", "subscribe", "$CONTROL/#")  # wider than granted
    assert remove_device(path=auth.dynsec, device_id="dev-b")
    assert not load_policy(auth.dynsec).authenticate("dev-b", auth.devices["dev-b"])
    disabled = auth.dynsec.read_text().replace('"username": "dev-a",', '"username": "dev-a", "disabled": true,')
    assert not parse_policy(disabled).authenticate("dev-a", auth.devices["dev-a"])
    for bad, why in [
        ("[]", "not a dynamic-security config"),
        ('{"clients": [{"username": "x", "password": "!!", "salt": "", "iterations": 1}]}', "not a dynamic"),
        ('{"roles": [{"rolename": "r", "acls": [{"acltype": "readAll", "topic": "#"}]}]}', "unknown ACL type"),
    ]:
        with pytest.raises(DynsecError, match=why):
            parse_policy(bad)
    with pytest.raises(DynsecError, match="cannot read"):
        load_policy(tmp_path / "missing.json")


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="unsupported MQTT protocol"):
        GatewayConfig(database_url="sqlite://", tariff=TARIFF, protocol="4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported MQTT protocol"):
        Publisher(Path("unused.sqlite"), protocol="3.1")  # type: ignore[arg-type]
    assert GatewayConfig(database_url="sqlite://", tariff=TARIFF).subscription.startswith("$share/")
    assert GatewayConfig(database_url="sqlite://", tariff=TARIFF, protocol="3.1.1").subscription == SUBSCRIPTION


def test_a_broker_that_cannot_start_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "dynsec.json"
    broken.write_text('{"clients": "not a list"}')
    broker = AmqttBroker(tmp_path / "broker", dynsec_file=broken)
    with pytest.raises(BrokerError, match=r"amqtt exited with 1: .*not a dynamic-security config"):
        broker.start()
    assert broker.process is None
