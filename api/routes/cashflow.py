"""Cash flow per asset and per device, split into attested and pending."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from api import queries
from api.context import Ctx, FromMs, ToMs, check_range
from api.convert import bucket_dict, totals_dict
from api.errors import ApiError, not_found
from api.models import CashflowOut, Problem
from api.routes import PREFIX
from protocol.cashflow import HOUR_MS
from store.cashflow import DAY_MS, cashflow
from store.coverage import selection_coverage

router = APIRouter(prefix=PREFIX, tags=["cash flow"])

MAX_BUCKETS: Final = 10_000
Granularity = Annotated[Literal["hour", "day"], Query(description="Bucket size: hour or day (of device time, UTC).")]
RESPONSES: dict[int | str, dict[str, object]] = {404: {"model": Problem}, 422: {"model": Problem}}


def _check_span(granularity: str, from_ms: int | None, to_ms: int | None) -> None:
    check_range(from_ms, to_ms)
    if from_ms is not None and to_ms is not None:
        bucket = HOUR_MS if granularity == "hour" else DAY_MS
        if (to_ms - from_ms) // bucket > MAX_BUCKETS:
            raise ApiError(
                422,
                f"the range spans more than {MAX_BUCKETS} {granularity}s: narrow it or use a coarser granularity",
                reason="invalid_parameter",
            )


def _answer(
    ctx: Ctx,
    *,
    asset: str,
    device: str | None,
    granularity: Literal["hour", "day"],
    from_ms: int | None,
    to_ms: int | None,
) -> JSONResponse:
    # A device's buckets are selected by the device alone; ``asset`` then only labels them.
    buckets = cashflow(
        ctx.reader,
        asset=asset if device is None else None,
        device=device,
        granularity=granularity,
        start_ms=from_ms,
        end_ms=to_ms,
    )
    with ctx.reader.connect() as conn:
        currency = queries.newest_currency(conn=conn)
    bucket_ms = HOUR_MS if granularity == "hour" else DAY_MS
    start_ms = None if from_ms is None else from_ms - from_ms % bucket_ms
    coverage = selection_coverage(
        ctx.reader, asset=asset if device is None else None, device=device, start_ms=start_ms, end_ms=to_ms
    )
    return JSONResponse(
        {
            "asset": asset,
            "device": device,
            "granularity": granularity,
            "from_ms": start_ms,
            "to_ms": to_ms,
            "currency": currency,
            "buckets": [bucket_dict(b) for b in buckets],
            "totals": totals_dict(buckets, coverage=coverage),
        }
    )


@router.get("/assets/{name}/cashflow", summary="An asset's cash flow", response_model=CashflowOut, responses=RESPONSES)
def asset_cashflow(
    ctx: Ctx,
    name: Annotated[str, Path(max_length=63, examples=["hk-rooftops"])],
    granularity: Granularity = "hour",
    from_ms: FromMs = None,
    to_ms: ToMs = None,
) -> JSONResponse:
    """Revenue, cost, net and energy per bucket with coverage and uptime; each bucket says how
    much of it is attested (its readings are in epochs anchored on chain) and how much is still
    pending."""
    _check_span(granularity, from_ms, to_ms)
    with ctx.reader.connect() as conn:
        if not queries.asset_exists(conn=conn, name=name):
            raise not_found(f"asset {name!r}")
    return _answer(ctx, asset=name, device=None, granularity=granularity, from_ms=from_ms, to_ms=to_ms)


@router.get(
    "/devices/{device_id}/cashflow", summary="A device's cash flow", response_model=CashflowOut, responses=RESPONSES
)
def device_cashflow(
    ctx: Ctx,
    device_id: Annotated[str, Path(max_length=63, examples=["sol-hk-rooftops-0001"])],
    granularity: Granularity = "hour",
    from_ms: FromMs = None,
    to_ms: ToMs = None,
) -> JSONResponse:
    """As for an asset, for one device."""
    _check_span(granularity, from_ms, to_ms)
    with ctx.reader.connect() as conn:
        row = queries.device(conn=conn, now_ms=ctx.clock_ms(), device_id=device_id)
    if row is None:
        raise not_found(f"device {device_id!r}")
    return _answer(ctx, asset=row.asset, device=device_id, granularity=granularity, from_ms=from_ms, to_ms=to_ms)
