"""Cash-flow buckets per asset and device, per hour and day, with coverage and uptime."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.batch import BatchProcessor
from gateway.records import Incoming
from store.cashflow import cashflow
from store.db import make_engine
from store.tables import Reading
from tests.support.devices import NOW_MS, TARIFF, register

HOUR = 3_600_000


def test_hour_and_day_buckets(db_url: str) -> None:
    engine = make_engine(db_url)
    reader = make_engine(db_url, writer=False)
    a, b = register(engine, 2)
    base = NOW_MS - NOW_MS % HOUR - 3 * HOUR
    messages = [a.next(ts_ms=base + k * 60_000) for k in range(120)]  # two full hours
    messages += [b.next(ts_ms=base + k * 60_000) for k in range(60) if k % 10]  # misses 6, then silent
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: NOW_MS)
    topics = {a.id: a.topic, b.id: b.topic}
    result = processor.process([Incoming(topics[m.body.device], m.raw, NOW_MS) for m in messages])
    assert result.accepted == 174

    hours = cashflow(engine, asset="rooftop", granularity="hour")
    assert [h.start_ms for h in hours] == [base, base + HOUR]
    assert [h.readings for h in hours] == [114, 60]
    assert [h.expected_readings for h in hours] == [120, 120]
    assert hours[0].coverage == pytest.approx(0.95)
    assert hours[1].coverage == pytest.approx(0.5)  # b went silent: it shows
    with engine.connect() as conn:
        revenue = conn.execute(select(func.sum(Reading.revenue))).scalar_one()
    assert sum(h.revenue for h in hours) == revenue
    assert all(h.net == h.revenue - h.cost for h in hours)
    assert hours[0].uptime == pytest.approx(114 * 60 / (2 * 3600))  # solar: seconds with output

    (day,) = cashflow(engine, asset="rooftop", granularity="day")
    assert (day.readings, day.revenue, day.expected_readings) == (174, revenue, 240)
    only_b = cashflow(engine, device=b.id, granularity="hour")
    assert [h.readings for h in only_b] == [54]
    assert cashflow(engine, asset="nothing-here") == []
    assert [h.readings for h in cashflow(engine, asset="rooftop", start_ms=base + HOUR)] == [60]
    engine.dispose()
    reader.dispose()
