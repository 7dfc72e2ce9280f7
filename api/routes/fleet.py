"""Fleet health for engineers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import queries
from api.context import Ctx
from api.models import DeviceCounts, FleetHealth, LastSeen, MinuteCount, ReasonCount
from api.params import StoreInt
from api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["fleet"])


@router.get("/fleet/health", summary="Devices online, reading rate, rejects, last seen", response_model=FleetHealth)
def fleet_health(
    ctx: Ctx,
    minutes: Annotated[StoreInt, Query(ge=1, le=1440, description="The recent window, in minutes.")] = 15,
    devices: Annotated[StoreInt, Query(ge=0, le=10_000, description="How many devices to list in last_seen.")] = 100,
) -> FleetHealth:
    """Devices online (active and seen within three of their windows), readings per minute of
    device time over the last `minutes`, messages quarantined in that window by reason, and the
    stalest devices first."""
    now = ctx.clock_ms()
    since = now - minutes * 60_000
    with ctx.reader.connect() as conn:
        counts = queries.device_counts(conn=conn, now_ms=now)
        per_minute = queries.readings_per_minute(conn=conn, since_ms=since)
        rejects = queries.quarantine_reasons(conn=conn, device_id=None, from_ms=since, to_ms=None)
        seen = queries.last_seen(conn=conn, now_ms=now, limit=devices)
    in_window = sum(n for _, n in per_minute)  # the first minute counts only from `since` on
    return FleetHealth(
        now_ms=now,
        minutes=minutes,
        devices=DeviceCounts(
            total=int(counts.total),
            active=int(counts.active),
            revoked=int(counts.revoked),
            online=int(counts.online),
            never_seen=int(counts.never_seen),
        ),
        readings_per_minute=[MinuteCount(minute_ms=m, readings=n) for m, n in per_minute],
        readings_per_minute_avg=round(in_window / minutes, 2),
        rejects=[ReasonCount(reason=r, count=n) for r, n in rejects],
        rejects_total=sum(n for _, n in rejects),
        last_seen=[
            LastSeen(
                device_id=r.id,
                asset=r.asset,
                kind=r.kind,
                status=r.status,
                last_seen_ms=r.last_seen_ms,
                online=bool(r.online),
            )
            for r in seen
        ],
    )
