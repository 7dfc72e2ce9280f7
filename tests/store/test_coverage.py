"""One coverage definition: readings / expected on the hourly grid, silent hours included."""

from __future__ import annotations

import pytest

from gateway.batch import BatchProcessor, Incoming
from store.cashflow import cashflow
from store.coverage import coverage_by_asset, ratio, selection_coverage
from store.db import make_engine
from tests.support.devices import NOW_MS, TARIFF, register

HOUR = 3_600_000


def test_ratio() -> None:
    assert ratio(30, 60) == 0.5
    assert ratio(70, 60) == 1.0  # a device reporting faster than its window is not over 100 %
    assert ratio(0, 0) == 0.0


def test_a_silent_hour_counts_as_expected(db_url: str) -> None:
    engine = make_engine(db_url)
    reader = make_engine(db_url, writer=False)
    (a,) = register(engine, 1)
    base = NOW_MS - NOW_MS % HOUR - 4 * HOUR
    # Every minute in hours 0 and 2; nothing in hour 1.
    messages = [a.next(ts_ms=base + h * HOUR + k * 60_000) for h in (0, 2) for k in range(60)]
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: NOW_MS)
    assert processor.process([Incoming(a.topic, m.raw, NOW_MS) for m in messages]).accepted == 120

    hours = cashflow(engine, asset="rooftop", granularity="hour")
    assert [h.coverage for h in hours] == [1.0, 1.0]  # only buckets holding readings
    whole = selection_coverage(engine, asset="rooftop")
    assert (whole.readings, whole.expected_readings) == (120, 180)
    assert whole.value == pytest.approx(2 / 3)
    assert coverage_by_asset(engine)["rooftop"] == whole
    # A range starting at the silent hour: hours 1 and 2 expected.
    assert selection_coverage(engine, asset="rooftop", start_ms=base + HOUR + 5).expected_readings == 120
    assert selection_coverage(engine, device=a.id, end_ms=base + HOUR).value == 1.0
