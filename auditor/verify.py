"""Verify one reading's proof bundle against the chain, trusting nothing else.

The bundle is the operator's claim. From it the auditor takes only the message bytes and the
proof path; the key, the device's profile, the checkpoints, the tariff and their blocks come
from the chain:

1. the message is canonical and well formed, and names the bundle's device;
2. the device is in the DeviceRegistry and the AnchorRegistry holds a checkpoint for the
   bundle's epoch;
3. one of the device's registered keys signs the message (the one in force at the checkpoint's
   block time first, then the others, newest first);
4. the reading has the device's registered kind and reporting window (``wrong_kind``,
   ``wrong_window``) and is plausible for its registered rating (``implausible``);
5. the bundle's checkpoint (and anchor block, when given) is exactly the anchored one, the
   inclusion proof is for its tree size and leads to its root, and it is the first checkpoint
   that includes the leaf (the previous epoch's ends before it: ``not_first_checkpoint``);
6. the signing key counts at that checkpoint's block time (:mod:`auditor.keys`: chain time,
   never the reading's date, with the registry's rotation grace and backfill bound);
7. the anchoring block has at least the confirmations asked for;
8. when the bundle carries the epoch metadata, it hashes to the anchored metaHash, the leaf lies
   in the epoch, and its tariff is the one the pricing authority had in force on chain at the
   epoch window's start (``tariff_not_published``, ``tariff_mismatch``); it then prices the reading.

The first check that fails raises a :class:`~protocol.errors.VerificationError` whose ``reason``
names it. Problems with the chain itself (unreachable, wrong contracts) raise
:class:`~chain.errors.ChainError` instead: they say nothing about the bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from auditor.keys import KeyRules, judge, signing_order
from chain.errors import CheckpointMismatchError, ContractRevert
from chain.reader import ChainReader
from chain.types import Checkpoint as ChainCheckpoint
from chain.types import DeviceProfile, KeyRecord, PublishedTariff
from protocol.bundle import Anchor as BundleAnchor
from protocol.bundle import ProofBundle, verify_bundle_offline
from protocol.cashflow import CashFlow, Tariff, reading_cash_flow, tariff_hash
from protocol.envelope import Body, Message, decode_message
from protocol.epoch import EpochMetadata
from protocol.errors import VerificationError
from protocol.merkle.verify import verify_inclusion
from protocol.plausibility import check_metrics
from protocol.timing import WrongWindowError, check_window

__all__ = [
    "BundleVerdict",
    "check_profile",
    "check_tariff",
    "find_signer",
    "key_rules",
    "onchain_check",
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
    tariff_on_chain: PublishedTariff | None
    """The published tariff the metadata's is (None without metadata)."""
    bundle_key_matches: bool
    """Whether the key the bundle names is the registered one (only the registered one is used)."""

    def to_json(self) -> dict[str, Any]:
        body = self.message.body
        c = self.checkpoint
        published = self.tariff_on_chain
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
                "judged_at": c.timestamp,
            },
            "checkpoint": {
                "epoch": c.epoch,
                "tree_size": c.tree_size,
                "root": c.root.hex(),
                "meta_hash": c.meta_hash.hex(),
                "assets_root": c.assets_root.hex(),
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
                "tariff_published": None
                if published is None
                else {
                    "index": published.index,
                    "hash": published.tariff_hash.hex(),
                    "effective_from": published.effective_from,
                    "block_number": published.block_number,
                },
                "revenue": self.cash_flow.revenue,
                "cost": self.cash_flow.cost,
                "net": self.cash_flow.net,
            },
        }


def _fail(reason: str, message: str) -> VerificationError:
    return VerificationError(message, reason=reason)


def key_rules(chain: ChainReader) -> KeyRules:
    """The DeviceRegistry's rotation grace and backfill bound, from the chain."""
    params = chain.registry_params()
    return KeyRules(rotation_grace=params.rotation_grace, max_backfill=params.max_backfill)


def _device_keys(chain: ChainReader, device_id: str) -> list[KeyRecord]:
    """The device's key history from the DeviceRegistry (``unknown_device`` when it has none)."""
    try:
        return chain.device_keys(device_id)
    except ContractRevert as exc:
        if exc.name == "UnknownDevice":
            raise _fail("unknown_device", f"device {device_id!r} is not in the DeviceRegistry") from None
        raise


def check_profile(body: Body, profile: DeviceProfile) -> None:
    """The reading has the device's registered kind and window, and is plausible for its
    registered rating (``wrong_kind``, ``wrong_window``, ``implausible``)."""
    if body.kind != profile.kind:
        raise _fail(
            "wrong_kind",
            f"the reading says kind {body.kind}; device {body.device!r} is registered on chain as {profile.kind}",
        )
    try:
        check_window(body, registered_window_s=profile.window_s)
    except WrongWindowError as exc:
        raise _fail("wrong_window", f"{exc} (on chain)") from None
    rating = {"rated_power_w": profile.rated_power_w, "rated_hashrate_ghs": profile.rated_hashrate_ghs}
    try:
        check_metrics(body.kind, body.metrics, rating, window_s=profile.window_s)
    except VerificationError as exc:
        raise _fail(
            "implausible", f"implausible for the rating registered on chain for {body.device!r}: {exc}"
        ) from None


def find_signer(message: Message, keys: Sequence[KeyRecord], *, anchored_at: int) -> KeyRecord:
    """The registered key that signs ``message`` (tried in :func:`auditor.keys.signing_order`);
    ``alg_mismatch`` or ``bad_signature`` when none does."""
    body = message.body
    candidates = [k for k in signing_order(keys, anchored_at=anchored_at) if k.alg == message.alg]
    if not candidates:
        raise _fail(
            "alg_mismatch",
            f"the message is signed with {message.alg}, device {body.device!r} is registered {keys[-1].alg}",
        )
    error: VerificationError | None = None
    for key in candidates:
        try:
            message.verify(alg=key.alg, public_key=key.public_key)
        except VerificationError as exc:
            error = error or exc
        else:
            return key
    raise _fail(
        "bad_signature",
        f"the signature does not verify with any key registered on chain for {body.device!r}"
        f" ({len(candidates)} tried): {error}",
    )


def check_tariff(chain: ChainReader, meta: EpochMetadata) -> PublishedTariff:
    """The published tariff in force on chain at the epoch window's start, which must be the
    metadata's (``tariff_not_published``, ``tariff_mismatch``)."""
    at_s = meta.start_ms // 1000
    published = chain.tariff_in_force(at_s)
    if published is None:
        raise _fail(
            "tariff_not_published",
            f"epoch {meta.epoch}'s window starts at {at_s}; the pricing authority had no tariff in force on chain"
            " then (the metadata's tariff is the operator's word)",
        )
    return _same_tariff(meta.epoch, meta.tariff, published)


def _same_tariff(epoch: int, tariff: Tariff, published: PublishedTariff) -> PublishedTariff:
    if tariff_hash(tariff) != published.tariff_hash:
        theirs = published.parsed
        detail = ""
        if theirs is not None:
            mine, ref = tariff.to_json(), theirs.to_json()
            differing = [f"{k} {mine[k]} (published {ref[k]})" for k in ref if mine[k] != ref[k]]
            detail = ": " + ", ".join(differing)
        raise _fail(
            "tariff_mismatch",
            f"epoch {epoch}'s metadata prices with tariff {tariff.id!r}, which is not tariff #{published.index}"
            f" the pricing authority published on chain (in force from {published.effective_from}){detail}",
        )
    return published


def verify_bundle(bundle: ProofBundle, *, chain: ChainReader, min_confirmations: int = 1) -> BundleVerdict:
    """Check ``bundle`` against ``chain`` (see the module docstring for the order of checks)."""
    message = decode_message(bundle.message)
    body = message.body
    if body.device != bundle.device_id:
        raise _fail("device_mismatch", f"the message is from {body.device!r}, the bundle names {bundle.device_id!r}")
    keys = _device_keys(chain, body.device)
    anchored = _anchored(chain, bundle.checkpoint.epoch)
    key = find_signer(message, keys, anchored_at=anchored.timestamp)
    check_profile(body, chain.device_profile(body.device))
    _check_checkpoint(bundle, anchored)
    if bundle.anchor is not None:
        _check_anchor(bundle.anchor, anchored, chain=chain)
    _check_inclusion(bundle, message, anchored)
    _check_first_inclusion(chain, bundle.leaf_index, anchored)
    refusal = judge(body.device, key, anchored_at=anchored.timestamp, ts_ms=body.ts_ms, rules=key_rules(chain))
    if refusal is not None:
        raise refusal
    confirmations = chain.block_number() - anchored.block_number + 1
    if confirmations < min_confirmations:
        raise _fail(
            "unconfirmed",
            f"epoch {anchored.epoch}'s anchor has {confirmations} confirmation(s); {min_confirmations} required",
        )
    flow = currency = tariff_id = None
    published = None
    if bundle.metadata is not None:
        meta = _checked_metadata(bundle.metadata, leaf_index=bundle.leaf_index, anchored=anchored)
        published = check_tariff(chain, meta)
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
        tariff_on_chain=published,
        bundle_key_matches=(bundle.alg, bundle.public_key) == (key.alg, key.public_key),
    )


def _check_first_inclusion(chain: ChainReader, leaf_index: int, anchored: ChainCheckpoint) -> None:
    """The checkpoint is the first that includes the leaf: the previous epoch's ends before it
    (a key is judged at the block time of the first, never of a later one)."""
    if anchored.epoch == 0:
        return
    previous = _anchored(chain, anchored.epoch - 1)
    if leaf_index < previous.tree_size:
        raise _fail(
            "not_first_checkpoint",
            f"leaf {leaf_index} was already in epoch {previous.epoch}'s checkpoint (size {previous.tree_size});"
            f" its key is judged at the first checkpoint that included it, not epoch {anchored.epoch}'s",
        )


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
    if meta.assets_root != anchored.assets_root or meta.computed_assets_root() != meta.assets_root:
        raise _fail(
            "assets_root_mismatch",
            f"the bundle's epoch metadata states assets root {meta.assets_root.hex()} (its totals give"
            f" {meta.computed_assets_root().hex()}); epoch {anchored.epoch} was anchored with"
            f" {anchored.assets_root.hex()}",
        )
    if not meta.leaves_from <= leaf_index < meta.leaves_to:
        raise _fail(
            "leaf_outside_epoch",
            f"leaf {leaf_index} is not in epoch {meta.epoch} (leaves {meta.leaves_from}..{meta.leaves_to - 1})",
        )
    return meta


def onchain_check(chain: ChainReader, bundle: ProofBundle) -> dict[str, Any]:
    """Have the ReadingVerifier contract check the reading in one ``eth_call``: inclusion under
    the anchored checkpoint (the first to include it), the registered kind and window, and the
    P-256 signature with a key the registry accepts at the checkpoint's block time. Ed25519
    readings cannot be (the EVM has no Ed25519 precompile): reported, not failed. Raises
    ``onchain_<reason>`` when the contract says invalid."""
    message = decode_message(bundle.message)
    if message.alg != "es256":
        return {
            "checked": False,
            "valid": None,
            "message": f"not verifiable on chain: {message.alg} readings need an Ed25519 precompile the EVM"
            " lacks (checked off chain above)",
        }
    anchored = chain.checkpoint(bundle.checkpoint.epoch)
    previous = chain.checkpoint(anchored.epoch - 1) if anchored.epoch > 0 else None
    verdict = chain.verify_reading_onchain(
        message=bundle.message,
        device_id=bundle.device_id,
        leaf_index=bundle.leaf_index,
        tree_size=bundle.tree_size,
        proof=list(bundle.inclusion_proof),
        checkpoint=anchored,
        previous=previous,
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
