"""Through a real Mosquitto to a running gateway process: genuine-but-rejected readings mid-stream
do not stall their device, and a device that lost its state is resynchronised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from devstack.mosquitto import Mosquitto
from protocol.envelope import GENESIS_PREV
from protocol.signing import DeviceKey
from store import ingest
from store.db import make_engine
from store.devices import resync_device
from store.tables import DeviceState, Quarantine, Reading
from tests.support.devices import NOW_MS, SimDevice, register
from tests.support.processes import (
    REPO,
    count_rows,
    publish_all,
    publisher,
    start_gateway,
    stop_process,
    wait_for,
    wait_subscribed,
)


def test_rejected_readings_mid_stream_and_a_resync(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    dev, lost = register(engine, 2)
    items: list[tuple[str, bytes]] = []
    for i in range(40):
        if i == 10:
            items.append((dev.topic, dev.next(energy_wh=10_000).raw))  # implausible for a 5 kW panel
        if i == 20:
            on_time = dev.ts_ms
            items.append((dev.topic, dev.next(ts_ms=NOW_MS + 3_600_000).raw))  # an hour in the future
            dev.ts_ms = on_time
        items.append((dev.topic, dev.next().raw))
    before_loss = [lost.next() for _ in range(5)]
    items += [(lost.topic, m.raw) for m in before_loss]

    with Mosquitto(tmp_path / "broker") as broker:
        log = tmp_path / "gw.log"
        gw = start_gateway(database_url=db_url, port=broker.port, log_path=log)
        wait_subscribed(log)
        try:
            with publisher(broker.port) as client:
                publish_all(client, items)
                wait_for(lambda: count_rows(engine, Reading) == 45, what="every genuine reading accepted")

                # `lost` forgets its seq and last hash; an operator resynchronises it.
                new_key = DeviceKey.generate("ed25519")
                head = resync_device(
                    engine, device_id=lost.id, alg="ed25519", public_key=new_key.public_key, now_ms=NOW_MS
                )
                assert head == 5
                fresh = SimDevice(lost.id, new_key, seq=head, ts_ms=lost.ts_ms)
                restarted = [fresh.next() for _ in range(5)]
                assert restarted[0].body.prev == GENESIS_PREV
                publish_all(client, [(lost.topic, m.raw) for m in restarted])
                wait_for(lambda: count_rows(engine, Reading) == 50, what="the new chain accepted")
            assert gw.poll() is None, "the gateway must keep running"
        finally:
            assert stop_process(gw) == 0, log.read_text()[-2000:]

    with engine.connect() as conn:
        rows = conn.execute(select(Quarantine.seq, Quarantine.reason, Quarantine.chained).order_by(Quarantine.id)).all()
        heads = {s.device_id: s for s in conn.execute(select(DeviceState)).all()}
        seqs = list(
            conn.execute(select(Reading.seq).where(Reading.device_id == dev.id).order_by(Reading.seq)).scalars()
        )
    assert [tuple(r) for r in rows] == [(11, "implausible", True), (22, "clock_skew", True)]
    assert seqs == [s for s in range(1, 43) if s not in (11, 22)]
    assert (heads[dev.id].last_seq, heads[dev.id].rejected, heads[dev.id].readings) == (42, 2, 40)
    assert (heads[lost.id].last_seq, heads[lost.id].resync_pending) == (10, False)
    engine.dispose()


def test_the_gateway_keeps_to_the_quarantine_budget_it_is_configured_with(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASSETPROOF_QUARANTINE_BUDGET_* reach the gateway process; past the budget, junk is counted
    per device and reason (shown by `devices list`), a chained rejection is still stored."""
    engine = make_engine(db_url)
    noisy, quiet = register(engine, 2)
    monkeypatch.setenv("ASSETPROOF_QUARANTINE_BUDGET_MESSAGES", "3")
    junk = [(noisy.topic, b"junk %d " % i + b"x" * 4000) for i in range(10)]
    with Mosquitto(tmp_path / "broker") as broker:
        log = tmp_path / "gw.log"
        gw = start_gateway(database_url=db_url, port=broker.port, log_path=log)
        wait_subscribed(log)
        try:
            with publisher(broker.port) as client:
                publish_all(client, junk)
                wait_for(lambda: _dropped(engine) == 7, what="junk past the budget counted")
                publish_all(client, [(noisy.topic, noisy.next(energy_wh=10_000).raw), (noisy.topic, noisy.next().raw)])
                publish_all(client, [(quiet.topic, b"junk")])
                wait_for(lambda: count_rows(engine, Reading) == 1, what="the next reading accepted")
                wait_for(lambda: count_rows(engine, Quarantine) == 5, what="chained rejection and quiet's junk stored")
        finally:
            assert stop_process(gw) == 0, log.read_text()[-2000:]
    engine.dispose()
    listed = subprocess.run(
        [sys.executable, "-m", "cli", "devices", "list", "--json", "--database", db_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert (rows[noisy.id]["quarantined"], rows[noisy.id]["rejected"], rows[noisy.id]["dropped"]) == (4, 1, 7)
    assert (rows[quiet.id]["quarantined"], rows[quiet.id]["dropped"]) == (1, 0)


def _dropped(engine: Engine) -> int:
    with engine.connect() as conn:
        return sum(r.messages for r in ingest.quarantine_dropped(conn))
