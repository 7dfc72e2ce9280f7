"""The gateway as a real process between a real Mosquitto and a real database."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from gateway.mosquitto import Mosquitto
from store.db import make_engine
from store.tables import DeviceState, Quarantine, Reading
from tests.gateway.helpers import NOW_MS, register
from tests.mqtt_helpers import (
    count_rows,
    publish_all,
    publisher,
    start_gateway,
    stop_process,
    wait_for,
    wait_subscribed,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, writer=False)
    yield engine
    engine.dispose()


def _readings(devices: list, per_device: int) -> list[tuple[str, bytes]]:
    # Round-robin over devices, as a fleet publishes: each device's readings stay in order.
    items = []
    for _ in range(per_device):
        for d in devices:
            items.append((d.topic, d.next(ts_ms=min(d.ts_ms + 1_000, NOW_MS)).raw))
    return items


def test_end_to_end(db_url: str, engine: Engine, broker: Mosquitto, tmp_path: Path) -> None:
    devices = register(make_engine(db_url), 3)
    items = _readings(devices, 50)
    gw = start_gateway(database_url=db_url, port=broker.port, log_path=tmp_path / "gw.log")
    wait_subscribed(tmp_path / "gw.log")
    try:
        with publisher(broker.port) as client:
            publish_all(client, items)
            publish_all(client, [(devices[0].topic, b"garbage"), items[0]])  # a fault and a redelivery
        wait_for(
            lambda: count_rows(engine, Reading) == len(items) and count_rows(engine, Quarantine) == 1, what="ingest"
        )
    finally:
        assert stop_process(gw) == 0, (tmp_path / "gw.log").read_text()[-2000:]
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(DeviceState.duplicates))).scalar_one() == 1
        assert conn.execute(select(Quarantine.reason)).scalar_one() == "malformed"


def test_kill_9_mid_run_stores_every_reading_once(
    db_url: str, engine: Engine, broker: Mosquitto, tmp_path: Path
) -> None:
    devices = register(make_engine(db_url), 20)
    items = _readings(devices, 1_000)  # 20,000 readings
    log = tmp_path / "gw.log"
    gw = start_gateway(database_url=db_url, port=broker.port, log_path=log, extra=["--batch-size", "200"])
    wait_subscribed(log)
    try:
        with publisher(broker.port) as client:
            publish_all(client, items[:2_000])
            wait_for(lambda: count_rows(engine, Reading) >= 500, what="first commits")
            publish_all(client, items[2_000:8_000])
            gw.send_signal(signal.SIGKILL)
            gw.wait()
            killed_at = count_rows(engine, Reading)
            publish_all(client, items[8_000:])  # queued at the broker while no gateway runs
        assert killed_at < len(items)
        time.sleep(0.5)
        gw = start_gateway(database_url=db_url, port=broker.port, log_path=log)
        wait_for(lambda: count_rows(engine, Reading) == len(items), timeout_s=180, what="all readings after restart")
        time.sleep(1.0)  # anything still in flight would show up as an extra row or a quarantine
    finally:
        assert stop_process(gw) == 0, log.read_text()[-2000:]
    assert count_rows(engine, Reading) == len(items)
    assert count_rows(engine, Quarantine) == 0
    with engine.connect() as conn:
        per_device = dict(conn.execute(select(Reading.device_id, func.count()).group_by(Reading.device_id)).all())
        heads = dict(conn.execute(select(DeviceState.device_id, DeviceState.last_seq)).all())
    assert set(per_device.values()) == {1_000}
    assert set(heads.values()) == {1_000}
