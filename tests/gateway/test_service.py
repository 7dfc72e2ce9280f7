"""The gateway as a real process between a real Mosquitto and a real database."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from devstack.mosquitto import Mosquitto
from store.db import make_engine
from store.tables import DeviceState, Quarantine, Reading
from tests.support.devices import NOW_MS, register
from tests.support.processes import (
    count_rows,
    publish_all,
    publisher,
    start_gateway,
    stop_process,
    wait_for,
    wait_published,
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
    # A window apart (protocol.timing), with a day's worth of room before NOW_MS.
    for d in devices:
        if d.seq == 0:
            d.ts_ms = NOW_MS - 24 * 3_600_000
    items = []
    for _ in range(per_device):
        for d in devices:
            items.append((d.topic, d.next().raw))
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


def test_broker_restart_mid_run(db_url: str, engine: Engine, broker: Mosquitto, tmp_path: Path) -> None:
    devices = register(make_engine(db_url), 10)
    items = _readings(devices, 600)
    log = tmp_path / "gw.log"
    gw = start_gateway(database_url=db_url, port=broker.port, log_path=log)
    wait_subscribed(log)
    try:
        with publisher(broker.port) as client:
            publish_all(client, items[:2_000])
            sent = [(item, client.publish(item[0], item[1], qos=1)) for item in items[2_000:]]
            broker.restart()  # the publisher and the gateway both reconnect and resume
            wait_published(client, sent)
        wait_for(
            lambda: count_rows(engine, Reading) == len(items), timeout_s=120, what="all readings after broker restart"
        )
        time.sleep(0.5)
    finally:
        assert stop_process(gw) == 0, log.read_text()[-2000:]
    assert count_rows(engine, Reading) == len(items)
    assert count_rows(engine, Quarantine) == 0


def test_two_workers_share_one_subscription(pg_admin: Engine, broker: Mosquitto, tmp_path: Path) -> None:
    from tests.support.postgres import drop_pg_database, new_pg_database

    url = new_pg_database(pg_admin)
    try:
        writer = make_engine(url)
        from store.db import migrate

        migrate(writer)
        devices = register(writer, 20)
        items = _readings(devices, 500)  # 10,000 readings, each device's split across both workers
        logs = [tmp_path / "gw1.log", tmp_path / "gw2.log"]
        workers = [
            start_gateway(
                database_url=url, port=broker.port, log_path=logs[i], client_id=f"gw-{i}", extra=["--batch-size", "50"]
            )
            for i in range(2)
        ]
        reader = make_engine(url, writer=False)
        try:
            for log in logs:
                wait_subscribed(log)
            with publisher(broker.port) as client:
                publish_all(client, items)
            wait_for(lambda: count_rows(reader, Reading) == len(items), timeout_s=120, what="all readings")
            time.sleep(1.5)  # a late duplicate or a held reading would show now
        finally:
            codes = [stop_process(w) for w in workers]
        assert codes == [0, 0], [log.read_text()[-1500:] for log in logs]
        assert count_rows(reader, Reading) == len(items)
        assert count_rows(reader, Quarantine) == 0
        stats = [log.read_text().rsplit("gateway stopped: ", 1)[-1] for log in logs]
        assert all("accepted=0," not in s for s in stats), stats  # both workers did real work
        with reader.connect() as conn:
            assert set(conn.execute(select(DeviceState.last_seq)).scalars()) == {500}
        reader.dispose()
        writer.dispose()
    finally:
        drop_pg_database(pg_admin, url)
