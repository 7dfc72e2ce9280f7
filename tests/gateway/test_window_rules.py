"""The reporting-window rules (protocol.timing) at the gateway, on the batch classifier against
real SQLite and PostgreSQL: a wrong ``window_s`` and a reading less than a window after the
previous accepted one are quarantined chained, and the device goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from gateway.batch import BatchProcessor
from gateway.records import Incoming
from protocol.envelope import Body, sign_body
from store.db import make_engine
from store.tables import DeviceState, Quarantine, Reading
from tests.support.devices import NOW_MS, TARIFF, Clock, SimDevice, register


@pytest.fixture
def processor(engine: Engine, db_url: str) -> Iterator[BatchProcessor]:
    reader = make_engine(db_url, writer=False)
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=Clock(), hold_ms=5_000)
    yield processor
    processor.close()
    reader.dispose()


def msg(device: SimDevice, raw: bytes) -> Incoming:
    return Incoming(device.topic, raw, NOW_MS)


def signed(dev: SimDevice, *, ts_ms: int, window_s: int = 60) -> bytes:
    """The device's next link with the given time and window (advances its chain, not its time)."""
    body = Body(
        device=dev.id,
        seq=dev.seq + 1,
        ts_ms=ts_ms,
        kind=dev.body().kind,
        window_s=window_s,
        metrics=dev.body().metrics,
        prev=dev.prev,
    )
    message = sign_body(body, dev.key)
    dev.seq, dev.prev = body.seq, message.chain_hash
    return message.raw


def rows(engine: Engine) -> list[tuple[int, str, bool]]:
    with engine.connect() as conn:
        return [
            (r.seq, r.reason, r.chained)
            for r in conn.execute(select(Quarantine.seq, Quarantine.reason, Quarantine.chained).order_by(Quarantine.id))
        ]


def accepted(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(Reading.seq, Reading.ts_ms).order_by(Reading.seq))]  # type: ignore[misc]


def test_window_and_spacing_are_enforced_and_the_chain_goes_on(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)  # registered with a 60 s window
    first = dev.next()  # seq 1
    t = first.body.ts_ms
    batch = [
        msg(dev, first.raw),
        msg(dev, signed(dev, ts_ms=t + 86_400_000, window_s=86_400)),  # 2: a day's window, signed by the device
        msg(dev, signed(dev, ts_ms=t + 30_000)),  # 3: half a window after seq 1
        msg(dev, signed(dev, ts_ms=t)),  # 4: the same time again
        msg(dev, signed(dev, ts_ms=t + 59_999)),  # 5: one millisecond short
        msg(dev, signed(dev, ts_ms=t - 1)),  # 6: back in time
        msg(dev, signed(dev, ts_ms=t + 60_000)),  # 7: exactly a window later: accepted
        msg(dev, signed(dev, ts_ms=t + 120_000, window_s=30)),  # 8: a shorter window than registered
        msg(dev, signed(dev, ts_ms=t + 120_000)),  # 9: back-to-back with seq 7
    ]
    result = processor.process(batch)
    assert result.accepted == 3
    assert result.chained == 6
    assert result.quarantined == {"wrong_window": 2, "too_soon": 3, "clock_skew": 1}
    assert rows(engine) == [
        (2, "wrong_window", True),
        (3, "too_soon", True),
        (4, "too_soon", True),
        (5, "too_soon", True),
        (6, "clock_skew", True),
        (8, "wrong_window", True),
    ]
    assert accepted(engine) == [(1, t), (7, t + 60_000), (9, t + 120_000)]
    with engine.connect() as conn:
        head = conn.execute(select(DeviceState).where(DeviceState.device_id == dev.id)).one()
    assert head.last_seq == 9
    assert head.last_ts_ms == t + 120_000


def test_spacing_is_judged_against_the_stored_head_across_batches(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    first = dev.next()
    assert processor.process([msg(dev, first.raw)]).accepted == 1
    early = processor.process([msg(dev, signed(dev, ts_ms=first.body.ts_ms + 1_000))])
    assert early.quarantined == {"too_soon": 1}
    on_time = processor.process([msg(dev, signed(dev, ts_ms=first.body.ts_ms + 60_000))])
    assert on_time.accepted == 1


def test_the_reason_names_the_rule(engine: Engine, processor: BatchProcessor) -> None:
    (dev,) = register(engine)
    first = dev.next()
    processor.process([msg(dev, first.raw), msg(dev, signed(dev, ts_ms=first.body.ts_ms + 10_000, window_s=10))])
    with engine.connect() as conn:
        detail = conn.execute(select(Quarantine.detail)).scalar_one()
    assert "window_s = 10" in detail
    assert "registered with a 60 s reporting window" in detail
