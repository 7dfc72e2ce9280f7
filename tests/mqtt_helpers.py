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

REPO = Path(__file__).resolve().parent.parent


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


@contextmanager
def publisher(port: int, *, client_id: str = "test-publisher", inflight: int = 200) -> Iterator[mqtt.Client]:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(client: mqtt.Client, items: Sequence[tuple[str, bytes]], *, timeout_s: float = 120) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
    deadline = time.monotonic() + timeout_s
    for info in infos:
        info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        assert info.is_published(), "broker did not acknowledge a publish in time"


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
