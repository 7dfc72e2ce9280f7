"""Fleet health for engineers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import Connection

from api import queries
from api.context import Ctx
from api.models import DeviceCounts, DeviceLoss, FleetHealth, LastSeen, MinuteCount, ReasonCount
from api.params import StoreInt
from api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["fleet"])

MAX_RANGES = 10


def _missing_ranges(head: int, signed: list[int]) -> list[list[int]]:
    """The seqs in ``head + 1 .. max(signed)`` that are not in ``signed`` (ascending), as ranges."""
    ranges: list[list[int]] = []
    expected = head + 1
    for seq in signed:
        if seq > expected:
            ranges.append([expected, seq - 1])
        expected = max(expected, seq + 1)
    return ranges


def _loss(conn: Connection, now_ms: int) -> list[DeviceLoss]:
    above = queries.signed_above_head(conn=conn)
    heads = queries.device_heads(conn=conn, ids=sorted(above))
    stalled: list[DeviceLoss] = []
    for device_id, signed in above.items():
        asset, head, last_seen = heads[device_id]
        ranges = _missing_ranges(head, signed)
        stalled.append(
            DeviceLoss(
                device_id=device_id,
                asset=asset,
                state="stalled",
                head_seq=head,
                signed_seq=signed[-1],
                missing=sum(b - a + 1 for a, b in ranges),
                missing_ranges=ranges[:MAX_RANGES],
                waiting=len(signed),
                last_seen_ms=last_seen,
            )
        )
    stalled.sort(key=lambda d: (-d.missing, d.device_id))
    silent = [
        DeviceLoss(
            device_id=r[0],
            asset=r[1],
            state="silent",
            head_seq=int(r[4]),
            signed_seq=int(r[4]),
            missing=0,
            missing_ranges=[],
            waiting=0,
            last_seen_ms=r[3],
        )
        for r in queries.silent_devices(conn=conn, now_ms=now_ms)
        if r[0] not in above
    ]
    return stalled + silent


def _arrival_rate(arrivals: list[tuple[int, int]], *, since_ms: int, now_ms: int) -> float:
    """Readings per minute over the part of the window since the first arrival in it (at least
    a minute): a fleet that started two minutes ago reads at its rate, not diluted over the
    whole window."""
    if not arrivals:
        return 0.0
    began = max(since_ms, arrivals[0][0])
    return round(sum(n for _, n in arrivals) * 60_000 / max(now_ms - began, 60_000), 2)


@router.get("/fleet/health", summary="Devices online, reading rate, rejects, last seen", response_model=FleetHealth)
def fleet_health(
    ctx: Ctx,
    minutes: Annotated[StoreInt, Query(ge=1, le=1440, description="The recent window, in minutes.")] = 15,
    devices: Annotated[StoreInt, Query(ge=0, le=10_000, description="How many devices to list in last_seen.")] = 100,
) -> FleetHealth:
    """Devices online (active and seen within three of their windows), readings per minute over
    the last `minutes` by arrival (the gateway's clock) and by device time, messages quarantined
    in that window by reason, the stalest devices first, and loss: devices whose chain shows
    readings the gateway never got (stalled) and active devices that went quiet (silent)."""
    now = ctx.clock_ms()
    since = now - minutes * 60_000
    with ctx.reader.connect() as conn:
        counts = queries.device_counts(conn=conn, now_ms=now)
        per_minute = queries.readings_per_minute(conn=conn, since_ms=since)
        arrivals = queries.arrivals_per_minute(conn=conn, since_ms=since)
        rejects = queries.quarantine_reasons(conn=conn, device_id=None, from_ms=since, to_ms=None)
        seen = queries.last_seen(conn=conn, now_ms=now, limit=devices)
        loss = _loss(conn, now)
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
            stalled=sum(1 for d in loss if d.state == "stalled"),
            silent=sum(1 for d in loss if d.state == "silent"),
        ),
        readings_per_minute=[MinuteCount(minute_ms=m, readings=n) for m, n in per_minute],
        readings_per_minute_avg=round(in_window / minutes, 2),
        arrivals_per_minute=[MinuteCount(minute_ms=m, readings=n) for m, n in arrivals],
        arrivals_per_minute_avg=_arrival_rate(arrivals, since_ms=since, now_ms=now),
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
        loss=loss,
    )
