"""The proof bundle: everything needed to check one reading, in one JSON file.

Wire form (byte strings as lowercase hex; Ethereum values ``0x``-prefixed as usual there)::

    {"format": "assetproof.bundle", "version": 1,
     "message": "<hex of the exact wire bytes>",
     "device": {"id": "sol-0001", "alg": "ed25519", "public_key": "<hex>"},
     "leaf_index": 41, "tree_size": 250, "inclusion_proof": ["<hex>", ...],
     "checkpoint": {"epoch": 3, "tree_size": 250, "root": "<hex>", "meta_hash": "<hex>"},
     "metadata": {...epoch metadata...} or null,
     "anchor": {"chain_id": 31337, "contract": "0x...", "tx_hash": "0x...", "block_number": 12,
                "block_timestamp": 1763700000} or null}

The anchor's block number and timestamp are part of what the chain commits to for a checkpoint
(the AnchorRegistry stores a hash over the checkpoint's fields and its block), so a bundle that
carries them can be checked against the chain in one call.

:func:`verify_bundle_offline` checks everything that does not need the chain. What it cannot
check, and an auditor must, is that the checkpoint is the one anchored on chain and that the
device key was registered and valid at the reading's time: the bundle's own claims about those
are only hints for where to look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from protocol._strict import require_int, require_object
from protocol.envelope import Message, decode_message, parse_json, validate_device_id
from protocol.epoch import EpochMetadata
from protocol.errors import BundleError, MalformedError, MetadataError, VerificationError
from protocol.merkle.verify import verify_inclusion
from protocol.signing import Algorithm, parse_algorithm

__all__ = ["Anchor", "Checkpoint", "ProofBundle", "verify_bundle_offline"]

FORMAT: Final = "assetproof.bundle"
VERSION: Final = 1
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_TX_HASH = re.compile(r"0x[0-9a-f]{64}")


def _hex(value: object, path: str, *, size: int | None = None) -> bytes:
    # fromhex and back is the strictness check (lowercase, no spaces) and is far cheaper than a
    # regular expression over a message's ~900 hex characters.
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or raw.hex() != value:
        raise BundleError(f"{path} must be lowercase hex")
    if size is not None and len(raw) != size:
        raise BundleError(f"{path} must be {size} bytes, got {len(raw)}")
    return raw


def _hashes(values: list[Any]) -> tuple[bytes, ...]:
    """The proof's 32-byte hashes, decoded in one go (a bundle has up to 64 of them); on any
    doubt, element by element so the error names the bad one."""
    try:
        joined = "".join(values)
        raw = bytes.fromhex(joined)
    except (TypeError, ValueError):
        raw = None
    if raw is None or raw.hex() != joined or any(len(v) != 64 for v in values):
        return tuple(_hex(h, f"inclusion_proof[{i}]", size=32) for i, h in enumerate(values))
    return tuple(raw[i : i + 32] for i in range(0, len(raw), 32))


def _error(message: str, _path: str) -> BundleError:
    return BundleError(message)


def _int(obj: dict[str, Any], name: str, path: str) -> int:
    return require_int(obj, name, path, error=_error)


def _fields(value: object, keys: set[str], path: str) -> dict[str, Any]:
    return require_object(value, keys, path, error=_error)


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A signed-off state of the log: what the chain stores for an epoch."""

    epoch: int
    tree_size: int
    root: bytes
    meta_hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "meta_hash": self.meta_hash.hex(),
        }

    @classmethod
    def from_json(cls, obj: object, path: str = "checkpoint") -> Checkpoint:
        f = _fields(obj, {"epoch", "tree_size", "root", "meta_hash"}, path)
        return cls(
            epoch=_int(f, "epoch", path),
            tree_size=_int(f, "tree_size", path),
            root=_hex(f["root"], f"{path}.root", size=32),
            meta_hash=_hex(f["meta_hash"], f"{path}.meta_hash", size=32),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """Where the operator says the checkpoint was anchored."""

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    block_timestamp: int
    """The anchoring block's time, in seconds."""

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "block_timestamp": self.block_timestamp,
        }

    @classmethod
    def from_json(cls, obj: object) -> Anchor:
        f = _fields(obj, {"chain_id", "contract", "tx_hash", "block_number", "block_timestamp"}, "anchor")
        if not isinstance(f["contract"], str) or not _ADDRESS.fullmatch(f["contract"]):
            raise BundleError("anchor.contract must be a 0x-prefixed 20-byte address")
        if not isinstance(f["tx_hash"], str) or not _TX_HASH.fullmatch(f["tx_hash"]):
            raise BundleError("anchor.tx_hash must be a 0x-prefixed 32-byte lowercase hex hash")
        return cls(
            chain_id=_int(f, "chain_id", "anchor"),
            contract=f["contract"],
            tx_hash=f["tx_hash"],
            block_number=_int(f, "block_number", "anchor"),
            block_timestamp=_int(f, "block_timestamp", "anchor"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProofBundle:
    message: bytes
    device_id: str
    alg: Algorithm
    public_key: bytes
    leaf_index: int
    tree_size: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: Checkpoint
    metadata: EpochMetadata | None = None
    anchor: Anchor | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "message": self.message.hex(),
            "device": {"id": self.device_id, "alg": self.alg, "public_key": self.public_key.hex()},
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_proof": [h.hex() for h in self.inclusion_proof],
            "checkpoint": self.checkpoint.to_json(),
            "metadata": None if self.metadata is None else self.metadata.to_json(),
            "anchor": None if self.anchor is None else self.anchor.to_json(),
        }

    @classmethod
    def from_json(cls, obj: object) -> ProofBundle:
        """Strictly parse a bundle; every problem raises :class:`BundleError` naming the field."""
        top = _fields(
            obj,
            {
                "format",
                "version",
                "message",
                "device",
                "leaf_index",
                "tree_size",
                "inclusion_proof",
                "checkpoint",
                "metadata",
                "anchor",
            },
            "bundle",
        )
        if top["format"] != FORMAT or type(top["version"]) is not int or top["version"] != VERSION:
            raise BundleError(
                f"not a {FORMAT} version {VERSION} bundle (format {top['format']!r}, version {top['version']!r})"
            )
        device = _fields(top["device"], {"id", "alg", "public_key"}, "device")
        try:
            device_id = validate_device_id(device["id"], field_name="device.id")
            alg = parse_algorithm(device["alg"])
        except VerificationError as exc:
            raise BundleError(str(exc)) from None
        proof = top["inclusion_proof"]
        if not isinstance(proof, list):
            raise BundleError("inclusion_proof must be a list of hex hashes")
        metadata = None
        if top["metadata"] is not None:
            try:
                metadata = EpochMetadata.from_json(top["metadata"])
            except MetadataError as exc:
                raise BundleError(f"metadata: {exc}") from None
        return cls(
            message=_hex(top["message"], "message"),
            device_id=device_id,
            alg=alg,
            public_key=_hex(device["public_key"], "device.public_key"),
            leaf_index=_int(top, "leaf_index", "bundle"),
            tree_size=_int(top, "tree_size", "bundle"),
            inclusion_proof=_hashes(proof),
            checkpoint=Checkpoint.from_json(top["checkpoint"]),
            metadata=metadata,
            anchor=None if top["anchor"] is None else Anchor.from_json(top["anchor"]),
        )

    @classmethod
    def parse(cls, data: bytes) -> ProofBundle:
        """A bundle from JSON bytes."""
        try:
            return cls.from_json(parse_json(data, what="bundle"))
        except MalformedError as exc:
            raise BundleError(str(exc)) from None

    def decoded_message(self) -> Message:
        """The reading inside, decoded (not verified)."""
        return decode_message(self.message)


def verify_bundle_offline(bundle: ProofBundle) -> None:
    """Check a bundle as far as possible without the chain.

    Checks, in order: the message decodes (canonical bytes, schema); it names the bundle's device
    and algorithm; its signature verifies with the bundle's key; the proof is for the
    checkpoint's tree size; the leaf hash is included under the checkpoint's root; and, when the
    bundle carries epoch metadata, that it hashes to the checkpoint's ``meta_hash`` and that the
    leaf lies in the epoch. Raises a :class:`VerificationError` subclass naming the failed check.
    """
    message = decode_message(bundle.message)
    if message.body.device != bundle.device_id:
        raise BundleError(f"message is from device {message.body.device!r}, bundle names {bundle.device_id!r}")
    message.verify(alg=bundle.alg, public_key=bundle.public_key)
    checkpoint = bundle.checkpoint
    if bundle.tree_size != checkpoint.tree_size:
        raise BundleError(
            f"inclusion proof is for tree size {bundle.tree_size}, the checkpoint has {checkpoint.tree_size}",
            reason="wrong_tree_size",
        )
    verify_inclusion(
        leaf_hash=message.leaf_hash,
        index=bundle.leaf_index,
        size=bundle.tree_size,
        proof=list(bundle.inclusion_proof),
        root=checkpoint.root,
    )
    if bundle.metadata is not None:
        meta = bundle.metadata
        if meta.meta_hash != checkpoint.meta_hash:
            raise BundleError("epoch metadata does not hash to the checkpoint's meta_hash", reason="meta_hash_mismatch")
        if meta.epoch != checkpoint.epoch or meta.tree_size != checkpoint.tree_size:
            raise BundleError("epoch metadata describes another checkpoint", reason="meta_hash_mismatch")
        if meta.computed_assets_root() != meta.assets_root:
            raise BundleError(
                "epoch metadata's assets_root is not the root of its own asset totals", reason="assets_root_mismatch"
            )
        if not meta.leaves_from <= bundle.leaf_index < meta.leaves_to:
            raise BundleError(
                f"leaf {bundle.leaf_index} is not in epoch {meta.epoch}"
                f" (leaves {meta.leaves_from}..{meta.leaves_to - 1})",
                reason="leaf_outside_epoch",
            )
