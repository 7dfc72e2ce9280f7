"""The chain package's errors: one tree under :class:`ChainError` (itself an ``AssetproofError``).

A contract revert is decoded against the contracts' ABIs into :class:`ContractRevert`, whose
``name`` is the Solidity custom error (``"WrongEpoch"``, ``"NotRegistrar"``...) and ``arguments`` its
decoded arguments by name, with ``bytesN`` values as ``bytes``. Reverts that carry a string
(``Error(string)``) or a panic code decode to the names ``"Error"`` and ``"Panic"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.errors import AssetproofError

__all__ = [
    "ChainError",
    "ChainUnavailableError",
    "CheckpointMismatchError",
    "CompileError",
    "ConfirmationTimeoutError",
    "ContractRevert",
    "DeploymentError",
    "GovernorSplitError",
    "InclusionProofError",
    "InvalidTariffError",
    "NodeError",
    "NotDeployedError",
    "P256UnavailableError",
    "RegistrationConflictError",
    "TransactionFailedError",
]


class ChainError(AssetproofError):
    """Root of every error raised by :mod:`chain`."""


class ChainUnavailableError(ChainError):
    """The node did not answer (connection refused, timeout): retry later."""


class ContractRevert(ChainError):  # noqa: N818 - a revert is what it is
    """A contract call or transaction reverted; ``name`` and ``arguments`` say why.

    ``name`` is ``"unknown"`` (with the raw revert data in ``data``) when the data matches no
    error of the known contracts. ``tx_hash`` is set when a mined transaction reverted.
    """

    def __init__(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        data: bytes = b"",
        tx_hash: bytes | None = None,
    ) -> None:
        self.name = name
        self.arguments: dict[str, Any] = dict(arguments or {})
        self.data = data
        self.tx_hash = tx_hash
        shown = ", ".join(f"{key}={_show(value)}" for key, value in self.arguments.items())
        super().__init__(f"contract reverted with {name}({shown})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_revert, (self.name, self.arguments, self.data, self.tx_hash))


def _rebuild_revert(name: str, arguments: dict[str, Any], data: bytes, tx_hash: bytes | None) -> ContractRevert:
    return ContractRevert(name, arguments, data=data, tx_hash=tx_hash)


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else repr(value)


class CheckpointMismatchError(ChainError):
    """A checkpoint does not match the commitment the contract stores for its epoch. Read from
    the chain's ``Anchored`` event (or with the event missing): the node's logs cannot be trusted."""


class TransactionFailedError(ChainError):
    """A transaction was mined with status 0 and its revert could not be replayed."""

    def __init__(self, message: str, *, tx_hash: bytes) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class ConfirmationTimeoutError(ChainError):
    """No receipt, or not enough confirmations, within the time allowed."""


class CompileError(ChainError):
    """The Solidity compiler is missing or refused the sources."""


class NodeError(ChainError):
    """A local node (anvil) is missing, failed to start or died."""


class DeploymentError(ChainError):
    """A deployment file is unreadable, or does not match the chain or the artifacts."""


class NotDeployedError(DeploymentError):
    """The deployment has no such contract (e.g. a file written before the ReadingVerifier
    existed): deploy it, or check off chain."""


class P256UnavailableError(ChainError):
    """The chain has no P-256 verification precompile at 0x100 (EIP-7951 / RIP-7212), so no
    es256 signature can be checked on it (eth-tester, for one)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "this chain has no P-256 precompile (0x100): on-chain verification needs anvil or a chain with EIP-7951"
        )


class InclusionProofError(ChainError):
    """The AnchorRegistry refuses an inclusion proof: the leaf is not at that index under the
    checkpoint's root (or the proof is for another tree size)."""


class RegistrationConflictError(ChainError):
    """A device to register is already on chain with another key, asset or algorithm."""


class InvalidTariffError(ChainError):
    """A tariff published on chain is not usable: its bytes are not the canonical JSON of a valid
    tariff, or the node's event does not match the hash the contract keeps."""


class GovernorSplitError(ChainError):
    """The governed contracts of one deployment name different governors (a governor change
    executed on some of them only); ``governors`` maps each contract to its governor."""

    def __init__(self, governors: Mapping[Any, str]) -> None:
        self.governors = dict(governors)
        shown = ", ".join(f"{name} {account}" for name, account in self.governors.items())
        super().__init__(f"the contracts name different governors: {shown}")
