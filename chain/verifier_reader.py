"""Asking the ReadingVerifier whether one reading is genuine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chain._args import checkpoint_args, require_hashes
from chain.anchor_reader import AnchorReader
from chain.errors import ChainError, CheckpointMismatchError, ContractRevert, P256UnavailableError
from chain.reverts import edge
from chain.types import ONCHAIN_REASONS, Checkpoint, OnchainReason, OnchainVerdict

__all__ = ["VerifierReader"]


class VerifierReader(AnchorReader):
    """One reading verified by the chain itself (P-256 precompile), as a verdict."""

    def p256_available(self) -> bool:
        """Whether the chain's P-256 precompile (0x100) verifies a known-good signature: asked
        once, through the ReadingVerifier's ``p256Available``, then remembered by this reader.
        False on eth-tester."""
        if self._p256 is None:
            self._p256 = bool(self._call("ReadingVerifier", "p256Available"))
        return self._p256

    def verify_reading_onchain(
        self,
        *,
        message: bytes,
        device_id: str,
        leaf_index: int,
        tree_size: int,
        proof: Sequence[bytes],
        checkpoint: Checkpoint,
        previous: Checkpoint | None = None,
    ) -> OnchainVerdict:
        """Ask the chain itself whether a reading is genuine: one ``eth_call`` of the
        ReadingVerifier's ``verifyReading`` (after this reader's one-time precompile probe).

        It checks, in order: ``checkpoint`` is the one anchored for its epoch; the leaf
        SHA-256(0x00 || ``message``) is at ``leaf_index`` under its root, with ``tree_size`` the
        checkpoint's; ``previous`` (epoch - 1's checkpoint, as anchored) ends before the leaf, so
        ``checkpoint`` is the first to include it; ``message`` is a canonical es256 message of
        ``device_id``, of the kind and window registered for it; it is signed by a key of the
        device (P-256 precompile) that the DeviceRegistry accepts for a reading of that date
        anchored at the checkpoint's block time (``acceptsReading``). The verdict names the first
        check that failed. ``previous`` is read from the chain (verified against its commitment)
        when not given; it is not used for epoch 0. Ed25519
        readings get the verdict ``unsupported_alg`` (there is no Ed25519 precompile): a
        verdict, not an error, because the answer is about the reading, not the chain.

        Raises :class:`P256UnavailableError` on a chain without the P-256 precompile (such as
        eth-tester: its answers would make every signature look forged),
        :class:`NotDeployedError` when the deployment has no ReadingVerifier, and
        ``ValueError`` for arguments that cannot be encoded.
        """
        args = self._verify_args(
            message=message,
            device_id=device_id,
            leaf_index=leaf_index,
            tree_size=tree_size,
            proof=proof,
            checkpoint=checkpoint,
            previous=previous,
        )
        try:
            status = int(self._call("ReadingVerifier", "verifyReading", *args))
        except ContractRevert as revert:
            if revert.name == "P256PrecompileMissing":
                raise P256UnavailableError() from revert
            raise
        if not 0 <= status < len(ONCHAIN_REASONS):
            raise ChainError(f"the ReadingVerifier answered an unknown status {status}")
        reason = ONCHAIN_REASONS[status]
        return OnchainVerdict(valid=reason is OnchainReason.VALID, reason=reason)

    def reading_verification_gas(
        self,
        *,
        message: bytes,
        device_id: str,
        leaf_index: int,
        tree_size: int,
        proof: Sequence[bytes],
        checkpoint: Checkpoint,
        previous: Checkpoint | None = None,
    ) -> int:
        """The gas of ``isValidReading`` on these arguments (``estimate_gas`` of the call, the
        intrinsic 21,000 and the calldata included): what a contract or a transaction would pay
        for the check that :meth:`verify_reading_onchain` makes for free."""
        args = self._verify_args(
            message=message,
            device_id=device_id,
            leaf_index=leaf_index,
            tree_size=tree_size,
            proof=proof,
            checkpoint=checkpoint,
            previous=previous,
        )
        with edge():
            return int(self._contract("ReadingVerifier").functions.isValidReading(*args).estimate_gas())

    def _verify_args(
        self,
        *,
        message: bytes,
        device_id: str,
        leaf_index: int,
        tree_size: int,
        proof: Sequence[bytes],
        checkpoint: Checkpoint,
        previous: Checkpoint | None,
    ) -> tuple[Any, ...]:
        if not isinstance(message, bytes):
            raise ValueError("message must be bytes")
        if not isinstance(device_id, str):
            raise ValueError("device_id must be a string")
        for name, value in (("leaf_index", leaf_index), ("tree_size", tree_size)):
            if type(value) is not int or not 0 <= value < 2**64:
                raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
        require_hashes(root=checkpoint.root, meta_hash=checkpoint.meta_hash, proof=proof)
        self._contract("ReadingVerifier")
        if not self.p256_available():
            raise P256UnavailableError()
        return (
            message,
            device_id,
            leaf_index,
            tree_size,
            list(proof),
            checkpoint_args(checkpoint),
            self._previous_args(checkpoint, previous),
        )

    def _previous_args(self, checkpoint: Checkpoint, previous: Checkpoint | None) -> tuple[Any, ...]:
        if checkpoint.epoch == 0:
            return (0, 0, bytes(32), bytes(32), bytes(32), 0, 0)
        if previous is None:
            try:
                previous = self.checkpoint(checkpoint.epoch - 1)
            except (ContractRevert, CheckpointMismatchError):
                # Nothing anchored before a checkpoint that is itself not anchored (or not read
                # back): the verifier's answer on the checkpoint says what is wrong.
                return (checkpoint.epoch - 1, 0, bytes(32), bytes(32), bytes(32), 0, 0)
        return checkpoint_args(previous)
