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

Every problem is a :class:`~auditor.report.Finding`; the audit passes when there are none. The
checks of one epoch are :mod:`auditor.epoch_checks`; the report and its text, :mod:`auditor.report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from auditor.chains import Link, follow
from auditor.epoch_checks import (
    chained_message,
    check_consistency,
    check_exported_checkpoint,
    check_leaf_range,
    check_quarantine_count,
    check_quarantine_digest,
    compare_totals,
    read_checkpoint,
    read_metadata,
    read_quarantine,
    recompute_root,
    seed_log,
)
from auditor.report import AuditReport, EpochResult, Finding, Rejection
from auditor.signatures import DeviceOnChain, verify_chunk
from auditor.sources import ExportSource
from auditor.verify import key_refusal
from chain.errors import CheckpointMismatchError, ContractRevert
from chain.ids import asset_id_hash, device_id_hash
from chain.reader import ChainReader
from chain.types import Checkpoint as ChainCheckpoint
from chain.types import KeyRecord
from protocol.cashflow import reading_cash_flow
from protocol.envelope import Body, Message, decode_message
from protocol.epoch import AssetTotals, EpochMetadata
from protocol.errors import VerificationError
from protocol.export import QuarantineMessage, split_leaves
from protocol.merkle.log import CompactRange
from protocol.signing import VerifyingKey

__all__ = ["audit_epochs"]

DEFAULT_MAX_FUTURE_SKEW_MS: Final = 300_000
"""The gateway's default: a reading may be dated this far ahead of the clock that accepts it."""
_SIG_CHUNK: Final = 2_000


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
        self.devices: dict[str, DeviceOnChain | None] = {}
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

    def device(self, device_id: str) -> DeviceOnChain | None:
        if device_id not in self.devices:
            try:
                info = self.chain.device(device_id)
            except ContractRevert as exc:
                if exc.name != "UnknownDevice":
                    raise
                self.devices[device_id] = None
            else:
                self.devices[device_id] = DeviceOnChain(self.chain.device_keys(device_id), info.asset_id)
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
        result = EpochResult.begin(anchored)
        self.report.epochs.append(result)
        start = 0 if epoch == 0 else (previous.tree_size if previous is not None else None)
        doc = read_checkpoint(self.source, epoch, find=self.find)
        if doc is not None:
            check_exported_checkpoint(doc, epoch=epoch, anchored=anchored, find=self.find)
            if previous is not None:
                check_consistency(doc, epoch=epoch, anchored=anchored, previous=previous, find=self.find)
        meta = read_metadata(self.source, epoch, anchored=anchored, find=self.find)
        if meta is not None and start is not None:
            check_leaf_range(meta, epoch=epoch, start=start, anchored=anchored, find=self.find)
        if log is None:
            log = seed_log(epoch, doc, find=self.find)
        try:
            leaves = split_leaves(self.source.read(epoch, "leaves"))
        except VerificationError as exc:
            self.find("bad_export", f"leaves: {exc}", epoch=epoch)
            return None
        result.leaves = len(leaves)
        self.report.leaves += len(leaves)
        first_index = log.size if log is not None else (start or 0)
        if log is not None:
            log, recomputed = recompute_root(log, leaves, epoch=epoch, anchored=anchored, find=self.find)
            result.recomputed_root = recomputed.hex()
        self.readings(epoch, leaves, first_index=first_index, meta=meta, result=result)
        self.quarantine(epoch, meta)
        return log

    def readings(
        self, epoch: int, leaves: Sequence[bytes], *, first_index: int, meta: EpochMetadata | None, result: EpochResult
    ) -> None:
        """Check every leaf of the epoch, its signature (in chunks) and the per-asset totals."""
        assets_by_id = {asset_id_hash(name): name for name in (meta.assets if meta is not None else {})}
        totals: dict[str, AssetTotals] = {}
        to_verify: list[tuple[Message, VerifyingKey, int]] = []
        for offset, raw in enumerate(leaves):
            found = self.reading(raw, epoch=epoch, index=first_index + offset, meta=meta, to_verify=to_verify)
            if found is None or meta is None:
                continue
            body, on_chain = found
            asset = assets_by_id.get(on_chain.asset_id)
            if asset is None:
                where = {"epoch": epoch, "device": body.device, "seq": body.seq, "leaf_index": first_index + offset}
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
            compare_totals(epoch, claimed=dict(meta.assets), recomputed=totals, find=self.find)

    def reading(
        self,
        raw: bytes,
        *,
        epoch: int,
        index: int,
        meta: EpochMetadata | None,
        to_verify: list[tuple[Message, VerifyingKey, int]],
    ) -> tuple[Body, DeviceOnChain] | None:
        """Decode one leaf, date it, link it into its device's chain and find the key it must be
        signed with (queued in ``to_verify``); its body and device, unless the chain knows none."""
        try:
            message = decode_message(raw)
        except VerificationError as exc:
            self.find(
                "malformed_leaf", f"leaf is not a valid message ({exc.reason}): {exc}", epoch=epoch, leaf_index=index
            )
            return None
        body = message.body
        where = {"epoch": epoch, "device": body.device, "seq": body.seq, "leaf_index": index}
        if meta is not None and body.ts_ms > meta.end_ms + self.max_future_skew_ms:
            self.out_of_window.setdefault(body.device, []).append(body.seq)
            self.find("out_of_window", f"dated {body.ts_ms}, after the epoch closed at {meta.end_ms}", **where)
        on_chain = self.device(body.device)
        key = on_chain.key_at(body.ts_ms // 1000) if on_chain is not None else None
        self.link(message, key=key, epoch=epoch, leaf_index=index)
        if on_chain is None:
            self.find("unknown_device", "the device is not in the DeviceRegistry", **where)
            return None
        if key is None:
            refusal = key_refusal(body.device, on_chain.keys, body.ts_ms // 1000)
            self.find(refusal.reason, str(refusal), **where)
        elif key.alg != message.alg:
            self.find("alg_mismatch", f"signed with {message.alg}; the registered key is {key.alg}", **where)
        else:
            to_verify.append((message, on_chain.verifier(key), index))
        return body, on_chain

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

    def quarantine(self, epoch: int, meta: EpochMetadata | None) -> None:
        """Check the epoch's quarantine against its metadata, and follow its chained rejections."""
        if meta is None:
            return
        export = read_quarantine(self.source, epoch, find=self.find)
        if export is None:
            return
        check_quarantine_count(export, meta, epoch=epoch, find=self.find)
        self.report.quarantined += len(export.digests)
        for message in export.messages:
            if message.publisher is not None:
                self.publishers.add(message.publisher)
            if check_quarantine_digest(message, epoch=epoch, find=self.find) and message.chained:
                self.chained_rejection(epoch, message)

    def chained_rejection(self, epoch: int, entry: QuarantineMessage) -> None:
        """Check a chained rejection as a link of its device's chain: the whole payload, the
        device and seq it is listed under, a signature by the key the chain says was in force."""
        where: dict[str, Any] = {"epoch": epoch, "device": entry.device, "seq": entry.seq}
        message = chained_message(entry, where=where, find=self.find)
        if message is None:
            return
        body = message.body
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
