"""Broker fixtures: a real Mosquitto per test and a plain paho subscriber as the receiving side."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devstack.mosquitto import Mosquitto, find_mosquitto
from protocol.topics import SUBSCRIPTION


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)", pytrace=False)
    with Mosquitto(tmp_path / "broker") as mosquitto:
        yield mosquitto


class Subscriber:
    """Collects every message on the telemetry topics (QoS 1, a persistent session so a broker
    restart loses nothing queued for it)."""

    def __init__(
        self,
        port: int,
        *,
        client_id: str = "test-subscriber",
        topic: str = SUBSCRIPTION,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connect_reason: object = None
        self.suback: list[ReasonCode] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]  # paho takes floats
        self.topic = topic
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, reason: object, _p: object) -> None:
        self.connect_reason = reason
        if not getattr(reason, "is_failure", False):
            self.connected.set()
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: Properties) -> None:
        self.suback = reasons
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def settle(self, quiet_s: float = 0.3, timeout: float = 5.0) -> None:
        """Wait until no message arrived for ``quiet_s`` (to catch late extras)."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline and seen != len(self.messages):
            seen = len(self.messages)
            time.sleep(quiet_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    assert sub.subscribed.wait(5), "subscriber did not subscribe"
    yield sub
    sub.close()


def device_seq(payload: bytes) -> tuple[str, int]:
    body = json.loads(payload)["body"]
    return body["device"], body["seq"]
