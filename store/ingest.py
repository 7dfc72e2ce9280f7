"""The gateway's reads and writes, batched: one transaction per batch of messages.

Everything here runs inside a transaction the caller opened (``engine.begin()``). On PostgreSQL
the device-state rows of a batch are locked ``FOR UPDATE`` in device-id order, so gateway workers
sharing one subscription serialise per device without deadlocking; on SQLite the whole write
transaction is serialised by ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from store.tables import (
    DEVICE,
    DEVICE_STATE,
    HELD_READING,
    QUARANTINE,
    QUARANTINE_DROPPED,
    QUARANTINE_WINDOW,
    READING,
)
from store.writes import BatchWrites


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: str
    asset: str
    alg: str
    public_key: bytes
    status: str
    rating: dict[str, Any]
    window_s: int


@dataclass(slots=True)
class ChainHead:
    """A device's chain head (its last accepted or chained-rejected message), updated in memory
    while a batch is classified, with the device's status and key as they are in this
    transaction."""

    device_id: str
    status: str
    alg: str
    public_key: bytes
    last_seq: int
    last_hash: bytes
    last_ts_ms: int
    last_seen_ms: int | None = None
    readings: int = 0
    quarantined: int = 0
    duplicates: int = 0
    rejected: int = 0
    resync_pending: bool = False
    dirty: bool = False


def load_devices(conn: Connection, ids: Iterable[str]) -> dict[str, DeviceInfo]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(
            DEVICE.c.id,
            DEVICE.c.kind,
            DEVICE.c.asset,
            DEVICE.c.alg,
            DEVICE.c.public_key,
            DEVICE.c.status,
            DEVICE.c.rating,
            DEVICE.c.window_s,
        ).where(DEVICE.c.id.in_(wanted))
    )
    return {
        r.id: DeviceInfo(r.id, r.kind, r.asset, r.alg, bytes(r.public_key), r.status, dict(r.rating), r.window_s)
        for r in rows
    }


def lock_heads(conn: Connection, ids: Iterable[str]) -> dict[str, ChainHead]:
    """The chain heads of ``ids``, locked for this transaction on PostgreSQL."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = (
        select(DEVICE_STATE, DEVICE.c.status, DEVICE.c.alg, DEVICE.c.public_key)
        .join(DEVICE, DEVICE.c.id == DEVICE_STATE.c.device_id)
        .where(DEVICE_STATE.c.device_id.in_(wanted))
        .order_by(DEVICE_STATE.c.device_id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=DEVICE_STATE)
    return {
        r.device_id: ChainHead(
            r.device_id,
            r.status,
            r.alg,
            bytes(r.public_key),
            r.last_seq,
            bytes(r.last_hash),
            r.last_ts_ms,
            r.last_seen_ms,
            r.readings,
            r.quarantined,
            r.duplicates,
            r.rejected,
            bool(r.resync_pending),
        )
        for r in conn.execute(query)
    }


def stored_raw(conn: Connection, *, device_id: str, seq: int) -> bytes | None:
    """The raw bytes of the stored reading ``(device_id, seq)``, of the held one, or of the
    chained rejection that took that link."""
    for table in (READING, HELD_READING):
        raw = conn.execute(select(table.c.raw).where(and_(table.c.device_id == device_id, table.c.seq == seq))).scalar()
        if raw is not None:
            return bytes(raw)
    raw = conn.execute(
        select(QUARANTINE.c.raw).where(
            QUARANTINE.c.device_id == device_id, QUARANTINE.c.seq == seq, QUARANTINE.c.chained
        )
    ).scalar()
    return None if raw is None else bytes(raw)


def lock_quarantine_usage(conn: Connection, publishers: Iterable[str], *, window_ms: int) -> dict[str, tuple[int, int]]:
    """Per publisher (``''`` for a topic naming no device): (messages, bytes) quarantined in the
    budget window starting at ``window_ms``. On PostgreSQL the rows are created if missing and
    locked in publisher order (after the chain heads, which every worker locks first), so
    workers sharing a publisher decide its budget one after the other."""
    wanted = sorted(set(publishers))
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        _insert_ignoring_conflicts(
            conn,
            QUARANTINE_WINDOW,
            [{"device_id": p, "window_ms": window_ms, "messages": 0, "bytes": 0} for p in wanted],
        )
    query = (
        select(QUARANTINE_WINDOW.c.device_id, QUARANTINE_WINDOW.c.messages, QUARANTINE_WINDOW.c.bytes)
        .where(QUARANTINE_WINDOW.c.window_ms == window_ms, QUARANTINE_WINDOW.c.device_id.in_(wanted))
        .order_by(QUARANTINE_WINDOW.c.device_id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {r.device_id: (r.messages, r.bytes) for r in conn.execute(query)}


def prune_quarantine_windows(conn: Connection, *, before_ms: int) -> None:
    """Forget every publisher's quarantine budget windows that started before ``before_ms``."""
    conn.execute(delete(QUARANTINE_WINDOW).where(QUARANTINE_WINDOW.c.window_ms < before_ms))


def quarantine_dropped(conn: Connection, *, device_id: str | None = None) -> list[Any]:
    """What the quarantine budget counted but did not store: (device_id, reason, messages, bytes,
    last_ms) rows, per publishing device and reason."""
    query = select(QUARANTINE_DROPPED).order_by(QUARANTINE_DROPPED.c.device_id, QUARANTINE_DROPPED.c.reason)
    if device_id is not None:
        query = query.where(QUARANTINE_DROPPED.c.device_id == device_id)
    return list(conn.execute(query))


def held_successors(conn: Connection, heads: Sequence[ChainHead]) -> list[Any]:
    """Held readings that directly follow one of ``heads``."""
    if not heads:
        return []
    keys = [(h.device_id, h.last_seq + 1) for h in heads]
    return list(
        conn.execute(select(HELD_READING).where(tuple_(HELD_READING.c.device_id, HELD_READING.c.seq).in_(keys)))
    )


def expired_held(conn: Connection, *, before_ms: int, limit: int = 1000) -> list[Any]:
    return list(
        conn.execute(
            select(HELD_READING)
            .where(HELD_READING.c.received_ms < before_ms)
            .order_by(HELD_READING.c.device_id, HELD_READING.c.seq)
            .limit(limit)
        )
    )


def devices_with_held(conn: Connection, *, limit: int = 1000) -> list[str]:
    return [r[0] for r in conn.execute(select(HELD_READING.c.device_id).distinct().limit(limit))]


def _insert_ignoring_conflicts(conn: Connection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


_ROW_COLUMNS = (  # from each reading's row; stored_ms is the batch's commit time
    "device_id",
    "seq",
    "ts_ms",
    "window_s",
    "metrics",
    "raw",
    "leaf_hash",
    "revenue",
    "cost",
    "tariff_id",
    "received_ms",
)
_READING_COLUMNS = (*_ROW_COLUMNS, "stored_ms")
_STATE_COLUMNS = (
    "last_seq",
    "last_hash",
    "last_ts_ms",
    "last_seen_ms",
    "readings",
    "quarantined",
    "duplicates",
    "rejected",
    "resync_pending",
)
_SUMMED = ("readings", "energy_wh", "revenue", "cost", "online_s", "active_s")
_HOURLY_COLUMNS = ("device_id", "hour_ms", "tariff_id", "asset", *_SUMMED)


def _statements(dialect: str) -> tuple[str, str, str]:
    """The three hot statements as plain SQL: SQLAlchemy's per-row parameter processing cost
    more than the database work for them. Only constant column names go into the text."""
    mark = "%s" if dialect == "postgresql" else "?"
    json_mark = "CAST(%s AS JSON)" if dialect == "postgresql" else "?"
    reading_marks = ", ".join(json_mark if c == "metrics" else mark for c in _READING_COLUMNS)
    reading = f"INSERT INTO reading ({', '.join(_READING_COLUMNS)}) VALUES ({reading_marks})"  # noqa: S608
    assignments = ", ".join(f"{c} = {mark}" for c in _STATE_COLUMNS)
    state = f"UPDATE device_state SET {assignments} WHERE device_id = {mark}"  # noqa: S608
    sums = ", ".join(f"{c} = cashflow_hourly.{c} + excluded.{c}" for c in _SUMMED)
    hourly_marks = ", ".join(mark for _ in _HOURLY_COLUMNS)
    hourly = (
        f"INSERT INTO cashflow_hourly ({', '.join(_HOURLY_COLUMNS)}) VALUES ({hourly_marks})"  # noqa: S608
        f" ON CONFLICT (device_id, hour_ms, tariff_id) DO UPDATE SET {sums}"
    )
    return reading, state, hourly


_SQL = {name: _statements(name) for name in ("sqlite", "postgresql")}


def _values(row: Mapping[str, object], columns: Sequence[str]) -> tuple[object, ...]:
    return tuple(row[c] for c in columns)


def _reading_values(row: Mapping[str, object]) -> tuple[object, ...]:
    return tuple(json.dumps(row[c], separators=(",", ":")) if c == "metrics" else row[c] for c in _ROW_COLUMNS)


def write_batch(conn: Connection, writes: BatchWrites, heads: Iterable[ChainHead], *, stored_ms: int) -> None:
    """Apply a classified batch: readings (stamped ``stored_ms``, the commit time), quarantine
    and its budget's tallies, held changes, chain heads, hourly sums."""
    reading_sql, state_sql, hourly_sql = _SQL[conn.dialect.name]
    if writes.readings:
        conn.exec_driver_sql(
            reading_sql,
            [(*_reading_values(row), stored_ms) for row in writes.readings],
        )
    if writes.quarantine:
        conn.execute(insert(QUARANTINE), writes.quarantine)
    if writes.usage:
        _write_usage(conn, writes)
    if writes.dropped:
        _write_dropped(conn, writes)
    if writes.released:
        conn.execute(
            delete(HELD_READING).where(tuple_(HELD_READING.c.device_id, HELD_READING.c.seq).in_(writes.released))
        )
    if writes.held:
        _insert_ignoring_conflicts(conn, HELD_READING, writes.held)
    changed = [
        (
            h.last_seq,
            h.last_hash,
            h.last_ts_ms,
            h.last_seen_ms,
            h.readings,
            h.quarantined,
            h.duplicates,
            h.rejected,
            h.resync_pending,
            h.device_id,
        )
        for h in heads
        if h.dirty
    ]
    if changed:
        conn.exec_driver_sql(state_sql, changed)
    if writes.hourly:
        conn.exec_driver_sql(hourly_sql, [_values(row, _HOURLY_COLUMNS) for row in writes.hourly.values()])


def _upsert(
    conn: Connection,
    table: Any,
    rows: list[dict[str, Any]],
    *,
    keys: tuple[str, ...],
    set_: Callable[[Any], dict[str, Any]],
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=set_(stmt.excluded)), rows)


def _write_usage(conn: Connection, writes: BatchWrites) -> None:
    """The window's new totals (absolute: the rows were locked, or the transaction is SQLite's
    only writer), and the publishers' older windows removed: one live row per publisher."""
    rows = [
        {"device_id": p, "window_ms": writes.window_ms, "messages": n, "bytes": size}
        for p, (n, size) in sorted(writes.usage.items())
    ]
    _upsert(
        conn,
        QUARANTINE_WINDOW,
        rows,
        keys=("device_id", "window_ms"),
        set_=lambda new: {"messages": new.messages, "bytes": new.bytes},
    )
    conn.execute(
        delete(QUARANTINE_WINDOW).where(
            QUARANTINE_WINDOW.c.device_id.in_(sorted(writes.usage)), QUARANTINE_WINDOW.c.window_ms < writes.window_ms
        )
    )


def _write_dropped(conn: Connection, writes: BatchWrites) -> None:
    rows = [
        {"device_id": p, "reason": reason, "messages": t.messages, "bytes": t.bytes, "last_ms": t.last_ms}
        for (p, reason), t in sorted(writes.dropped.items(), key=lambda item: item[0])
    ]
    _upsert(
        conn,
        QUARANTINE_DROPPED,
        rows,
        keys=("device_id", "reason"),
        set_=lambda new: {
            "messages": QUARANTINE_DROPPED.c.messages + new.messages,
            "bytes": QUARANTINE_DROPPED.c.bytes + new.bytes,
            "last_ms": func.max(QUARANTINE_DROPPED.c.last_ms, new.last_ms)
            if conn.dialect.name == "sqlite"
            else func.greatest(QUARANTINE_DROPPED.c.last_ms, new.last_ms),
        },
    )
