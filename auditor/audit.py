"""Audit a window of epochs from an export and the chain alone.

For every epoch in the window the audit takes the checkpoint from the chain (the AnchorRegistry,
checked against its commitment) and, from the untrusted export, the leaves, the metadata and the
quarantine digests. It then

- recomputes the checkpoint root from the leaves (the first epoch seeded with the exported
  compact range, which only a root equal to the anchored one vindicates), and checks the exported
  consistency proof from the previous checkpoint;
- checks the metadata hashes to the anchored metaHash and covers exactly the epoch's leaves;
- checks the metadata's tariff is the one the pricing authority had in force on chain at the
  epoch window's start (the TariffRegistry), compared by canonical hash;
- decodes every leaf, finds the registered key that signs it and judges that key at the block
  time of the epoch's checkpoint, the first that includes the leaf (:mod:`auditor.keys`: chain
  time, never the reading's date); checks the reading against the device's registered profile
  (kind, window, plausibility for its rating); and prices it with the metadata's tariff under
  the asset the DeviceRegistry gives the device: the per-asset totals must equal the metadata's;
- recomputes the assets tree (:mod:`protocol.asset_totals`) from the totals of the leaves (every
  asset the metadata lists, zero when it has no reading) and compares its root with the
  metadata's ``assets_root`` and the anchored ``assetsRoot``;
- recomputes the quarantine count and root;
- follows every device's hash chain (``seq`` and ``prev``) across the window: gaps (a reading
  withheld or lost), forks (a reading that repeats a seq or does not link to the one before),
  readings that go back in time or come sooner than a window after the one before, and readings
  dated after the epoch that anchored them are listed by device and seq;
- lists what the chain says happened in the window (registrations, rotations, revocations,
  tariffs published) and the registered devices that sent nothing.

Every problem is a :class:`~auditor.report.Finding`; the audit passes when there are none. The
checks of one epoch are :mod:`auditor.epoch_checks`; the report and its text, :mod:`auditor.report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from auditor.chains import Link, follow
from auditor.distributions import check_distributions
from auditor.epoch_checks import (
    chained_message,
    check_assets_root,
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
from auditor.keys import judge, signing_order
from auditor.report import AuditReport, EpochResult, Finding, Rejection
from auditor.signatures import DeviceOnChain, SignatureWork, find_signers
from auditor.sources import ExportSource
from auditor.verify import check_profile, check_tariff, key_rules
from auditor.window import chain_events, silent_devices
from chain.errors import CheckpointMismatchError, ContractRevert
from chain.ids import asset_id_hash
from chain.reader import ChainReader
from chain.types import Checkpoint as ChainCheckpoint
from chain.types import KeyRecord
from protocol.cashflow import reading_cash_flow
from protocol.envelope import Body, Message, decode_message
from protocol.epoch import AssetTotals, EpochMetadata
from protocol.errors import VerificationError
from protocol.export import QuarantineMessage, split_leaves
from protocol.merkle.log import CompactRange

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
        self.window_start_block = chain.deployment.device_registry.block
        self.rules = key_rules(chain)
        self.asset_nets: dict[int, dict[str, int]] = {}
        """Each audited epoch's per-asset net from its metadata: what distributions are checked against."""

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
                self.devices[device_id] = DeviceOnChain(
                    self.chain.device_keys(device_id), info.asset_id, self.chain.device_profile(device_id)
                )
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
            report.events, report.tariffs = chain_events(
                self.chain, from_block=self.window_start_block + 1, to_block=last.block_number, heard=self.links
            )
            report.findings += silent_devices(
                self.chain,
                heard=set(self.links) | self.publishers,
                window=(report.first, report.last),
                window_start_block=self.window_start_block,
                last=last,
            )
            report.distributions = check_distributions(
                self.chain,
                first=report.first,
                last=report.last,
                to_block=self.chain.block_number(),
                nets=self.asset_nets,
                find=self.find,
            )
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
        if meta is not None:
            self.tariff(meta)
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
        totals = self.readings(
            epoch, leaves, first_index=first_index, meta=meta, result=result, anchored_at=anchored.timestamp
        )
        if meta is not None:
            check_assets_root(meta, recomputed=totals, anchored=anchored, find=self.find)
            self.asset_nets[epoch] = {name: figures.net for name, figures in meta.assets.items()}
        self.quarantine(epoch, meta, anchored_at=anchored.timestamp)
        return log

    def tariff(self, meta: EpochMetadata) -> None:
        """The metadata's tariff is the one in force on chain at the window's start."""
        try:
            published = check_tariff(self.chain, meta)
        except VerificationError as exc:
            self.find(exc.reason, str(exc), epoch=meta.epoch)
        else:
            self.report.epochs[-1].tariff = f"{meta.tariff.id} (#{published.index} on chain)"

    def readings(
        self,
        epoch: int,
        leaves: Sequence[bytes],
        *,
        first_index: int,
        meta: EpochMetadata | None,
        result: EpochResult,
        anchored_at: int,
    ) -> dict[str, AssetTotals]:
        """Check every leaf of the epoch, its signer (in chunks) and the per-asset totals; the
        totals recomputed from the leaves."""
        assets_by_id = {asset_id_hash(name): name for name in (meta.assets if meta is not None else {})}
        totals: dict[str, AssetTotals] = {}
        to_verify: list[SignatureWork] = []
        for offset, raw in enumerate(leaves):
            index = first_index + offset
            found = self.reading(raw, epoch=epoch, index=index, meta=meta, anchored_at=anchored_at, to_verify=to_verify)
            if found is None or meta is None:
                continue
            body, on_chain = found
            asset = assets_by_id.get(on_chain.asset_id)
            if asset is None:
                where = {"epoch": epoch, "device": body.device, "seq": body.seq, "leaf_index": index}
                self.find("unknown_asset", "the device's registered asset is not in the epoch metadata", **where)
                continue
            flow = reading_cash_flow(body, meta.tariff)
            totals[asset] = totals.get(asset, AssetTotals()).plus(
                readings=1, energy_wh=body.metrics["energy_wh"], revenue=flow.revenue, cost=flow.cost
            )
        self.check_signatures(to_verify)
        result.assets = {name: t.to_json() for name, t in sorted(totals.items())}
        if meta is not None:
            compare_totals(epoch, claimed=dict(meta.assets), recomputed=totals, find=self.find)
        return totals

    def reading(
        self,
        raw: bytes,
        *,
        epoch: int,
        index: int,
        meta: EpochMetadata | None,
        anchored_at: int,
        to_verify: list[SignatureWork],
    ) -> tuple[Body, DeviceOnChain] | None:
        """Decode one leaf, date it, check it against the device's registered profile and queue
        it for its signer (``to_verify``: linked into its device's chain once the signer is
        known); its body and device, unless the chain knows none."""
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
        if on_chain is None:
            self.link(message, key=None, epoch=epoch, leaf_index=index)
            self.find("unknown_device", "the device is not in the DeviceRegistry", **where)
            return None
        try:
            check_profile(body, on_chain.profile)
        except VerificationError as exc:
            self.find(exc.reason, str(exc), **where)
        self.queue(message, on_chain, epoch=epoch, leaf_index=index, anchored_at=anchored_at, to_verify=to_verify)
        return body, on_chain

    def queue(
        self,
        message: Message,
        on_chain: DeviceOnChain,
        *,
        epoch: int,
        leaf_index: int | None,
        anchored_at: int,
        to_verify: list[SignatureWork],
        rejected: str | None = None,
    ) -> None:
        """Queue ``message`` for the registered keys that may sign it (``alg_mismatch`` when none can)."""
        body = message.body
        candidates = [k for k in signing_order(on_chain.keys, anchored_at=anchored_at) if k.alg == message.alg]
        if not candidates:
            self.link(message, key=None, epoch=epoch, leaf_index=leaf_index, rejected=rejected)
            self.find(
                "alg_mismatch",
                f"signed with {message.alg}; the registered key is {on_chain.keys[-1].alg}",
                epoch=epoch,
                device=body.device,
                seq=body.seq,
                leaf_index=leaf_index,
            )
            return
        to_verify.append(
            SignatureWork(
                message=message,
                candidates=[(k, on_chain.verifier(k)) for k in candidates],
                leaf_index=leaf_index,
                epoch=epoch,
                anchored_at=anchored_at,
                rejected=rejected,
            )
        )

    def check_signatures(self, work: list[SignatureWork]) -> None:
        """Find each queued message's signer, judge it by chain time, and link the message."""
        if self.verify_signatures:
            chunks = [work[i : i + _SIG_CHUNK] for i in range(0, len(work), _SIG_CHUNK)]
            runner: Callable[[list[SignatureWork]], list[tuple[SignatureWork, KeyRecord | None, str | None]]]
            runner = find_signers
            results = (
                self.pool.map(runner, chunks) if self.pool is not None and len(chunks) > 1 else map(runner, chunks)
            )
            outcomes = [outcome for part in results for outcome in part]
            self.report.signatures_checked += len(work)
        else:
            outcomes = [(item, item.candidates[0][0], None) for item in work]
        for item, signer, error in outcomes:
            body = item.message.body
            where = {"epoch": item.epoch, "device": body.device, "seq": body.seq, "leaf_index": item.leaf_index}
            what = "the chained rejection's signature" if item.rejected is not None else "the signature"
            if signer is None:
                self.find(
                    "bad_signature",
                    f"{what} does not verify with any key registered on chain ({len(item.candidates)} tried): {error}",
                    **where,
                )
            else:
                refusal = judge(body.device, signer, anchored_at=item.anchored_at, ts_ms=body.ts_ms, rules=self.rules)
                if refusal is not None:
                    self.find(refusal.reason, str(refusal), **where)
            if signer is not None or item.rejected is None:  # a forged rejection is no link of the chain
                self.link(
                    item.message, key=signer, epoch=item.epoch, leaf_index=item.leaf_index, rejected=item.rejected
                )

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
        on_chain = self.devices.get(body.device)
        self.links.setdefault(body.device, []).append(
            Link(
                seq=body.seq,
                prev=body.prev,
                chain_hash=message.chain_hash,
                key_index=None if key is None else key.index,
                epoch=epoch,
                leaf_index=leaf_index,
                rejected=rejected,
                ts_ms=body.ts_ms,
                window_s=None if on_chain is None else on_chain.profile.window_s,
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

    def quarantine(self, epoch: int, meta: EpochMetadata | None, *, anchored_at: int) -> None:
        """Check the epoch's quarantine against its metadata, and follow its chained rejections."""
        if meta is None:
            return
        export = read_quarantine(self.source, epoch, find=self.find)
        if export is None:
            return
        check_quarantine_count(export, meta, epoch=epoch, find=self.find)
        self.report.quarantined += len(export.digests)
        to_verify: list[SignatureWork] = []
        for message in export.messages:
            if message.publisher is not None:
                self.publishers.add(message.publisher)
            if check_quarantine_digest(message, epoch=epoch, find=self.find) and message.chained:
                self.chained_rejection(epoch, message, anchored_at=anchored_at, to_verify=to_verify)
        self.check_signatures(to_verify)

    def chained_rejection(
        self, epoch: int, entry: QuarantineMessage, *, anchored_at: int, to_verify: list[SignatureWork]
    ) -> None:
        """Check a chained rejection as a link of its device's chain: the whole payload, the
        device and seq it is listed under, a signature by a registered key that counts at the
        block time of the checkpoint that committed the quarantine."""
        where: dict[str, Any] = {"epoch": epoch, "device": entry.device, "seq": entry.seq}
        message = chained_message(entry, where=where, find=self.find)
        if message is None:
            return
        on_chain = self.device(message.body.device)
        if on_chain is None:
            self.find("unknown_device", "the device is not in the DeviceRegistry", **where)
            return
        self.queue(
            message,
            on_chain,
            epoch=epoch,
            leaf_index=None,
            anchored_at=anchored_at,
            to_verify=to_verify,
            rejected=entry.reason,
        )


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
