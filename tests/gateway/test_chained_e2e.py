"""Through a real Mosquitto to a running gateway process: genuine-but-rejected readings mid-stream
do not stall their device, and a device that lost its state is resynchronised."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from gateway.mosquitto import Mosquitto
from protocol.envelope import GENESIS_PREV
from protocol.signing import DeviceKey
from store.db import make_engine
from store.devices import resync_device
from store.tables import DeviceState, Quarantine, Reading
from tests.gateway.helpers import NOW_MS, SimDevice, register
from tests.mqtt_helpers import (
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
