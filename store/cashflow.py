"""Cash-flow figures per asset or device, per hour or day, from the hourly sums the gateway
keeps (``cashflow_hourly``). Formulas: ``docs/cashflow.md``.

- revenue, cost, net (= revenue - cost), energy: sums of the readings' figures;
- coverage: readings received / readings expected, where a device is expected to report once per
  its ``window_s`` in every whole hour from the hour of its first reading through the hour of the
  newest reading of the selection (device time, like the readings);
- uptime: seconds the devices were generating, charging or hashing / seconds they were expected
  to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, func, select

from store.tables import CashflowHourly, Device

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
Granularity = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class CashflowBucket:
    start_ms: int
    readings: int
    energy_wh: int
    revenue: int
    cost: int
    active_s: int
    expected_readings: float
    expected_s: float

    @property
    def net(self) -> int:
        return self.revenue - self.cost

    @property
    def coverage(self) -> float:
        return min(1.0, self.readings / self.expected_readings) if self.expected_readings else 0.0

    @property
    def uptime(self) -> float:
        return min(1.0, self.active_s / self.expected_s) if self.expected_s else 0.0


def cashflow(
    engine: Engine,
    *,
    asset: str | None = None,
    device: str | None = None,
    granularity: Granularity = "hour",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[CashflowBucket]:
    """Buckets of ``granularity`` for one asset, one device, or everything, oldest first."""
    bucket_ms = HOUR_MS if granularity == "hour" else DAY_MS
    h = CashflowHourly.__table__.c  # type: ignore[attr-defined]
    d = Device.__table__.c  # type: ignore[attr-defined]
    query = select(
        h.device_id,
        h.hour_ms,
        func.sum(h.readings),
        func.sum(h.energy_wh),
        func.sum(h.revenue),
        func.sum(h.cost),
        func.sum(h.active_s),
    ).group_by(h.device_id, h.hour_ms)
    if asset is not None:
        query = query.where(h.asset == asset)
    if device is not None:
        query = query.where(h.device_id == device)
    if start_ms is not None:
        query = query.where(h.hour_ms >= start_ms - start_ms % bucket_ms)
    if end_ms is not None:
        query = query.where(h.hour_ms < end_ms)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        windows: dict[str, int] = dict(conn.execute(select(d.id, d.window_s)).all())
        first_hours: dict[str, int] = dict(
            conn.execute(select(h.device_id, func.min(h.hour_ms)).group_by(h.device_id)).all()
        )
    if not rows:
        return []
    newest_hour = max(r[1] for r in rows)
    sums: dict[int, list[int]] = {}
    for _device, hour_ms, readings, energy, revenue, cost, active in rows:
        bucket = sums.setdefault(hour_ms - hour_ms % bucket_ms, [0, 0, 0, 0, 0])
        for i, value in enumerate((readings, energy, revenue, cost, active)):
            bucket[i] += int(value)
    devices = {r[0] for r in rows}
    result = []
    for start in sorted(sums):
        expected_readings = expected_s = 0.0
        for device_id in devices:
            first = first_hours[device_id]
            hours = len(range(max(start, first), min(start + bucket_ms, newest_hour + HOUR_MS), HOUR_MS))
            expected_s += hours * 3600
            expected_readings += hours * 3600 / windows.get(device_id, 60)
        readings, energy, revenue, cost, active = sums[start]
        result.append(CashflowBucket(start, readings, energy, revenue, cost, active, expected_readings, expected_s))
    return result
