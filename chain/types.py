"""The values the chain package hands out: receipts, checkpoints, events, device keys, verdicts.

Byte values are ``bytes`` and numbers ``int``; nothing here talks to a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from protocol.signing import Algorithm

__all__ = [
    "KEY_ENDS",
    "ONCHAIN_REASONS",
    "AnchorReceipt",
    "AnchoredEvent",
    "Checkpoint",
    "ContractName",
    "DeviceInfo",
    "DeviceRegistration",
    "KeyEnd",
    "KeyRecord",
    "OnchainReason",
    "OnchainVerdict",
    "RegisteredDevice",
    "TxReceipt",
    "checkpoint_commitment",
]

ContractName = Literal["AnchorRegistry", "DeviceRegistry", "ReadingVerifier"]


def checkpoint_commitment(
    *, epoch: int, tree_size: int, root: bytes, meta_hash: bytes, block_number: int, timestamp: int
) -> bytes:
    """The AnchorRegistry's 24-byte commitment to a checkpoint: the first 24 bytes of
    ``keccak256(abi.encode(epoch, treeSize, root, metaHash, blockNumber, timestamp))``."""
    encoded = abi_encode(
        ["uint64", "uint64", "bytes32", "bytes32", "uint64", "uint64"],
        [epoch, tree_size, root, meta_hash, block_number, timestamp],
    )
    return keccak(encoded)[:24]


@dataclass(frozen=True, slots=True)
class TxReceipt:
    tx_hash: bytes
    block_number: int
    gas_used: int


AnchorReceipt = TxReceipt


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    epoch: int
    tree_size: int
    root: bytes
    meta_hash: bytes
    block_number: int
    timestamp: int

    def commitment(self) -> bytes:
        """What the AnchorRegistry stores for it: :func:`checkpoint_commitment`."""
        return checkpoint_commitment(
            epoch=self.epoch,
            tree_size=self.tree_size,
            root=self.root,
            meta_hash=self.meta_hash,
            block_number=self.block_number,
            timestamp=self.timestamp,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchoredEvent:
    epoch: int
    tree_size: int
    root: bytes
    meta_hash: bytes
    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegistration:
    device_id: str
    asset: str
    alg: str
    public_key: bytes
    """Protocol form: ed25519 32 bytes; es256 65-byte (or 33-byte) SEC1."""


class KeyEnd(StrEnum):
    ACTIVE = "active"
    ROTATED = "rotated"
    REVOKED = "revoked"


KEY_ENDS: Final = (KeyEnd.ACTIVE, KeyEnd.ROTATED, KeyEnd.REVOKED)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    index: int
    alg: Algorithm
    public_key: bytes
    """Protocol form (es256: 65-byte uncompressed SEC1)."""
    from_block: int
    from_time: int
    until_block: int | None
    """Exclusive; None while the key is in force."""
    until_time: int | None
    end: KeyEnd

    def valid_at(self, timestamp: int) -> bool:
        """Whether the key was in force at block time ``timestamp`` (seconds)."""
        return self.from_time <= timestamp and (self.until_time is None or timestamp < self.until_time)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredDevice:
    """A ``DeviceRegistered`` event: the chain knows a device only by its id's hash."""

    device_hash: bytes
    asset_id: bytes
    block_number: int
    revoked_block: int | None = None
    """The block of its ``DeviceRevoked`` event up to the same block, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    device_id: bytes
    asset_id: bytes
    alg: Algorithm
    key_count: int
    revoked: bool
    revoked_block: int | None
    revoked_time: int | None


class OnchainReason(StrEnum):
    """What the ReadingVerifier said of a reading: ``valid``, or the first check that failed
    (they run in this order). Its ``Status`` codes 0-9, in the same order."""

    VALID = "valid"
    UNKNOWN_EPOCH = "unknown_epoch"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    INCLUSION = "inclusion"
    MALFORMED = "malformed"
    UNSUPPORTED_ALG = "unsupported_alg"
    DEVICE_MISMATCH = "device_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    KEY_NOT_VALID = "key_not_valid"
    SIGNATURE = "signature"


ONCHAIN_REASONS: Final = tuple(OnchainReason)
_ONCHAIN_MESSAGES: Final[dict[OnchainReason, str]] = {
    OnchainReason.VALID: "the reading is genuine: anchored, included, signed by the device's key valid at its time",
    OnchainReason.UNKNOWN_EPOCH: "no checkpoint is anchored for this epoch",
    OnchainReason.CHECKPOINT_MISMATCH: "the checkpoint is not the one anchored for its epoch",
    OnchainReason.INCLUSION: "the reading is not included in the checkpoint's tree at this index"
    " (or the proof is for another tree size)",
    OnchainReason.MALFORMED: "the message bytes are not a canonical es256 message",
    OnchainReason.UNSUPPORTED_ALG: "ed25519 readings are not verifiable on chain (the EVM has no Ed25519"
    " precompile): verify them off chain",
    OnchainReason.DEVICE_MISMATCH: "the message is another device's than the one named",
    OnchainReason.UNKNOWN_DEVICE: "the device is not registered on chain",
    OnchainReason.KEY_NOT_VALID: "no key of the device was valid at the reading's time, or it is signed with a"
    " key of the device that was not valid then",
    OnchainReason.SIGNATURE: "the signature does not verify under any key of the device",
}


@dataclass(frozen=True, slots=True)
class OnchainVerdict:
    """The ReadingVerifier's answer on one reading (:meth:`chain.reader.ChainReader.verify_reading_onchain`)."""

    valid: bool
    reason: OnchainReason
    """``valid``, or the first check that failed."""

    @property
    def message(self) -> str:
        """The reason in a sentence."""
        return _ONCHAIN_MESSAGES[self.reason]
