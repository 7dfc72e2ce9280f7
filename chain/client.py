"""The web3 client: the only module of assetproof that talks to an EVM chain.

:class:`ChainReader` reads (auditors: no account, nothing to sign); :class:`ChainClient` adds
an account that deploys, anchors and manages devices. Inside, byte values are ``bytes`` and
numbers ``int``; hex appears only where web3 needs it. Every failure is a
:class:`~chain.errors.ChainError`: reverts are decoded against the contracts' ABIs into
:class:`~chain.errors.ContractRevert` the same way on anvil (web3's ``ContractCustomError``
with raw data) and on eth-tester (``TransactionFailed`` with the data in its message).

Identifiers on chain: a device is ``keccak256(UTF-8 device id)`` (:func:`device_id_hash`), an
asset ``keccak256(UTF-8 asset name)`` (:func:`asset_id_hash`). Keys: ed25519 32 bytes; es256
on chain is the 64-byte ``x || y`` of the point, and this module takes and returns the 65-byte
uncompressed SEC1 form that :mod:`protocol.signing` uses (33-byte compressed is accepted too).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed  # type: ignore[import-untyped]
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3Exception

from chain._artifacts import load_artifact
from chain.deployment import ContractDeployment, Deployment
from chain.errors import (
    ChainError,
    ChainUnavailableError,
    CheckpointMismatchError,
    ConfirmationTimeoutError,
    ContractRevert,
    DeploymentError,
    NotDeployedError,
    P256UnavailableError,
    TransactionFailedError,
)
from protocol.envelope import validate_device_id
from protocol.errors import InvalidKeyError
from protocol.signing import Algorithm, parse_algorithm

__all__ = [
    "ALG_CODES",
    "AnchorReceipt",
    "AnchoredEvent",
    "ChainClient",
    "ChainReader",
    "Checkpoint",
    "DeviceInfo",
    "DeviceRegistration",
    "KeyEnd",
    "KeyRecord",
    "OnchainReason",
    "OnchainVerdict",
    "RegisteredDevice",
    "RegistrationConflictError",
    "TxReceipt",
    "asset_id_hash",
    "checkpoint_commitment",
    "decode_revert",
    "device_id_hash",
    "key_from_chain",
    "key_to_chain",
]

ALG_CODES: Final[dict[Algorithm, int]] = {"ed25519": 1, "es256": 2}
_ALG_NAMES: Final[dict[int, Algorithm]] = {code: name for name, code in ALG_CODES.items()}
ContractName = Literal["AnchorRegistry", "DeviceRegistry", "ReadingVerifier"]
_POLL_S: Final = 0.01
_LOG_CHUNK: Final = 2_000
"""Blocks per eth_getLogs request: eth-tester slows down badly on wide ranges."""


# --- identifiers and keys ------------------------------------------------------------------------


def device_id_hash(device_id: str) -> bytes:
    """The on-chain id of a device: keccak256 of its id string's UTF-8 bytes."""
    return keccak(validate_device_id(device_id).encode())


def asset_id_hash(asset: str) -> bytes:
    """The on-chain id of an asset: keccak256 of its name's UTF-8 bytes."""
    if not isinstance(asset, str) or not asset:
        raise ValueError("asset must be a non-empty string")
    return keccak(asset.encode())


def key_to_chain(alg: str, public_key: bytes) -> bytes:
    """The key bytes the DeviceRegistry stores: ed25519 as is; es256 as ``x || y``."""
    algorithm = parse_algorithm(alg)
    if algorithm == "ed25519":
        if len(public_key) != 32:
            raise InvalidKeyError(f"an ed25519 public key is 32 bytes, got {len(public_key)}")
        return bytes(public_key)
    if len(public_key) == 64:
        public_key = b"\x04" + public_key
    if len(public_key) not in (33, 65):
        raise InvalidKeyError(f"an es256 public key is a 33- or 65-byte SEC1 point, got {len(public_key)} bytes")
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except ValueError as exc:
        raise InvalidKeyError(f"not a valid es256 public key: {exc}") from None
    return point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]


def key_from_chain(alg: str, raw: bytes) -> bytes:
    """The protocol form of a key read from the registry (es256: 65-byte uncompressed SEC1)."""
    return b"\x04" + raw if parse_algorithm(alg) == "es256" else raw


# --- value types ---------------------------------------------------------------------------------


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


_KEY_ENDS: Final = (KeyEnd.ACTIVE, KeyEnd.ROTATED, KeyEnd.REVOKED)


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


class RegistrationConflictError(ChainError):
    """A device to register is already on chain with another key, asset or algorithm."""


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


_ONCHAIN_REASONS: Final = tuple(OnchainReason)
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
    """The ReadingVerifier's answer on one reading (:meth:`ChainReader.verify_reading_onchain`)."""

    valid: bool
    reason: OnchainReason
    """``valid``, or the first check that failed."""

    @property
    def message(self) -> str:
        """The reason in a sentence."""
        return _ONCHAIN_MESSAGES[self.reason]


# --- revert decoding -----------------------------------------------------------------------------

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {
        _ERROR_STRING: ("Error", ["reason"], ["string"]),
        _PANIC: ("Panic", ["code"], ["uint256"]),
    }
    for name in ("AnchorRegistry", "DeviceRegistry", "ReadingVerifier"):
        for item in load_artifact(name).abi:
            if item["type"] == "error":
                inputs = item.get("inputs", [])
                selector = keccak(f"{item['name']}({','.join(i['type'] for i in inputs)})".encode())[:4]
                table[selector] = (item["name"], [i["name"] for i in inputs], [i["type"] for i in inputs])
    return table


def decode_revert(data: bytes, *, tx_hash: bytes | None = None) -> ContractRevert:
    """Revert data (selector and ABI-encoded arguments) as a :class:`ContractRevert`."""
    entry = _error_table().get(data[:4])
    if entry is None:
        return ContractRevert("unknown", data=data, tx_hash=tx_hash)
    name, names, types = entry
    try:
        values = abi_decode(types, data[4:])
    except Exception:  # malformed arguments: keep the raw data
        return ContractRevert(name, data=data, tx_hash=tx_hash)
    return ContractRevert(name, dict(zip(names, values, strict=True)), data=data, tx_hash=tx_hash)


def _revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 or eth-tester exception, if any."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if isinstance(data, str) and data.startswith("Reverted 0x"):
            return bytes.fromhex(data.split(" ", 1)[1][2:])
        return b""
    if isinstance(exc, TransactionFailed):
        message = str(exc.args[0]) if exc.args else ""
        text = message.removeprefix("execution reverted: ").strip()
        if text[:2] in ("b'", 'b"'):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return b""
            return value if isinstance(value, bytes) else b""
        if text and text != message:  # a decoded Error(string) reason
            return _ERROR_STRING + abi_encode(["string"], [text])
        return b""
    return None


@contextmanager
def _edge(*, tx_hash: bytes | None = None) -> Iterator[None]:
    """Turn web3 / eth-tester / transport failures into :class:`ChainError`."""
    try:
        yield
    except ChainError:
        raise
    except (ContractLogicError, TransactionFailed) as exc:
        data = _revert_data(exc)
        raise decode_revert(data or b"", tx_hash=tx_hash) from exc
    except TimeExhausted as exc:
        raise ConfirmationTimeoutError(str(exc)) from exc
    except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
        raise ChainUnavailableError(f"the chain node is unreachable: {exc.__class__.__name__}: {exc}") from exc
    except Web3Exception as exc:
        raise ChainError(f"{exc.__class__.__name__}: {exc}") from exc


def _b(value: Any) -> bytes:
    return bytes(value)


def _require_hashes(*, root: bytes, meta_hash: bytes, proof: Sequence[bytes]) -> None:
    for name, value in (("root", root), ("meta_hash", meta_hash), *(("proof element", p) for p in proof)):
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes")


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


def _checkpoint_args(checkpoint: Checkpoint) -> tuple[int, int, bytes, bytes, int, int]:
    c = checkpoint
    _require_hashes(root=c.root, meta_hash=c.meta_hash, proof=())
    return (c.epoch, c.tree_size, c.root, c.meta_hash, c.block_number, c.timestamp)


# --- reading -------------------------------------------------------------------------------------


class ChainReader:
    """Read-only access to a deployment: checkpoints, inclusion checks, device keys.

    Holds no key and sends nothing: what an auditor needs, and all it may use.
    """

    def __init__(self, web3: Web3, *, deployment: Deployment | None) -> None:
        self._w3 = web3
        self._deployment: Deployment | None = None
        self._anchor: Contract | None = None
        self._devices: Contract | None = None
        self._verifier: Contract | None = None
        self._p256: bool | None = None
        if deployment is not None:
            self._attach(deployment)

    def _attach(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._anchor = self._w3.eth.contract(
            address=Web3.to_checksum_address(deployment.anchor_registry.address),
            abi=load_artifact("AnchorRegistry").abi,
        )
        self._devices = self._w3.eth.contract(
            address=Web3.to_checksum_address(deployment.device_registry.address),
            abi=load_artifact("DeviceRegistry").abi,
        )
        verifier = deployment.reading_verifier
        self._verifier = (
            None
            if verifier is None
            else self._w3.eth.contract(
                address=Web3.to_checksum_address(verifier.address), abi=load_artifact("ReadingVerifier").abi
            )
        )
        self._p256 = None

    @property
    def web3(self) -> Web3:
        return self._w3

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
        return self._deployment

    def _contract(self, name: ContractName) -> Contract:
        if name == "ReadingVerifier":
            if self._verifier is None:
                if self._deployment is None:
                    raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
                raise NotDeployedError(
                    "the deployment has no ReadingVerifier (made before it existed): deploy one with"
                    " ChainClient.deploy_reading_verifier(), or verify the reading off chain"
                )
            return self._verifier
        contract = self._anchor if name == "AnchorRegistry" else self._devices
        if contract is None:
            raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
        return contract

    def _call(self, name: ContractName, fn_name: str, *args: Any) -> Any:
        with _edge():
            return self._contract(name).functions[fn_name](*args).call()

    def chain_id(self) -> int:
        with _edge():
            return int(self._w3.eth.chain_id)

    def block_number(self) -> int:
        with _edge():
            return int(self._w3.eth.block_number)

    def verify_deployment(self) -> None:
        """Raise :class:`DeploymentError` unless the chain id and the code at every address
        are those of the deployment file and of the committed artifacts, and a ReadingVerifier
        (when the deployment has one) reads the deployment's own registries."""
        deployment = self.deployment
        if self.chain_id() != deployment.chain_id:
            raise DeploymentError(
                f"the node's chain id {self.chain_id()} is not the deployment's {deployment.chain_id}"
            )
        entries: list[tuple[ContractName, ContractDeployment]] = [
            ("AnchorRegistry", deployment.anchor_registry),
            ("DeviceRegistry", deployment.device_registry),
        ]
        if deployment.reading_verifier is not None:
            entries.append(("ReadingVerifier", deployment.reading_verifier))
        for name, entry in entries:
            artifact = load_artifact(name)
            with _edge():
                code = bytes(self._w3.eth.get_code(Web3.to_checksum_address(entry.address)))
            if not artifact.code_matches(code):
                raise DeploymentError(f"the code at {entry.address} is not the committed {name}")
            if entry.artifact_sha256 != artifact.sha256:
                raise DeploymentError(f"{name} was deployed from another artifact than the committed one")
        if deployment.reading_verifier is not None:
            # Its registries are immutables, masked out of the code comparison above.
            for getter, entry in (
                ("anchorRegistry", deployment.anchor_registry),
                ("deviceRegistry", deployment.device_registry),
            ):
                used = Web3.to_checksum_address(self._call("ReadingVerifier", getter))
                if used != Web3.to_checksum_address(entry.address):
                    raise DeploymentError(
                        f"the ReadingVerifier at {deployment.reading_verifier.address} reads {getter} {used},"
                        f" not the deployment's {entry.address}"
                    )

    # anchors

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
        return _b(self._call("AnchorRegistry", "commitment", epoch))

    def verify_checkpoint(self, checkpoint: Checkpoint) -> bool:
        """Whether every field of ``checkpoint`` is what the contract anchored for its epoch
        (one call); ``ContractRevert('UnknownEpoch')`` if the epoch is not anchored."""
        return bool(self._call("AnchorRegistry", "verifyCheckpoint", *_checkpoint_args(checkpoint)))

    def verify_inclusion(
        self,
        *,
        index: int,
        leaf_hash: bytes,
        proof: Sequence[bytes],
        checkpoint: Checkpoint | None = None,
        epoch: int | None = None,
    ) -> bool:
        """The contract's own RFC 9162 inclusion check of the leaf ``leaf_hash`` at ``index``.

        Given ``checkpoint`` (all its fields, e.g. from a proof bundle), this is one call: the
        contract first checks the checkpoint against its commitment and reverts with
        ``ContractRevert('CheckpointMismatch')`` if any field differs. Given ``epoch`` instead,
        the checkpoint is read (and verified) with :meth:`checkpoint` first. Either way
        ``ContractRevert('UnknownEpoch')`` for an epoch not anchored; False for a bad proof.
        """
        if checkpoint is None:
            if epoch is None:
                raise ValueError("give checkpoint or epoch")
            checkpoint = self.checkpoint(epoch)
        elif epoch is not None:
            raise ValueError("give checkpoint or epoch, not both")
        args = (*_checkpoint_args(checkpoint), index, leaf_hash, list(proof))
        return bool(self._call("AnchorRegistry", "verifyInclusion", *args))

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
                block_number=event.block_number,
                timestamp=self.block_timestamp(event.block_number),
            )
            if self.verify_checkpoint(found):
                return found
        raise CheckpointMismatchError(
            f"the Anchored event of epoch {epoch} in block {block} does not match the contract's commitment"
        )

    def _anchored_in_block(self, block: int) -> list[AnchoredEvent]:
        return self.anchored_events(from_block=block, to_block=block)

    def block_timestamp(self, block: int) -> int:
        """The time (seconds) in the header of block ``block``."""
        with _edge():
            return int(self._w3.eth.get_block(block)["timestamp"])

    def anchored_events(self, *, from_block: int, to_block: int | None = None) -> list[AnchoredEvent]:
        """``Anchored`` events in ``from_block..to_block`` (inclusive; default: the latest
        block), fetched in bounded ranges. As the node reports them: check a checkpoint taken
        from them with :meth:`verify_checkpoint` (:meth:`checkpoint` does)."""
        event = self._contract("AnchorRegistry").events.Anchored
        last = self.block_number() if to_block is None else to_block
        found: list[AnchoredEvent] = []
        for start in range(from_block, last + 1, _LOG_CHUNK):
            end = min(last, start + _LOG_CHUNK - 1)
            with _edge():
                logs = event.get_logs(from_block=start, to_block=end)
            found.extend(
                AnchoredEvent(
                    epoch=log["args"]["epoch"],
                    tree_size=log["args"]["treeSize"],
                    root=_b(log["args"]["root"]),
                    meta_hash=_b(log["args"]["metaHash"]),
                    block_number=log["blockNumber"],
                    tx_hash=_b(log["transactionHash"]),
                    log_index=log["logIndex"],
                )
                for log in logs
            )
        return found

    def registered_devices(self, *, to_block: int | None = None) -> list[RegisteredDevice]:
        """Every device registered up to ``to_block`` (inclusive; default: the latest block), from
        the DeviceRegistry's ``DeviceRegistered`` and ``DeviceRevoked`` events (an auditor's list
        of who should speak)."""
        events = self._contract("DeviceRegistry").events
        last = self.block_number() if to_block is None else to_block
        registered: list[Any] = []
        revoked: dict[bytes, int] = {}
        for start in range(self.deployment.device_registry.block, last + 1, _LOG_CHUNK):
            end = min(last, start + _LOG_CHUNK - 1)
            with _edge():
                registered.extend(events.DeviceRegistered.get_logs(from_block=start, to_block=end))
                for log in events.DeviceRevoked.get_logs(from_block=start, to_block=end):
                    revoked.setdefault(_b(log["args"]["deviceId"]), log["blockNumber"])
        return [
            RegisteredDevice(
                device_hash=_b(log["args"]["deviceId"]),
                asset_id=_b(log["args"]["asset"]),
                block_number=log["blockNumber"],
                revoked_block=revoked.get(_b(log["args"]["deviceId"])),
            )
            for log in registered
        ]

    # one reading, verified by the chain

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
    ) -> OnchainVerdict:
        """Ask the chain itself whether a reading is genuine: one ``eth_call`` of the
        ReadingVerifier's ``verifyReading`` (after this reader's one-time precompile probe).

        It checks, in order: ``checkpoint`` is the one anchored for its epoch; the leaf
        SHA-256(0x00 || ``message``) is at ``leaf_index`` under its root, with ``tree_size`` the
        checkpoint's; ``message`` is a canonical es256 message of ``device_id``; a key of that
        device was valid at the reading's time (``ts_ms // 1000``) and the signature verifies
        under it (P-256 precompile). The verdict names the first check that failed. Ed25519
        readings get the verdict ``unsupported_alg`` (there is no Ed25519 precompile): a
        verdict, not an error, because the answer is about the reading, not the chain.

        Raises :class:`P256UnavailableError` on a chain without the P-256 precompile (such as
        eth-tester: its answers would make every signature look forged),
        :class:`NotDeployedError` when the deployment has no ReadingVerifier, and
        ``ValueError`` for arguments that cannot be encoded.
        """
        if not isinstance(message, bytes):
            raise ValueError("message must be bytes")
        if not isinstance(device_id, str):
            raise ValueError("device_id must be a string")
        for name, value in (("leaf_index", leaf_index), ("tree_size", tree_size)):
            if type(value) is not int or not 0 <= value < 2**64:
                raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
        _require_hashes(root=checkpoint.root, meta_hash=checkpoint.meta_hash, proof=proof)
        self._contract("ReadingVerifier")
        if not self.p256_available():
            raise P256UnavailableError()
        args = (message, device_id, leaf_index, tree_size, list(proof), _checkpoint_args(checkpoint))
        try:
            status = int(self._call("ReadingVerifier", "verifyReading", *args))
        except ContractRevert as revert:
            if revert.name == "P256PrecompileMissing":
                raise P256UnavailableError() from revert
            raise
        if not 0 <= status < len(_ONCHAIN_REASONS):
            raise ChainError(f"the ReadingVerifier answered an unknown status {status}")
        reason = _ONCHAIN_REASONS[status]
        return OnchainVerdict(valid=reason is OnchainReason.VALID, reason=reason)

    # devices

    def device(self, device_id: str) -> DeviceInfo:
        """The device's registry entry; ``ContractRevert('UnknownDevice')`` if not registered."""
        hashed = device_id_hash(device_id)
        asset, alg, count, revoked, revoked_block, revoked_time = self._call("DeviceRegistry", "device", hashed)
        return DeviceInfo(
            device_id=hashed,
            asset_id=_b(asset),
            alg=_ALG_NAMES[alg],
            key_count=count,
            revoked=revoked,
            revoked_block=revoked_block if revoked else None,
            revoked_time=revoked_time if revoked else None,
        )

    def key_count(self, device_id: str) -> int:
        """How many keys the device has had (0 if it is not registered)."""
        return int(self._call("DeviceRegistry", "keyCount", device_id_hash(device_id)))

    def device_key(self, device_id: str, index: int) -> KeyRecord:
        hashed = device_id_hash(device_id)
        info = self.device(device_id)
        return self._key_record(hashed, info.alg, index)

    def _key_record(self, hashed: bytes, alg: Algorithm, index: int) -> KeyRecord:
        key, from_block, from_time, until_block, until_time, end = self._call("DeviceRegistry", "keyAt", hashed, index)
        ended = end != 0
        return KeyRecord(
            index=index,
            alg=alg,
            public_key=key_from_chain(alg, _b(key)),
            from_block=from_block,
            from_time=from_time,
            until_block=until_block if ended else None,
            until_time=until_time if ended else None,
            end=_KEY_ENDS[end],
        )

    def device_keys(self, device_id: str) -> list[KeyRecord]:
        """Every key the device has had, oldest first, with its validity."""
        info = self.device(device_id)
        return [self._key_record(info.device_id, info.alg, i) for i in range(info.key_count)]

    def current_key(self, device_id: str) -> KeyRecord:
        """The key in force now; ``ContractRevert('Revoked')`` for a revoked device."""
        hashed = device_id_hash(device_id)
        _, index = self._call("DeviceRegistry", "currentKey", hashed)
        return self._key_record(hashed, self.device(device_id).alg, index)

    def key_valid_at(self, device_id: str, timestamp: int) -> KeyRecord | None:
        """The key that was in force at block time ``timestamp`` (seconds), or None when no key
        was (before registration, or after revocation)."""
        hashed = device_id_hash(device_id)
        valid, index = self._call("DeviceRegistry", "keyValidAt", hashed, timestamp)
        if not valid:
            return None
        return self._key_record(hashed, self.device(device_id).alg, index)


# --- writing -------------------------------------------------------------------------------------


class ChainClient(ChainReader):
    """A :class:`ChainReader` with an account: deploys the contracts, anchors checkpoints
    (as the attestor) and registers, rotates and revokes device keys (as the admin).

    ``account`` is a private key (32 bytes or 0x hex) or an ``eth_account`` local account.
    Each transaction waits for its receipt and then for ``confirmations`` more blocks.
    """

    def __init__(
        self,
        web3: Web3,
        *,
        account: bytes | str | LocalAccount,
        deployment: Deployment | None = None,
        confirmations: int = 0,
        timeout: float = 120.0,
    ) -> None:
        super().__init__(web3, deployment=deployment)
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self._account: LocalAccount = account if isinstance(account, LocalAccount) else Account.from_key(account)
        self.confirmations = confirmations
        self.timeout = timeout
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def account(self) -> LocalAccount:
        return self._account

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.chain_id()
        return self._chain_id

    # plumbing

    def _send(self, fn: Any, *, nonce: int | None = None) -> bytes:
        """Build (estimating gas, which runs the call: a revert raises here), sign and send."""
        with _edge():
            if nonce is None:
                nonce = self._w3.eth.get_transaction_count(self._account.address, "pending")
            params = {"from": self._account.address, "nonce": nonce, "chainId": self._chain()}
            tx: dict[str, Any] = dict(fn.build_transaction(params))
            tx["gas"] = int(tx["gas"]) * 6 // 5 + 10_000  # headroom; unused gas is not charged
            tx.pop("from", None)
            signed = self._account.sign_transaction(tx)
            return bytes(self._w3.eth.send_raw_transaction(signed.raw_transaction))

    def wait(self, tx_hash: bytes, *, timeout: float | None = None) -> TxReceipt:
        """Wait for the receipt of ``tx_hash`` and ``confirmations`` blocks on top of it.

        A reverted transaction raises :class:`ContractRevert` (replayed to decode the error)
        or :class:`TransactionFailedError`; no receipt in time raises
        :class:`ConfirmationTimeoutError`.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with _edge(tx_hash=tx_hash):
            try:
                receipt = self._w3.eth.wait_for_transaction_receipt(
                    HexBytes(tx_hash), timeout=max(limit, 0.0), poll_latency=_POLL_S
                )
            except TimeExhausted:
                raise ConfirmationTimeoutError(f"no receipt for {Web3.to_hex(tx_hash)} within {limit:.1f} s") from None
            if receipt["status"] != 1:
                raise self._replay_failure(tx_hash, receipt)
            block_number = int(receipt["blockNumber"])
            while self.confirmations and self._w3.eth.block_number < block_number + self.confirmations:
                if time.monotonic() > deadline:
                    raise ConfirmationTimeoutError(
                        f"{Web3.to_hex(tx_hash)} has fewer than {self.confirmations} confirmations after {limit:.1f} s"
                    )
                time.sleep(_POLL_S * 5)
            if self.confirmations:
                # A reorganisation may have moved or dropped it meanwhile.
                try:
                    again = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
                except TransactionNotFound:
                    raise ConfirmationTimeoutError(f"{Web3.to_hex(tx_hash)} left the chain while confirming") from None
                if again["blockHash"] != receipt["blockHash"]:
                    return self.wait(tx_hash, timeout=max(deadline - time.monotonic(), 0.0))
            return TxReceipt(tx_hash=tx_hash, block_number=block_number, gas_used=int(receipt["gasUsed"]))

    def _replay_failure(self, tx_hash: bytes, receipt: Any) -> ChainError:
        tx = self._w3.eth.get_transaction(HexBytes(tx_hash))
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"], "value": tx["value"]}
        try:
            with _edge(tx_hash=tx_hash):
                self._w3.eth.call(call, block_identifier=int(receipt["blockNumber"]) - 1)  # type: ignore[arg-type]
        except ContractRevert as revert:
            return revert
        except ChainError:
            pass
        return TransactionFailedError(
            f"transaction {Web3.to_hex(tx_hash)} reverted in block {receipt['blockNumber']}", tx_hash=tx_hash
        )

    def transact(self, contract: ContractName, function: str, *args: Any) -> TxReceipt:
        """Call any function of a deployed contract as a transaction and wait for it (for
        tooling and tests; the typed methods below are the API)."""
        return self.wait(self._send(self._contract(contract).functions[function](*args)))

    # deployment

    def deploy(self, *, attestor: str | None = None, admin: str | None = None) -> Deployment:
        """Deploy the AnchorRegistry, the DeviceRegistry and the ReadingVerifier over them
        (attestor and admin default to this account), attach them to this client, and return
        the deployment (write it with :func:`chain.deployment.write_deployment`)."""
        attestor = Web3.to_checksum_address(attestor or self.address)
        admin = Web3.to_checksum_address(admin or self.address)
        anchor_registry = self._deploy_contract("AnchorRegistry", attestor)
        device_registry = self._deploy_contract("DeviceRegistry", admin)
        deployment = Deployment(
            chain_id=self._chain(),
            attestor=attestor,
            admin=admin,
            anchor_registry=anchor_registry,
            device_registry=device_registry,
            reading_verifier=self._deploy_contract("ReadingVerifier", anchor_registry.address, device_registry.address),
        )
        self._attach(deployment)
        return deployment

    def deploy_reading_verifier(self) -> Deployment:
        """Deploy a ReadingVerifier over the attached deployment's registries (one made before
        the verifier existed), attach it, and return the deployment with it (write that with
        :func:`chain.deployment.write_deployment`). Anyone may: it holds no privilege."""
        current = self.deployment
        verifier = self._deploy_contract(
            "ReadingVerifier", current.anchor_registry.address, current.device_registry.address
        )
        deployment = replace(current, reading_verifier=verifier)
        self._attach(deployment)
        return deployment

    def _deploy_contract(self, name: ContractName, *args: Any) -> ContractDeployment:
        artifact = load_artifact(name)
        factory = self._w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx_hash = self._send(factory.constructor(*args))
        receipt = self.wait(tx_hash)
        with _edge():
            address = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))["contractAddress"]
        if address is None:
            raise DeploymentError(f"{name} deployment has no contract address")
        return ContractDeployment(
            address=Web3.to_checksum_address(address), block=receipt.block_number, artifact_sha256=artifact.sha256
        )

    # anchoring

    def _anchor_fn(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        proof: Sequence[bytes],
        previous: Checkpoint | None,
    ) -> Any:
        _require_hashes(root=root, meta_hash=meta_hash, proof=proof)
        fields = self._previous_fields(epoch, previous)
        return self._contract("AnchorRegistry").functions.anchor(epoch, tree_size, root, meta_hash, fields, list(proof))

    def _previous_fields(self, epoch: int, previous: Checkpoint | None) -> tuple[int, bytes, bytes, int, int]:
        """The ``Previous`` argument of ``anchor``: the checkpoint of ``epoch - 1`` (read and
        verified with :meth:`checkpoint` unless given), all zero for epoch 0 or when ``epoch - 1``
        is not anchored (the contract then refuses the epoch with ``WrongEpoch``)."""
        if previous is None and epoch > 0:
            try:
                previous = self.checkpoint(epoch - 1)
            except ContractRevert as revert:
                if revert.name != "UnknownEpoch":
                    raise
        if epoch == 0 and previous is not None:
            raise ValueError("epoch 0 has no previous checkpoint")
        if previous is None:
            return (0, bytes(32), bytes(32), 0, 0)
        if previous.epoch != epoch - 1:
            raise ValueError(f"the previous checkpoint of epoch {epoch} is epoch {epoch - 1}, not {previous.epoch}")
        _require_hashes(root=previous.root, meta_hash=previous.meta_hash, proof=())
        return (previous.tree_size, previous.root, previous.meta_hash, previous.block_number, previous.timestamp)

    def check_anchor(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        proof: Sequence[bytes],
        previous: Checkpoint | None = None,
    ) -> None:
        """Run the anchor as a call (nothing is sent): return if the contract would accept it,
        raise its :class:`ContractRevert` if not. ``previous`` as for :meth:`send_anchor`."""
        fn = self._anchor_fn(
            epoch=epoch, tree_size=tree_size, root=root, meta_hash=meta_hash, proof=proof, previous=previous
        )
        with _edge():
            fn.call({"from": self._account.address})

    def send_anchor(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        proof: Sequence[bytes],
        nonce: int | None = None,
        previous: Checkpoint | None = None,
    ) -> bytes:
        """Send the anchor transaction of ``epoch`` and return its hash without waiting.

        The contract keeps no latest state: ``anchor`` takes the checkpoint of ``epoch - 1``
        and checks it against that epoch's commitment. It is read from the chain with
        :meth:`checkpoint` unless ``previous`` gives it (the caller then vouches for nothing:
        a wrong one is refused with ``PreviousCheckpointMismatch``).

        A checkpoint the contract would refuse raises :class:`ContractRevert` here, before
        anything is sent (the gas estimate runs the call).
        """
        fn = self._anchor_fn(
            epoch=epoch, tree_size=tree_size, root=root, meta_hash=meta_hash, proof=proof, previous=previous
        )
        return self._send(fn, nonce=nonce)

    def wait_anchor(self, tx_hash: bytes, *, timeout: float | None = None) -> AnchorReceipt:
        """Wait for an anchor sent by :meth:`send_anchor` (possibly before a restart)."""
        return self.wait(tx_hash, timeout=timeout)

    def anchor(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        proof: Sequence[bytes],
        previous: Checkpoint | None = None,
    ) -> AnchorReceipt:
        """Anchor the checkpoint of ``epoch`` and wait until it is confirmed (``previous`` as
        for :meth:`send_anchor`)."""
        return self.wait_anchor(
            self.send_anchor(
                epoch=epoch, tree_size=tree_size, root=root, meta_hash=meta_hash, proof=proof, previous=previous
            )
        )

    # devices

    def register_devices(
        self, devices: Iterable[DeviceRegistration], *, batch_size: int = 100, skip_registered: bool = True
    ) -> list[TxReceipt]:
        """Register devices with ``registerMany``, ``batch_size`` per transaction.

        With ``skip_registered`` a device already on chain with the same asset, algorithm and
        current key is left out (so a provisioning run that stopped half way can be run again);
        one registered differently raises :class:`RegistrationConflictError`.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        rows = [self._registration_row(d) for d in devices]
        if skip_registered:
            rows = [(row, device) for row, device in rows if self._new(row, device)]
        receipts = []
        for start in range(0, len(rows), batch_size):
            batch = [row for row, _ in rows[start : start + batch_size]]
            receipts.append(self.wait(self._send(self._contract("DeviceRegistry").functions.registerMany(batch))))
        return receipts

    @staticmethod
    def _registration_row(device: DeviceRegistration) -> tuple[tuple[bytes, bytes, int, bytes], DeviceRegistration]:
        alg = parse_algorithm(device.alg)
        row = (
            device_id_hash(device.device_id),
            asset_id_hash(device.asset),
            ALG_CODES[alg],
            key_to_chain(alg, device.public_key),
        )
        return row, device

    def _new(self, row: tuple[bytes, bytes, int, bytes], device: DeviceRegistration) -> bool:
        hashed, asset, alg, key = row
        if self._call("DeviceRegistry", "keyCount", hashed) == 0:
            return True
        info = self.device(device.device_id)
        current: bytes = _b(self._call("DeviceRegistry", "keyAt", hashed, info.key_count - 1)[0])
        if info.asset_id != asset or ALG_CODES[info.alg] != alg or current != key or info.revoked:
            raise RegistrationConflictError(
                f"device {device.device_id} is already registered on chain with another"
                f" {'state (revoked)' if info.revoked else 'key, asset or algorithm'}"
            )
        return False

    def register(self, device: DeviceRegistration) -> TxReceipt:
        """Register one device (``register``); reverts ``AlreadyRegistered`` if it is."""
        (hashed, asset, alg, key), _ = self._registration_row(device)
        return self.transact("DeviceRegistry", "register", hashed, asset, alg, key)

    def rotate(self, *, device_id: str, public_key: bytes) -> TxReceipt:
        """Replace the device's key from the next block on."""
        alg = self.device(device_id).alg
        return self.transact("DeviceRegistry", "rotate", device_id_hash(device_id), key_to_chain(alg, public_key))

    def revoke(self, *, device_id: str) -> TxReceipt:
        """Revoke the device for good from the next block on."""
        return self.transact("DeviceRegistry", "revoke", device_id_hash(device_id))
