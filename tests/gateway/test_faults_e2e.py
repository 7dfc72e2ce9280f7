"""Every fault kind, published through a real Mosquitto to a running gateway process, ends in
its own quarantine reason, while the same device's genuine readings keep being accepted (the
chained faults take a link of its chain, and it goes on from them)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from device_sim.faults import CHAINED, EXPECTED_REASON, FAULTS, DeviceSnapshot, make_fault
from devstack.mosquitto import Mosquitto
from protocol.envelope import DeviceKind, chain_hash
from store.db import make_engine
from store.devices import revoke_device
from store.tables import DeviceState, Quarantine, Reading
from tests.support.devices import NOW_MS, RATING, register, solar_metrics
from tests.support.processes import (
    count_rows,
    publish_all,
    publisher,
    start_gateway,
    stop_process,
    wait_for,
    wait_subscribed,
)


def test_every_fault_is_quarantined_with_its_reason(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    (dev,) = register(engine)
    rng = random.Random(7)
    with Mosquitto(tmp_path / "broker") as broker:
        log = tmp_path / "gw.log"
        gw = start_gateway(database_url=db_url, port=broker.port, log_path=log)
        wait_subscribed(log)
        try:
            with publisher(broker.port) as client:
                items = []
                for name in FAULTS:
                    items.append((dev.topic, dev.next().raw))  # genuine, advances the chain
                    snapshot = DeviceSnapshot(
                        device_id=dev.id,
                        kind=DeviceKind.SOLAR,
                        key=dev.key,
                        seq=dev.seq,
                        prev=dev.prev,
                        ts_ms=dev.ts_ms + 1,
                        window_s=60,
                        metrics=solar_metrics(),
                        rating=RATING,
                        now_ms=NOW_MS,
                    )
                    fault = make_fault(name, snapshot, rng)
                    items.append((fault.topic, fault.payload))
                    if fault.seq is not None:  # genuine but rejected: the chain goes on from it
                        dev.seq, dev.prev = fault.seq, chain_hash(fault.payload)
                items.append((dev.topic, dev.next().raw))
                publish_all(client, items)
                wait_for(
                    lambda: (
                        count_rows(engine, Quarantine) == len(FAULTS) and count_rows(engine, Reading) == len(FAULTS) + 1
                    ),
                    what="every message accounted for",
                )
                assert gw.poll() is None, "the gateway must keep running"

                revoke_device(engine, device_id=dev.id, now_ms=NOW_MS)
                publish_all(client, [(dev.topic, dev.next().raw)])
                wait_for(lambda: count_rows(engine, Quarantine) == len(FAULTS) + 1, what="revoked device quarantined")
        finally:
            assert stop_process(gw) == 0, log.read_text()[-2000:]
    with engine.connect() as conn:
        reasons = Counter(conn.execute(select(Quarantine.reason)).scalars())
        chained = Counter(conn.execute(select(Quarantine.reason).where(Quarantine.chained)).scalars())
        head = conn.execute(select(DeviceState.last_seq, DeviceState.rejected)).one()
    expected = Counter(EXPECTED_REASON.values())
    expected["revoked_device"] += 1
    assert reasons == expected
    assert chained == Counter(EXPECTED_REASON[name] for name in CHAINED)
    # Every genuine reading accepted, in order, with the chained faults' links between them.
    assert tuple(head) == (len(FAULTS) + 1 + len(CHAINED), len(CHAINED))
    engine.dispose()
