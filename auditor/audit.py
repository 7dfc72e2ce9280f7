"""Audit a window of epochs from an export and the chain alone.

For every epoch in the window the audit takes the checkpoint from the chain (the AnchorRegistry,
checked against its commitment) and, from the untrusted export, the leaves, the metadata and the
quarantine digests. It then

- recomputes the checkpoint root from the leaves (the first epoch seeded with the exported
  compact range, which only a root equal to the anchored one vindicates), and checks the exported
  consistency proof from the previous checkpoint;
- checks the metadata hashes to the anchored metaHash and covers exactly the epoch's leaves;
- decodes every leaf, re-verifies its signature with the key the DeviceRegistry says was valid
  at the reading's time, and prices it with the metadata's tariff under the asset the
  DeviceRegistry gives the device: the per-asset totals must equal the metadata's;
- recomputes the quarantine count and root;
- follows every device's hash chain (``seq`` and ``prev``) across the window: gaps (a reading
  withheld or lost), forks (a reading that repeats a seq or does not link to the one before) and
  readings dated after the epoch that anchored them are listed by device and seq.

Every problem is a :class:`Finding`; the audit passes when there are none.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from auditor.chains import DeviceChain, Link, follow
from auditor.sources import ExportSource, read_json
from auditor.verify import key_for_time, key_refusal
from chain.client import ChainReader, KeyRecord, asset_id_hash, device_id_hash
from chain.client import Checkpoint as ChainCheckpoint
from chain.errors import CheckpointMismatchError, ContractRevert
from protocol.cashflow import reading_cash_flow
from protocol.envelope import Message, decode_message
from protocol.epoch import AssetTotals, EpochMetadata, quarantine_root
from protocol.errors import VerificationError
from protocol.export import EpochCheckpoint, QuarantineExport, QuarantineMessage, split_leaves
from protocol.merkle.log import CompactRange
from protocol.merkle.verify import verify_consistency
from protocol.signing import VerifyingKey

__all__ = ["AuditReport", "DeviceChain", "Finding", "Rejection", "audit_epochs", "verify_chunk"]

DEFAULT_MAX_FUTURE_SKEW_MS: Final = 300_000
"""The gateway's default: a reading may be dated this far ahead of the clock that accepts it."""
_SIG_CHUNK: Final = 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    check: str
    message: str
    epoch: int | None = None
    device: str | None = None
    seq: int | None = None
    leaf_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.as_dict().items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "epoch": self.epoch,
            "device": self.device,
            "seq": self.seq,
            "leaf_index": self.leaf_index,
            "message": self.message,
        }


@dataclass(slots=True)
class EpochResult:
    epoch: int
    tree_size: int
    leaves: int
    root: str
    recomputed_root: str | None
    block_number: int
    assets: dict[str, dict[str, int]]
    findings: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "tree_size": self.tree_size,
            "leaves": self.leaves,
            "root": self.root,
            "recomputed_root": self.recomputed_root,
            "block_number": self.block_number,
            "assets": self.assets,
            "findings": self.findings,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A chained rejection: a genuine link of its device's chain, quarantined for its content.
    Information, not a finding: it advanced the chain and stays out of cash flow."""

    epoch: int
    device: str
    seq: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "device": self.device, "seq": self.seq, "reason": self.reason}


@dataclass(slots=True)
class AuditReport:
    first: int
    last: int
    source: str
    epochs: list[EpochResult] = field(default_factory=list)
    devices: dict[str, DeviceChain] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    quarantined: int = 0
    leaves: int = 0
    signatures_checked: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "epochs_audited": f"{self.first}..{self.last}",
            "source": self.source,
            "leaves": self.leaves,
            "signatures_checked": self.signatures_checked,
            "seconds": round(self.seconds, 3),
            "quarantined": self.quarantined,
            "summary": {"by_check": self.by_check(), "by_device": self.by_device()},
            "findings": [f.to_json() for f in self.findings],
            "rejections": [r.to_json() for r in self.rejections],
            "epochs": [e.to_json() for e in self.epochs],
            "devices": {name: chain.to_json() for name, chain in sorted(self.devices.items())},
        }

    def by_check(self) -> dict[str, int]:
        """How many findings of each check, most first."""
        counts = Counter(f.check for f in self.findings)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def by_device(self) -> dict[str, dict[str, int]]:
        """Per device, how many findings of each check (findings that name no device left out)."""
        grouped: dict[str, Counter[str]] = {}
        for f in self.findings:
            if f.device is not None:
                grouped.setdefault(f.device, Counter())[f.check] += 1
        return {device: dict(sorted(c.items())) for device, c in sorted(grouped.items())}

    def render(self, *, examples: int | None = 5) -> str:
        """The report for people: the verdict and a summary first, then findings grouped by check
        with at most ``examples`` of each (None: every one). One bad run can have tens of
        thousands of findings; nobody reads them one per line."""
        lines = [
            f"audit of epochs {self.first}..{self.last} from {self.source}: {'PASSED' if self.ok else 'FAILED'}",
            f"{len(self.epochs)} epochs, {self.leaves} leaves, {self.quarantined} quarantined,"
            f" {self.signatures_checked} signatures re-verified, {len(self.devices)} devices, {self.seconds:.1f} s",
        ]
        if self.findings:
            lines.append(
                f"{len(self.findings)} finding(s): "
                + ", ".join(f"{check} {count}" for check, count in self.by_check().items())
            )
            by_device = self.by_device()
            if by_device:
                lines.append(f"by device ({len(by_device)}):")
                shown = list(by_device.items()) if examples is None else list(by_device.items())[: examples * 2]
                for device, checks in shown:
                    lines.append(f"  {device:<24} " + ", ".join(f"{c} {n}" for c, n in checks.items()))
                if len(shown) < len(by_device):
                    lines.append(f"  ... and {len(by_device) - len(shown)} more device(s)")
        lost = {d: c for d, c in self.devices.items() if c.lost}
        total_lost = sum(c.lost for c in lost.values())
        lines.append(
            f"completeness: {len(self.devices) - len(lost)} of {len(self.devices)} devices lost nothing;"
            f" {total_lost} reading(s) missing in all"
        )
        for device, c in sorted(lost.items()):
            ranges = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in c.gaps)
            lines.append(f"  {device:<24} lost {c.lost}: seq {ranges}")
        if self.rejections:
            lines.append(
                f"chained rejections: {len(self.rejections)} (genuine links of their device's chain,"
                " quarantined for content, not in cash flow; information, not findings)"
            )
            shown_r = self.rejections if examples is None else self.rejections[: examples * 2]
            for r in shown_r:
                lines.append(f"  epoch {r.epoch:>4}  {r.device}#{r.seq}  {r.reason}")
            if len(shown_r) < len(self.rejections):
                lines.append(f"  ... and {len(self.rejections) - len(shown_r)} more (--all or --json for every one)")
        lines.append("")
        for e in self.epochs:
            status = "ok" if e.findings == 0 else f"{e.findings} finding(s)"
            lines.append(
                f"epoch {e.epoch:>4}  size {e.tree_size:>9}  leaves {e.leaves:>7}  block {e.block_number:>7}  {status}"
            )
            for asset, totals in e.assets.items():
                lines.append(
                    f"      {asset:<24} readings {totals['readings']:>7}  energy {totals['energy_wh']:>12} Wh"
                    f"  revenue {totals['revenue']:>12}  cost {totals['cost']:>12}  net {totals['net']:>12}"
                )
        grouped: dict[str, list[Finding]] = {}
        for f in self.findings:
            grouped.setdefault(f.check, []).append(f)
        for check in self.by_check():
            found = grouped[check]
            lines.append("")
            lines.append(f"[{check}] {len(found)} finding(s):")
            shown_f = found if examples is None else found[:examples]
            lines.extend(f"  {_where(f)}{f.message}" for f in shown_f)
            if len(shown_f) < len(found):
                lines.append(f"  ... and {len(found) - len(shown_f)} more (--all or --json for every one)")
        return "\n".join(lines)


def _where(f: Finding) -> str:
    where = " ".join(
        part
        for part in (
            f"epoch {f.epoch}" if f.epoch is not None else "",
            f"{f.device}#{f.seq}" if f.device is not None and f.seq is not None else (f.device or ""),
            f"leaf {f.leaf_index}" if f.leaf_index is not None else "",
        )
        if part
    )
    return where + ": " if where else ""


@dataclass(slots=True)
class _DeviceOnChain:
    keys: list[KeyRecord]
    asset_id: bytes
    verifiers: dict[int, VerifyingKey] = field(default_factory=dict)

    def key_at(self, at_s: int) -> KeyRecord | None:
        return key_for_time(self.keys, at_s)

    def verifier(self, key: KeyRecord) -> VerifyingKey:
        found = self.verifiers.get(key.index)
        if found is None:
            found = self.verifiers[key.index] = VerifyingKey.from_bytes(key.alg, key.public_key)
        return found


class _Auditor:
    def __init__(
        self,
        source: ExportSource,
        chain: ChainReader,
        *,
        first: int,
        last: int,
        max_future_skew_ms: int,
        verify_signatures: bool,
        pool: ThreadPoolExecutor | None,
    ) -> None:
        self.source = source
        self.chain = chain
        self.report = AuditReport(first=first, last=last, source=source.describe())
        self.max_future_skew_ms = max_future_skew_ms
        self.verify_signatures = verify_signatures
        self.pool = pool
        self.devices: dict[str, _DeviceOnChain | None] = {}
        self.from_genesis = first == 0
        self.links: dict[str, list[Link]] = {}
        self.out_of_window: dict[str, list[int]] = {}
        self.publishers: set[str] = set()
        """Devices whose topic carried a quarantined message (they are not silent)."""
        self.window_start_block = 0

    def find(self, check: str, message: str, **where: Any) -> None:
        self.report.findings.append(Finding(check=check, message=message, **where))

    def anchored(self, epoch: int) -> ChainCheckpoint | None:
        try:
            return self.chain.checkpoint(epoch)
        except ContractRevert as exc:
            if exc.name != "UnknownEpoch":
                raise
            self.find("not_anchored", "the epoch is not anchored on chain", epoch=epoch)
        except CheckpointMismatchError as exc:
            self.find("checkpoint_unverifiable", str(exc), epoch=epoch)
        return None

    def device(self, device_id: str) -> _DeviceOnChain | None:
        if device_id not in self.devices:
            try:
                info = self.chain.device(device_id)
            except ContractRevert as exc:
                if exc.name != "UnknownDevice":
                    raise
                self.devices[device_id] = None
            else:
                self.devices[device_id] = _DeviceOnChain(self.chain.device_keys(device_id), info.asset_id)
        return self.devices[device_id]

    def run(self) -> AuditReport:
        started = time.perf_counter()
        report = self.report
        previous: ChainCheckpoint | None = None
        if report.first > 0:
            previous = self.anchored(report.first - 1)
        if previous is not None:
            self.window_start_block = previous.block_number
        log: CompactRange | None = None
        last: ChainCheckpoint | None = None
        for epoch in range(report.first, report.last + 1):
            before = len(report.findings)
            anchored = self.anchored(epoch)
            if anchored is None:
                break
            log = self.epoch(epoch, anchored=anchored, previous=previous, log=log)
            report.epochs[-1].findings = len(report.findings) - before
            previous = last = anchored
        self.follow_chains()
        if last is not None:
            self.silent_devices(last)
        report.seconds = time.perf_counter() - started
        return report

    def epoch(
        self,
        epoch: int,
        *,
        anchored: ChainCheckpoint,
        previous: ChainCheckpoint | None,
        log: CompactRange | None,
    ) -> CompactRange | None:
        """Audit one epoch; return the compact range after it (None when it cannot be trusted)."""
        result = EpochResult(
            epoch=epoch,
            tree_size=anchored.tree_size,
            leaves=0,
            root=anchored.root.hex(),
            recomputed_root=None,
            block_number=anchored.block_number,
            assets={},
        )
        self.report.epochs.append(result)
        start = 0 if epoch == 0 else (previous.tree_size if previous is not None else None)

        try:
            doc: EpochCheckpoint | None = EpochCheckpoint.from_json(read_json(self.source, epoch, "checkpoint.json"))
        except VerificationError as exc:
            self.find("bad_export", f"checkpoint.json: {exc}", epoch=epoch)
            doc = None
        if doc is not None:
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
                self.find(
                    "checkpoint_mismatch",
                    f"the exported checkpoint differs from the anchored one in {', '.join(differing)}"
                    f" (anchored: size {anchored.tree_size}, root {anchored.root.hex()})",
                    epoch=epoch,
                )
            if previous is not None:
                try:
                    verify_consistency(
                        size1=previous.tree_size,
                        size2=anchored.tree_size,
                        proof=list(doc.consistency_proof),
                        root1=previous.root,
                        root2=anchored.root,
                    )
                except VerificationError as exc:
                    self.find(
                        "inconsistent",
                        f"the consistency proof from epoch {epoch - 1} (size {previous.tree_size})"
                        f" does not verify: {exc}",
                        epoch=epoch,
                    )

        meta = self.metadata(epoch, anchored)
        if meta is not None and start is not None and (meta.leaves_from, meta.leaves_to) != (start, anchored.tree_size):
            self.find(
                "leaf_range_mismatch",
                f"the metadata covers leaves {meta.leaves_from}..{meta.leaves_to}; the chain says"
                f" {start}..{anchored.tree_size}",
                epoch=epoch,
            )

        if log is None:
            if epoch == 0:
                log = CompactRange()
            elif doc is not None:
                try:
                    log = CompactRange(size=doc.frontier_size, hashes=doc.frontier)
                except VerificationError as exc:
                    self.find("bad_export", f"checkpoint.json frontier: {exc}", epoch=epoch)
        try:
            leaves = split_leaves(self.source.read(epoch, "leaves"))
        except VerificationError as exc:
            self.find("bad_export", f"leaves: {exc}", epoch=epoch)
            return None
        result.leaves = len(leaves)
        self.report.leaves += len(leaves)
        first_index = log.size if log is not None else (start or 0)
        if log is not None:
            log.extend(leaves)
            recomputed = log.root()
            result.recomputed_root = recomputed.hex()
            if log.size != anchored.tree_size:
                self.find(
                    "leaf_count",
                    f"the export has leaves up to tree size {log.size};"
                    f" the anchored checkpoint has {anchored.tree_size}",
                    epoch=epoch,
                )
            if recomputed != anchored.root:
                self.find(
                    "root_mismatch",
                    f"the exported leaves do not hash to the anchored root: recomputed {recomputed.hex()},"
                    f" anchored {anchored.root.hex()} (a leaf was altered, removed, added or reordered)",
                    epoch=epoch,
                )
                log = None
        self.readings(epoch, leaves, first_index=first_index, meta=meta, result=result)
        self.quarantine(epoch, meta)
        return log

    def metadata(self, epoch: int, anchored: ChainCheckpoint) -> EpochMetadata | None:
        try:
            meta = EpochMetadata.parse(self.source.read(epoch, "metadata.json"))
        except VerificationError as exc:
            self.find("bad_export", f"metadata.json: {exc}", epoch=epoch)
            return None
        if meta.meta_hash != anchored.meta_hash or meta.epoch != epoch:
            self.find(
                "meta_hash_mismatch",
                f"the exported metadata hashes to {meta.meta_hash.hex()}; the anchored metaHash is"
                f" {anchored.meta_hash.hex()}",
                epoch=epoch,
            )
        return meta

    def readings(
        self, epoch: int, leaves: Sequence[bytes], *, first_index: int, meta: EpochMetadata | None, result: EpochResult
    ) -> None:
        assets_by_id = {asset_id_hash(name): name for name in (meta.assets if meta is not None else {})}
        totals: dict[str, AssetTotals] = {}
        to_verify: list[tuple[Message, VerifyingKey, int]] = []
        for offset, raw in enumerate(leaves):
            index = first_index + offset
            try:
                message = decode_message(raw)
            except VerificationError as exc:
                self.find(
                    "malformed_leaf",
                    f"leaf is not a valid message ({exc.reason}): {exc}",
                    epoch=epoch,
                    leaf_index=index,
                )
                continue
            body = message.body
            where = {"epoch": epoch, "device": body.device, "seq": body.seq, "leaf_index": index}
            if meta is not None and body.ts_ms > meta.end_ms + self.max_future_skew_ms:
                self.out_of_window.setdefault(body.device, []).append(body.seq)
                self.find(
                    "out_of_window",
                    f"dated {body.ts_ms}, after the epoch closed at {meta.end_ms}",
                    **where,
                )
            on_chain = self.device(body.device)
            key = on_chain.key_at(body.ts_ms // 1000) if on_chain is not None else None
            self.link(message, key=key, epoch=epoch, leaf_index=index)
            if on_chain is None:
                self.find("unknown_device", "the device is not in the DeviceRegistry", **where)
                continue
            if key is None:
                refusal = key_refusal(body.device, on_chain.keys, body.ts_ms // 1000)
                self.find(refusal.reason, str(refusal), **where)
            elif key.alg != message.alg:
                self.find("alg_mismatch", f"signed with {message.alg}; the registered key is {key.alg}", **where)
            else:
                to_verify.append((message, on_chain.verifier(key), index))
            if meta is not None:
                asset = assets_by_id.get(on_chain.asset_id)
                if asset is None:
                    self.find("unknown_asset", "the device's registered asset is not in the epoch metadata", **where)
                    continue
                flow = reading_cash_flow(body, meta.tariff)
                totals[asset] = totals.get(asset, AssetTotals()).plus(
                    readings=1, energy_wh=body.metrics["energy_wh"], revenue=flow.revenue, cost=flow.cost
                )
        if self.verify_signatures:
            self.check_signatures(epoch, to_verify)
        result.assets = {name: t.to_json() for name, t in sorted(totals.items())}
        if meta is not None:
            self.compare_totals(epoch, claimed=dict(meta.assets), recomputed=totals)

    def link(
        self,
        message: Message,
        *,
        key: KeyRecord | None,
        epoch: int,
        leaf_index: int | None,
        rejected: str | None = None,
    ) -> None:
        body = message.body
        self.links.setdefault(body.device, []).append(
            Link(
                seq=body.seq,
                prev=body.prev,
                chain_hash=message.chain_hash,
                key_index=None if key is None else key.index,
                epoch=epoch,
                leaf_index=leaf_index,
                rejected=rejected,
            )
        )

    def follow_chains(self) -> None:
        """Follow every device's chain through its accepted and chained rejected links."""
        results = {result.epoch: result for result in self.report.epochs}
        for device in sorted(self.links):
            chain, problems = follow(self.links[device], from_genesis=self.from_genesis)
            chain.out_of_window = self.out_of_window.get(device, [])
            self.report.devices[device] = chain
            for check, message, link in problems:
                self.find(check, message, **link.where(device))
                results[link.epoch].findings += 1
        for device, chain in self.report.devices.items():
            epochs = {lk.seq: lk.epoch for lk in self.links[device] if lk.rejected is not None}
            self.report.rejections.extend(
                Rejection(epoch=epochs[seq], device=device, seq=seq, reason=reason) for seq, reason in chain.rejected
            )
        self.report.rejections.sort(key=lambda r: (r.epoch, r.device, r.seq))

    def silent_devices(self, last: ChainCheckpoint) -> None:
        """Every device registered on chain by the window's last checkpoint, not revoked before the
        window, that shows no message at all in it: a finding (named by its id's hash, all the
        chain knows of it)."""
        start_block = self.window_start_block
        heard = {device_id_hash(d) for d in self.links} | {device_id_hash(d) for d in self.publishers}
        for registered in self.chain.registered_devices(to_block=last.block_number):
            if registered.device_hash in heard:
                continue
            if registered.revoked_block is not None and registered.revoked_block <= start_block:
                continue
            self.find(
                "silent",
                f"registered on chain in block {registered.block_number} but sent nothing in epochs"
                f" {self.report.first}..{self.report.last} (neither a reading nor a quarantined message)",
                device="0x" + registered.device_hash.hex(),
            )

    def check_signatures(self, epoch: int, work: list[tuple[Message, VerifyingKey, int]]) -> None:
        chunks = [work[i : i + _SIG_CHUNK] for i in range(0, len(work), _SIG_CHUNK)]
        runner: Callable[[list[tuple[Message, VerifyingKey, int]]], list[tuple[Message, int, str]]] = verify_chunk
        results = self.pool.map(runner, chunks) if self.pool is not None and len(chunks) > 1 else map(runner, chunks)
        for failures in results:
            for message, index, error in failures:
                self.find(
                    "bad_signature",
                    f"the signature does not verify with the key registered on chain: {error}",
                    epoch=epoch,
                    device=message.body.device,
                    seq=message.body.seq,
                    leaf_index=index,
                )
        self.report.signatures_checked += len(work)

    def compare_totals(
        self, epoch: int, *, claimed: dict[str, AssetTotals], recomputed: dict[str, AssetTotals]
    ) -> None:
        for asset in sorted(claimed.keys() | recomputed.keys()):
            mine = recomputed.get(asset, AssetTotals()).to_json()
            theirs = claimed.get(asset, AssetTotals()).to_json()
            wrong = [f"{k} claimed {theirs[k]}, recomputed {mine[k]}" for k in theirs if theirs[k] != mine[k]]
            if wrong:
                self.find("totals_mismatch", f"asset {asset}: " + "; ".join(wrong), epoch=epoch)

    def quarantine(self, epoch: int, meta: EpochMetadata | None) -> None:
        if meta is None:
            return
        try:
            export = QuarantineExport.from_json(read_json(self.source, epoch, "quarantine.json"))
        except VerificationError as exc:
            self.find("bad_export", f"quarantine.json: {exc}", epoch=epoch)
            return
        digests = list(export.digests)
        if len(digests) != meta.quarantine_count or quarantine_root(digests) != meta.quarantine_root:
            self.find(
                "quarantine_mismatch",
                f"the exported quarantine ({len(digests)} digests) does not match the metadata's count"
                f" {meta.quarantine_count} and root",
                epoch=epoch,
            )
        self.report.quarantined += len(digests)
        for message in export.messages:
            if message.publisher is not None:
                self.publishers.add(message.publisher)
            if message.complete and hashlib.sha256(message.raw).digest() != message.digest:
                self.find(
                    "quarantine_digest",
                    f"the quarantined payload does not hash to its listed digest {message.digest.hex()}",
                    epoch=epoch,
                    device=message.publisher,
                    seq=message.seq,
                )
                continue
            if message.chained:
                self.chained_rejection(epoch, message)

    def chained_rejection(self, epoch: int, entry: QuarantineMessage) -> None:
        """Check a chained rejection as a link of its device's chain: the whole payload, the
        device and seq it is listed under, a signature by the key the chain says was in force."""
        where: dict[str, Any] = {"epoch": epoch, "device": entry.device, "seq": entry.seq}
        if not entry.complete:
            self.find("bad_chained", "a chained rejection must be exported whole (raw is truncated)", **where)
            return
        try:
            message = decode_message(entry.raw)
        except VerificationError as exc:
            self.find("bad_chained", f"the chained rejection is not a valid message ({exc.reason}): {exc}", **where)
            return
        body = message.body
        if (body.device, body.seq) != (entry.device, entry.seq):
            self.find(
                "bad_chained",
                f"the payload is {body.device}#{body.seq}; the quarantine lists it as {entry.device}#{entry.seq}",
                **where,
            )
            return
        on_chain = self.device(body.device)
        key = on_chain.key_at(body.ts_ms // 1000) if on_chain is not None else None
        if on_chain is None:
            self.find("unknown_device", "the device is not in the DeviceRegistry", **where)
            return
        if key is None:
            refusal = key_refusal(body.device, on_chain.keys, body.ts_ms // 1000)
            self.find(refusal.reason, str(refusal), **where)
            return
        if self.verify_signatures:
            try:
                on_chain.verifier(key).verify(message=message.signed_bytes, signature=message.signature)
            except VerificationError as exc:
                self.find(
                    "bad_signature",
                    f"the chained rejection's signature does not verify with the key registered on chain: {exc}",
                    **where,
                )
                return
            self.report.signatures_checked += 1
        self.link(message, key=key, epoch=epoch, leaf_index=None, rejected=entry.reason)


def verify_chunk(work: list[tuple[Message, VerifyingKey, int]]) -> list[tuple[Message, int, str]]:
    """Verify each message with its key; the failures, with their leaf index and why."""
    failures = []
    for message, key, index in work:
        try:
            key.verify(message=message.signed_bytes, signature=message.signature)
        except VerificationError as exc:
            failures.append((message, index, str(exc)))
    return failures


def audit_epochs(
    source: ExportSource,
    *,
    chain: ChainReader,
    first: int,
    last: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    verify_signatures: bool = True,
    threads: int = 2,
) -> AuditReport:
    """Audit epochs ``first..last`` (inclusive) of ``source`` against ``chain``.

    Problems with the export or the log are findings in the report; only an unreadable source
    (:class:`~auditor.sources.SourceError`) or an unusable chain
    (:class:`~chain.errors.ChainError`) raises.
    """
    if not 0 <= first <= last:
        raise ValueError(f"bad epoch range {first}..{last}")
    # pyca/cryptography releases the GIL while verifying: threads use every core.
    pool = ThreadPoolExecutor(threads, thread_name_prefix="audit-verify") if threads > 1 else None
    try:
        return _Auditor(
            source,
            chain,
            first=first,
            last=last,
            max_future_skew_ms=max_future_skew_ms,
            verify_signatures=verify_signatures,
            pool=pool,
        ).run()
    finally:
        if pool is not None:
            pool.shutdown()
