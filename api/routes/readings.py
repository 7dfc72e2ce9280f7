"""Readings, and the proof bundle of any reading."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from api import queries
from api.context import Ctx, Cursor, FromMs, Limit, ToMs, check_range
from api.convert import reading_fields, reading_out
from api.errors import ApiError, not_found
from api.models import DEPLOYMENT_UNREADABLE, BundleDoc, Problem, ReadingDetail, ReadingPage
from api.pagination import decode_cursor, encode_cursor
from api.params import StoreInt
from api.routes import PREFIX
from attestor.bundles import BundleUnavailableError, build_bundle

router = APIRouter(prefix=PREFIX, tags=["readings and proofs"])

DeviceId = Annotated[str, Path(max_length=63, description="Device id.", examples=["sol-hk-rooftops-0001"])]
Seq = Annotated[StoreInt, Path(ge=1, description="The reading's seq (per device, from 1).", examples=[42])]
LogIndex = Annotated[StoreInt, Path(ge=0, description="The reading's position in the Merkle log.", examples=[41])]

BUNDLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": BundleDoc, "description": "The bundle, exactly the file `assetproof verify` takes."},
    404: {"model": Problem, "description": "No such reading."},
    409: {
        "model": Problem,
        "description": "The reading is stored but not yet in a closed epoch (`reason`: `pending`): retry later.",
    },
    **DEPLOYMENT_UNREADABLE,
}


@router.get("/readings", summary="Readings, filtered and paginated", response_model=ReadingPage)
def list_readings(
    ctx: Ctx,
    device: Annotated[str | None, Query(max_length=63, description="Only this device's readings.")] = None,
    asset: Annotated[str | None, Query(max_length=63, description="Only this asset's readings.")] = None,
    from_ms: FromMs = None,
    to_ms: ToMs = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> ReadingPage:
    """Accepted readings in device-time order (ties by storage order); the time range is device
    time. Each says whether it is pending, in a closed epoch, or anchored."""
    check_range(from_ms, to_ms)
    after = None
    if cursor is not None:
        ts, last_id = decode_cursor(cursor, "readings", int, int)
        after = (int(ts), int(last_id))
    with ctx.reader.connect() as conn:
        rows = queries.readings_page(
            conn=conn, device_id=device, asset=asset, from_ms=from_ms, to_ms=to_ms, after=after, limit=limit
        )
    items = [reading_out(r) for r in rows[:limit]]
    next_cursor = encode_cursor("readings", items[-1].ts_ms, items[-1].id) if len(rows) > limit else None
    return ReadingPage(items=items, next_cursor=next_cursor)


@router.get(
    "/devices/{device_id}/readings/{seq}",
    summary="One reading with its signed bytes",
    response_model=ReadingDetail,
    responses={404: {"model": Problem}},
)
def get_reading(ctx: Ctx, device_id: DeviceId, seq: Seq) -> ReadingDetail:
    with ctx.reader.connect() as conn:
        row = queries.reading(conn=conn, device_id=device_id, seq=seq)
    if row is None:
        raise not_found(f"reading {device_id}#{seq}")
    return ReadingDetail(**reading_fields(row), message=bytes(row.raw).hex())


def _bundle(ctx: Ctx, **which: Any) -> JSONResponse:
    chain = ctx.anchors.get()
    try:
        bundle = build_bundle(ctx.reader, chain=chain, **which)
    except BundleUnavailableError as exc:
        if exc.reason == "pending":
            raise ApiError(409, f"{exc}: no proof exists until it is", reason="pending") from None
        raise ApiError(404, str(exc), reason="not_found") from None
    return JSONResponse(bundle.to_json())


@router.get(
    "/readings/{log_index}/bundle",
    summary="Proof bundle of a reading, by log index",
    response_model=BundleDoc,
    responses=BUNDLE_RESPONSES,
)
def bundle_by_log_index(ctx: Ctx, log_index: LogIndex) -> JSONResponse:
    """The reading's signed bytes, device key, inclusion proof for its epoch's checkpoint, the
    epoch metadata and, once anchored, where. Nothing in it is to be trusted until checked:
    `assetproof verify` does that."""
    return _bundle(ctx, log_index=log_index)


@router.get(
    "/devices/{device_id}/readings/{seq}/bundle",
    summary="Proof bundle of a reading, by device and seq",
    response_model=BundleDoc,
    responses=BUNDLE_RESPONSES,
)
def bundle_by_device_seq(ctx: Ctx, device_id: DeviceId, seq: Seq) -> JSONResponse:
    return _bundle(ctx, device_id=device_id, seq=seq)
