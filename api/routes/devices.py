"""Devices and assets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from api import queries
from api.context import Ctx, Cursor, Limit
from api.convert import device_out
from api.errors import not_found
from api.models import AssetList, AssetOut, DeviceDetail, DeviceKeyOut, DevicePage, KindMix, Problem
from api.pagination import decode_cursor, encode_cursor
from api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["devices and assets"])

DeviceId = Annotated[str, Path(max_length=63, description="Device id.", examples=["sol-hk-rooftops-0001"])]
AssetName = Annotated[str, Path(max_length=63, description="Asset name.", examples=["hk-rooftops"])]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such device or asset."}}


@router.get("/devices", summary="Devices, by id", response_model=DevicePage)
def list_devices(
    ctx: Ctx,
    asset: Annotated[str | None, Query(max_length=63, description="Only this asset's devices.")] = None,
    kind: Annotated[Literal["solar", "charger", "miner"] | None, Query(description="Only this kind.")] = None,
    status: Annotated[Literal["active", "revoked"] | None, Query(description="Only this status.")] = None,
    limit: Limit = 500,
    cursor: Cursor = None,
) -> DevicePage:
    """Devices with their status, current key, chain head and last-seen time."""
    after = None if cursor is None else str(decode_cursor(cursor, "devices", str)[0])
    with ctx.reader.connect() as conn:
        rows = queries.devices_page(
            conn=conn, now_ms=ctx.clock_ms(), asset=asset, kind=kind, status=status, after=after, limit=limit
        )
    items = [device_out(r) for r in rows[:limit]]
    return DevicePage(items=items, next_cursor=encode_cursor("devices", items[-1].id) if len(rows) > limit else None)


@router.get("/devices/{device_id}", summary="One device", response_model=DeviceDetail, responses=NOT_FOUND)
def get_device(ctx: Ctx, device_id: DeviceId) -> DeviceDetail:
    """A device with its nameplate rating and every key it has had (rotation and revocation
    history)."""
    with ctx.reader.connect() as conn:
        row = queries.device(conn=conn, now_ms=ctx.clock_ms(), device_id=device_id)
        if row is None:
            raise not_found(f"device {device_id!r}")
        keys = queries.device_keys(conn=conn, device_id=device_id)
    return DeviceDetail(
        **device_out(row).model_dump(),
        rating=dict(row.rating),
        keys=[
            DeviceKeyOut(
                alg=k.alg,
                public_key=bytes(k.public_key).hex(),
                valid_from_ms=k.valid_from_ms,
                valid_until_ms=k.valid_until_ms,
                ended_by=k.ended_by,
            )
            for k in keys
        ],
    )


def _asset_out(row: Any) -> AssetOut:
    devices, active = int(row.devices), int(row.active)
    return AssetOut(
        name=row.name,
        kind=row.kind,
        description=row.description,
        created_ms=row.created_ms,
        devices=devices,
        active_devices=active,
        revoked_devices=devices - active,
    )


@router.get("/assets", summary="Assets and the asset-class mix", response_model=AssetList)
def list_assets(ctx: Ctx) -> AssetList:
    """Every asset with its device counts, and how assets and devices split by kind."""
    with ctx.reader.connect() as conn:
        items = [_asset_out(r) for r in queries.assets(conn=conn)]
    mix: dict[str, KindMix] = {}
    for a in items:
        k = mix.setdefault(a.kind, KindMix(kind=a.kind, assets=0, devices=0))
        k.assets += 1
        k.devices += a.devices
    return AssetList(items=items, kinds=sorted(mix.values(), key=lambda k: k.kind))


@router.get("/assets/{name}", summary="One asset", response_model=AssetOut, responses=NOT_FOUND)
def get_asset(ctx: Ctx, name: AssetName) -> AssetOut:
    with ctx.reader.connect() as conn:
        rows = queries.assets(conn=conn, name=name)
    if not rows:
        raise not_found(f"asset {name!r}")
    return _asset_out(rows[0])
