"""Verify one reading's proof bundle against the chain, trusting nothing else.

The bundle is the operator's claim. From it the auditor takes only the message bytes and the
proof path; the key, the checkpoint and its block come from the chain:

1. the message is canonical and well formed, and names the bundle's device;
2. the DeviceRegistry has a key for the device that signs for the reading's time (never after a
   rotation or revocation ended it: :func:`key_for_time`), and the signature verifies with it;
3. the AnchorRegistry holds a checkpoint for the bundle's epoch, and the bundle's checkpoint (and
   anchor block, when given) is exactly it;
4. the inclusion proof is for that checkpoint's tree size and leads from the leaf hash to its root;
5. the anchoring block has at least the confirmations asked for;
6. when the bundle carries the epoch metadata, it hashes to the anchored metaHash and the leaf
   lies in the epoch; its tariff then prices the reading.

The first check that fails raises a :class:`~protocol.errors.VerificationError` whose ``reason``
names it. Problems with the chain itself (unreachable, wrong contracts) raise
:class:`~chain.errors.ChainError` instead: they say nothing about the bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chain.errors import CheckpointMismatchError, ContractRevert
from chain.reader import ChainReader
from chain.types import Checkpoint as ChainCheckpoint
from chain.types import KeyEnd, KeyRecord
from protocol.bundle import Anchor as BundleAnchor
from protocol.bundle import ProofBundle, verify_bundle_offline
from protocol.cashflow import CashFlow, reading_cash_flow
from protocol.envelope import Message, decode_message
from protocol.epoch import EpochMetadata
from protocol.errors import VerificationError
from protocol.merkle.verify import verify_inclusion

__all__ = [
    "BundleVerdict",
    "key_for_time",
    "key_refusal",
    "onchain_check",
    "registered_key",
    "verify_bundle",
    "verify_bundles_offline",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleVerdict:
    """What a valid bundle proves: the reading, where it is anchored, and what it is worth."""

    message: Message
    key: KeyRecord
    checkpoint: ChainCheckpoint
    leaf_index: int
    confirmations: int
    cash_flow: CashFlow | None
    currency: str | None
    tariff_id: str | None
    bundle_key_matches: bool
    """Whether the key the bundle names is the registered one (only the registered one is used)."""

    def to_json(self) -> dict[str, Any]:
        body = self.message.body
        c = self.checkpoint
        return {
            "valid": True,
            "reading": {
                "device": body.device,
                "seq": body.seq,
                "ts_ms": body.ts_ms,
                "kind": str(body.kind),
                "window_s": body.window_s,
                "metrics": dict(body.metrics),
                "leaf_hash": self.message.leaf_hash.hex(),
            },
            "key": {
                "index": self.key.index,
                "alg": self.key.alg,
                "public_key": self.key.public_key.hex(),
                "bundle_key_matches": self.bundle_key_matches,
            },
            "checkpoint": {
                "epoch": c.epoch,
                "tree_size": c.tree_size,
                "root": c.root.hex(),
                "meta_hash": c.meta_hash.hex(),
                "block_number": c.block_number,
                "block_timestamp": c.timestamp,
                "confirmations": self.confirmations,
            },
            "leaf_index": self.leaf_index,
            "cash_flow": None
            if self.cash_flow is None
            else {
                "currency": self.currency,
                "tariff": self.tariff_id,
                "revenue": self.cash_flow.revenue,
                "cost": self.cash_flow.cost,
                "net": self.cash_flow.net,
            },
        }


def _fail(reason: str, message: str) -> VerificationError:
    return VerificationError(message, reason=reason)


def key_for_time(keys: Sequence[KeyRecord], at_s: int) -> KeyRecord | None:
    """The key of ``keys`` (a device's key history, oldest first) that signs for block time
    ``at_s``: the one in force then, or the first key for a reading dated before the device was
    registered (a device may deliver readings it measured before registration, and no other key
    can have existed then). Nothing signs after a rotation ended a key or a revocation ended the
    device: that bound is the one that protects against a stolen or retired key."""
    for key in reversed(keys):
        if key.valid_at(at_s):
            return key
    if keys and at_s < keys[0].from_time:
        return keys[0]
    return None


def registered_key(chain: ChainReader, *, device_id: str, ts_ms: int) -> KeyRecord:
    """The key the DeviceRegistry says signs for ``device_id`` at the reading time ``ts_ms``
    (:func:`key_for_time`; block time has whole seconds). Raises ``unknown_device``,
    ``key_revoked`` or ``key_not_valid``."""
    at_s = ts_ms // 1000
    try:
        keys = chain.device_keys(device_id)
    except ContractRevert as exc:
        if exc.name == "UnknownDevice":
            raise _fail("unknown_device", f"device {device_id!r} is not in the DeviceRegistry") from None
        raise
    key = key_for_time(keys, at_s)
    if key is None:
        raise key_refusal(device_id, keys, at_s)
    return key


def key_refusal(device_id: str, keys: Sequence[KeyRecord], at_s: int) -> VerificationError:
    """Why no key of ``keys`` signs for block time ``at_s``: ``key_revoked`` when the device was
    revoked at or before it, else ``key_not_valid``."""
    last = keys[-1] if keys else None
    if last is not None and last.end is KeyEnd.REVOKED and last.until_time is not None and at_s >= last.until_time:
        return _fail(
            "key_revoked",
            f"device {device_id!r} was revoked at block time {last.until_time};"
            f" the reading claims time {at_s} (signed after its key was revoked)",
        )
    return _fail("key_not_valid", f"no key of device {device_id!r} was in force at the reading's time {at_s}")


def verify_bundle(bundle: ProofBundle, *, chain: ChainReader, min_confirmations: int = 1) -> BundleVerdict:
    """Check ``bundle`` against ``chain`` (see the module docstring for the order of checks)."""
    message = decode_message(bundle.message)
    body = message.body
    if body.device != bundle.device_id:
        raise _fail("device_mismatch", f"the message is from {body.device!r}, the bundle names {bundle.device_id!r}")
    key = registered_key(chain, device_id=body.device, ts_ms=body.ts_ms)
    _check_signature(message, key)
    anchored = _anchored(chain, bundle.checkpoint.epoch)
    _check_checkpoint(bundle, anchored)
    if bundle.anchor is not None:
        _check_anchor(bundle.anchor, anchored, chain=chain)
    _check_inclusion(bundle, message, anchored)
    confirmations = chain.block_number() - anchored.block_number + 1
    if confirmations < min_confirmations:
        raise _fail(
            "unconfirmed",
            f"epoch {anchored.epoch}'s anchor has {confirmations} confirmation(s); {min_confirmations} required",
        )
    flow = currency = tariff_id = None
    if bundle.metadata is not None:
        meta = _checked_metadata(bundle.metadata, leaf_index=bundle.leaf_index, anchored=anchored)
        flow = reading_cash_flow(body, meta.tariff)
        currency, tariff_id = meta.tariff.currency, meta.tariff.id
    return BundleVerdict(
        message=message,
        key=key,
        checkpoint=anchored,
        leaf_index=bundle.leaf_index,
        confirmations=confirmations,
        cash_flow=flow,
        currency=currency,
        tariff_id=tariff_id,
        bundle_key_matches=(bundle.alg, bundle.public_key) == (key.alg, key.public_key),
    )


def _check_signature(message: Message, key: KeyRecord) -> None:
    """The message is signed with the registered key's algorithm, and verifies with it."""
    body = message.body
    if key.alg != message.alg:
        raise _fail(
            "alg_mismatch", f"the message is signed with {message.alg}, device {body.device!r} is registered {key.alg}"
        )
    try:
        message.verify(alg=key.alg, public_key=key.public_key)
    except VerificationError as exc:
        raise _fail(
            "bad_signature",
            f"the signature does not verify with the key registered on chain for {body.device!r}"
            f" (key #{key.index}): {exc}",
        ) from None


def _anchored(chain: ChainReader, epoch: int) -> ChainCheckpoint:
    """The checkpoint the chain anchored for ``epoch``: ``not_anchored`` or ``checkpoint_unverifiable``."""
    try:
        return chain.checkpoint(epoch)
    except ContractRevert as exc:
        if exc.name == "UnknownEpoch":
            raise _fail("not_anchored", f"epoch {epoch} is not anchored on chain") from None
        raise
    except CheckpointMismatchError as exc:
        raise _fail("checkpoint_unverifiable", str(exc)) from None


def _check_checkpoint(bundle: ProofBundle, anchored: ChainCheckpoint) -> None:
    """The bundle's checkpoint is the anchored one, field by field."""
    claimed = bundle.checkpoint
    differing = [
        name
        for name, mine, theirs in (
            ("tree_size", claimed.tree_size, anchored.tree_size),
            ("root", claimed.root, anchored.root),
            ("meta_hash", claimed.meta_hash, anchored.meta_hash),
        )
        if mine != theirs
    ]
    if differing:
        raise _fail(
            "checkpoint_mismatch",
            f"the bundle's checkpoint for epoch {claimed.epoch} differs from the anchored one in"
            f" {', '.join(differing)} (anchored: size {anchored.tree_size}, root {anchored.root.hex()})",
        )


def _check_anchor(anchor: BundleAnchor, anchored: ChainCheckpoint, *, chain: ChainReader) -> None:
    """The bundle's anchor block, chain and contract are the deployment's and the chain's."""
    if (anchor.block_number, anchor.block_timestamp) != (anchored.block_number, anchored.timestamp):
        raise _fail(
            "anchor_mismatch",
            f"the bundle says epoch {anchored.epoch} was anchored in block {anchor.block_number}"
            f" at {anchor.block_timestamp}; the chain has block {anchored.block_number} at {anchored.timestamp}",
        )
    deployment = chain.deployment
    registry = deployment.anchor_registry.address
    if anchor.chain_id != deployment.chain_id or anchor.contract.lower() != registry.lower():
        raise _fail(
            "wrong_chain",
            f"the bundle names chain {anchor.chain_id} contract {anchor.contract}; this deployment is chain"
            f" {deployment.chain_id} contract {registry}",
        )


def _check_inclusion(bundle: ProofBundle, message: Message, anchored: ChainCheckpoint) -> None:
    """The inclusion proof is for the anchored tree size and leads to the anchored root."""
    if bundle.tree_size != anchored.tree_size:
        raise _fail(
            "wrong_tree_size",
            f"the inclusion proof is for tree size {bundle.tree_size}; epoch {anchored.epoch} was anchored"
            f" with {anchored.tree_size}",
        )
    try:
        verify_inclusion(
            leaf_hash=message.leaf_hash,
            index=bundle.leaf_index,
            size=anchored.tree_size,
            proof=list(bundle.inclusion_proof),
            root=anchored.root,
        )
    except VerificationError as exc:
        raise _fail(
            "not_included",
            f"the reading is not in the anchored log at index {bundle.leaf_index} of {anchored.tree_size}: {exc}",
        ) from None


def _checked_metadata(meta: EpochMetadata, *, leaf_index: int, anchored: ChainCheckpoint) -> EpochMetadata:
    """The bundle's epoch metadata, when it is the anchored one and covers the leaf."""
    if meta.meta_hash != anchored.meta_hash or meta.epoch != anchored.epoch:
        raise _fail(
            "meta_hash_mismatch", f"the bundle's epoch metadata is not the one anchored for epoch {anchored.epoch}"
        )
    if not meta.leaves_from <= leaf_index < meta.leaves_to:
        raise _fail(
            "leaf_outside_epoch",
            f"leaf {leaf_index} is not in epoch {meta.epoch} (leaves {meta.leaves_from}..{meta.leaves_to - 1})",
        )
    return meta


def onchain_check(chain: ChainReader, bundle: ProofBundle) -> dict[str, Any]:
    """Have the ReadingVerifier contract check the reading in one ``eth_call``: inclusion under
    the anchored checkpoint and the P-256 signature with the key registered at the reading's
    time. Ed25519 readings cannot be (the EVM has no Ed25519 precompile): reported, not failed.
    Raises ``onchain_<reason>`` when the contract says invalid."""
    message = decode_message(bundle.message)
    if message.alg != "es256":
        return {
            "checked": False,
            "valid": None,
            "message": f"not verifiable on chain: {message.alg} readings need an Ed25519 precompile the EVM"
            " lacks (checked off chain above)",
        }
    anchored = chain.checkpoint(bundle.checkpoint.epoch)
    verdict = chain.verify_reading_onchain(
        message=bundle.message,
        device_id=bundle.device_id,
        leaf_index=bundle.leaf_index,
        tree_size=bundle.tree_size,
        proof=list(bundle.inclusion_proof),
        checkpoint=anchored,
    )
    if not verdict.valid:
        raise _fail(f"onchain_{verdict.reason}", f"the ReadingVerifier contract refused the reading: {verdict.message}")
    return {
        "checked": True,
        "valid": True,
        "message": "verified by the ReadingVerifier contract in one eth_call (P-256 precompile at 0x100)",
    }


def verify_bundles_offline(bundles: Sequence[bytes], *, threads: int = 2) -> list[VerificationError | None]:
    """Parse and check many bundles (JSON bytes) offline, in ``threads`` threads: for each, None
    when valid, else the :class:`~protocol.errors.VerificationError` naming the failed check.

    An auditor sampling thousands of readings checks them as a batch; pyca/cryptography releases
    the GIL while it verifies a signature, so a second thread overlaps one bundle's signature with
    another's parsing.
    """

    def check(chunk: Sequence[bytes]) -> list[VerificationError | None]:
        results: list[VerificationError | None] = []
        for data in chunk:
            try:
                verify_bundle_offline(ProofBundle.parse(data))
            except VerificationError as exc:
                results.append(exc)
            else:
                results.append(None)
        return results

    size = 256
    chunks = [bundles[i : i + size] for i in range(0, len(bundles), size)]
    if threads <= 1 or len(chunks) < 2:
        return [r for chunk in chunks for r in check(chunk)]
    with ThreadPoolExecutor(threads, thread_name_prefix="verify-bundles") as pool:
        return [r for part in pool.map(check, chunks) for r in part]
