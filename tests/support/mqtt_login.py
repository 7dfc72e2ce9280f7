"""One broker login as a test drives it: CONNACK, SUBACK and PUBACK reason codes, messages, and
disconnects, each waited for with a deadline (paho's callbacks feed a condition variable)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

NOT_AUTHORIZED = 0x87  # MQTT v5 reason code (SUBACK, PUBACK, CONNACK)
V311_SUBACK_FAILURE = 0x80


class MqttLogin:
    """A client logged in as ``user``; MQTT v5 unless ``protocol="3.1.1"``. After a refused
    CONNACK the client stops (no reconnect loop); after a disconnect it reconnects as paho does,
    so a test sees both the disconnect and the next CONNACK."""

    def __init__(
        self, port: int, user: str, password: str, *, client_id: str | None = None, protocol: str = "5"
    ) -> None:
        self._cond = threading.Condition()
        self.connacks: list[Any] = []
        self.disconnects: list[str] = []
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.v5 = protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{user}-test",
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
        )
        self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]  # paho takes floats
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.wait(lambda: bool(self.connacks), "CONNACK")
        if self.refused:
            self.client.loop_stop()

    @property
    def refused(self) -> bool:
        return bool(self.connacks) and bool(self.connacks[-1].is_failure)

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(condition, timeout_s):
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    def _notify(self, change: Callable[[], None]) -> None:
        with self._cond:
            change()
            self._cond.notify_all()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        self._notify(lambda: self.connacks.append(reason))
        if reason.is_failure:
            client.disconnect()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        self._notify(lambda: self.disconnects.append(str(reason)))

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, reasons: list[Any], _p: object) -> None:
        self._notify(lambda: self.subacks.__setitem__(mid, [int(r.value) for r in reasons]))

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: Any, _p: object) -> None:
        self._notify(lambda: self.pubacks.__setitem__(mid, int(reason.value)))

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self._notify(lambda: self.messages.append((message.topic, bytes(message.payload))))

    def subscribe(self, topic_filter: str) -> int:
        """The SUBACK reason code for ``topic_filter`` at QoS 1 (1: granted)."""
        _, mid = self.client.subscribe(topic_filter, qos=1)
        self.wait(lambda: mid in self.subacks, f"SUBACK for {topic_filter}")
        return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK reason code (MQTT 3.1.1 has none: 0 whenever the broker acknowledged)."""
        info = self.client.publish(topic, payload, qos=1)
        self.wait(lambda: info.mid in self.pubacks, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
