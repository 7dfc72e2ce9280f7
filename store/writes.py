"""The rows one gateway batch adds or changes, typed: what :func:`store.ingest.write_batch`
applies in the batch's transaction. Rows are ``TypedDict``s (plain dicts at run time: the hot
insert path pays nothing for the types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class ReadingRow(TypedDict):
    """An accepted reading; ``stored_ms`` is added at commit time."""

    device_id: str
    seq: int
    ts_ms: int
    window_s: int
    metrics: dict[str, int]
    raw: bytes
    leaf_hash: bytes
    revenue: int
    cost: int
    tariff_id: str
    received_ms: int


class QuarantineRow(TypedDict):
    received_ms: int
    reason: str
    detail: str
    topic: str
    device_id: str | None
    """The publisher (the device whose topic carried it)."""
    body_device: str | None
    seq: int | None
    chained: bool
    raw: bytes
    raw_size: int
    raw_sha256: bytes


class HeldRow(TypedDict):
    device_id: str
    seq: int
    raw: bytes
    topic: str
    received_ms: int


class HourlySums(TypedDict):
    readings: int
    energy_wh: int
    revenue: int
    cost: int
    online_s: int
    active_s: int


class HourlyRow(HourlySums):
    device_id: str
    asset: str
    hour_ms: int
    tariff_id: str


@dataclass(slots=True)
class DroppedTally:
    """Messages of one (publisher, reason) the quarantine budget counted but did not store."""

    messages: int
    bytes: int
    last_ms: int


@dataclass(slots=True)
class BatchWrites:
    """Rows one batch adds or changes."""

    readings: list[ReadingRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    held: list[HeldRow] = field(default_factory=list)
    released: list[tuple[str, int]] = field(default_factory=list)
    hourly: dict[tuple[str, int, str], HourlyRow] = field(default_factory=dict)
    window_ms: int = 0
    """The quarantine budget window ``usage`` belongs to."""
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per publisher: (messages, bytes) quarantined in the window, after this batch."""
    dropped: dict[tuple[str, str], DroppedTally] = field(default_factory=dict)
    """Per (publisher, reason): what the budget did not store."""

    def add_dropped(self, *, publisher: str, reason: str, size: int, received_ms: int) -> None:
        tally = self.dropped.setdefault((publisher, reason), DroppedTally(0, 0, received_ms))
        tally.messages += 1
        tally.bytes += size
        tally.last_ms = max(tally.last_ms, received_ms)

    def add_hourly(self, *, device_id: str, asset: str, hour_ms: int, tariff_id: str, sums: HourlySums) -> None:
        key = (device_id, hour_ms, tariff_id)
        row = self.hourly.get(key)
        if row is None:
            self.hourly[key] = {
                "device_id": device_id,
                "asset": asset,
                "hour_ms": hour_ms,
                "tariff_id": tariff_id,
                **sums,
            }
        else:
            row["readings"] += sums["readings"]
            row["energy_wh"] += sums["energy_wh"]
            row["revenue"] += sums["revenue"]
            row["cost"] += sums["cost"]
            row["online_s"] += sums["online_s"]
            row["active_s"] += sums["active_s"]
