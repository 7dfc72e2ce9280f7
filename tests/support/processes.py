"""Real processes for end-to-end tests: a Mosquitto broker, gateway workers, a publisher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

REPO = Path(__file__).resolve().parents[2]


def start_gateway(
    *, database_url: str, port: int, log_path: Path, client_id: str = "gw-test-1", extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "gateway",
            "--database",
            database_url,
            "--broker",
            f"127.0.0.1:{port}",
            "--client-id",
            client_id,
            "--hold-seconds",
            "5",
            *extra,
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_subscribed(log_path: Path, *, count: int = 1, timeout_s: float = 30) -> None:
    """Until the gateway(s) logging to ``log_path`` hold their shared subscription: before that,
    the broker has no session for the share group and drops what is published."""
    wait_for(
        lambda: log_path.exists() and log_path.read_text(errors="replace").count("subscribed to $share/") >= count,
        timeout_s=timeout_s,
        what="gateway subscription",
    )


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


NO_MATCHING_SUBSCRIBERS = 16
"""PUBACK reason 0x10: the broker took the message but nobody was subscribed, so it was not
delivered. Mosquitto says so while no gateway holds the shared subscription (before the first
gateway starts, and after a broker restart until a gateway re-subscribes: Mosquitto 2.0 does not
restore shared subscriptions from persistence). Publishers keep such messages and retry."""


@contextmanager
def publisher(
    port: int, *, client_id: str = "test-publisher", inflight: int = 200, login: tuple[str, str] | None = None
) -> Iterator[mqtt.Client]:
    """A v5 publisher (``login``: user name and password) that records each PUBACK's reason code."""
    reasons: dict[int, int] = {}
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, userdata=reasons
    )
    if login is not None:
        client.username_pw_set(*login)
    client.on_publish = lambda _c, userdata, mid, reason, _p: userdata.__setitem__(mid, reason.value)
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(client: mqtt.Client, items: Sequence[tuple[str, bytes]], *, timeout_s: float = 120) -> None:
    """Publish at QoS 1 until the broker acknowledges each message as delivered."""
    sent = [(item, client.publish(item[0], item[1], qos=1)) for item in items]
    wait_published(client, sent, timeout_s=timeout_s)


def wait_published(
    client: mqtt.Client, sent: Sequence[tuple[tuple[str, bytes], mqtt.MQTTMessageInfo]], *, timeout_s: float = 120
) -> None:
    reasons: dict[int, int] = client.user_data_get()
    deadline = time.monotonic() + timeout_s
    while sent:
        retry = []
        for item, info in sent:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "broker did not acknowledge a publish in time"
            if reasons.pop(info.mid, 0) == NO_MATCHING_SUBSCRIBERS:
                retry.append(item)
        assert time.monotonic() < deadline or not retry, "no gateway subscribed in time"
        if retry:
            time.sleep(0.2)
        sent = [(item, client.publish(item[0], item[1], qos=1)) for item in retry]


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def count_rows(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
