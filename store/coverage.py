"""Coverage: the one definition every view uses (CLI ``cashflow``, the demo's live view and
summary, the API's buckets and totals, hence the dashboard). Formula: ``docs/cashflow.md``.

    coverage = min(1, readings received / readings expected)

where a device is expected to report ``3600 / window_s`` times in every whole hour from the hour
of its first reading (or the selection's start, if later) through the hour of the newest reading
of the selection (device time). A device that goes silent stays expected until the selection's
newest hour, so silence shows; a selection with nothing expected has coverage 0.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from protocol.cashflow import HOUR_MS
from store.tables import CASHFLOW_HOURLY, DEVICE

HOURLY = CASHFLOW_HOURLY


def ratio(readings: float, expected: float) -> float:
    """The formula: readings / expected, at most 1; 0 when nothing was expected."""
    return min(1.0, readings / expected) if expected else 0.0


@dataclass(frozen=True, slots=True)
class Coverage:
    readings: int
    expected_readings: float

    @property
    def value(self) -> float:
        return ratio(self.readings, self.expected_readings)


def scoped(query: Any, table: Any, *, asset: str | None, device: str | None, low: int | None, high: int | None) -> Any:
    """``query`` limited to an asset, a device and the hours ``[low, high)`` of ``table``."""
    if asset is not None:
        query = query.where(table.c.asset == asset)
    if device is not None:
        query = query.where(table.c.device_id == device)
    if low is not None:
        query = query.where(table.c.hour_ms >= low)
    if high is not None:
        query = query.where(table.c.hour_ms < high)
    return query


def device_spans(
    conn: Connection, *, asset: str | None, device: str | None, low: int | None, high: int | None
) -> list[tuple[int, int, int]]:
    """(first hour ever, newest hour in the range, window) of each device with readings in the
    range: two index lookups per device, however many hours it has."""
    h = HOURLY.c
    first = select(func.min(h.hour_ms)).where(h.device_id == DEVICE.c.id).scalar_subquery()
    newest = scoped(
        select(func.max(h.hour_ms)).where(h.device_id == DEVICE.c.id),
        HOURLY,
        asset=None,
        device=None,
        low=low,
        high=high,
    ).scalar_subquery()
    query = select(first, newest, DEVICE.c.window_s)
    if asset is not None:
        query = query.where(DEVICE.c.asset == asset)
    if device is not None:
        query = query.where(DEVICE.c.id == device)
    return [(int(f), int(n), int(w)) for f, n, w in conn.execute(query) if n is not None]


class Expected:
    """How many readings and seconds the selected devices were expected to report in a span.

    Device ``d`` is expected to report ``3600 / window_d`` times in each hour from its first
    hour through the newest hour of the selection. Sorted by first hour with prefix sums, any
    span costs two binary searches instead of a pass over the devices.
    """

    def __init__(self, spans: list[tuple[int, int, int]]) -> None:
        spans = sorted(spans)
        # Hours counted from the earliest first hour keep the float sums small and exact.
        self._origin = spans[0][0] // HOUR_MS
        self._firsts = [first // HOUR_MS - self._origin for first, _, _ in spans]
        self._end = max(newest for _, newest, _ in spans) // HOUR_MS - self._origin + 1
        rates = [3600 / window for _, _, window in spans]
        self._rate = [0.0, *accumulate(rates)]
        self._rate_first = [0.0, *accumulate(r * f for r, f in zip(rates, self._firsts, strict=True))]
        self._first = [0, *accumulate(self._firsts)]

    @property
    def origin_ms(self) -> int:
        """The earliest first hour: a span from here covers every device from its start."""
        return self._origin * HOUR_MS

    def within(self, start_ms: int, end_ms: int) -> tuple[float, float]:
        start = start_ms // HOUR_MS - self._origin
        end = min(end_ms // HOUR_MS - self._origin, self._end)
        if end <= start:
            return 0.0, 0.0
        # Devices that began by ``start`` report through the whole span; those that began
        # inside it, from their first hour on.
        full = bisect_right(self._firsts, start)
        began = bisect_left(self._firsts, end)
        readings = self._rate[full] * (end - start) + (
            end * (self._rate[began] - self._rate[full]) - (self._rate_first[began] - self._rate_first[full])
        )
        hours = full * (end - start) + end * (began - full) - (self._first[began] - self._first[full])
        return readings, float(hours * 3600)


def selection_coverage(
    engine: Engine,
    *,
    asset: str | None = None,
    device: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Coverage:
    """Coverage of one asset, one device or everything over ``[start_ms, end_ms)`` as a whole:
    empty hours inside the span count as expected (a sum over the non-empty buckets would skip
    them). ``start_ms`` is rounded down to its hour."""
    low = None if start_ms is None else start_ms - start_ms % HOUR_MS
    with engine.connect() as conn:
        return _coverage(conn, asset=asset, device=device, low=low, high=end_ms)


def coverage_by_asset(engine: Engine) -> dict[str, Coverage]:
    """Every asset's coverage over all its readings, by asset name (assets without readings: 0
    of 0)."""
    with engine.connect() as conn:
        assets = conn.execute(select(DEVICE.c.asset).distinct().order_by(DEVICE.c.asset)).scalars().all()
        return {a: _coverage(conn, asset=a, device=None, low=None, high=None) for a in assets}


def _coverage(
    conn: Connection, *, asset: str | None, device: str | None, low: int | None, high: int | None
) -> Coverage:
    spans = device_spans(conn, asset=asset, device=device, low=low, high=high)
    if not spans:
        return Coverage(0, 0.0)
    readings = conn.execute(
        scoped(select(func.sum(HOURLY.c.readings)), HOURLY, asset=asset, device=device, low=low, high=high)
    ).scalar_one()
    expected = Expected(spans)
    start = expected.origin_ms if low is None else low
    end = expected.origin_ms + 10**15 if high is None else high
    return Coverage(int(readings or 0), expected.within(start, end)[0])
