"""Device and asset registry queries (keyword-only, one transaction each)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Engine, cast, func, insert, select, update

from protocol.envelope import GENESIS_PREV
from protocol.errors import AssetproofError
from store.status import DeviceStatus
from store.tables import (
    ASSET,
    DEVICE,
    DEVICE_KEY,
    DEVICE_STATE,
    QUARANTINE_DROPPED,
)


class RegistryError(AssetproofError):
    """A registry operation cannot be done (unknown device, asset of another kind, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDevice:
    id: str
    kind: str
    alg: str
    public_key: bytes
    rating: dict[str, Any]
    window_s: int


def ensure_asset(engine: Engine, *, name: str, kind: str, now_ms: int, description: str = "") -> None:
    """Create asset ``name`` holding devices of ``kind``, or check an existing one matches."""
    with engine.begin() as conn:
        existing = conn.execute(select(ASSET.c.kind).where(ASSET.c.name == name)).scalar()
        if existing is None:
            conn.execute(insert(ASSET).values(name=name, kind=kind, description=description, created_ms=now_ms))
        elif existing != kind:
            raise RegistryError(f"asset {name!r} holds {existing} devices, not {kind}")


def register_devices(engine: Engine, *, asset: str, devices: Sequence[NewDevice], now_ms: int) -> None:
    """Register new devices in one transaction: device rows, their first keys, empty chain heads."""
    if not devices:
        return
    with engine.begin() as conn:
        kind = conn.execute(select(ASSET.c.kind).where(ASSET.c.name == asset)).scalar()
        if kind is None:
            raise RegistryError(f"unknown asset {asset!r}")
        taken = set(conn.execute(select(DEVICE.c.id).where(DEVICE.c.id.in_([d.id for d in devices]))).scalars())
        if taken:
            raise RegistryError(f"device ids already registered: {sorted(taken)[:5]}")
        for d in devices:
            if d.kind != kind:
                raise RegistryError(f"device {d.id} is a {d.kind}; asset {asset!r} holds {kind} devices")
        conn.execute(
            insert(DEVICE),
            [
                {
                    "id": d.id,
                    "kind": d.kind,
                    "asset": asset,
                    "alg": d.alg,
                    "public_key": d.public_key,
                    "status": DeviceStatus.ACTIVE,
                    "rating": d.rating,
                    "window_s": d.window_s,
                    "registered_ms": now_ms,
                }
                for d in devices
            ],
        )
        conn.execute(
            insert(DEVICE_KEY),
            [{"device_id": d.id, "alg": d.alg, "public_key": d.public_key, "valid_from_ms": now_ms} for d in devices],
        )
        conn.execute(
            insert(DEVICE_STATE),
            [{"device_id": d.id, "last_seq": 0, "last_hash": GENESIS_PREV, "last_ts_ms": 0} for d in devices],
        )


def _end_current_key(conn: Any, *, device_id: str, now_ms: int, ended_by: str) -> None:
    conn.execute(
        update(DEVICE_KEY)
        .where(DEVICE_KEY.c.device_id == device_id, DEVICE_KEY.c.valid_until_ms.is_(None))
        .values(valid_until_ms=now_ms, ended_by=ended_by)
    )


def revoke_device(engine: Engine, *, device_id: str, now_ms: int) -> None:
    """Revoke a device: from now on every message it sends is quarantined as ``revoked_device``."""
    with engine.begin() as conn:
        status = conn.execute(select(DEVICE.c.status).where(DEVICE.c.id == device_id)).scalar()
        if status is None:
            raise RegistryError(f"unknown device {device_id!r}")
        if status == DeviceStatus.REVOKED:
            raise RegistryError(f"device {device_id!r} is already revoked")
        conn.execute(
            update(DEVICE).where(DEVICE.c.id == device_id).values(status=DeviceStatus.REVOKED, revoked_ms=now_ms)
        )
        _end_current_key(conn, device_id=device_id, now_ms=now_ms, ended_by="revoked")


def _rotate(conn: Any, *, device_id: str, alg: str, public_key: bytes, now_ms: int, new_chain: bool) -> None:
    status = conn.execute(select(DEVICE.c.status).where(DEVICE.c.id == device_id)).scalar()
    if status is None:
        raise RegistryError(f"unknown device {device_id!r}")
    if status != DeviceStatus.ACTIVE:
        raise RegistryError(f"device {device_id!r} is {status}: only active devices rotate keys")
    _end_current_key(conn, device_id=device_id, now_ms=now_ms, ended_by="rotated")
    conn.execute(
        insert(DEVICE_KEY).values(
            device_id=device_id, alg=alg, public_key=public_key, valid_from_ms=now_ms, new_chain=new_chain
        )
    )
    conn.execute(update(DEVICE).where(DEVICE.c.id == device_id).values(alg=alg, public_key=public_key))


def rotate_key(engine: Engine, *, device_id: str, alg: str, public_key: bytes, now_ms: int) -> None:
    """Give an active device a new key; the old one stops being accepted now. The device's chain
    goes on: the new key signs the next seq, linked to the last message."""
    with engine.begin() as conn:
        _rotate(conn, device_id=device_id, alg=alg, public_key=public_key, now_ms=now_ms, new_chain=False)


def resync_device(engine: Engine, *, device_id: str, alg: str, public_key: bytes, now_ms: int) -> int:
    """Resynchronise a device that lost its chain state (seq counter and last hash): a key
    rotation whose new key may start a new chain. The gateway then accepts, once, the new key's
    reading with ``prev`` = 32 zero bytes and any ``seq`` above the head (a reading linked to
    the head as usual is accepted too); nothing else starts a chain. Returns the head's seq."""
    with engine.begin() as conn:
        _rotate(conn, device_id=device_id, alg=alg, public_key=public_key, now_ms=now_ms, new_chain=True)
        conn.execute(update(DEVICE_STATE).where(DEVICE_STATE.c.device_id == device_id).values(resync_pending=True))
        return int(
            conn.execute(select(DEVICE_STATE.c.last_seq).where(DEVICE_STATE.c.device_id == device_id)).scalar_one()
        )


def list_devices(engine: Engine, *, asset: str | None = None) -> list[dict[str, Any]]:
    """Devices with their chain heads, for ``assetproof devices list`` and the API: readings,
    quarantined (stored), rejected (of those, chained) and dropped (over the quarantine budget:
    counted, not stored)."""
    dropped = (
        # cast: PostgreSQL sums BIGINT as NUMERIC (a Decimal in Python)
        select(
            QUARANTINE_DROPPED.c.device_id, cast(func.sum(QUARANTINE_DROPPED.c.messages), BigInteger).label("dropped")
        )
        .group_by(QUARANTINE_DROPPED.c.device_id)
        .subquery()
    )
    query = (
        select(
            DEVICE.c.id,
            DEVICE.c.kind,
            DEVICE.c.asset,
            DEVICE.c.alg,
            DEVICE.c.public_key,
            DEVICE.c.status,
            DEVICE.c.window_s,
            DEVICE.c.registered_ms,
            DEVICE.c.revoked_ms,
            DEVICE_STATE.c.last_seq,
            DEVICE_STATE.c.last_seen_ms,
            DEVICE_STATE.c.readings,
            DEVICE_STATE.c.quarantined,
            DEVICE_STATE.c.duplicates,
            DEVICE_STATE.c.rejected,
            func.coalesce(dropped.c.dropped, 0).label("dropped"),
        )
        .join(DEVICE_STATE, DEVICE_STATE.c.device_id == DEVICE.c.id)
        .outerjoin(dropped, dropped.c.device_id == DEVICE.c.id)
        .order_by(DEVICE.c.id)
    )
    if asset is not None:
        query = query.where(DEVICE.c.asset == asset)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
