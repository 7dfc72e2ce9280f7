"""The attestor loop: lead, append, close epochs, anchor; keep going when the chain is down.

Only the leader works (:mod:`attestor.leader`). Appending readings to the log and closing epochs
need only the database, so they go on while the chain is unreachable; anchoring retries with
backoff and catches up, oldest epoch first, when the chain returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine

from attestor.anchoring import Anchorer
from attestor.epochs import EpochBuilder, EpochPolicy
from attestor.leader import LeaderLock
from chain.client import ChainClient
from chain.errors import ChainError, ContractRevert

log = logging.getLogger("assetproof.attestor")

EPOCHS_CLOSED = Counter("assetproof_attestor_epochs_closed_total", "Epochs closed")
EPOCHS_ANCHORED = Counter("assetproof_attestor_epochs_anchored_total", "Epochs anchored on chain")
GAS_USED = Counter("assetproof_attestor_gas_used_total", "Gas spent on anchors")
CHAIN_ERRORS = Counter("assetproof_attestor_chain_errors_total", "Chain calls that failed (retried)")
LOG_SIZE = Gauge("assetproof_attestor_log_size", "Leaves in the Merkle log")
PENDING_EPOCHS = Gauge("assetproof_attestor_epochs_pending", "Closed epochs not anchored yet")


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
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        tick_s: float = 0.2,
        receipt_timeout_s: float = 30.0,
    ) -> None:
        self._engine = engine
        self._builder = EpochBuilder(engine, policy=policy)
        self._anchorer = Anchorer(engine, chain, receipt_timeout_s=receipt_timeout_s)
        self._clock_ms = clock_ms
        self._tick_s = tick_s
        self.stats = AttestorStats()

    def step(self) -> None:
        """One round of database work: append everything pending, close what is due."""
        while appended := self._builder.append_pending():
            self.stats.appended += appended
        while closed := self._builder.close_due_epoch(now_ms=self._clock_ms()):
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

    def anchor_all(self) -> None:
        while anchored := self._anchorer.anchor_next():
            self.stats.anchored += 1
            EPOCHS_ANCHORED.inc()
            if anchored.gas_used:
                GAS_USED.inc(anchored.gas_used)
            log.info("anchored epoch %d in block %d (gas %s)", anchored.epoch, anchored.block_number, anchored.gas_used)

    def run(self, stop: threading.Event) -> AttestorStats:
        with LeaderLock(self._engine) as lock:
            log.info("waiting to lead")
            if not lock.acquire(stop):
                return self.stats
            log.info("leading")
            backoff = 0.5
            next_chain_try = 0.0
            while not stop.is_set():
                self.step()
                if time.monotonic() >= next_chain_try:
                    try:
                        self.anchor_all()
                        backoff = 0.5
                    except ContractRevert:
                        raise  # the chain refused a checkpoint: a person must look
                    except ChainError as exc:
                        CHAIN_ERRORS.inc()
                        log.warning("chain unavailable (%s): retrying in %.1f s", exc, backoff)
                        next_chain_try = time.monotonic() + backoff
                        backoff = min(backoff * 2, 30.0)
                stop.wait(self._tick_s)
        return self.stats
