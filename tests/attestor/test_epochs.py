"""Appending readings to the log and closing epochs, against real databases."""

from __future__ import annotations

import dataclasses
import hashlib

from sqlalchemy import Engine, func, select

from attestor.epochs import EpochBuilder, EpochPolicy, metadata_of
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from gateway.tariff import record_tariff
from protocol.cashflow import Tariff
from protocol.epoch import quarantine_root
from protocol.merkle.log import tree_root
from protocol.merkle.verify import verify_consistency
from store.db import make_engine
from store.tables import Epoch, Quarantine, Reading
from tests.support.devices import NOW_MS, TARIFF, register


def _ingest(db_url: str, engine: Engine, messages: list[tuple[str, bytes]], *, tariff: Tariff = TARIFF) -> None:
    record_tariff(engine, tariff)
    reader = make_engine(db_url, writer=False)
    processor = BatchProcessor(engine=engine, reader=reader, tariff=tariff, clock_ms=lambda: NOW_MS)
    processor.process([Incoming(topic, raw, NOW_MS) for topic, raw in messages])
    processor.close()
    reader.dispose()


def test_epochs_close_by_time_and_size(db_url: str) -> None:
    engine = make_engine(db_url)
    a, b = register(engine, 2)
    _ingest(db_url, engine, [(d.topic, d.next().raw) for _ in range(5) for d in (a, b)] + [(a.topic, b"junk")])
    builder = EpochBuilder(engine, policy=EpochPolicy(window_ms=60_000, max_leaves=8))
    assert builder.close_due_epoch(now_ms=NOW_MS + 120_000) is None  # nothing logged yet
    assert builder.append_pending() == 10
    assert builder.append_pending() == 0
    assert builder.close_due_epoch(now_ms=NOW_MS + 1) is not None  # 10 leaves >= 8: full before the window ends

    with engine.connect() as conn:
        readings = conn.execute(select(Reading).order_by(Reading.log_index)).all()
        epoch0 = conn.execute(select(Epoch).where(Epoch.number == 0)).one()
        junk = conn.execute(select(Quarantine)).one()
    meta = metadata_of(epoch0)
    assert (meta.leaves_from, meta.leaves_to) == (0, 8)
    assert epoch0.root == tree_root([bytes(r.leaf_hash) for r in readings[:8]])
    assert meta.meta_hash == epoch0.meta_hash
    totals = meta.assets["rooftop"]
    assert totals.readings == 8
    assert totals.revenue == sum(r.revenue for r in readings[:8])  # the gateway's figures agree with the leaves
    assert meta.quarantine_count == 1
    assert meta.quarantine_root == quarantine_root([hashlib.sha256(b"junk").digest()])
    assert junk.epoch == 0
    assert [r.epoch for r in readings] == [0] * 8 + [None, None]

    assert builder.close_due_epoch(now_ms=NOW_MS + 2) is None  # 2 leaves, window not over
    second = builder.close_due_epoch(now_ms=NOW_MS + 70_000)
    assert second is not None
    assert (second.number, second.metadata.leaves_from, second.metadata.leaves_to) == (1, 8, 10)
    assert second.metadata.quarantine_count == 0
    log = builder.log()
    verify_consistency(size1=8, size2=10, proof=log.consistency_proof(8, 10), root1=epoch0.root, root2=second.root)
    engine.dispose()


def test_a_tariff_change_closes_the_epoch(db_url: str) -> None:
    engine = make_engine(db_url)
    (dev,) = register(engine)
    _ingest(db_url, engine, [(dev.topic, dev.next().raw) for _ in range(3)])
    _ingest(
        db_url,
        engine,
        [(dev.topic, dev.next().raw) for _ in range(2)],
        tariff=dataclasses.replace(TARIFF, id="test-tariff-2", solar_fit_per_kwh=500),
    )
    builder = EpochBuilder(engine, policy=EpochPolicy(window_ms=1, max_leaves=100))
    builder.append_pending()
    first = builder.close_due_epoch(now_ms=NOW_MS + 10)
    second = builder.close_due_epoch(now_ms=NOW_MS + 20)
    assert first is not None
    assert second is not None
    assert (first.metadata.leaves_to, first.metadata.tariff.id) == (3, "test-tariff")
    assert (second.metadata.leaves_to, second.metadata.tariff.id) == (5, "test-tariff-2")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Epoch)).scalar_one() == 2
    engine.dispose()
