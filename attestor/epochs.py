"""Appending accepted readings to the log and closing epochs.

Readings join the log in acceptance order (the order their rows were stored). Several gateway
workers may commit out of id order, so the log does not follow ids blindly: each step takes the
readings that have no log index yet, oldest id first, and gives them the next indexes, in the
same transaction that adds their nodes. A late commit with a lower id simply joins later.

An epoch closes when its time window has passed or it holds ``max_leaves`` leaves, whichever
comes first, and never mixes tariffs (a tariff change closes the epoch at that leaf). Its
metadata is computed from the leaves themselves (decoded, priced with ``protocol.cashflow``), the
same computation an auditor repeats, not from the gateway's stored sums.

With a chain (``tariffs``), an epoch is priced with the tariff the pricing authority had in force
on chain (the TariffRegistry) at the start of the epoch's window, which is what an auditor checks
the metadata against; when none is published for that time the epoch is not closed (and so not
anchored): :class:`TariffUnavailableError` says so. While the chain is unreachable, epochs go on
closing with the tariffs read from it before (a tariff published during the outage for a time
before the epoch would be missed, and the audit would say so). Without one, the tariff the gateway recorded
for the epoch's first reading prices it (a chainless development setup).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from attestor.log_store import DbNodeStore
from chain.errors import ChainError
from chain.types import PublishedTariff
from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import decode_message
from protocol.epoch import AssetTotals, EpochMetadata, quarantine_root
from protocol.errors import AssetproofError
from protocol.merkle.log import MerkleLog
from store.status import EpochStatus
from store.tables import ASSET, DEVICE, EPOCH, QUARANTINE, READING, TARIFF


class TariffSource(Protocol):
    """Where published tariffs come from: :class:`chain.reader.ChainReader` (and so the writer)."""

    def tariff_in_force(self, time_s: int) -> PublishedTariff | None: ...

    def tariff_count(self) -> int: ...

    def tariff_at(self, index: int) -> PublishedTariff: ...


class TariffUnavailableError(AssetproofError):
    """No usable tariff is published on chain for an epoch's window: it cannot be priced, so it
    is neither closed nor anchored until the pricing authority publishes one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochPolicy:
    window_ms: int = 60_000
    max_leaves: int = 10_000


@dataclass(frozen=True, slots=True)
class ClosedEpoch:
    number: int
    metadata: EpochMetadata
    root: bytes


class EpochBuilder:
    def __init__(self, engine: Engine, *, policy: EpochPolicy, tariffs: TariffSource | None = None) -> None:
        self._engine = engine
        self._store = DbNodeStore(engine)
        self._policy = policy
        self._tariffs = tariffs
        self._known_tariffs: list[PublishedTariff] = []
        """Every tariff published on chain, as of the last time the chain answered."""

    def log(self) -> MerkleLog:
        """A fresh view of the log (it reloads its frontier from the database)."""
        return MerkleLog(self._store)

    def append_pending(self, *, limit: int = 5_000) -> int:
        """Give up to ``limit`` unlogged readings their log indexes; return how many."""
        with self._engine.begin() as conn, self._store.bound(conn):
            rows = conn.execute(
                select(READING.c.id, READING.c.leaf_hash)
                .where(READING.c.log_index.is_(None))
                .order_by(READING.c.id)
                .limit(limit)
            ).all()
            if not rows:
                return 0
            log = MerkleLog(self._store)
            start = log.size
            log.extend_hashes(bytes(r.leaf_hash) for r in rows)
            conn.execute(
                update(READING).where(READING.c.id == bindparam("b_id")).values(log_index=bindparam("b_index")),
                [{"b_id": r.id, "b_index": start + i} for i, r in enumerate(rows)],
            )
            return len(rows)

    def close_due_epoch(self, *, now_ms: int) -> ClosedEpoch | None:
        """Close the next epoch if its window is over or it is full; ``None`` if not due or
        empty (an epoch needs at least one new leaf)."""
        with self._engine.begin() as conn, self._store.bound(conn):
            last = conn.execute(select(EPOCH).order_by(EPOCH.c.number.desc()).limit(1)).first()
            number = 0 if last is None else last.number + 1
            leaves_from = 0 if last is None else last.leaves_to
            size = MerkleLog(self._store).size
            if size <= leaves_from:
                return None
            start_ms = last.end_ms if last is not None else self._first_stored_ms(conn)
            full = size - leaves_from >= self._policy.max_leaves
            if not full and now_ms - start_ms < self._policy.window_ms:
                return None
            leaves_to = self._cut_at_tariff_change(conn, leaves_from, min(size, leaves_from + self._policy.max_leaves))
            return self._close(
                conn, number=number, start_ms=start_ms, end_ms=now_ms, leaves_from=leaves_from, leaves_to=leaves_to
            )

    # --- steps ----------------------------------------------------------------------------------

    def _first_stored_ms(self, conn: Connection) -> int:
        return int(conn.execute(select(func.min(READING.c.stored_ms)).where(READING.c.log_index == 0)).scalar() or 0)

    def _cut_at_tariff_change(self, conn: Connection, start: int, end: int) -> int:
        first = conn.execute(select(READING.c.tariff_id).where(READING.c.log_index == start)).scalar_one()
        change = conn.execute(
            select(func.min(READING.c.log_index)).where(
                READING.c.log_index >= start, READING.c.log_index < end, READING.c.tariff_id != first
            )
        ).scalar()
        return int(change) if change is not None else end

    def _close(
        self, conn: Connection, *, number: int, start_ms: int, end_ms: int, leaves_from: int, leaves_to: int
    ) -> ClosedEpoch:
        rows = conn.execute(
            select(READING.c.raw, READING.c.tariff_id, DEVICE.c.asset)
            .join(DEVICE, DEVICE.c.id == READING.c.device_id)
            .where(READING.c.log_index >= leaves_from, READING.c.log_index < leaves_to)
            .order_by(READING.c.log_index)
        ).all()
        tariff = self._tariff(conn, number=number, start_ms=start_ms, first_tariff_id=rows[0].tariff_id)
        # Every asset known at the close (registered in the database, with or without readings
        # yet) is in the totals, zero when silent, so the assets tree
        # (protocol.asset_totals) cannot hide an asset's epoch by leaving it out.
        totals: dict[str, AssetTotals] = {
            asset: AssetTotals() for asset in conn.execute(select(ASSET.c.name)).scalars()
        }
        for row in rows:
            body = decode_message(bytes(row.raw)).body
            flow = reading_cash_flow(body, tariff)
            totals[row.asset] = totals.get(row.asset, AssetTotals()).plus(
                readings=1, energy_wh=body.metrics["energy_wh"], revenue=flow.revenue, cost=flow.cost
            )
        quarantined = conn.execute(
            select(QUARANTINE.c.id, QUARANTINE.c.raw_sha256)
            .where(QUARANTINE.c.epoch.is_(None), QUARANTINE.c.received_ms < end_ms)
            .order_by(QUARANTINE.c.id)
        ).all()
        metadata = EpochMetadata(
            epoch=number,
            start_ms=start_ms,
            end_ms=end_ms,
            leaves_from=leaves_from,
            leaves_to=leaves_to,
            tariff=tariff,
            assets=totals,
            quarantine_count=len(quarantined),
            quarantine_root=quarantine_root([bytes(q.raw_sha256) for q in quarantined]),
        )
        root = MerkleLog(self._store).root(leaves_to)
        if quarantined:
            conn.execute(
                update(QUARANTINE).where(QUARANTINE.c.id == bindparam("b_id")).values(epoch=number),
                [{"b_id": q.id} for q in quarantined],
            )
        conn.execute(
            update(READING)
            .where(READING.c.log_index >= leaves_from, READING.c.log_index < leaves_to)
            .values(epoch=number)
        )
        conn.execute(
            EPOCH.insert().values(
                number=number,
                start_ms=start_ms,
                end_ms=end_ms,
                leaves_from=leaves_from,
                leaves_to=leaves_to,
                root=root,
                meta_hash=metadata.meta_hash,
                metadata_json=metadata.canonical_bytes(),
                status=EpochStatus.CLOSED,
                closed_ms=end_ms,
            )
        )
        return ClosedEpoch(number, metadata, root)

    def _tariff(self, conn: Connection, *, number: int, start_ms: int, first_tariff_id: str) -> Tariff:
        """The tariff that prices epoch ``number``: the one in force on chain at its window's start
        (``start_ms``), or without a chain the one the gateway recorded for its first reading."""
        if self._tariffs is None:
            return Tariff.from_json(
                conn.execute(select(TARIFF.c.body).where(TARIFF.c.id == first_tariff_id)).scalar_one()
            )
        at_s = start_ms // 1000
        try:
            published = self._tariffs.tariff_in_force(at_s)
            known = self._known_tariffs
            known.extend(self._tariffs.tariff_at(i) for i in range(len(known), self._tariffs.tariff_count()))
        except ChainError:
            if not self._known_tariffs:
                raise
            in_force = [t for t in self._known_tariffs if t.effective_from <= at_s]
            published = in_force[-1] if in_force else None
        if published is None:
            raise TariffUnavailableError(
                f"epoch {number} cannot be priced: the pricing authority has no tariff in force on chain at its"
                f" window's start ({at_s}); publish one (effective at or before it): assetproof chain tariff publish"
            )
        try:
            return published.tariff
        except ChainError as exc:
            raise TariffUnavailableError(f"epoch {number} cannot be priced: {exc}") from None


def metadata_of(row: Any) -> EpochMetadata:
    """The metadata stored with an epoch row."""
    return EpochMetadata.from_json(json.loads(bytes(row.metadata_json)))
