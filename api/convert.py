"""Database rows to response models: bytes become hex here and nowhere else."""

from __future__ import annotations

import json
from typing import Any

from api.models import (
    AnchorOut,
    CheckpointOut,
    DeviceOut,
    EpochOut,
    QuarantineOut,
    ReadingOut,
)
from attestor.bundles import ChainContext, anchor_of
from store.cashflow import CashflowBucket
from store.coverage import Coverage


def device_out(row: Any) -> DeviceOut:
    return DeviceOut(
        id=row.id,
        kind=row.kind,
        asset=row.asset,
        alg=row.alg,
        public_key=bytes(row.public_key).hex(),
        status=row.status,
        window_s=row.window_s,
        registered_ms=row.registered_ms,
        revoked_ms=row.revoked_ms,
        last_seq=row.last_seq,
        last_seen_ms=row.last_seen_ms,
        readings=row.readings,
        quarantined=row.quarantined,
        duplicates=row.duplicates,
        online=bool(row.online),
    )


def reading_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_id": row.device_id,
        "asset": row.asset,
        "kind": row.kind,
        "seq": row.seq,
        "ts_ms": row.ts_ms,
        "window_s": row.window_s,
        "metrics": dict(row.metrics),
        "revenue": row.revenue,
        "cost": row.cost,
        "net": row.revenue - row.cost,
        "tariff_id": row.tariff_id,
        "received_ms": row.received_ms,
        "stored_ms": row.stored_ms,
        "leaf_hash": bytes(row.leaf_hash).hex(),
        "log_index": row.log_index,
        "epoch": row.epoch,
        "epoch_status": row.epoch_status,
    }


def reading_out(row: Any) -> ReadingOut:
    return ReadingOut(**reading_fields(row))


def anchor_out(row: Any, chain: ChainContext | None) -> AnchorOut | None:
    anchor = anchor_of(row, chain)
    return None if anchor is None else AnchorOut(**anchor.to_json())


def epoch_out(row: Any, chain: ChainContext | None) -> EpochOut:
    return EpochOut(
        number=row.number,
        status=row.status,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        leaves_from=row.leaves_from,
        leaves_to=row.leaves_to,
        readings=row.leaves_to - row.leaves_from,
        root=bytes(row.root).hex(),
        meta_hash=bytes(row.meta_hash).hex(),
        tx_hash=None if row.tx_hash is None else "0x" + bytes(row.tx_hash).hex(),
        block_number=row.block_number,
        block_timestamp=row.block_timestamp,
        gas_used=row.gas_used,
        closed_ms=row.closed_ms,
        anchored_ms=row.anchored_ms,
        anchor=anchor_out(row, chain),
        metadata=json.loads(bytes(row.metadata_json)),
    )


def checkpoint_out(row: Any, chain: ChainContext | None) -> CheckpointOut:
    return CheckpointOut(
        epoch=row.number,
        tree_size=row.leaves_to,
        root=bytes(row.root).hex(),
        meta_hash=bytes(row.meta_hash).hex(),
        anchor=anchor_out(row, chain),
    )


def quarantine_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_ms": row.received_ms,
        "reason": row.reason,
        "detail": row.detail,
        "topic": row.topic,
        "device_id": row.device_id,
        "seq": row.seq,
        "raw_size": row.raw_size,
        "raw_sha256": bytes(row.raw_sha256).hex(),
        "epoch": row.epoch,
    }


def quarantine_out(row: Any) -> QuarantineOut:
    return QuarantineOut(**quarantine_fields(row))


def _figures(readings: int, energy_wh: int, revenue: int, cost: int) -> dict[str, int]:
    return {"readings": readings, "energy_wh": energy_wh, "revenue": revenue, "cost": cost, "net": revenue - cost}


# Cash flow answers are built as plain dicts (shaped as api.models.CashflowOut, which documents
# them): a month of hours is 720 buckets, and validating 2,000 nested models per request would
# cost more than the database does.


def bucket_dict(b: CashflowBucket) -> dict[str, Any]:
    return {
        "start_ms": b.start_ms,
        "readings": b.readings,
        "energy_wh": b.energy_wh,
        "revenue": b.revenue,
        "cost": b.cost,
        "net": b.net,
        "expected_readings": round(b.expected_readings, 3),
        "coverage": round(b.coverage, 4),
        "uptime": round(b.uptime, 4),
        "attested": _figures(b.attested_readings, b.attested_energy_wh, b.attested_revenue, b.attested_cost),
        "pending": _figures(b.pending_readings, b.pending_energy_wh, b.pending_revenue, b.pending_cost),
    }


def totals_dict(buckets: list[CashflowBucket], *, coverage: Coverage) -> dict[str, Any]:
    """Sums of ``buckets``; coverage is the selection's as a whole (``store.coverage``), which
    also counts the empty hours the buckets leave out."""

    def total(name: str) -> int:
        return sum(getattr(b, name) for b in buckets)

    active, expected_s = total("active_s"), sum(b.expected_s for b in buckets)
    return {
        **_figures(total("readings"), total("energy_wh"), total("revenue"), total("cost")),
        "expected_readings": round(coverage.expected_readings, 3),
        "coverage": round(coverage.value, 4),
        "uptime": round(min(1.0, active / expected_s), 4) if expected_s else 0.0,
        "attested": _figures(
            total("attested_readings"), total("attested_energy_wh"), total("attested_revenue"), total("attested_cost")
        ),
        "pending": _figures(
            total("pending_readings"), total("pending_energy_wh"), total("pending_revenue"), total("pending_cost")
        ),
    }
