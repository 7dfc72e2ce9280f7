"""The conformance vectors (tests/vectors/conformance/) through a real Mosquitto to a real gateway
process: every message ends as its vector says, stored as a reading, counted as a duplicate, or
quarantined with the expected reason."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from devstack.mosquitto import Mosquitto
from store.db import make_engine
from store.devices import NewDevice, ensure_asset, register_devices
from store.tables import DEVICE_STATE, QUARANTINE, READING
from tests.support.processes import (
    REPO,
    publish_all,
    publisher,
    start_gateway,
    stop_process,
    wait_for,
    wait_subscribed,
)

VECTORS = REPO / "tests" / "vectors" / "conformance"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


def test_the_vectors_get_their_verdicts_at_a_real_gateway(db_url: str, broker: Mosquitto, tmp_path: Path) -> None:
    setup = json.loads((VECTORS / "devices.json").read_text())
    vectors = [json.loads(line) for line in (VECTORS / "vectors.jsonl").read_text().splitlines()]
    engine = make_engine(db_url)
    for d in setup["devices"]:
        ensure_asset(engine, name=d["asset"], kind=d["kind"], now_ms=setup["now_ms"])
        register_devices(
            engine,
            asset=d["asset"],
            devices=[
                NewDevice(
                    id=d["id"],
                    kind=d["kind"],
                    alg=d["alg"],
                    public_key=bytes.fromhex(d["public_key"]),
                    rating=d["rating"],
                    window_s=d["window_s"],
                )
            ],
            now_ms=setup["now_ms"],
        )
    expected = Counter(v["expected"] for v in vectors)

    def settled() -> bool:
        with engine.connect() as conn:
            readings = conn.execute(select(func.count()).select_from(READING)).scalar_one()
            quarantined = conn.execute(select(func.count()).select_from(QUARANTINE)).scalar_one()
            duplicates = conn.execute(select(func.sum(DEVICE_STATE.c.duplicates))).scalar_one() or 0
        return readings + quarantined + duplicates == len(vectors)

    log = tmp_path / "gw.log"
    gateway = start_gateway(database_url=db_url, port=broker.port, log_path=log)
    try:
        wait_subscribed(log)
        with publisher(broker.port) as client:
            publish_all(client, [(v["topic"], v["message"].encode()) for v in vectors])
        wait_for(settled, what="every vector stored, quarantined or counted")
    finally:
        assert stop_process(gateway) == 0, log.read_text()[-2000:]

    with engine.connect() as conn:
        stored = {bytes(raw) for raw in conn.execute(select(READING.c.raw)).scalars()}
        rows = conn.execute(select(QUARANTINE.c.raw_sha256, QUARANTINE.c.reason)).all()
        quarantined = {bytes(r.raw_sha256): r.reason for r in rows}
        duplicates = conn.execute(select(func.sum(DEVICE_STATE.c.duplicates))).scalar_one()
    engine.dispose()
    verdicts = []
    for v in vectors:
        raw = v["message"].encode()
        if v["expected"] == "duplicate":
            verdicts.append((v["name"], "duplicate"))
        elif raw in stored:
            verdicts.append((v["name"], "accepted"))
        else:
            verdicts.append((v["name"], quarantined.get(hashlib.sha256(raw).digest(), "missing")))
    assert verdicts == [(v["name"], v["expected"]) for v in vectors]
    assert len(stored) == expected["accepted"]
    assert duplicates == expected["duplicate"]
    assert len(rows) == len(vectors) - expected["accepted"] - expected["duplicate"]
