"""The values the chain package hands out: receipts, checkpoints, events, device keys, verdicts.

Byte values are ``bytes`` and numbers ``int``; nothing here talks to a node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from chain.errors import InvalidTariffError
from protocol.cashflow import Tariff
from protocol.envelope import DeviceKind
from protocol.key_validity import KeySpan
from protocol.signing import Algorithm

__all__ = [
    "GOVERNED_CONTRACTS",
    "KEY_ENDS",
    "MAX_WINDOW_S",
    "ONCHAIN_REASONS",
    "ROLE_CONTRACTS",
    "AnchorReceipt",
    "AnchoredEvent",
    "Checkpoint",
    "ContractName",
    "DeployParams",
    "DeviceInfo",
    "DeviceProfile",
    "DeviceRegisteredEvent",
    "DeviceRegistration",
    "DeviceRevokedEvent",
    "GovernedContract",
    "KeyEnd",
    "KeyRecord",
    "KeyRotatedEvent",
    "OnchainReason",
    "OnchainVerdict",
    "PendingRoleChange",
    "PublishedTariff",
    "RegisteredDevice",
    "RegistryEvent",
    "RegistryParams",
    "RoleEvent",
    "RoleEventKind",
    "RoleName",
    "Roles",
    "TxReceipt",
    "checkpoint_commitment",
]

ContractName = Literal["AnchorRegistry", "DeviceRegistry", "TariffRegistry", "ReadingVerifier"]
GovernedContract = Literal["AnchorRegistry", "DeviceRegistry", "TariffRegistry"]
"""The contracts with roles (``Governed``); the ReadingVerifier has none."""
GOVERNED_CONTRACTS: Final[tuple[GovernedContract, ...]] = ("AnchorRegistry", "DeviceRegistry", "TariffRegistry")

RoleName = Literal["governor", "attestor", "registrar", "pricing_authority"]
"""A deployment's roles (the same Literal as :data:`chain.ids.RoleName`)."""
ROLE_CONTRACTS: Final[dict[RoleName, tuple[GovernedContract, ...]]] = {
    "governor": GOVERNED_CONTRACTS,
    "attestor": ("AnchorRegistry",),
    "registrar": ("DeviceRegistry",),
    "pricing_authority": ("TariffRegistry",),
}
"""Which contracts hold each role (the governor is every governed contract's own)."""

MAX_WINDOW_S: Final = 86_400
"""The longest reporting window the DeviceRegistry accepts (one day)."""


def checkpoint_commitment(
    *,
    epoch: int,
    tree_size: int,
    root: bytes,
    meta_hash: bytes,
    assets_root: bytes,
    block_number: int,
    timestamp: int,
) -> bytes:
    """The AnchorRegistry's 24-byte commitment to a checkpoint: the first 24 bytes of
    ``keccak256(abi.encode(epoch, treeSize, root, metaHash, assetsRoot, blockNumber, timestamp))``."""
    encoded = abi_encode(
        ["uint64", "uint64", "bytes32", "bytes32", "bytes32", "uint64", "uint64"],
        [epoch, tree_size, root, meta_hash, assets_root, block_number, timestamp],
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
    assets_root: bytes
    """The root of the epoch's per-asset totals tree (:mod:`protocol.asset_totals`)."""
    block_number: int
    timestamp: int

    def commitment(self) -> bytes:
        """What the AnchorRegistry stores for it: :func:`checkpoint_commitment`."""
        return checkpoint_commitment(
            epoch=self.epoch,
            tree_size=self.tree_size,
            root=self.root,
            meta_hash=self.meta_hash,
            assets_root=self.assets_root,
            block_number=self.block_number,
            timestamp=self.timestamp,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchoredEvent:
    epoch: int
    tree_size: int
    root: bytes
    meta_hash: bytes
    assets_root: bytes
    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """What the registrar declares of a device, fixed at registration: the auditor judges the
    device's readings for plausibility against it, never against the operator's word."""

    kind: DeviceKind
    window_s: int
    """The reporting window in seconds: every reading's ``window_s`` must be this."""
    rated_power_w: int
    rated_hashrate_ghs: int
    """Miners only; 0 for every other kind."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, DeviceKind):
            raise ValueError(f"kind must be a DeviceKind, got {self.kind!r}")
        if type(self.window_s) is not int or not 1 <= self.window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be an integer in 1..{MAX_WINDOW_S}, got {self.window_s!r}")
        for name in ("rated_power_w", "rated_hashrate_ghs"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < 2**64:
                raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
        if self.rated_power_w == 0:
            raise ValueError("rated_power_w must be positive")
        if (self.kind is DeviceKind.MINER) != (self.rated_hashrate_ghs != 0):
            raise ValueError("rated_hashrate_ghs must be positive for a miner and 0 for any other kind")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegistration:
    """A device as the registrar puts it on chain. Every field is required: a profile the
    auditor will judge readings by must never be a silent default."""

    device_id: str
    asset: str
    alg: str
    public_key: bytes
    """Protocol form: ed25519 32 bytes; es256 65-byte (or 33-byte) SEC1."""
    kind: DeviceKind
    window_s: int
    rated_power_w: int
    rated_hashrate_ghs: int
    """Miners only; 0 for every other kind."""
    cert_hash: bytes
    """SHA-256 of the key's manufacturer certificate (DER), or ``b""`` when it has none."""

    def __post_init__(self) -> None:
        self.profile  # noqa: B018 - validates the profile fields
        if not isinstance(self.cert_hash, bytes) or len(self.cert_hash) not in (0, 32):
            raise ValueError("cert_hash must be 32 bytes, or b'' for none")

    @classmethod
    def from_rating(
        cls,
        *,
        device_id: str,
        asset: str,
        alg: str,
        public_key: bytes,
        kind: DeviceKind,
        rating: Mapping[str, Any],
        window_s: int,
        cert_hash: bytes,
    ) -> DeviceRegistration:
        """A registration from a device's nameplate as the keystore and the store hold it (the
        ``rating`` object of :mod:`protocol.plausibility`: ``rated_power_w`` for every kind,
        ``rated_hashrate_ghs`` for miners; other figures are not on chain)."""
        kind = DeviceKind(kind)
        try:
            power = rating["rated_power_w"]
            hashrate = rating["rated_hashrate_ghs"] if kind is DeviceKind.MINER else 0
        except KeyError as missing:
            raise ValueError(f"device {device_id}'s rating has no {missing.args[0]}") from None
        return cls(
            device_id=device_id,
            asset=asset,
            alg=alg,
            public_key=public_key,
            kind=kind,
            window_s=window_s,
            rated_power_w=power,
            rated_hashrate_ghs=hashrate,
            cert_hash=cert_hash,
        )

    @property
    def profile(self) -> DeviceProfile:
        return DeviceProfile(
            kind=self.kind,
            window_s=self.window_s,
            rated_power_w=self.rated_power_w,
            rated_hashrate_ghs=self.rated_hashrate_ghs,
        )


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
    device_revoked_time: int | None
    """When the device was revoked (None if it is not): it also cuts short the grace of a key
    rotated out before, so :attr:`span` needs it."""

    def valid_at(self, timestamp: int) -> bool:
        """Whether the key was in force at block time ``timestamp`` (seconds), with no grace."""
        return self.from_time <= timestamp and (self.until_time is None or timestamp < self.until_time)

    @property
    def span(self) -> KeySpan:
        """The key's life for :func:`protocol.key_validity.judge_key`."""
        return KeySpan(
            from_time=self.from_time,
            rotated_at=self.until_time if self.end is KeyEnd.ROTATED else None,
            revoked_at=self.device_revoked_time,
        )


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
    """What the ReadingVerifier said of a reading: ``valid``, or the first check that failed.
    Its ``Status`` codes 0-13, in the same order (codes 10-13 were appended later, so the order
    of the values is not the order of the checks: see ``ReadingVerifier.sol``)."""

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
    NOT_FIRST_CHECKPOINT = "not_first_checkpoint"
    WRONG_KIND = "wrong_kind"
    WRONG_WINDOW = "wrong_window"
    DATED_OUTSIDE_KEY = "dated_outside_key"


ONCHAIN_REASONS: Final = tuple(OnchainReason)
_ONCHAIN_MESSAGES: Final[dict[OnchainReason, str]] = {
    OnchainReason.VALID: "the reading is genuine: first anchored in this checkpoint, of the device's registered"
    " kind and window, signed by a key the registry accepts for it at the checkpoint's block time",
    OnchainReason.UNKNOWN_EPOCH: "no checkpoint is anchored for this epoch",
    OnchainReason.CHECKPOINT_MISMATCH: "the checkpoint is not the one anchored for its epoch",
    OnchainReason.INCLUSION: "the reading is not included in the checkpoint's tree at this index"
    " (or the proof is for another tree size)",
    OnchainReason.MALFORMED: "the message bytes are not a canonical es256 message",
    OnchainReason.UNSUPPORTED_ALG: "ed25519 readings are not verifiable on chain (the EVM has no Ed25519"
    " precompile): verify them off chain",
    OnchainReason.DEVICE_MISMATCH: "the message is another device's than the one named",
    OnchainReason.UNKNOWN_DEVICE: "the device is not registered on chain",
    OnchainReason.KEY_NOT_VALID: "the signing key was not in force when the checkpoint was anchored (chain time):"
    " the checkpoint came before the key, or after its rotation's grace or the device's revocation",
    OnchainReason.SIGNATURE: "the signature does not verify under any key of the device",
    OnchainReason.NOT_FIRST_CHECKPOINT: "the reading was already in the previous epoch's checkpoint: its key is"
    " judged at the first checkpoint that included it, so give that one",
    OnchainReason.WRONG_KIND: "the reading's kind is not the one registered for the device",
    OnchainReason.WRONG_WINDOW: "the reading's window_s is not the reporting window registered for the device",
    OnchainReason.DATED_OUTSIDE_KEY: "the reading is dated after its key's end, or further before the key's start"
    " than the registry's backfill bound",
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


# --- roles and parameters -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Roles:
    """Who holds each role of a deployment (checksummed 0x addresses).

    - ``governor``: may replace any holder (its own role included), only after the governance
      delay, and do nothing else;
    - ``attestor``: the operator's key; anchors checkpoints, nothing else;
    - ``registrar``: registers devices, rotates and revokes their keys;
    - ``pricing_authority``: publishes tariffs.
    """

    governor: str
    attestor: str
    registrar: str
    pricing_authority: str

    def holder(self, role: RoleName) -> str:
        return str(getattr(self, role))


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryParams:
    """The deployment's parameters, as immutables of the contracts."""

    governance_delay: int
    """Seconds between a role change's proposal and the earliest time it can take effect (every
    governed contract)."""
    rotation_grace: int
    """Seconds after a rotation during which readings signed with the old key may still be
    anchored (DeviceRegistry)."""
    max_backfill: int
    """How many seconds before its key's start a reading may be dated (DeviceRegistry)."""
    max_growth: int
    """The most leaves one anchor may add to the log (AnchorRegistry)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployParams:
    """The parameters :meth:`chain.writer.ChainClient.deploy` gives the contracts. Defaults:

    - ``governance_delay`` 86,400 s (a day): long enough for a watcher who checks the chain daily
      to see a role change proposed and raise the alarm before it takes effect, short enough to
      replace a leaked attestor key the same week;
    - ``rotation_grace`` 600 s: a reading signed just before a rotation is anchored by the next
      epoch or two (epochs of a few minutes); ten minutes covers that, and nothing signed with an
      old key can be anchored later;
    - ``max_backfill`` 259,200 s (72 h): a device may deliver what it measured before it was
      registered (installed, tested, then registered) over a long weekend, no more;
    - ``max_growth`` 1,048,576 leaves (2^20): about a day of a 10,000-device fleet reporting every
      15 minutes fits one anchor, while a leaked attestor key cannot brick the log with a tree of
      2^64 leaves.
    """

    governance_delay: int = 86_400
    rotation_grace: int = 600
    max_backfill: int = 259_200
    max_growth: int = 1_048_576

    def __post_init__(self) -> None:
        for name in ("governance_delay", "rotation_grace", "max_backfill", "max_growth"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < 2**64:
                raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
        if self.max_growth == 0:
            raise ValueError("max_growth must be positive")

    def registry_params(self) -> RegistryParams:
        return RegistryParams(
            governance_delay=self.governance_delay,
            rotation_grace=self.rotation_grace,
            max_backfill=self.max_backfill,
            max_growth=self.max_growth,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRoleChange:
    """A role change proposed by the governor and not yet executed nor cancelled."""

    contract: GovernedContract
    role: RoleName
    account: str
    eta: int
    """The earliest block time at which ``executeRole`` puts ``account`` in place."""


class RoleEventKind(StrEnum):
    PROPOSED = "proposed"
    CANCELLED = "cancelled"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleEvent:
    """A ``RoleChangeProposed``, ``RoleChangeCancelled`` or ``RoleChanged`` event (the
    constructor's initial holders are ``changed`` events from the zero address)."""

    contract: GovernedContract
    role: RoleName
    kind: RoleEventKind
    account: str
    previous: str | None
    """The former holder (``changed`` only)."""
    eta: int | None
    """When the change may take effect (``proposed`` only)."""
    block_number: int
    timestamp: int
    log_index: int


# --- registry events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegisteredEvent:
    """A ``DeviceRegistered`` event: the chain knows a device only by its id's hash."""

    device_hash: bytes
    asset_id: bytes
    alg: Algorithm
    public_key: bytes
    """Protocol form (es256: 65-byte uncompressed SEC1)."""
    profile: DeviceProfile
    cert_hash: bytes
    """b"" when the key came without a certificate."""
    block_number: int
    timestamp: int
    log_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotatedEvent:
    """A ``KeyRotated`` event: key ``key_index`` is in force from this block."""

    device_hash: bytes
    key_index: int
    public_key: bytes
    """Protocol form, as for :class:`DeviceRegisteredEvent` (the algorithm is the device's)."""
    cert_hash: bytes
    block_number: int
    timestamp: int
    log_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRevokedEvent:
    """A ``DeviceRevoked`` event: the device's keys end at this block, for good."""

    device_hash: bytes
    key_count: int
    block_number: int
    timestamp: int
    log_index: int


RegistryEvent = DeviceRegisteredEvent | KeyRotatedEvent | DeviceRevokedEvent


# --- tariffs --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedTariff:
    """A ``TariffPublished`` event, its bytes parsed with :mod:`protocol.cashflow`.

    The contract keeps only the SHA-256 of the bytes: it cannot check that they are a tariff.
    Bytes that are not the canonical JSON of a valid :class:`~protocol.cashflow.Tariff` are kept
    (``raw``) and named in ``problem``; reading :attr:`tariff` then raises
    :class:`chain.errors.InvalidTariffError`, so nobody prices with them by accident.
    """

    index: int
    tariff_hash: bytes
    effective_from: int
    raw: bytes
    parsed: Tariff | None
    problem: str | None
    block_number: int
    timestamp: int

    @property
    def tariff(self) -> Tariff:
        if self.parsed is None:
            raise InvalidTariffError(f"tariff {self.index} published on chain is unusable: {self.problem}")
        return self.parsed
