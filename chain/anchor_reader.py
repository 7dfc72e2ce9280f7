"""Reading the AnchorRegistry: checkpoints, their events, and the contract's own checks."""

from __future__ import annotations

from collections.abc import Sequence

from chain._args import as_bytes, checkpoint_args
from chain._contracts import LOG_CHUNK, ContractAccess
from chain.errors import CheckpointMismatchError, InclusionProofError
from chain.reverts import edge
from chain.types import AnchoredEvent, Checkpoint
from protocol.asset_totals import AssetLeaf, AssetTotalsProof

__all__ = ["AnchorReader"]


class AnchorReader(ContractAccess):
    """The anchored checkpoints, each checked against the contract's commitment."""

    def epoch_count(self) -> int:
        return int(self._call("AnchorRegistry", "count"))

    def latest_checkpoint(self) -> Checkpoint | None:
        """The last anchored checkpoint, or None before the first anchor.

        The contract's ``latest()`` gives the epoch count and the last epoch's block; the
        fields come from that block's ``Anchored`` event and header, checked against the
        stored commitment like :meth:`checkpoint` does.
        """
        count, block, _ = self._call("AnchorRegistry", "latest")
        if count == 0:
            return None
        return self._verified_checkpoint(count - 1, block)

    def checkpoint(self, epoch: int) -> Checkpoint:
        """The checkpoint of ``epoch``; ``ContractRevert('UnknownEpoch')`` if not anchored.

        The contract keeps per epoch only the block it was anchored in and a commitment to all
        the fields: they are read from the ``Anchored`` event in that block and the block's
        time, and returned only if the contract's ``verifyCheckpoint`` accepts them
        (:class:`CheckpointMismatchError` otherwise: the node's logs are not the chain's).
        """
        return self._verified_checkpoint(epoch, self.epoch_block(epoch))

    def epoch_block(self, epoch: int) -> int:
        """The block in which ``epoch`` was anchored; ``ContractRevert('UnknownEpoch')`` if none."""
        return int(self._call("AnchorRegistry", "epochBlock", epoch))

    def commitment(self, epoch: int) -> bytes:
        """The contract's 24-byte commitment to the checkpoint of ``epoch``
        (:func:`checkpoint_commitment`); ``ContractRevert('UnknownEpoch')`` if not anchored."""
        return as_bytes(self._call("AnchorRegistry", "commitment", epoch))

    def verify_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Return if every field of ``checkpoint`` is what the contract anchored for its epoch
        (one call); raise :class:`CheckpointMismatchError` if one is not, and
        ``ContractRevert('UnknownEpoch')`` if the epoch is not anchored."""
        if not self._call("AnchorRegistry", "verifyCheckpoint", *checkpoint_args(checkpoint)):
            raise CheckpointMismatchError(
                f"the checkpoint of epoch {checkpoint.epoch} is not the one the contract anchored"
            )

    def verify_inclusion(
        self,
        *,
        index: int,
        leaf_hash: bytes,
        proof: Sequence[bytes],
        checkpoint: Checkpoint | None = None,
        epoch: int | None = None,
    ) -> None:
        """The contract's own RFC 9162 inclusion check of the leaf ``leaf_hash`` at ``index``.

        Given ``checkpoint`` (all its fields, e.g. from a proof bundle), this is one call: the
        contract first checks the checkpoint against its commitment and reverts with
        ``ContractRevert('CheckpointMismatch')`` if any field differs. Given ``epoch`` instead,
        the checkpoint is read (and verified) with :meth:`checkpoint` first. Either way
        ``ContractRevert('UnknownEpoch')`` for an epoch not anchored; :class:`InclusionProofError`
        for a proof that does not verify.
        """
        if checkpoint is None:
            if epoch is None:
                raise ValueError("give checkpoint or epoch")
            checkpoint = self.checkpoint(epoch)
        elif epoch is not None:
            raise ValueError("give checkpoint or epoch, not both")
        args = (*checkpoint_args(checkpoint), index, leaf_hash, list(proof))
        if not self._call("AnchorRegistry", "verifyInclusion", *args):
            raise InclusionProofError(
                f"the contract refuses the inclusion proof of leaf {index} in epoch {checkpoint.epoch}"
            )

    def verify_asset_totals(self, *, checkpoint: Checkpoint, totals: AssetTotalsProof) -> AssetLeaf:
        """The contract's own check (``verifyAssetTotals``, one ``eth_call``) that ``totals`` (an
        asset's leaf and its proof in the assets tree) is committed by the anchored
        ``checkpoint``; the totals as the contract decoded them. ``ContractRevert`` named
        ``UnknownEpoch``, ``CheckpointMismatch``, ``TotalsNotIncluded``, ``TotalsForAnotherEpoch``
        or ``MalformedTotals`` when the contract refuses."""
        for element in totals.proof:
            if not isinstance(element, bytes) or len(element) != 32:
                raise ValueError("proof element must be 32 bytes")
        got = self._call(
            "AnchorRegistry",
            "verifyAssetTotals",
            checkpoint_args(checkpoint),
            totals.encoded,
            totals.index,
            totals.count,
            list(totals.proof),
        )
        key, epoch, readings, energy_wh, revenue, cost, net, currency = got
        return AssetLeaf(
            asset_key=as_bytes(key),
            epoch=epoch,
            readings=readings,
            energy_wh=energy_wh,
            revenue=revenue,
            cost=cost,
            net=net,
            currency=as_bytes(currency).decode("ascii"),
        )

    def _verified_checkpoint(self, epoch: int, block: int) -> Checkpoint:
        candidates = [e for e in self._anchored_in_block(block) if e.epoch == epoch]
        if not candidates:
            raise CheckpointMismatchError(f"no Anchored event for epoch {epoch} in block {block}")
        for event in candidates:
            found = Checkpoint(
                epoch=epoch,
                tree_size=event.tree_size,
                root=event.root,
                meta_hash=event.meta_hash,
                assets_root=event.assets_root,
                block_number=event.block_number,
                timestamp=self.block_timestamp(event.block_number),
            )
            try:
                self.verify_checkpoint(found)
            except CheckpointMismatchError:
                continue
            return found
        raise CheckpointMismatchError(
            f"the Anchored event of epoch {epoch} in block {block} does not match the contract's commitment"
        )

    def _anchored_in_block(self, block: int) -> list[AnchoredEvent]:
        return self.anchored_events(from_block=block, to_block=block)

    def anchored_events(self, *, from_block: int, to_block: int | None = None) -> list[AnchoredEvent]:
        """``Anchored`` events in ``from_block..to_block`` (inclusive; default: the latest
        block), fetched in bounded ranges. As the node reports them: check a checkpoint taken
        from them with :meth:`verify_checkpoint` (:meth:`checkpoint` does)."""
        event = self._contract("AnchorRegistry").events.Anchored
        last = self.block_number() if to_block is None else to_block
        found: list[AnchoredEvent] = []
        for start in range(from_block, last + 1, LOG_CHUNK):
            end = min(last, start + LOG_CHUNK - 1)
            with edge():
                logs = event.get_logs(from_block=start, to_block=end)
            found.extend(
                AnchoredEvent(
                    epoch=log["args"]["epoch"],
                    tree_size=log["args"]["treeSize"],
                    root=as_bytes(log["args"]["root"]),
                    meta_hash=as_bytes(log["args"]["metaHash"]),
                    assets_root=as_bytes(log["args"]["assetsRoot"]),
                    block_number=log["blockNumber"],
                    tx_hash=as_bytes(log["transactionHash"]),
                    log_index=log["logIndex"],
                )
                for log in logs
            )
        return found
