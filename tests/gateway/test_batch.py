"""The gateway's batch classifier against real SQLite and PostgreSQL: every outcome, every
quarantine reason, holding out-of-order readings, and cash-flow sums."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import rfc8785
from sqlalchemy import Engine, func, select

from gateway.batch import BatchProcessor
from gateway.records import Incoming
from protocol.envelope import MAX_MESSAGE_BYTES, sign_body
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from store.db import make_engine
from store.devices import revoke_device
from store.tables import CashflowHourly, DeviceState, HeldReading, Quarantine, Reading
from tests.support.devices import NOW_MS, TARIFF, Clock, SimDevice, register, rewrite


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def processor(db_url: str, engine: Engine, clock: Clock) -> Iterator[BatchProcessor]:
    reader = make_engine(db_url, writer=False)
    yield BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=clock, hold_ms=5_000)
    reader.dispose()


def incoming(device: SimDevice, raw: bytes, topic: str | None = None) -> Incoming:
    return Incoming(topic or device.topic, raw, NOW_MS)


def count(engine: Engine, table: type, **where: object) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(getattr(table, name) == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Quarantine.reason).order_by(Quarantine.id)).scalars())


def test_accepts_a_chain_and_counts_duplicates(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    messages = [dev.next() for _ in range(5)]
    result = processor.process([incoming(dev, m.raw) for m in messages])
    assert result.accepted == 5
    again = processor.process([incoming(dev, m.raw) for m in messages[2:]] + [incoming(dev, messages[0].raw)])
    assert (again.accepted, again.duplicates, again.quarantined_total) == (0, 4, 0)
    assert count(engine, Reading) == 5
    with engine.connect() as conn:
        state = conn.execute(select(DeviceState)).one()
        rows = conn.execute(select(Reading.seq, Reading.raw, Reading.leaf_hash).order_by(Reading.seq)).all()
    assert (state.last_seq, state.readings, state.duplicates) == (5, 5, 4)
    assert state.last_hash == messages[-1].chain_hash
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert all(bytes(r.raw) == m.raw and bytes(r.leaf_hash) == m.leaf_hash for r, m in zip(rows, messages, strict=True))


def test_duplicate_inside_one_batch(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    m = dev.next()
    result = processor.process([incoming(dev, m.raw), incoming(dev, m.raw)])
    assert (result.accepted, result.duplicates) == (1, 1)


def test_every_quarantine_reason(engine: Engine, processor: BatchProcessor, clock: Clock) -> None:
    dev, other = register(engine, 2)
    stranger = SimDevice("sol-9999", DeviceKey.generate("ed25519"))
    first = dev.next()
    processor.process([incoming(dev, first.raw)])

    good_next = dev.body()
    cases: list[tuple[str, Incoming]] = [
        ("malformed", incoming(dev, b"{not json")),
        ("non_canonical", incoming(dev, json.dumps(json.loads(first.raw), indent=1).encode())),
        ("oversized", incoming(dev, b"{" + b" " * MAX_MESSAGE_BYTES + b"}")),
        ("unsupported_alg", incoming(dev, rewrite(first, lambda o: o.update(alg="rs256")))),
        (
            "bad_signature",
            incoming(dev, rewrite(dev.forged(good_next), lambda o: o["body"]["metrics"].update(energy_wh=81))),
        ),
        ("bad_signature", incoming(dev, dev.forged(good_next, DeviceKey.generate("ed25519")).raw)),
        ("unknown_device", incoming(stranger, stranger.next().raw)),
        ("topic_mismatch", incoming(dev, other.next().raw, topic=dev.topic)),
        ("malformed", incoming(dev, first.raw, topic="assetproof/v1/devices/sol-0000/status")),
        ("replay", incoming(dev, dev.forged(dev.body(seq=1, prev=first.body.prev, energy_wh=99)).raw)),
        ("gap", incoming(dev, dev.forged(dev.body(seq=3)).raw)),
        ("bad_prev", incoming(dev, dev.forged(dev.body(prev=b"\x07" * 32)).raw)),
        # Content rejections of readings that do not link: never chained, never advancing.
        ("bad_prev", incoming(dev, dev.forged(dev.body(prev=b"\x07" * 32, energy_wh=10_000)).raw)),
        ("replay", incoming(dev, dev.forged(dev.body(seq=1, ts_ms=NOW_MS + 3_600_000)).raw)),
    ]
    result = processor.process([case for _, case in cases])
    assert result.accepted == 0
    assert Counter(reasons(engine)) == Counter(reason for reason, _ in cases)
    with engine.connect() as conn:
        rows = conn.execute(select(Quarantine).order_by(Quarantine.id)).all()
    (oversized,) = [r for r in rows if r.reason == "oversized"]
    assert oversized.raw_size == MAX_MESSAGE_BYTES + 2
    assert len(oversized.raw) <= oversized.raw_size
    assert all(row.detail for row in rows)
    assert not any(row.chained for row in rows)
    # The device is unharmed: its genuine next reading is accepted.
    assert processor.process([incoming(dev, dev.next().raw)]).accepted == 1

    revoke_device(engine, device_id=dev.id, now_ms=clock())
    result = processor.process([incoming(dev, dev.next().raw)])
    assert result.quarantined == {"revoked_device": 1}


def test_out_of_order_is_held_then_released(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    m1, m2, m3, m4 = (dev.next() for _ in range(4))
    processor.process([incoming(dev, m1.raw)])
    held = processor.process([incoming(dev, m4.raw), incoming(dev, m3.raw), incoming(dev, m3.raw)])
    assert (held.held, held.duplicates, held.accepted) == (2, 1, 0)
    assert count(engine, HeldReading) == 2
    released = processor.process([incoming(dev, m2.raw)])
    assert (released.accepted, released.released) == (3, 2)
    assert count(engine, HeldReading) == 0
    assert count(engine, Reading) == 4
    assert processor.process([incoming(dev, m4.raw)]).duplicates == 1


def test_held_reading_times_out_as_gap(engine: Engine, processor: BatchProcessor, clock: Clock) -> None:
    (dev,) = register(engine)
    processor.process([incoming(dev, dev.next().raw)])
    dev.next()  # lost on the way
    m3 = dev.next()
    assert processor.process([incoming(dev, m3.raw)]).held == 1
    assert processor.sweep().quarantined_total == 0  # not expired yet
    clock.now += 6_000
    swept = processor.sweep()
    assert swept.quarantined == {"gap": 1}
    assert count(engine, HeldReading) == 0
    assert reasons(engine) == ["gap"]


def test_cash_flow_aggregates(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    processor.process([incoming(dev, dev.next(energy_wh=e).raw) for e in (30, 60, 90)])
    with engine.connect() as conn:
        rows = conn.execute(select(CashflowHourly)).all()
        revenue = conn.execute(select(func.sum(Reading.revenue))).scalar_one()
    assert sum(r.readings for r in rows) == 3
    assert sum(r.energy_wh for r in rows) == 180
    assert sum(r.revenue for r in rows) == revenue == sum(e * 400 // 1000 for e in (30, 60, 90))
    assert sum(r.online_s for r in rows) == 180
    assert all(r.tariff_id == "test-tariff" and r.asset == "rooftop" for r in rows)


def test_two_workers_interleaved_lose_nothing(db_url: str, engine: Engine, clock: Clock) -> None:
    """What a shared subscription does: consecutive readings of one device go to different
    workers, which commit in any order."""
    devices = register(engine, 4)
    readers = [make_engine(db_url, writer=False) for _ in range(2)]
    engines = [make_engine(db_url) for _ in range(2)]
    workers = [
        BatchProcessor(engine=e, reader=r, tariff=TARIFF, clock_ms=clock) for e, r in zip(engines, readers, strict=True)
    ]
    messages = [(d, d.next()) for _ in range(60) for d in devices]
    shards: list[list[Incoming]] = [[], []]
    for i, (d, m) in enumerate(messages):
        shards[(i // 3) % 2].append(incoming(d, m.raw))
    errors: list[BaseException] = []

    def run(worker: BatchProcessor, shard: list[Incoming]) -> None:
        try:
            for start in range(0, len(shard), 7):
                worker.process(shard[start : start + 7])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w, s)) for w, s in zip(workers, shards, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    workers[0].sweep()
    assert count(engine, Reading) == len(messages)
    assert count(engine, Quarantine) == 0
    assert count(engine, HeldReading) == 0
    for e in engines + readers:
        e.dispose()


def test_non_canonical_and_tampered_bytes_are_kept(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    m = dev.next()
    raw = rfc8785.dumps(json.loads(m.raw)) + b" "
    processor.process([incoming(dev, raw)])
    with engine.connect() as conn:
        row = conn.execute(select(Quarantine)).one()
    assert bytes(row.raw) == raw
    assert row.topic == telemetry_topic(dev.id)
    assert sign_body(m.body, dev.key).raw == m.raw
