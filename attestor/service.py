"""The attestor loop: lead, append, close epochs, anchor; keep going when the chain is down.

Only the leader works (:mod:`attestor.leader`). Appending readings to the log needs only the
database, so it goes on while the chain is unreachable; closing an epoch needs the tariff the
pricing authority published on chain for its window (:mod:`attestor.epochs`), so it waits, as
anchoring does, and both catch up, oldest epoch first, when the chain returns or the tariff is
published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from attestor.anchoring import Anchorer
from attestor.epochs import ClosedEpoch, EpochBuilder, EpochPolicy, TariffUnavailableError
from attestor.leader import LeaderLock
from attestor.metrics import (
    ANCHOR_SECONDS,
    CHAIN_ERRORS,
    EPOCHS_ANCHORED,
    EPOCHS_CLOSED,
    GAS_USED,
    LAST_ANCHORED_EPOCH,
    LEADING,
    LOG_SIZE,
    PENDING_EPOCHS,
    READINGS_APPENDED,
)
from chain.errors import ChainError, ContractRevert
from chain.writer import ChainClient
from config.clock import wall_ms
from store.status import EpochStatus
from store.tables import EPOCH

log = logging.getLogger("assetproof.attestor")


@dataclass
class AttestorStats:
    appended: int = 0
    closed: int = 0
    anchored: int = 0


class Attestor:
    def __init__(
        self,
        engine: Engine,
        chain: ChainClient,
        *,
        policy: EpochPolicy,
        clock_ms: Callable[[], int] = wall_ms,
        tick_s: float = 0.2,
        receipt_timeout_s: float = 30.0,
    ) -> None:
        self._engine = engine
        # The chain's tariffs price every epoch: the metadata must carry the published one.
        self._builder = EpochBuilder(engine, policy=policy, tariffs=chain)
        self._anchorer = Anchorer(engine, chain, receipt_timeout_s=receipt_timeout_s)
        self._clock_ms = clock_ms
        self._tick_s = tick_s
        self.stats = AttestorStats()

    def step(self) -> None:
        """One round of database work: append everything pending, close what is due."""
        while appended := self._builder.append_pending():
            self.stats.appended += appended
            READINGS_APPENDED.inc(appended)
        while closed := self._close_due():
            self.stats.closed += 1
            EPOCHS_CLOSED.inc()
            log.info(
                "closed epoch %d: leaves %d..%d, %d quarantined",
                closed.number,
                closed.metadata.leaves_from,
                closed.metadata.leaves_to - 1,
                closed.metadata.quarantine_count,
            )
        LOG_SIZE.set(self._builder.log().size)
        self._count_pending()

    def _close_due(self) -> ClosedEpoch | None:
        """The next due epoch, closed; None when none is due or it cannot be priced yet."""
        try:
            return self._builder.close_due_epoch(now_ms=self._clock_ms())
        except TariffUnavailableError as exc:
            log.error("%s", exc)
        except ContractRevert:
            raise
        except ChainError as exc:
            CHAIN_ERRORS.labels(kind="unavailable").inc()
            log.warning("cannot read the tariff on chain (%s): the epoch closes when the chain answers", exc)
        return None

    def _count_pending(self) -> None:
        with self._engine.connect() as conn:
            pending = conn.execute(
                select(func.count()).select_from(EPOCH).where(EPOCH.c.status != EpochStatus.ANCHORED)
            )
            PENDING_EPOCHS.set(pending.scalar_one())

    def anchor_all(self) -> None:
        while True:
            started = time.perf_counter()
            anchored = self._anchorer.anchor_next()
            if anchored is None:
                break
            ANCHOR_SECONDS.observe(time.perf_counter() - started)
            self.stats.anchored += 1
            EPOCHS_ANCHORED.inc()
            LAST_ANCHORED_EPOCH.set(anchored.epoch)
            if anchored.gas_used:
                GAS_USED.inc(anchored.gas_used)
            self._count_pending()
            log.info("anchored epoch %d in block %d (gas %s)", anchored.epoch, anchored.block_number, anchored.gas_used)

    def run(self, stop: threading.Event) -> AttestorStats:
        with LeaderLock(self._engine) as lock:
            log.info("waiting to lead")
            if not lock.acquire(stop):
                return self.stats
            log.info("leading")
            LEADING.set(1)
            backoff = 0.5
            next_chain_try = 0.0
            try:
                while not stop.is_set():
                    self.step()
                    if time.monotonic() >= next_chain_try:
                        try:
                            self.anchor_all()
                            backoff = 0.5
                        except ContractRevert:
                            CHAIN_ERRORS.labels(kind="revert").inc()
                            raise  # the chain refused a checkpoint: a person must look
                        except ChainError as exc:
                            CHAIN_ERRORS.labels(kind="unavailable").inc()
                            log.warning("chain unavailable (%s): retrying in %.1f s", exc, backoff)
                            next_chain_try = time.monotonic() + backoff
                            backoff = min(backoff * 2, 30.0)
                    stop.wait(self._tick_s)
            finally:
                LEADING.set(0)
        return self.stats
