"""Anchoring closed epochs on chain, crash-safe.

An epoch row moves ``closed`` → ``sent`` (the transaction hash is committed before waiting) →
``anchored`` (block and gas recorded). Every step first asks the chain, which is the authority:

- killed before sending: the epoch is still ``closed``; it is sent on restart;
- killed after sending, before the receipt: ``sent`` with its hash; the restart waits for that
  receipt, and if the transaction was lost it finds the epoch missing on chain and sends again;
- killed after the receipt, before the database update: the chain already holds the epoch;
  the restart sees it, checks it is this checkpoint, and only records it.

An epoch is therefore never anchored twice (the contract also refuses any epoch number but the
next), and a checkpoint on chain that differs from the database's stops the attestor: that is a
rewritten history, for a person to look at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, select, update

from attestor.epochs import metadata_of
from attestor.log_store import DbNodeStore
from chain.errors import ChainError, ConfirmationTimeoutError
from chain.writer import ChainClient
from config.clock import wall_ms
from protocol.errors import AssetproofError
from protocol.merkle.log import MerkleLog
from store.cashflow import record_attested
from store.status import EpochStatus
from store.tables import EPOCH

log = logging.getLogger("assetproof.attestor")


class ReconcileError(AssetproofError):
    """The chain and the database disagree about a checkpoint: history was rewritten somewhere."""


@dataclass(frozen=True, slots=True)
class Anchored:
    epoch: int
    tx_hash: bytes | None
    block_number: int
    block_timestamp: int
    gas_used: int | None
    recovered: bool  # found already on chain (a restart after the receipt)


class Anchorer:
    def __init__(self, engine: Engine, chain: ChainClient, *, receipt_timeout_s: float = 30.0) -> None:
        self._engine = engine
        self._chain = chain
        self._receipt_timeout_s = receipt_timeout_s
        self._store = DbNodeStore(engine)

    def anchor_next(self) -> Anchored | None:
        """Anchor the oldest epoch not anchored yet, if any."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(EPOCH).where(EPOCH.c.status != EpochStatus.ANCHORED).order_by(EPOCH.c.number).limit(1)
            ).first()
            previous = (
                conn.execute(select(EPOCH).where(EPOCH.c.number == row.number - 1)).first()
                if row is not None and row.number > 0
                else None
            )
        if row is None:
            return None
        if self._chain.epoch_count() > row.number:
            return self._record_existing(row)
        if row.status == EpochStatus.SENT and row.tx_hash is not None:
            try:
                receipt = self._chain.wait_anchor(bytes(row.tx_hash), timeout=self._receipt_timeout_s)
                return self._mark(row.number, bytes(row.tx_hash), receipt.block_number, receipt.gas_used)
            except ConfirmationTimeoutError:
                if self._chain.epoch_count() > row.number:
                    return self._record_existing(row)
                log.warning("anchor of epoch %d was lost (%s): sending it again", row.number, bytes(row.tx_hash).hex())
        if previous is not None and previous.status != EpochStatus.ANCHORED:
            raise ReconcileError(f"epoch {row.number - 1} is not anchored but {row.number} is next")
        size1 = 0 if previous is None else previous.leaves_to
        proof = MerkleLog(self._store).consistency_proof(size1, row.leaves_to)
        tx_hash = self._chain.send_anchor(
            epoch=row.number,
            tree_size=row.leaves_to,
            root=bytes(row.root),
            meta_hash=bytes(row.meta_hash),
            assets_root=metadata_of(row).assets_root,
            proof=proof,
        )
        with self._engine.begin() as conn:
            conn.execute(
                update(EPOCH).where(EPOCH.c.number == row.number).values(status=EpochStatus.SENT, tx_hash=tx_hash)
            )
        receipt = self._chain.wait_anchor(tx_hash, timeout=self._receipt_timeout_s)
        return self._mark(row.number, tx_hash, receipt.block_number, receipt.gas_used)

    def _record_existing(self, row: Row[Any]) -> Anchored:
        number: int = row.number
        onchain = self._chain.checkpoint(number)
        expected = (row.leaves_to, bytes(row.root), bytes(row.meta_hash), metadata_of(row).assets_root)
        if (onchain.tree_size, onchain.root, onchain.meta_hash, onchain.assets_root) != expected:
            raise ReconcileError(
                f"epoch {number} on chain is (size {onchain.tree_size}, root {onchain.root.hex()}) but the database"
                f" has (size {expected[0]}, root {expected[1].hex()})"
            )
        tx_hash = bytes(row.tx_hash) if row.tx_hash is not None else None
        log.info("epoch %d was already anchored in block %d: recorded", number, onchain.block_number)
        return self._mark(number, tx_hash, onchain.block_number, None, recovered=True, timestamp=onchain.timestamp)

    def _mark(
        self,
        number: int,
        tx_hash: bytes | None,
        block: int,
        gas: int | None,
        *,
        recovered: bool = False,
        timestamp: int | None = None,
    ) -> Anchored:
        # The block's time is part of the chain's commitment to the checkpoint: proof bundles
        # carry it so an auditor can check the checkpoint in one call.
        if timestamp is None:
            timestamp = self._chain.block_timestamp(block)
        with self._engine.begin() as conn:
            marked = conn.execute(
                update(EPOCH)
                .where(EPOCH.c.number == number, EPOCH.c.status != EpochStatus.ANCHORED)
                .values(
                    status=EpochStatus.ANCHORED,
                    tx_hash=tx_hash,
                    block_number=block,
                    block_timestamp=timestamp,
                    gas_used=gas,
                    anchored_ms=wall_ms(),
                )
            )
            # The attested sums move with the status, in one transaction, and only on the
            # transition: adding an epoch's readings twice would overstate attested cash flow.
            if marked.rowcount == 1:
                record_attested(conn, epoch=number)
        return Anchored(number, tx_hash, block, timestamp, gas, recovered)


__all__ = ["Anchored", "Anchorer", "ChainError", "ReconcileError"]
