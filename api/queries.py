"""Every SQL query the API runs, as keyword-only functions over an open connection.

Lists use keyset pagination (``after``: the sort key of the previous page's last row) and fetch
one row more than asked, so the caller knows whether a next page exists without a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    String,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from store.status import DeviceStatus, EpochStatus
from store.tables import (
    ASSET,
    DEVICE,
    DEVICE_KEY,
    DEVICE_STATE,
    EPOCH,
    HELD_READING,
    LOG_STATE,
    QUARANTINE,
    READING,
    TARIFF,
)

MINUTE_MS = 60_000
ONLINE_WINDOWS = 3


# --- devices and assets ------------------------------------------------------------------------


def _online(now_ms: int) -> Any:
    """Active and seen within ``ONLINE_WINDOWS`` of the device's own reading interval."""
    return and_(
        DEVICE.c.status == DeviceStatus.ACTIVE,
        DEVICE_STATE.c.last_seen_ms.is_not(None),
        # Typed: an untyped Python int binds as INTEGER on PostgreSQL and a time in ms overflows it.
        DEVICE_STATE.c.last_seen_ms >= literal(now_ms, BigInteger) - ONLINE_WINDOWS * 1000 * DEVICE.c.window_s,
    )


def _device_columns(now_ms: int) -> list[Any]:
    return [
        DEVICE.c.id,
        DEVICE.c.kind,
        DEVICE.c.asset,
        DEVICE.c.alg,
        DEVICE.c.public_key,
        DEVICE.c.status,
        DEVICE.c.window_s,
        DEVICE.c.registered_ms,
        DEVICE.c.revoked_ms,
        func.coalesce(DEVICE_STATE.c.last_seq, 0).label("last_seq"),
        DEVICE_STATE.c.last_seen_ms,
        func.coalesce(DEVICE_STATE.c.readings, 0).label("readings"),
        func.coalesce(DEVICE_STATE.c.quarantined, 0).label("quarantined"),
        func.coalesce(DEVICE_STATE.c.duplicates, 0).label("duplicates"),
        _online(now_ms).label("online"),
    ]


def devices_page(
    *,
    conn: Connection,
    now_ms: int,
    asset: str | None,
    kind: str | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> Sequence[Any]:
    query = select(*_device_columns(now_ms)).outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id)
    if asset is not None:
        query = query.where(DEVICE.c.asset == asset)
    if kind is not None:
        query = query.where(DEVICE.c.kind == kind)
    if status is not None:
        query = query.where(DEVICE.c.status == status)
    if after is not None:
        query = query.where(DEVICE.c.id > after)
    return conn.execute(query.order_by(DEVICE.c.id).limit(limit + 1)).all()


def device(*, conn: Connection, now_ms: int, device_id: str) -> Any | None:
    query = (
        select(*_device_columns(now_ms), DEVICE.c.rating)
        .outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id)
        .where(DEVICE.c.id == device_id)
    )
    return conn.execute(query).first()


def device_keys(*, conn: Connection, device_id: str) -> Sequence[Any]:
    return conn.execute(
        select(
            DEVICE_KEY.c.alg,
            DEVICE_KEY.c.public_key,
            DEVICE_KEY.c.valid_from_ms,
            DEVICE_KEY.c.valid_until_ms,
            DEVICE_KEY.c.ended_by,
        )
        .where(DEVICE_KEY.c.device_id == device_id)
        .order_by(DEVICE_KEY.c.id)
    ).all()


def device_exists(*, conn: Connection, device_id: str) -> bool:
    return conn.execute(select(DEVICE.c.id).where(DEVICE.c.id == device_id)).first() is not None


def assets(*, conn: Connection, name: str | None = None) -> Sequence[Any]:
    counts = (
        select(
            DEVICE.c.asset,
            func.count().label("devices"),
            func.sum(case((DEVICE.c.status == DeviceStatus.ACTIVE, 1), else_=0)).label("active"),
        )
        .group_by(DEVICE.c.asset)
        .subquery()
    )
    query = select(
        ASSET.c.name,
        ASSET.c.kind,
        ASSET.c.description,
        ASSET.c.created_ms,
        func.coalesce(counts.c.devices, 0).label("devices"),
        func.coalesce(counts.c.active, 0).label("active"),
    ).outerjoin(counts, counts.c.asset == ASSET.c.name)
    if name is not None:
        query = query.where(ASSET.c.name == name)
    return conn.execute(query.order_by(ASSET.c.name)).all()


# --- readings ----------------------------------------------------------------------------------


def _reading_columns() -> list[Any]:
    return [
        READING.c.id,
        READING.c.device_id,
        DEVICE.c.asset,
        DEVICE.c.kind,
        READING.c.seq,
        READING.c.ts_ms,
        READING.c.window_s,
        READING.c.metrics,
        READING.c.revenue,
        READING.c.cost,
        READING.c.tariff_id,
        READING.c.received_ms,
        READING.c.stored_ms,
        READING.c.leaf_hash,
        READING.c.log_index,
        READING.c.epoch,
        EPOCH.c.status.label("epoch_status"),
    ]


def _with_device_and_epoch(query: Any) -> Any:
    return query.join(DEVICE, DEVICE.c.id == READING.c.device_id).outerjoin(EPOCH, EPOCH.c.number == READING.c.epoch)


def readings_page(
    *,
    conn: Connection,
    device_id: str | None,
    asset: str | None,
    from_ms: int | None,
    to_ms: int | None,
    after: tuple[int, int] | None,
    limit: int,
) -> Sequence[Any]:
    """Readings in (device time, id) order: stable, and served by the (device, ts) and ts
    indexes."""
    query = _with_device_and_epoch(select(*_reading_columns()))
    if device_id is not None:
        query = query.where(READING.c.device_id == device_id)
    if asset is not None:
        devices = select(DEVICE.c.id).where(DEVICE.c.asset == asset)
        column: ColumnElement[str] = READING.c.device_id
        if conn.dialect.name == "sqlite":
            # Left to itself SQLite reads every reading of the asset's devices through the
            # (device, ts) index and sorts them all (a second at a million readings); with the
            # unary plus it walks the ts index in order and stops at the end of the page.
            column = literal_column("+reading.device_id", String)
        query = query.where(column.in_(devices))
    if from_ms is not None:
        query = query.where(READING.c.ts_ms >= from_ms)
    if to_ms is not None:
        query = query.where(READING.c.ts_ms < to_ms)
    if after is not None:
        ts, last_id = after
        # The range on ts alone lets the index do the work; the OR only breaks ties.
        query = query.where(READING.c.ts_ms >= ts, or_(READING.c.ts_ms > ts, READING.c.id > last_id))
    return conn.execute(query.order_by(READING.c.ts_ms, READING.c.id).limit(limit + 1)).all()


def reading(*, conn: Connection, device_id: str, seq: int) -> Any | None:
    query = _with_device_and_epoch(select(*_reading_columns(), READING.c.raw)).where(
        READING.c.device_id == device_id, READING.c.seq == seq
    )
    return conn.execute(query).first()


# --- cash flow ---------------------------------------------------------------------------------


def newest_currency(*, conn: Connection) -> str | None:
    body = conn.execute(select(TARIFF.c.body).order_by(TARIFF.c.loaded_ms.desc()).limit(1)).scalar()
    return None if body is None else str(body.get("currency"))


def asset_exists(*, conn: Connection, name: str) -> bool:
    return conn.execute(select(ASSET.c.name).where(ASSET.c.name == name)).first() is not None


# --- epochs ------------------------------------------------------------------------------------


def epochs_page(
    *, conn: Connection, status: str | None, anchored_only: bool, before: int | None, limit: int
) -> Sequence[Any]:
    """Newest first."""
    query = select(EPOCH)
    if status is not None:
        query = query.where(EPOCH.c.status == status)
    if anchored_only:
        query = query.where(EPOCH.c.status == EpochStatus.ANCHORED)
    if before is not None:
        query = query.where(EPOCH.c.number < before)
    return conn.execute(query.order_by(EPOCH.c.number.desc()).limit(limit + 1)).all()


def epoch(*, conn: Connection, number: int) -> Any | None:
    return conn.execute(select(EPOCH).where(EPOCH.c.number == number)).first()


def log_size(*, conn: Connection) -> int:
    return int(conn.execute(select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar() or 0)


# --- quarantine --------------------------------------------------------------------------------


def _quarantine_filters(
    query: Any, *, reason: str | None, device_id: str | None, from_ms: int | None, to_ms: int | None
) -> Any:
    if reason is not None:
        query = query.where(QUARANTINE.c.reason == reason)
    if device_id is not None:
        query = query.where(QUARANTINE.c.device_id == device_id)
    if from_ms is not None:
        query = query.where(QUARANTINE.c.received_ms >= from_ms)
    if to_ms is not None:
        query = query.where(QUARANTINE.c.received_ms < to_ms)
    return query


_QUARANTINE_COLUMNS = (
    QUARANTINE.c.id,
    QUARANTINE.c.received_ms,
    QUARANTINE.c.reason,
    QUARANTINE.c.detail,
    QUARANTINE.c.topic,
    QUARANTINE.c.device_id,
    QUARANTINE.c.seq,
    QUARANTINE.c.raw_size,
    QUARANTINE.c.raw_sha256,
    QUARANTINE.c.epoch,
)


def quarantine_page(
    *,
    conn: Connection,
    reason: str | None,
    device_id: str | None,
    from_ms: int | None,
    to_ms: int | None,
    before: int | None,
    limit: int,
) -> Sequence[Any]:
    """Newest first (by id: the order they were stored)."""
    query = _quarantine_filters(
        select(*_QUARANTINE_COLUMNS), reason=reason, device_id=device_id, from_ms=from_ms, to_ms=to_ms
    )
    if before is not None:
        query = query.where(QUARANTINE.c.id < before)
    return conn.execute(query.order_by(QUARANTINE.c.id.desc()).limit(limit + 1)).all()


def quarantine_item(*, conn: Connection, item_id: int) -> Any | None:
    return conn.execute(select(*_QUARANTINE_COLUMNS, QUARANTINE.c.raw).where(QUARANTINE.c.id == item_id)).first()


def quarantine_reasons(
    *, conn: Connection, device_id: str | None, from_ms: int | None, to_ms: int | None
) -> list[tuple[str, int]]:
    count = func.count().label("n")
    query = _quarantine_filters(
        select(QUARANTINE.c.reason, count), reason=None, device_id=device_id, from_ms=from_ms, to_ms=to_ms
    ).group_by(QUARANTINE.c.reason)
    rows = [(str(r), int(n)) for r, n in conn.execute(query)]
    return sorted(rows, key=lambda rn: (-rn[1], rn[0]))


# --- fleet health ------------------------------------------------------------------------------


def device_counts(*, conn: Connection, now_ms: int) -> Any:
    def count_of(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    return conn.execute(
        select(
            func.count().label("total"),
            count_of(DEVICE.c.status == DeviceStatus.ACTIVE).label("active"),
            count_of(DEVICE.c.status == DeviceStatus.REVOKED).label("revoked"),
            count_of(_online(now_ms)).label("online"),
            count_of(DEVICE_STATE.c.last_seen_ms.is_(None)).label("never_seen"),
        ).select_from(DEVICE.outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id))
    ).one()


def readings_per_minute(*, conn: Connection, since_ms: int) -> list[tuple[int, int]]:
    minute = (READING.c.ts_ms - READING.c.ts_ms % literal_column(str(MINUTE_MS))).label("minute")
    rows = conn.execute(
        select(minute, func.count()).where(READING.c.ts_ms >= since_ms).group_by(minute).order_by(minute)
    ).all()
    return [(int(m), int(n)) for m, n in rows]


def arrivals_per_minute(*, conn: Connection, since_ms: int) -> list[tuple[int, int]]:
    """Readings per minute of the gateway's clock (when each arrived), from ``since_ms`` on: what
    the fleet is sending now, whatever the time its readings carry (a replay, a backlog)."""
    minute = (READING.c.received_ms - READING.c.received_ms % literal_column(str(MINUTE_MS))).label("minute")
    rows = conn.execute(
        select(minute, func.count()).where(READING.c.received_ms >= since_ms).group_by(minute).order_by(minute)
    ).all()
    return [(int(m), int(n)) for m, n in rows]


def last_seen(*, conn: Connection, now_ms: int, limit: int) -> Sequence[Any]:
    return conn.execute(
        select(
            DEVICE.c.id,
            DEVICE.c.asset,
            DEVICE.c.kind,
            DEVICE.c.status,
            DEVICE_STATE.c.last_seen_ms,
            _online(now_ms).label("online"),
        )
        .outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id)
        .order_by(DEVICE_STATE.c.last_seen_ms.asc().nulls_first(), DEVICE.c.id)
        .limit(limit)
    ).all()


def signed_above_head(*, conn: Connection) -> dict[str, list[int]]:
    """Per device, the seqs above its chain head that its chain shows it signed: readings held for
    a missing predecessor, and those that waited in vain (quarantined ``gap``: verified, never
    accepted). Both were checked against the device's key before they were kept."""
    head = func.coalesce(DEVICE_STATE.c.last_seq, 0)
    held = select(HELD_READING.c.device_id, HELD_READING.c.seq).outerjoin(
        DEVICE_STATE, DEVICE_STATE.c.device_id == HELD_READING.c.device_id
    )
    gaps = (
        select(QUARANTINE.c.device_id, QUARANTINE.c.seq)
        .outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == QUARANTINE.c.device_id)
        .where(QUARANTINE.c.reason == "gap", QUARANTINE.c.seq.is_not(None))
    )
    seqs: dict[str, set[int]] = {}
    for query in (held.where(HELD_READING.c.seq > head), gaps.where(QUARANTINE.c.seq > head)):
        for device_id, seq in conn.execute(query):
            seqs.setdefault(str(device_id), set()).add(int(seq))
    return {d: sorted(s) for d, s in seqs.items()}


def silent_devices(*, conn: Connection, now_ms: int) -> Sequence[Any]:
    """Active devices not heard from within ``ONLINE_WINDOWS`` of their interval (never seen ones
    once that long has passed since their registration), stalest first."""
    last = func.coalesce(DEVICE_STATE.c.last_seen_ms, DEVICE.c.registered_ms)
    return conn.execute(
        select(
            DEVICE.c.id,
            DEVICE.c.asset,
            DEVICE.c.window_s,
            DEVICE_STATE.c.last_seen_ms,
            func.coalesce(DEVICE_STATE.c.last_seq, 0),
        )
        .outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id)
        .where(
            DEVICE.c.status == DeviceStatus.ACTIVE,
            last < literal(now_ms, BigInteger) - ONLINE_WINDOWS * 1000 * DEVICE.c.window_s,
        )
        .order_by(last.asc(), DEVICE.c.id)
    ).all()


def device_heads(*, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, int, int | None]]:
    """Asset, chain head and last seen of these devices."""
    if not ids:
        return {}
    rows = conn.execute(
        select(DEVICE.c.id, DEVICE.c.asset, func.coalesce(DEVICE_STATE.c.last_seq, 0), DEVICE_STATE.c.last_seen_ms)
        .outerjoin(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id)
        .where(DEVICE.c.id.in_(list(ids)))
    ).all()
    return {str(r[0]): (str(r[1]), int(r[2]), r[3]) for r in rows}
