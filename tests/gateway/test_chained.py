"""Chained rejections, resynchronisation, quarantine attribution and the quarantine budget, on
the batch classifier against real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from gateway.batch import BatchProcessor
from gateway.quarantine import QuarantineBudget
from gateway.records import Incoming
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, sign_body
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from store import ingest
from store.db import make_engine
from store.devices import resync_device, rotate_key
from store.tables import DeviceKey as DeviceKeyRow
from store.tables import DeviceState, HeldReading, Quarantine, QuarantineWindow, Reading
from tests.support.devices import NOW_MS, TARIFF, Clock, SimDevice, register


@pytest.fixture
def reader(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, writer=False)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_processor(
    engine: Engine, reader: Engine, clock: Clock, budget: QuarantineBudget | None = None
) -> BatchProcessor:
    return BatchProcessor(
        engine=engine,
        reader=reader,
        tariff=TARIFF,
        clock_ms=clock,
        hold_ms=5_000,
        budget=budget or QuarantineBudget(),
    )


@pytest.fixture
def processor(engine: Engine, reader: Engine, clock: Clock) -> Iterator[BatchProcessor]:
    processor = make_processor(engine, reader, clock)
    yield processor
    processor.close()


def msg(device: SimDevice, raw: bytes, topic: str | None = None) -> Incoming:
    return Incoming(topic or device.topic, raw, NOW_MS)


def state(engine: Engine, device_id: str) -> DeviceState:
    with engine.connect() as conn:
        return conn.execute(select(DeviceState).where(DeviceState.device_id == device_id)).one()  # type: ignore[return-value]


def quarantine_rows(engine: Engine) -> list[Quarantine]:
    with engine.connect() as conn:
        return list(conn.execute(select(Quarantine).order_by(Quarantine.id)).all())  # type: ignore[arg-type]


def accepted_seqs(engine: Engine, device_id: str) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(Reading.seq).where(Reading.device_id == device_id).order_by(Reading.seq)).scalars()
        )


def charger_next(dev: SimDevice) -> bytes:
    """The device's next genuine reading, signed and linked, but claiming to be a charger."""
    body = Body(
        device=dev.id,
        seq=dev.seq + 1,
        ts_ms=dev.ts_ms + 60_000,
        kind=DeviceKind.CHARGER,
        window_s=60,
        metrics={
            "energy_wh": 50,
            "power_w": 3_000,
            "active_s": 60,
            "grid_wh": 52,
            "sessions_started": 0,
            "sessions_ended": 0,
        },
        prev=dev.prev,
    )
    message = sign_body(body, dev.key)
    dev.seq, dev.prev, dev.ts_ms = body.seq, message.chain_hash, body.ts_ms
    return message.raw


# --- chained rejections -------------------------------------------------------------------------


def test_genuine_but_rejected_readings_advance_the_chain(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    first = [dev.next() for _ in range(3)]
    assert processor.process([msg(dev, m.raw) for m in first]).accepted == 3
    last_ts = dev.ts_ms

    implausible = dev.next(energy_wh=10_000)  # seq 4
    skew_future = dev.next(ts_ms=NOW_MS + 3_600_000)  # seq 5
    dev.ts_ms = last_ts
    skew_past = dev.next(ts_ms=last_ts - 1)  # seq 6: before the last accepted reading
    dev.ts_ms = last_ts
    mismatch = charger_next(dev)  # seq 7
    later = [dev.next() for _ in range(5)]  # seq 8..12

    result = processor.process(
        [msg(dev, implausible.raw), msg(dev, skew_future.raw), msg(dev, skew_past.raw), msg(dev, mismatch)]
        + [msg(dev, m.raw) for m in later]
    )
    assert result.accepted == 5
    assert result.chained == 4
    assert result.quarantined == {"implausible": 1, "clock_skew": 2, "kind_mismatch": 1}
    rows = quarantine_rows(engine)
    assert [(r.seq, r.reason, r.chained, r.device_id, r.body_device) for r in rows] == [
        (4, "implausible", True, dev.id, dev.id),
        (5, "clock_skew", True, dev.id, dev.id),
        (6, "clock_skew", True, dev.id, dev.id),
        (7, "kind_mismatch", True, dev.id, dev.id),
    ]
    assert bytes(rows[0].raw) == implausible.raw
    assert accepted_seqs(engine, dev.id) == [1, 2, 3, 8, 9, 10, 11, 12]
    head = state(engine, dev.id)
    assert (head.last_seq, head.last_hash, head.rejected, head.readings) == (12, later[-1].chain_hash, 4, 8)
    assert head.last_ts_ms == later[-1].body.ts_ms  # only accepted readings move it

    # A redelivered copy of a chained rejection is a duplicate, not a replay.
    again = processor.process([msg(dev, skew_future.raw), msg(dev, implausible.raw)])
    assert (again.duplicates, again.quarantined_total) == (2, 0)


def test_held_readings_release_through_a_chained_rejection(
    engine: Engine, processor: BatchProcessor, clock: Clock
) -> None:
    (dev,) = register(engine)
    assert processor.process([msg(dev, dev.next().raw)]).accepted == 1
    implausible = dev.next(energy_wh=10_000)  # seq 2
    m3, m4 = dev.next(), dev.next()
    assert processor.process([msg(dev, m4.raw), msg(dev, m3.raw)]).held == 2
    result = processor.process([msg(dev, implausible.raw)])
    assert (result.chained, result.accepted, result.released) == (1, 2, 2)
    with engine.connect() as conn:
        assert conn.execute(select(HeldReading)).all() == []
    assert accepted_seqs(engine, dev.id) == [1, 3, 4]

    # The chained rejection itself arriving out of order: held, then released as a rejection.
    m5_bad, m6 = dev.next(ts_ms=NOW_MS + 3_600_000), dev.next(ts_ms=m4.body.ts_ms + 120_000)
    assert processor.process([msg(dev, m6.raw), msg(dev, m5_bad.raw)]).held == 1  # 6 waits, 5 links
    assert accepted_seqs(engine, dev.id) == [1, 3, 4, 6]
    clock.now += 10_000
    assert processor.sweep().quarantined_total == 0  # nothing left to time out as a gap
    assert [r.reason for r in quarantine_rows(engine)] == ["implausible", "clock_skew"]


def test_held_readings_around_a_held_content_rejection_unwind_together(
    engine: Engine, processor: BatchProcessor
) -> None:
    """The held successor of a reading held itself: both unwind when the gap closes."""
    (dev,) = register(engine)
    m1, m2 = dev.next(), dev.next()
    bad3 = dev.next(energy_wh=10_000)
    m4 = dev.next()
    processor.process([msg(dev, m1.raw)])
    assert processor.process([msg(dev, m4.raw), msg(dev, bad3.raw)]).held == 2
    result = processor.process([msg(dev, m2.raw)])
    assert (result.accepted, result.chained, result.released) == (2, 1, 2)
    assert state(engine, dev.id).last_seq == 4


def test_failures_of_authenticity_or_linking_never_advance(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    processor.process([msg(dev, dev.next().raw)])
    head = state(engine, dev.id)
    implausible_body = dev.body(energy_wh=10_000)
    cases = [
        msg(dev, dev.forged(implausible_body, DeviceKey.generate("ed25519")).raw),  # wrong key
        msg(dev, dev.forged(dev.body(prev=b"\x07" * 32, energy_wh=10_000)).raw),  # not linked
        msg(dev, dev.forged(dev.body(seq=1, energy_wh=10_000)).raw),  # replayed seq
        msg(dev, dev.forged(dev.body(seq=3, prev=dev.prev, energy_wh=10_000)).raw),  # skips a seq
    ]
    result = processor.process(cases)
    assert result.quarantined == {"bad_signature": 1, "bad_prev": 1, "replay": 1, "gap": 1}
    assert result.chained == 0
    after = state(engine, dev.id)
    assert (after.last_seq, after.last_hash, after.rejected) == (head.last_seq, head.last_hash, 0)
    assert processor.process([msg(dev, dev.next().raw)]).accepted == 1


# --- resynchronisation --------------------------------------------------------------------------


def test_a_device_that_lost_its_state_is_resynchronised(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    processor.process([msg(dev, dev.next().raw) for _ in range(3)])

    # The device forgets its seq and last hash and starts over: nothing of that is accepted.
    lost = SimDevice(dev.id, dev.key, ts_ms=dev.ts_ms)
    assert processor.process([msg(dev, lost.next().raw)]).quarantined == {"replay": 1}
    new_key = DeviceKey.generate("ed25519")
    unregistered = SimDevice(dev.id, new_key, seq=10, ts_ms=dev.ts_ms)
    assert processor.process([msg(dev, unregistered.next().raw)]).quarantined == {"bad_signature": 1}

    head_seq = resync_device(engine, device_id=dev.id, alg="ed25519", public_key=new_key.public_key, now_ms=NOW_MS)
    assert head_seq == 3
    assert state(engine, dev.id).resync_pending
    with engine.connect() as conn:
        keys = conn.execute(select(DeviceKeyRow).order_by(DeviceKeyRow.id)).all()
    assert [(k.ended_by, k.new_chain) for k in keys] == [("rotated", False), (None, True)]

    # The old key is over; a genesis prev at or below the head is not a new chain.
    assert processor.process([msg(dev, dev.next().raw)]).quarantined == {"bad_signature": 1}
    at_head = SimDevice(dev.id, new_key, seq=2, ts_ms=dev.ts_ms)
    assert processor.process([msg(dev, at_head.next().raw)]).quarantined == {"replay": 1}

    # The new chain: starts at seq 20 with prev = zeros; its second reading arrives first.
    fresh = SimDevice(dev.id, new_key, seq=19, ts_ms=dev.ts_ms)
    start, second = fresh.next(), fresh.next()
    assert start.body.prev == GENESIS_PREV
    assert processor.process([msg(dev, second.raw)]).held == 1
    result = processor.process([msg(dev, start.raw)])
    assert (result.accepted, result.released) == (2, 1)
    head = state(engine, dev.id)
    assert (head.last_seq, head.resync_pending) == (21, False)
    assert accepted_seqs(engine, dev.id) == [1, 2, 3, 20, 21]

    # Once started, a second genesis prev is a fork like any other.
    again = SimDevice(dev.id, new_key, seq=21, ts_ms=fresh.ts_ms)
    assert processor.process([msg(dev, again.next().raw)]).quarantined == {"bad_prev": 1}
    assert processor.process([msg(dev, fresh.next().raw)]).accepted == 1


def test_resync_start_rejected_for_content_still_starts_the_chain(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    processor.process([msg(dev, dev.next().raw)])
    new_key = DeviceKey.generate("ed25519")
    resync_device(engine, device_id=dev.id, alg="ed25519", public_key=new_key.public_key, now_ms=NOW_MS)
    fresh = SimDevice(dev.id, new_key, seq=1, ts_ms=dev.ts_ms)
    bad_start = fresh.next(energy_wh=10_000)
    assert processor.process([msg(dev, bad_start.raw)]).chained == 1
    assert processor.process([msg(dev, fresh.next().raw)]).accepted == 1
    assert state(engine, dev.id).last_seq == 3


def test_a_plain_rotation_continues_the_chain(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    processor.process([msg(dev, dev.next().raw)])
    new_key = DeviceKey.generate("ed25519")
    rotate_key(engine, device_id=dev.id, alg="ed25519", public_key=new_key.public_key, now_ms=NOW_MS)
    dev.key = new_key
    restart = SimDevice(dev.id, new_key, seq=5, ts_ms=dev.ts_ms)
    assert processor.process([msg(dev, restart.next().raw)]).held == 1  # no new chain without a resync
    assert processor.process([msg(dev, dev.next().raw)]).accepted == 1


# --- attribution --------------------------------------------------------------------------------


def test_quarantine_is_filed_under_the_publisher(engine: Engine, processor: BatchProcessor) -> None:
    publisher, victim = register(engine, 2)
    stranger_topic = telemetry_topic("ghost-0001")
    result = processor.process(
        [
            msg(publisher, b"\x00\xffjunk"),  # undecodable, on the publisher's topic
            msg(publisher, victim.next().raw),  # the victim's genuine reading, republished
            msg(publisher, b"{}", topic="assetproof/v1/devices/not a device/telemetry"),
            msg(publisher, b"{}", topic=stranger_topic),
        ]
    )
    assert result.quarantined_total == 4
    rows = quarantine_rows(engine)
    assert [(r.reason, r.device_id, r.body_device) for r in rows] == [
        ("malformed", publisher.id, None),
        ("topic_mismatch", publisher.id, victim.id),
        ("malformed", None, None),
        ("malformed", "ghost-0001", None),
    ]
    assert rows[1].seq == 1
    assert not rows[1].chained
    # Counted against the publisher; the victim's record stays clean and its reading still counts.
    assert (state(engine, publisher.id).quarantined, state(engine, victim.id).quarantined) == (2, 0)
    assert processor.process([msg(victim, victim.sent[0].raw)]).accepted == 1


# --- budget -------------------------------------------------------------------------------------


def test_budget_counts_junk_past_it_but_never_drops_a_chained_rejection(
    engine: Engine, reader: Engine, clock: Clock
) -> None:
    noisy, quiet = register(engine, 2)
    processor = make_processor(engine, reader, clock, QuarantineBudget(messages=5, bytes=1_000_000, window_s=3600))
    junk = [msg(noisy, b"junk-%d" % i + b"x" * 4000) for i in range(8)]
    result = processor.process([*junk[:3], msg(noisy, noisy.next().raw), *junk[3:]])
    assert (result.accepted, result.quarantined, result.dropped) == (1, {"malformed": 5}, {"malformed": 3})
    assert processor.process([msg(quiet, b"junk")]).quarantined == {"malformed": 1}  # its own budget

    # Past the budget, a chained rejection is stored anyway; more junk is only counted.
    result = processor.process([msg(noisy, noisy.next(energy_wh=10_000).raw), msg(noisy, b"more junk")])
    assert (result.chained, result.quarantined, result.dropped) == (1, {"implausible": 1}, {"malformed": 1})
    assert processor.process([msg(noisy, noisy.next().raw)]).accepted == 1

    with engine.connect() as conn:
        dropped = ingest.quarantine_dropped(conn)
    assert [(d.device_id, d.reason, d.messages) for d in dropped] == [(noisy.id, "malformed", 4)]
    assert dropped[0].bytes == 3 * len(junk[0].payload) + len(b"more junk")
    assert state(engine, noisy.id).quarantined == 6  # stored ones only
    rows = quarantine_rows(engine)
    assert sum(r.device_id == noisy.id for r in rows) == 6

    # A new window: the budget is back, and the publisher's old window row is gone.
    clock.now += 3_600_000
    assert processor.process([msg(noisy, b"junk again")]).quarantined == {"malformed": 1}
    with engine.connect() as conn:
        windows = conn.execute(
            select(QuarantineWindow.device_id, QuarantineWindow.messages).order_by(QuarantineWindow.device_id)
        ).all()
    assert [tuple(w) for w in windows] == [(noisy.id, 1), (quiet.id, 1)]
    # A window later, the sweep forgets the windows of publishers that went quiet.
    clock.now += 3_600_000
    processor.sweep()
    with engine.connect() as conn:
        windows = conn.execute(select(QuarantineWindow.device_id)).all()
    assert [tuple(w) for w in windows] == [(noisy.id,)]
    processor.close()


def test_budget_in_bytes(engine: Engine, reader: Engine, clock: Clock) -> None:
    (dev,) = register(engine)
    processor = make_processor(engine, reader, clock, QuarantineBudget(messages=1000, bytes=10_000, window_s=60))
    result = processor.process([msg(dev, b"y" * 4096) for _ in range(5)])
    assert (result.quarantined_total, sum(result.dropped.values())) == (2, 3)
    processor.close()


def test_budget_of_5000_junk_messages_is_bounded(engine: Engine, reader: Engine, clock: Clock) -> None:
    """The issue's measurement: 5,000 junk 4 KB messages from one device, default budget."""
    (dev,) = register(engine)
    processor = make_processor(engine, reader, clock)
    stored = dropped = 0
    for start in range(0, 5000, 500):
        result = processor.process([msg(dev, b"%05d" % i + b"z" * 4091) for i in range(start, start + 500)])
        stored += result.quarantined_total
        dropped += sum(result.dropped.values())
    assert (stored, dropped) == (1000, 4000)
    assert len(quarantine_rows(engine)) == 1000
    processor.close()


def test_budget_settings_match_the_gateway_defaults() -> None:
    from config.settings import Settings

    settings = Settings()
    assert QuarantineBudget() == QuarantineBudget(
        messages=settings.quarantine_budget_messages,
        bytes=settings.quarantine_budget_bytes,
        window_s=settings.quarantine_budget_window_s,
    )


def test_two_workers_interleaved_with_chained_rejections(db_url: str, engine: Engine, clock: Clock) -> None:
    """A shared subscription deals consecutive messages of a device to different workers: a
    chained rejection on one worker still unblocks the readings the other one holds."""
    devices = register(engine, 4)
    readers = [make_engine(db_url, writer=False) for _ in range(2)]
    engines = [make_engine(db_url) for _ in range(2)]
    workers = [make_processor(e, r, clock) for e, r in zip(engines, readers, strict=True)]
    messages = [(d, d.next(energy_wh=10_000 if n % 7 == 3 else 80)) for n in range(40) for d in devices]
    shards: list[list[Incoming]] = [[], []]
    for i, (d, m) in enumerate(messages):
        shards[(i // 3) % 2].append(msg(d, m.raw))
    errors: list[BaseException] = []

    def run(worker: BatchProcessor, shard: list[Incoming]) -> None:
        try:
            for start in range(0, len(shard), 5):
                worker.process(shard[start : start + 5])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w, s)) for w, s in zip(workers, shards, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    workers[0].sweep()
    rejected = sum(1 for n in range(40) if n % 7 == 3) * len(devices)
    rows = quarantine_rows(engine)
    assert len(rows) == rejected
    assert all(r.chained and r.reason == "implausible" for r in rows)
    with engine.connect() as conn:
        assert conn.execute(select(HeldReading)).all() == []
        readings = conn.execute(select(Reading.id)).all()
    assert len(readings) == len(messages) - rejected
    assert all(state(engine, d.id).last_seq == 40 for d in devices)
    for w in workers:
        w.close()
    for e in engines + readers:
        e.dispose()
