"""Loss is visible in the fleet view: a device whose chain shows readings the gateway never got is
``stalled`` with the missing seqs named, and an active device that went quiet is ``silent``."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from config import Settings
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from store.db import make_engine
from tests.support.devices import TARIFF, Clock, register

HOLD_MS = 5_000


def _health(db_url: str, tmp_path: Path, now_ms: int) -> dict:
    settings = Settings(database_url=db_url, deployment=tmp_path / "none.json")
    with TestClient(create_app(settings, static_dir=tmp_path / "none", clock_ms=lambda: now_ms)) as client:
        response = client.get("/v1/fleet/health")
        assert response.status_code == 200
        return response.json()


def test_stalled_and_silent_devices_are_findings(db_url: str, engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    reader = make_engine(db_url, writer=False)
    worker = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=clock, hold_ms=HOLD_MS)
    try:
        stalled, quiet, fine = register(engine, 3)
        sent = [stalled.next() for _ in range(7)]
        lost = {3, 5, 6}  # never delivered: 4 and 7 arrive and wait for them
        worker.process([Incoming(stalled.topic, m.raw, clock.now) for m in sent if m.body.seq not in lost])
        worker.process([Incoming(quiet.topic, quiet.next().raw, clock.now)])

        def fresh() -> None:  # `fine` keeps reporting: neither stalled nor silent
            worker.process([Incoming(fine.topic, fine.next(ts_ms=clock.now - 1_000).raw, clock.now)])

        fresh()
        body = _health(db_url, tmp_path, clock.now)
        assert body["devices"]["stalled"] == 1
        (loss,) = body["loss"]
        assert loss["device_id"] == stalled.id
        assert loss["state"] == "stalled"
        assert (loss["head_seq"], loss["signed_seq"], loss["waiting"]) == (2, 7, 2)
        assert loss["missing"] == 3
        assert loss["missing_ranges"] == [[3, 3], [5, 6]]

        # The held readings time out as `gap`: still signed, still waiting, still stalled.
        clock.now += HOLD_MS + 1
        worker.sweep()
        # Four of `quiet`'s one-minute windows later it is silent; `fine` reported meanwhile.
        clock.now += 4 * 60_000
        fresh()
        body = _health(db_url, tmp_path, clock.now)
        by_device = {d["device_id"]: d for d in body["loss"]}
        assert set(by_device) == {stalled.id, quiet.id}
        assert by_device[stalled.id]["missing_ranges"] == [[3, 3], [5, 6]]
        assert by_device[stalled.id]["waiting"] == 2
        assert by_device[quiet.id]["state"] == "silent"
        assert by_device[quiet.id]["head_seq"] == 1
        assert (body["devices"]["stalled"], body["devices"]["silent"]) == (1, 1)
        assert [d["state"] for d in body["loss"]] == ["stalled", "silent"]
    finally:
        worker.close()
        reader.dispose()
