"""Quarantined messages: why each was refused, and counts by reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api import queries
from api.context import Ctx, Cursor, FromMs, Limit, ToMs, check_range
from api.convert import quarantine_fields, quarantine_out
from api.errors import not_found
from api.models import Problem, QuarantineDetail, QuarantinePage, QuarantineReasons, ReasonCount
from api.pagination import decode_cursor, encode_cursor
from api.params import StoreInt
from api.routes import PREFIX
from store.tables import QUARANTINE_RAW_LIMIT

router = APIRouter(prefix=PREFIX, tags=["quarantine"])

ItemId = Annotated[StoreInt, Path(ge=1, description="The quarantined message's id.")]
DeviceFilter = Annotated[str | None, Query(max_length=63, description="Only messages naming this device.")]


@router.get("/quarantine", summary="Quarantined messages, newest first", response_model=QuarantinePage)
def list_quarantine(
    ctx: Ctx,
    reason: Annotated[
        str | None, Query(max_length=32, description="Only this reason (bad_signature, gap, replay, ...).")
    ] = None,
    device: DeviceFilter = None,
    from_ms: FromMs = None,
    to_ms: ToMs = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> QuarantinePage:
    """Every message that was not accepted, with its reason and detail. Times are when the
    gateway received it."""
    check_range(from_ms, to_ms)
    before = None if cursor is None else int(decode_cursor(cursor, "quarantine", int)[0])
    with ctx.reader.connect() as conn:
        rows = queries.quarantine_page(
            conn=conn, reason=reason, device_id=device, from_ms=from_ms, to_ms=to_ms, before=before, limit=limit
        )
    items = [quarantine_out(r) for r in rows[:limit]]
    return QuarantinePage(
        items=items, next_cursor=encode_cursor("quarantine", items[-1].id) if len(rows) > limit else None
    )


@router.get("/quarantine/reasons", summary="Quarantine counts by reason", response_model=QuarantineReasons)
def quarantine_reasons(
    ctx: Ctx, device: DeviceFilter = None, from_ms: FromMs = None, to_ms: ToMs = None
) -> QuarantineReasons:
    check_range(from_ms, to_ms)
    with ctx.reader.connect() as conn:
        counts = queries.quarantine_reasons(conn=conn, device_id=device, from_ms=from_ms, to_ms=to_ms)
    return QuarantineReasons(
        from_ms=from_ms,
        to_ms=to_ms,
        total=sum(n for _, n in counts),
        reasons=[ReasonCount(reason=r, count=n) for r, n in counts],
    )


@router.get(
    "/quarantine/{item_id}",
    summary="One quarantined message with its bytes",
    response_model=QuarantineDetail,
    responses={404: {"model": Problem}},
)
def get_quarantined(ctx: Ctx, item_id: ItemId) -> QuarantineDetail:
    with ctx.reader.connect() as conn:
        row = queries.quarantine_item(conn=conn, item_id=item_id)
    if row is None:
        raise not_found(f"quarantined message {item_id}")
    raw = bytes(row.raw)
    return QuarantineDetail(
        **quarantine_fields(row),
        raw=raw.hex(),
        raw_truncated=row.raw_size > len(raw) or len(raw) > QUARANTINE_RAW_LIMIT,
    )
