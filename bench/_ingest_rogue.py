"""``bench.ingest --rogue``: the gateway phase behind the provisioned access rules (Mosquitto's
dynamic-security config: device logins, the gateway login, a load writer), and a rogue subscriber
on a device login that tries, mid-run, to join the gateways' shared subscription. Before issue 12
Mosquitto granted that SUBSCRIBE and then dropped every message dealt to the rogue member; now it
is refused, and the run must still show ``lost: 0``."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._ingest_load import Load
from devstack.broker_auth import BrokerAuthDir, Login, write_broker_auth
from protocol.topics import SUBSCRIPTION, shared_subscription

GROUP = "assetproof-gateway"  # the gateway's default share group


@dataclass(frozen=True)
class SecuredBroker:
    dynsec: Path
    gateway: Login
    writer: Login
    rogue: Login


def write_access(directory: Path, load: Load) -> SecuredBroker:
    auth = BrokerAuthDir(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    devices = {d.id: secrets.token_urlsafe(24) for d in load.devices}
    gateway, admin, writer = (Login(n, secrets.token_urlsafe(24)) for n in ("bench-gw", "bench-admin", "bench-load"))
    write_broker_auth(
        path=auth.config, devices=devices, gateway=gateway, admin=admin, share_group=GROUP, load_writer=writer
    )
    rogue = load.devices[len(load.devices) // 2].id  # an active device of the run
    return SecuredBroker(auth.config, gateway, writer, Login(rogue, devices[rogue]))


class Rogue:
    """A device login that subscribes to the gateways' share (and to all telemetry) once
    ``started()`` says the run is under way, and stays connected until :meth:`stop`."""

    def __init__(self, port: int, login: Login, started: Callable[[], bool]) -> None:
        self.port, self.login, self.started = port, login, started
        self.subscribe: dict[str, int] = {}
        self.received = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        while not self.started() and not self._stop.wait(0.05):
            pass
        done = threading.Condition()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-rogue", protocol=mqtt.MQTTv5)
        client.username_pw_set(self.login.username, self.login.password)
        filters: dict[int, str] = {}

        def on_subscribe(_c: object, _u: object, mid: int, reasons: list[Any], _p: object) -> None:
            with done:
                self.subscribe[filters[mid]] = int(reasons[0].value)
                done.notify_all()

        def on_message(_c: object, _u: object, _m: object) -> None:
            self.received += 1

        client.on_subscribe = on_subscribe
        client.on_message = on_message
        try:
            client.connect("127.0.0.1", self.port)
            client.loop_start()
            with done:  # held while subscribing: a SUBACK waits until its mid is recorded
                for topic_filter in (shared_subscription(GROUP), SUBSCRIPTION):
                    _, mid = client.subscribe(topic_filter, qos=1)
                    filters[int(mid or 0)] = topic_filter
                if not done.wait_for(lambda: len(self.subscribe) == len(filters), 10):
                    self.error = "no SUBACK within 10 s"
            self._stop.wait()
        except OSError as exc:
            self.error = str(exc)
        finally:
            client.disconnect()
            client.loop_stop()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(15)
        result: dict[str, Any] = {"login": self.login.username, "subscribe": self.subscribe, "received": self.received}
        if self.error:
            result["error"] = self.error
        return result
