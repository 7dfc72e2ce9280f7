"""The per-epoch checks of an audit, one function each: the export against the anchored checkpoint.

Each check reports through ``find`` (a finding's check name, message and where) and returns what
the next check needs; the order of the calls in :mod:`auditor.audit` is the order of the findings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from auditor.sources import ExportSource, read_json
from chain.types import Checkpoint as ChainCheckpoint
from protocol.asset_totals import assets_root
from protocol.envelope import Message, decode_message
from protocol.epoch import AssetTotals, EpochMetadata, quarantine_root
from protocol.errors import VerificationError
from protocol.export import EpochCheckpoint, QuarantineExport, QuarantineMessage
from protocol.merkle.log import CompactRange
from protocol.merkle.verify import verify_consistency

__all__ = [
    "Find",
    "chained_message",
    "check_assets_root",
    "check_consistency",
    "check_exported_checkpoint",
    "check_leaf_range",
    "check_quarantine_count",
    "check_quarantine_digest",
    "compare_totals",
    "read_checkpoint",
    "read_metadata",
    "read_quarantine",
    "recompute_root",
    "seed_log",
]


class Find(Protocol):
    def __call__(self, check: str, message: str, **where: Any) -> None: ...


def read_checkpoint(source: ExportSource, epoch: int, *, find: Find) -> EpochCheckpoint | None:
    try:
        return EpochCheckpoint.from_json(read_json(source, epoch, "checkpoint.json"))
    except VerificationError as exc:
        find("bad_export", f"checkpoint.json: {exc}", epoch=epoch)
        return None


def check_exported_checkpoint(doc: EpochCheckpoint, *, epoch: int, anchored: ChainCheckpoint, find: Find) -> None:
    """The exported checkpoint is the anchored one, field by field."""
    differing = [
        name
        for name, mine, theirs in (
            ("epoch", doc.epoch, epoch),
            ("tree_size", doc.tree_size, anchored.tree_size),
            ("root", doc.root, anchored.root),
            ("meta_hash", doc.meta_hash, anchored.meta_hash),
        )
        if mine != theirs
    ]
    if differing:
        find(
            "checkpoint_mismatch",
            f"the exported checkpoint differs from the anchored one in {', '.join(differing)}"
            f" (anchored: size {anchored.tree_size}, root {anchored.root.hex()})",
            epoch=epoch,
        )


def check_consistency(
    doc: EpochCheckpoint, *, epoch: int, anchored: ChainCheckpoint, previous: ChainCheckpoint, find: Find
) -> None:
    """The exported consistency proof leads from the previous anchored checkpoint to this one."""
    try:
        verify_consistency(
            size1=previous.tree_size,
            size2=anchored.tree_size,
            proof=list(doc.consistency_proof),
            root1=previous.root,
            root2=anchored.root,
        )
    except VerificationError as exc:
        find(
            "inconsistent",
            f"the consistency proof from epoch {epoch - 1} (size {previous.tree_size}) does not verify: {exc}",
            epoch=epoch,
        )


def read_metadata(source: ExportSource, epoch: int, *, anchored: ChainCheckpoint, find: Find) -> EpochMetadata | None:
    """The exported metadata, checked to hash to the anchored metaHash (kept even if it does not)."""
    try:
        meta = EpochMetadata.parse(source.read(epoch, "metadata.json"))
    except VerificationError as exc:
        find("bad_export", f"metadata.json: {exc}", epoch=epoch)
        return None
    if meta.meta_hash != anchored.meta_hash or meta.epoch != epoch:
        find(
            "meta_hash_mismatch",
            f"the exported metadata hashes to {meta.meta_hash.hex()}; the anchored metaHash is"
            f" {anchored.meta_hash.hex()}",
            epoch=epoch,
        )
    return meta


def check_leaf_range(meta: EpochMetadata, *, epoch: int, start: int, anchored: ChainCheckpoint, find: Find) -> None:
    """The metadata covers exactly the epoch's leaves."""
    if (meta.leaves_from, meta.leaves_to) != (start, anchored.tree_size):
        find(
            "leaf_range_mismatch",
            f"the metadata covers leaves {meta.leaves_from}..{meta.leaves_to}; the chain says"
            f" {start}..{anchored.tree_size}",
            epoch=epoch,
        )


def seed_log(epoch: int, doc: EpochCheckpoint | None, *, find: Find) -> CompactRange | None:
    """The log before the window's first epoch: empty at genesis, else the exported compact
    range (which only a recomputed root equal to the anchored one vindicates)."""
    if epoch == 0:
        return CompactRange()
    if doc is None:
        return None
    try:
        return CompactRange(size=doc.frontier_size, hashes=doc.frontier)
    except VerificationError as exc:
        find("bad_export", f"checkpoint.json frontier: {exc}", epoch=epoch)
        return None


def recompute_root(
    log: CompactRange, leaves: Sequence[bytes], *, epoch: int, anchored: ChainCheckpoint, find: Find
) -> tuple[CompactRange | None, bytes]:
    """Extend the log with the epoch's leaves and compare size and root with the anchored ones;
    the log (None once it cannot be trusted) and the recomputed root."""
    log.extend(leaves)
    recomputed = log.root()
    if log.size != anchored.tree_size:
        find(
            "leaf_count",
            f"the export has leaves up to tree size {log.size}; the anchored checkpoint has {anchored.tree_size}",
            epoch=epoch,
        )
    if recomputed != anchored.root:
        find(
            "root_mismatch",
            f"the exported leaves do not hash to the anchored root: recomputed {recomputed.hex()},"
            f" anchored {anchored.root.hex()} (a leaf was altered, removed, added or reordered)",
            epoch=epoch,
        )
        return None, recomputed
    return log, recomputed


def compare_totals(
    epoch: int, *, claimed: dict[str, AssetTotals], recomputed: dict[str, AssetTotals], find: Find
) -> None:
    """The metadata's per-asset totals are the ones recomputed from the leaves."""
    for asset in sorted(claimed.keys() | recomputed.keys()):
        mine = recomputed.get(asset, AssetTotals()).to_json()
        theirs = claimed.get(asset, AssetTotals()).to_json()
        wrong = [f"{k} claimed {theirs[k]}, recomputed {mine[k]}" for k in theirs if theirs[k] != mine[k]]
        if wrong:
            find("totals_mismatch", f"asset {asset}: " + "; ".join(wrong), epoch=epoch)


def check_assets_root(
    meta: EpochMetadata, *, recomputed: dict[str, AssetTotals], anchored: ChainCheckpoint, find: Find
) -> None:
    """The assets tree recomputed from the leaves' totals (the metadata's assets without a
    reading count as zero) has the metadata's ``assets_root`` and the anchored ``assetsRoot``."""
    totals = {name: recomputed.get(name, AssetTotals()) for name in meta.assets.keys() | recomputed.keys()}
    root = assets_root(epoch=meta.epoch, currency=meta.tariff.currency, totals=totals)
    differing = [
        f"{name} says {claimed.hex()}"
        for name, claimed in (("the metadata", meta.assets_root), ("the anchor", anchored.assets_root))
        if claimed != root
    ]
    if differing:
        find(
            "assets_root_mismatch",
            f"the assets tree recomputed from the leaves has root {root.hex()}; " + ", ".join(differing),
            epoch=meta.epoch,
        )


def read_quarantine(source: ExportSource, epoch: int, *, find: Find) -> QuarantineExport | None:
    try:
        return QuarantineExport.from_json(read_json(source, epoch, "quarantine.json"))
    except VerificationError as exc:
        find("bad_export", f"quarantine.json: {exc}", epoch=epoch)
        return None


def check_quarantine_count(export: QuarantineExport, meta: EpochMetadata, *, epoch: int, find: Find) -> None:
    """The exported digests give the metadata's quarantine count and root."""
    digests = list(export.digests)
    if len(digests) != meta.quarantine_count or quarantine_root(digests) != meta.quarantine_root:
        find(
            "quarantine_mismatch",
            f"the exported quarantine ({len(digests)} digests) does not match the metadata's count"
            f" {meta.quarantine_count} and root",
            epoch=epoch,
        )


def check_quarantine_digest(message: QuarantineMessage, *, epoch: int, find: Find) -> bool:
    """Whether a quarantined payload, when exported whole, hashes to its listed digest."""
    if message.complete and hashlib.sha256(message.raw).digest() != message.digest:
        find(
            "quarantine_digest",
            f"the quarantined payload does not hash to its listed digest {message.digest.hex()}",
            epoch=epoch,
            device=message.publisher,
            seq=message.seq,
        )
        return False
    return True


def chained_message(entry: QuarantineMessage, *, where: dict[str, Any], find: Find) -> Message | None:
    """The chained rejection's payload, if whole, a message, and the one it is listed as."""
    if not entry.complete:
        find("bad_chained", "a chained rejection must be exported whole (raw is truncated)", **where)
        return None
    try:
        message = decode_message(entry.raw)
    except VerificationError as exc:
        find("bad_chained", f"the chained rejection is not a valid message ({exc.reason}): {exc}", **where)
        return None
    body = message.body
    if (body.device, body.seq) != (entry.device, entry.seq):
        find(
            "bad_chained",
            f"the payload is {body.device}#{body.seq}; the quarantine lists it as {entry.device}#{entry.seq}",
            **where,
        )
        return None
    return message
