"""The demo's live snapshot and its end-of-run summary, read from the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from demo.tokens import TokenFigures
from store.coverage import coverage_by_asset
from store.status import EpochStatus
from store.tables import EPOCH, QUARANTINE, READING


@dataclass
class Snapshot:
    """What the live view shows, read from the store."""

    elapsed_s: float
    accepted: int
    quarantined: dict[str, int]
    epochs_anchored: int
    epochs_closed: int
    last_epoch: dict[str, Any] | None
    gas_total: int
    unanchored_readings: int
    coverage: dict[str, float]
    first_anchor_s: float | None
    chained: int = 0
    """Quarantined chained: genuine readings rejected for their content (signed, so not lost)."""
    tokens: dict[str, TokenFigures] = field(default_factory=dict)
    """Each asset's token: funded and claimed (from the chain, by the tokens worker)."""


@dataclass
class Summary:
    devices: int
    signed: int
    accepted: int
    quarantined: dict[str, int]
    faults_injected: int
    lost: int
    epochs_anchored: int
    epochs_not_anchored: int
    unanchored_readings: int
    gas_total: int
    first_anchor_s: float | None
    seconds: float
    chain: str
    broker: str
    dashboard: str
    chained: int = 0
    """Of the quarantined, genuine readings rejected for their content (they count as signed)."""
    coverage: dict[str, float] = field(default_factory=dict)
    """Per asset, as in the live view (``store.coverage``)."""
    refused_by_broker: int = 0
    """Messages the broker refused (PUBACK "not authorized": a faulty message on a topic the
    device may not publish on), so the gateway never saw them: injected, never quarantined."""
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per asset, its token's figures (:class:`demo.tokens.TokenFigures`; HKD cents)."""
    epochs_not_distributed: int = 0
    """Anchored epochs the token worker did not fund (it funds every one, in order)."""

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.epochs_not_anchored == 0
            and self.unanchored_readings == 0
            and self.epochs_not_distributed == 0
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def take_snapshot(engine: Engine, *, elapsed_s: float, wall_started_s: float) -> Snapshot:
    """Read the live view's figures from the store; ``wall_started_s`` (Unix seconds) dates the
    first anchor."""
    with engine.connect() as conn:
        accepted = int(conn.execute(select(func.count()).select_from(READING)).scalar_one())
        quarantined: dict[str, int] = dict(
            conn.execute(select(QUARANTINE.c.reason, func.count()).group_by(QUARANTINE.c.reason)).all()
        )
        chained = int(conn.execute(select(func.count()).where(QUARANTINE.c.chained)).scalar_one())
        epochs = conn.execute(
            select(
                EPOCH.c.number,
                EPOCH.c.status,
                EPOCH.c.gas_used,
                EPOCH.c.block_number,
                EPOCH.c.leaves_to,
                EPOCH.c.tx_hash,
                EPOCH.c.anchored_ms,
            ).order_by(EPOCH.c.number)
        ).all()
        unanchored = int(
            conn.execute(
                select(func.count())
                .select_from(READING.outerjoin(EPOCH, EPOCH.c.number == READING.c.epoch))
                .where((READING.c.epoch.is_(None)) | (EPOCH.c.status != EpochStatus.ANCHORED))
            ).scalar_one()
        )
    anchored = [e for e in epochs if e.status == EpochStatus.ANCHORED]
    last = anchored[-1] if anchored else None
    first_anchor = None
    if anchored and anchored[0].anchored_ms is not None:
        first_anchor = max(0.0, anchored[0].anchored_ms / 1000 - wall_started_s)
    return Snapshot(
        elapsed_s=elapsed_s,
        accepted=accepted,
        quarantined=quarantined,
        epochs_anchored=len(anchored),
        epochs_closed=len(epochs),
        last_epoch=None
        if last is None
        else {
            "number": last.number,
            "gas": last.gas_used,
            "block": last.block_number,
            "tree_size": last.leaves_to,
            "tx": "0x" + bytes(last.tx_hash).hex() if last.tx_hash else None,
        },
        gas_total=sum(e.gas_used or 0 for e in anchored),
        unanchored_readings=unanchored,
        # The one definition (store.coverage): the CLI's totals and the API's agree with it.
        coverage={asset: c.value for asset, c in coverage_by_asset(engine).items()},
        first_anchor_s=first_anchor,
        chained=chained,
    )
