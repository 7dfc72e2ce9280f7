"""Quarantine rows and the per-publisher quarantine budget: junk a device publishes is stored up
to its budget per window, then only counted per reason. Chained rejections are always stored
(they are links the auditor needs)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from gateway.records import BatchResult, Incoming
from store import ingest
from store.ingest import ChainHead
from store.tables import QUARANTINE_RAW_LIMIT
from store.writes import BatchWrites, QuarantineRow


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineBudget:
    """How much quarantine one publishing device may fill per window before its junk is only
    counted (``config.settings`` has the same defaults; a test keeps them equal). Bytes are the
    raw bytes stored (at most ``QUARANTINE_RAW_LIMIT`` a message)."""

    messages: int = 1_000
    bytes: int = 4 * 1024 * 1024
    window_s: int = 3_600

    def __post_init__(self) -> None:
        if self.messages < 0 or self.bytes < 0 or self.window_s < 1:
            raise ValueError(f"a quarantine budget needs messages, bytes >= 0 and window_s >= 1: {self}")


DEFAULT_BUDGET = QuarantineBudget()  # frozen: sharing it as a default is safe


def quarantine_row(
    incoming: Incoming,
    reason: str,
    detail: str,
    *,
    publisher: str | None,
    body_device: str | None = None,
    seq: int | None = None,
    chained: bool = False,
) -> QuarantineRow:
    """The row for a rejected message; :func:`settle_quarantine` applies the budget and counts it."""
    payload = incoming.payload
    return {
        "received_ms": incoming.received_ms,
        "reason": reason,
        "detail": detail[:500],
        "topic": incoming.topic[:200],
        "device_id": publisher,
        "body_device": body_device,
        "seq": seq,
        "chained": chained,
        "raw": payload[:QUARANTINE_RAW_LIMIT],
        "raw_size": len(payload),
        "raw_sha256": hashlib.sha256(payload).digest(),
    }


def settle_quarantine(
    conn: Connection,
    *,
    budget: QuarantineBudget,
    clock_ms: Callable[[], int],
    writes: BatchWrites,
    heads: dict[str, ChainHead],
    result: BatchResult,
) -> None:
    """Apply each publisher's quarantine budget to the batch's quarantine rows, in arrival
    order: within budget (or chained: links the auditor needs) a row is stored and counted
    under its publisher; past it, it is only tallied per publisher and reason."""
    if not writes.quarantine:
        return
    now = clock_ms()
    window_ms = budget.window_s * 1000
    writes.window_ms = now - now % window_ms
    usage = ingest.lock_quarantine_usage(
        conn, (row["device_id"] or "" for row in writes.quarantine), window_ms=writes.window_ms
    )
    kept: list[QuarantineRow] = []
    for row in writes.quarantine:
        publisher = row["device_id"] or ""
        count, size = usage.get(publisher, (0, 0))
        stored = len(row["raw"])
        over = count + 1 > budget.messages or size + stored > budget.bytes
        if over and not row["chained"]:
            writes.add_dropped(
                publisher=publisher, reason=row["reason"], size=row["raw_size"], received_ms=row["received_ms"]
            )
            result.dropped[row["reason"]] += 1
            continue
        usage[publisher] = (count + 1, size + stored)
        kept.append(row)
        result.quarantined[row["reason"]] += 1
        result.chained += row["chained"]
        head = heads.get(publisher)
        if head is not None:
            head.quarantined += 1
            head.dirty = True
    writes.quarantine = kept
    writes.usage = usage
