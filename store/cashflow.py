"""Cash-flow figures per asset or device, per hour or day, from the hourly sums the gateway
keeps (``cashflow_hourly``) and the attestor keeps for anchored epochs
(``cashflow_attested_hourly``). Formulas: ``docs/cashflow.md``.

- revenue, cost, net (= revenue - cost), energy: sums of the readings' figures;
- attested: the part of those sums whose readings are in epochs anchored on chain; pending is
  the rest (not yet in the log, or in an epoch not anchored yet);
- coverage: readings received / readings expected, defined once in :mod:`store.coverage`;
- uptime: seconds the devices were generating, charging or hashing / seconds they were expected
  to report.

Every figure is an aggregate over hourly rows, computed by the database, so a month of an asset
costs a few index range scans whatever the number of readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from protocol.cashflow import HOUR_MS
from store.coverage import Expected, device_spans, ratio, scoped
from store.tables import (
    CASHFLOW_ATTESTED_ASSET_HOURLY,
    CASHFLOW_ATTESTED_HOURLY,
    CASHFLOW_HOURLY,
    DEVICE,
    READING,
)

DAY_MS = 24 * HOUR_MS
Granularity = Literal["hour", "day"]

_ATTESTED_SUMS = ("readings", "energy_wh", "revenue", "cost")


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
    attested_readings: int = 0
    attested_energy_wh: int = 0
    attested_revenue: int = 0
    attested_cost: int = 0

    @property
    def net(self) -> int:
        return self.revenue - self.cost

    @property
    def coverage(self) -> float:
        return ratio(self.readings, self.expected_readings)

    @property
    def uptime(self) -> float:
        return min(1.0, self.active_s / self.expected_s) if self.expected_s else 0.0

    @property
    def attested_net(self) -> int:
        return self.attested_revenue - self.attested_cost

    @property
    def pending_readings(self) -> int:
        return self.readings - self.attested_readings

    @property
    def pending_energy_wh(self) -> int:
        return self.energy_wh - self.attested_energy_wh

    @property
    def pending_revenue(self) -> int:
        return self.revenue - self.attested_revenue

    @property
    def pending_cost(self) -> int:
        return self.cost - self.attested_cost

    @property
    def pending_net(self) -> int:
        return self.pending_revenue - self.pending_cost


def cashflow(
    engine: Engine,
    *,
    asset: str | None = None,
    device: str | None = None,
    granularity: Granularity = "hour",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[CashflowBucket]:
    """Buckets of ``granularity`` for one asset, one device, or everything, oldest first. Only
    buckets holding readings are returned. ``start_ms`` is rounded down to its bucket;
    ``end_ms`` is exclusive."""
    bucket_ms = HOUR_MS if granularity == "hour" else DAY_MS
    low = None if start_ms is None else start_ms - start_ms % bucket_ms
    with engine.connect() as conn:
        spans = device_spans(conn, asset=asset, device=device, low=low, high=end_ms)
        if not spans:
            return []
        sums = _bucket_sums(
            conn, CASHFLOW_HOURLY, asset=asset, device=device, low=low, high=end_ms, bucket_ms=bucket_ms
        )
        # Without a device, the per-asset sums answer: one row an hour instead of one a device.
        attested_table = CASHFLOW_ATTESTED_HOURLY if device is not None else CASHFLOW_ATTESTED_ASSET_HOURLY
        attested = _bucket_sums(
            conn, attested_table, asset=asset, device=device, low=low, high=end_ms, bucket_ms=bucket_ms
        )
    expected = Expected(spans)
    result = []
    for start, (readings, energy, revenue, cost, active) in sums.items():
        expected_readings, expected_s = expected.within(start, start + bucket_ms)
        a = attested.get(start, (0, 0, 0, 0))
        result.append(
            CashflowBucket(
                start, readings, energy, revenue, cost, active, expected_readings, expected_s, a[0], a[1], a[2], a[3]
            )
        )
    return result


def _bucket_sums(
    conn: Connection,
    table: Any,
    *,
    asset: str | None,
    device: str | None,
    low: int | None,
    high: int | None,
    bucket_ms: int,
) -> dict[int, list[int]]:
    """Sums per bucket, oldest first. The database groups by hour, which both engines do
    straight off the index order; hours fold into days here (at most 24 rows a bucket)."""
    c = table.c
    names = ["readings", "energy_wh", "revenue", "cost"] + (["active_s"] if table is CASHFLOW_HOURLY else [])
    query = scoped(
        select(c.hour_ms, *(func.sum(c[name]) for name in names)),
        table,
        asset=asset,
        device=device,
        low=low,
        high=high,
    )
    buckets: dict[int, list[int]] = {}
    for hour, *sums in conn.execute(query.group_by(c.hour_ms).order_by(c.hour_ms)):
        start = hour - hour % bucket_ms
        bucket = buckets.get(start)
        if bucket is None:
            buckets[start] = [int(v) for v in sums]
        else:
            for i, value in enumerate(sums):
                bucket[i] += int(value)
    return buckets


def record_attested(conn: Connection, *, epoch: int) -> int:
    """Add epoch ``epoch``'s readings to the attested sums (per device and per asset), in the
    caller's transaction: the one that marks the epoch anchored, so the sums and the status never
    disagree. Call it once per epoch. Returns the number of device-hours touched."""
    r = READING.c
    hour = (r.ts_ms - r.ts_ms % literal_column(str(HOUR_MS))).label("hour_ms")
    rows = conn.execute(
        select(
            r.device_id,
            hour,
            DEVICE.c.asset,
            func.count(),
            func.sum(r.metrics["energy_wh"].as_integer()),
            func.sum(r.revenue),
            func.sum(r.cost),
        )
        .join(DEVICE, DEVICE.c.id == r.device_id)
        .where(r.epoch == epoch)
        .group_by(r.device_id, hour, DEVICE.c.asset)
    ).all()
    if not rows:
        return 0
    per_device = [
        {
            "device_id": device_id,
            "hour_ms": int(hour_ms),
            "asset": asset,
            "readings": int(count),
            "energy_wh": int(energy or 0),
            "revenue": int(revenue),
            "cost": int(cost),
        }
        for device_id, hour_ms, asset, count, energy, revenue, cost in rows
    ]
    per_asset: dict[tuple[str, int], dict[str, Any]] = {}
    for row in per_device:
        key = (row["asset"], row["hour_ms"])
        total = per_asset.setdefault(key, {"asset": key[0], "hour_ms": key[1], **dict.fromkeys(_ATTESTED_SUMS, 0)})
        for name in _ATTESTED_SUMS:
            total[name] += row[name]
    _add(conn, CASHFLOW_ATTESTED_HOURLY, ["device_id", "hour_ms"], per_device)
    _add(conn, CASHFLOW_ATTESTED_ASSET_HOURLY, ["asset", "hour_ms"], list(per_asset.values()))
    return len(per_device)


def _add(conn: Connection, table: Any, key: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, adding their sums to rows already there."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    upsert = insert.on_conflict_do_update(
        index_elements=key, set_={name: table.c[name] + insert.excluded[name] for name in _ATTESTED_SUMS}
    )
    conn.execute(upsert, rows)
