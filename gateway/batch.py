"""One batch of MQTT messages in, one database transaction out.

Every message ends in exactly one outcome: ``accepted`` (stored as a reading), ``duplicate`` (a
redelivered copy of a stored reading: counted, not stored again), ``held`` (verified but ahead of
its predecessor: stored durably until the predecessor arrives) or ``quarantined`` with a reason.
The caller acknowledges the batch's MQTT messages only after :meth:`BatchProcessor.process`
returns, i.e. after the commit.

A reading that is signed by its device's current key and linked to the device's chain head
(``seq`` = head + 1, ``prev`` = the head's hash) but rejected for its content (implausible,
clock skew, kind mismatch) is quarantined ``chained``: it advances the head, so the device's
next reading is accepted. Nothing else that fails advances anything. A resynchronised device
(``assetproof devices resync``) may instead start a new chain: its new key's first reading
carries ``prev`` = 32 zero bytes and any ``seq`` above the head.

Quarantine is filed under the device whose topic carried the message (the publisher), with the
body's device beside it, and is bounded per publisher by :class:`QuarantineBudget`: past it,
messages are counted per reason but not stored. Chained rejections are always stored.

Signatures are verified before the write transaction opens (they are the expensive part, and a
write lock must not wait on them); the transaction re-reads each device's key and status and
re-verifies only if the key changed in between.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine

from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import GENESIS_PREV, DeviceKind, Message, chain_hash, decode_message
from protocol.errors import BadSignatureError, VerificationError
from protocol.plausibility import check_plausible
from protocol.quarantine import QuarantineReason
from protocol.topics import device_from_topic
from store import ingest
from store.ingest import BatchWrites, ChainHead, DeviceInfo
from store.tables import QUARANTINE_RAW_LIMIT

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message as it left the broker, converted from paho's object at the edge."""

    topic: str
    payload: bytes
    received_ms: int
    token: Any = None  # what the MQTT edge needs to acknowledge it


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineBudget:
    """How much quarantine one publishing device may fill per window before its junk is only
    counted (``config.settings`` has the same defaults; a test keeps them equal). Bytes are the
    raw bytes stored (at most ``QUARANTINE_RAW_LIMIT`` a message)."""

    messages: int = 1_000
    bytes: int = 4 * 1024 * 1024
    window_s: int = 3_600

    def __post_init__(self) -> None:
        if self.messages < 0 or self.bytes < 0 or self.window_s < 1:
            raise ValueError(f"a quarantine budget needs messages, bytes >= 0 and window_s >= 1: {self}")


@dataclass(slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    released: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    """Stored in quarantine, per reason (chained rejections included)."""
    chained: int = 0
    """Of those, chained rejections (they advanced their device's chain)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Counted but not stored (publisher over its quarantine budget), per reason."""

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


@dataclass(slots=True)
class _Candidate:
    incoming: Incoming
    message: Message
    verified_with: bytes | None  # the public key the signature verified under, if it did
    from_hold: bool = False


_VERIFY_CHUNK = 64


def _verify_all(work: Sequence[tuple[Message, DeviceInfo | None]]) -> list[bytes | None]:
    """For each message, the key its signature verified under, or None."""
    keys: list[bytes | None] = []
    for message, device in work:
        if device is None:
            keys.append(None)
            continue
        try:
            message.verify(alg=device.alg, public_key=device.public_key)
            keys.append(device.public_key)
        except VerificationError:
            keys.append(None)
    return keys


class BatchProcessor:
    """Classifies and stores batches. Thread-compatible, not thread-safe: one per worker."""

    def __init__(
        self,
        *,
        engine: Engine,
        reader: Engine,
        tariff: Tariff,
        clock_ms: Callable[[], int],
        max_future_skew_ms: int = 300_000,
        hold_ms: int = 30_000,
        device_cache_s: float = 60.0,
        verify_threads: int = 2,
        budget: QuarantineBudget = QuarantineBudget(),  # frozen: sharing the default is safe
    ) -> None:
        self._engine = engine
        self._reader = reader
        self._tariff = tariff
        self._clock_ms = clock_ms
        self._max_future_skew_ms = max_future_skew_ms
        self._hold_ms = hold_ms
        self._budget = budget
        self._pruned_window: int | None = None
        self._devices: dict[str, tuple[float, DeviceInfo]] = {}
        # pyca/cryptography releases the GIL while it verifies, so a few threads verify a batch
        # in parallel with each other and with the MQTT network thread.
        self._verifier = ThreadPoolExecutor(verify_threads, thread_name_prefix="verify") if verify_threads > 1 else None
        self._device_ttl_s = device_cache_s

    # --- the batch ------------------------------------------------------------------------------

    def process(self, batch: Sequence[Incoming]) -> BatchResult:
        result = BatchResult()
        writes = BatchWrites()
        candidates = self._decode_and_verify(batch, writes)
        publishers = {q["device_id"] for q in writes.quarantine if q["device_id"] is not None}
        with self._engine.begin() as conn:
            # Every device whose topic appears: candidates' (body = topic) and junk publishers'.
            heads = ingest.lock_heads(conn, publishers | {c.message.body.device for c in candidates})
            devices = self._current_devices(conn, heads)
            self._classify(conn, candidates, devices, heads, writes, result)
            self._release_held(conn, devices, heads, writes, result)
            self._settle_quarantine(conn, writes, heads, result)
            ingest.write_batch(conn, writes, heads.values(), stored_ms=self._clock_ms())
        return result

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.shutdown()

    def sweep(self) -> BatchResult:
        """Promote held readings whose predecessor is stored, and quarantine as ``gap`` those that
        waited longer than the hold timeout. Call it every second or so."""
        result = BatchResult()
        writes = BatchWrites()
        now = self._clock_ms()
        window_ms = self._budget.window_s * 1000
        with self._engine.begin() as conn:
            if now - now % window_ms != self._pruned_window:
                # Budget windows of publishers that went quiet (a publisher's own old windows go
                # when it quarantines again). Older than the previous window: no worker with a
                # sane clock still uses them.
                self._pruned_window = now - now % window_ms
                ingest.prune_quarantine_windows(conn, before_ms=self._pruned_window - window_ms)
            device_ids = ingest.devices_with_held(conn)
            if not device_ids:
                return result
            heads = ingest.lock_heads(conn, device_ids)
            devices = self._current_devices(conn, heads)
            self._release_held(conn, devices, heads, writes, result)
            for row in ingest.expired_held(conn, before_ms=now - self._hold_ms):
                key = (row.device_id, row.seq)
                if key in writes.released:
                    continue
                head = heads.get(row.device_id)
                if head is not None and row.seq <= head.last_seq:
                    # A copy of it was accepted directly meanwhile: a duplicate or a replay.
                    self._classify_one(
                        conn,
                        _Candidate(
                            Incoming(row.topic, bytes(row.raw), row.received_ms),
                            decode_message(bytes(row.raw)),
                            None,
                            from_hold=True,
                        ),
                        devices,
                        heads,
                        writes,
                        result,
                        {},
                    )
                    continue
                expected = head.last_seq + 1 if head else 1
                writes.released.append(key)
                self._quarantine(
                    writes,
                    Incoming(row.topic, bytes(row.raw), row.received_ms),
                    QuarantineReason.GAP,
                    f"seq {row.seq} waited {self._hold_ms // 1000} s for seq {expected}, which never arrived",
                    publisher=row.device_id,
                    body_device=row.device_id,
                    seq=row.seq,
                )
            self._settle_quarantine(conn, writes, heads, result)
            ingest.write_batch(conn, writes, heads.values(), stored_ms=self._clock_ms())
        return result

    # --- steps ----------------------------------------------------------------------------------

    def _decode_and_verify(self, batch: Sequence[Incoming], writes: BatchWrites) -> list[_Candidate]:
        decoded: list[tuple[Incoming, Message]] = []
        for incoming in batch:
            try:
                topic_device = device_from_topic(incoming.topic)
            except VerificationError as exc:
                self._quarantine(writes, incoming, exc.reason, str(exc), publisher=None)
                continue
            try:
                message = decode_message(incoming.payload)
            except VerificationError as exc:
                # The broker's ACL lets only the topic's device publish there: it is the sender.
                self._quarantine(writes, incoming, exc.reason, str(exc), publisher=topic_device)
                continue
            if message.body.device != topic_device:
                # Filed under the publisher; the device the body names (maybe a victim) beside it.
                self._quarantine(
                    writes,
                    incoming,
                    QuarantineReason.TOPIC_MISMATCH,
                    f"message from {message.body.device!r} published on the topic of {topic_device!r}",
                    publisher=topic_device,
                    body_device=message.body.device,
                    seq=message.body.seq,
                )
                continue
            decoded.append((incoming, message))
        keys = self._cached_devices({m.body.device for _, m in decoded})
        work = [(message, keys.get(message.body.device)) for _, message in decoded]
        if self._verifier is None or len(work) < 2 * _VERIFY_CHUNK:
            verified = _verify_all(work)
        else:
            chunks = [work[i : i + _VERIFY_CHUNK] for i in range(0, len(work), _VERIFY_CHUNK)]
            verified = [key for part in self._verifier.map(_verify_all, chunks) for key in part]
        return [_Candidate(incoming, message, key) for (incoming, message), key in zip(decoded, verified, strict=True)]

    # --- the device cache -----------------------------------------------------------------------

    def _cached_devices(self, ids: set[str]) -> dict[str, DeviceInfo]:
        """Devices for signature checks before the transaction: cached, refreshed after a TTL.
        A stale entry is harmless: the transaction re-checks status and key."""
        now = time.monotonic()
        missing = [i for i in ids if i not in self._devices or now - self._devices[i][0] > self._device_ttl_s]
        if missing:
            with self._reader.connect() as conn:
                for device_id, info in ingest.load_devices(conn, missing).items():
                    self._devices[device_id] = (now, info)
        return {i: self._devices[i][1] for i in ids if i in self._devices}

    def _current_devices(self, conn: Any, heads: dict[str, ChainHead]) -> dict[str, DeviceInfo]:
        """The cached devices, reloaded inside the transaction where status or key changed."""
        devices = self._cached_devices(set(heads))
        stale = [
            h.device_id
            for h in heads.values()
            if (d := devices.get(h.device_id)) is None
            or (d.status, d.alg, d.public_key) != (h.status, h.alg, h.public_key)
        ]
        if stale:
            now = time.monotonic()
            for device_id, info in ingest.load_devices(conn, stale).items():
                self._devices[device_id] = (now, info)
                devices[device_id] = info
        return devices

    def _classify(
        self,
        conn: Any,
        candidates: Iterable[_Candidate],
        devices: dict[str, DeviceInfo],
        heads: dict[str, ChainHead],
        writes: BatchWrites,
        result: BatchResult,
    ) -> None:
        in_batch: dict[tuple[str, int], bytes] = {}
        for candidate in candidates:
            self._classify_one(conn, candidate, devices, heads, writes, result, in_batch)

    def _classify_one(
        self,
        conn: Any,
        candidate: _Candidate,
        devices: dict[str, DeviceInfo],
        heads: dict[str, ChainHead],
        writes: BatchWrites,
        result: BatchResult,
        in_batch: dict[tuple[str, int], bytes],
    ) -> None:
        incoming, message = candidate.incoming, candidate.message
        body = message.body
        device = devices.get(body.device)
        head = heads.get(body.device)
        key = (body.device, body.seq)

        def reject(reason: str, detail: str) -> None:
            if candidate.from_hold:
                writes.released.append(key)
            self._quarantine(
                writes, incoming, reason, detail, publisher=body.device, body_device=body.device, seq=body.seq
            )

        if device is None or head is None:
            return reject(QuarantineReason.UNKNOWN_DEVICE, f"device {body.device!r} is not registered")
        if device.status != "active":
            return reject(QuarantineReason.REVOKED_DEVICE, f"device {body.device!r} is {device.status}")
        if candidate.verified_with != device.public_key:
            try:
                message.verify(alg=device.alg, public_key=device.public_key)
            except VerificationError as exc:
                return reject(
                    exc.reason if isinstance(exc, BadSignatureError) else QuarantineReason.BAD_SIGNATURE, str(exc)
                )

        # A resynchronised device's new key may start a new chain above the old head, once.
        restart = head.resync_pending and body.prev == GENESIS_PREV and body.seq > head.last_seq
        if not restart and (body.seq <= head.last_seq or key in in_batch):
            stored = in_batch.get(key) or ingest.stored_raw(conn, device_id=body.device, seq=body.seq)
            if stored == message.raw:
                if candidate.from_hold:
                    writes.released.append(key)
                head.duplicates += 1
                head.dirty = True
                result.duplicates += 1
                return None
            return reject(
                QuarantineReason.REPLAY,
                f"seq {body.seq} is already used by another message (head is at {head.last_seq})",
            )
        if not restart and body.seq > head.last_seq + 1:
            if body.prev == head.last_hash:
                return reject(
                    QuarantineReason.GAP,
                    f"seq {body.seq} links to seq {head.last_seq}: {head.last_seq + 1}..{body.seq - 1} skipped",
                )
            if candidate.from_hold:
                return None  # still waiting
            stored = ingest.stored_raw(conn, device_id=body.device, seq=body.seq)
            if stored is not None:
                if stored == message.raw:
                    result.duplicates += 1
                    head.duplicates += 1
                    head.dirty = True
                    return None
                return reject(QuarantineReason.REPLAY, f"seq {body.seq} is already held with other content")
            writes.held.append(
                {
                    "device_id": body.device,
                    "seq": body.seq,
                    "raw": message.raw,
                    "topic": incoming.topic,
                    "received_ms": incoming.received_ms,
                }
            )
            in_batch[key] = message.raw
            result.held += 1
            return None
        if not restart and body.prev != head.last_hash:
            return reject(
                QuarantineReason.BAD_PREV, f"prev does not match the hash of seq {head.last_seq}: the chain forks here"
            )

        # Signed by the current key and linked: from here on the message takes its link whatever
        # its content, so a rejection below still advances the chain (and the device goes on).
        in_batch[key] = message.raw
        problem = self._content_problem(message=message, device=device, head=head)
        if problem is not None:
            reason, detail = problem
            if candidate.from_hold:
                writes.released.append(key)
                result.released += 1
            self._quarantine(
                writes,
                incoming,
                reason,
                detail,
                publisher=body.device,
                body_device=body.device,
                seq=body.seq,
                chained=True,
            )
            self._advance(head, message, incoming)
            head.rejected += 1
            return None
        self._accept(candidate, device, head, writes, result)

    def _content_problem(self, *, message: Message, device: DeviceInfo, head: ChainHead) -> tuple[str, str] | None:
        """Why a signed, linked reading cannot count (reason, detail), or None if it can."""
        body = message.body
        if device.kind != body.kind.value:
            return (
                QuarantineReason.KIND_MISMATCH,
                f"device {body.device!r} is a {device.kind}, the reading says {body.kind.value}",
            )
        if body.ts_ms < head.last_ts_ms:
            return QuarantineReason.CLOCK_SKEW, f"ts_ms {body.ts_ms} is before the previous reading's {head.last_ts_ms}"
        now = self._clock_ms()
        if body.ts_ms > now + self._max_future_skew_ms:
            return QuarantineReason.CLOCK_SKEW, f"ts_ms {body.ts_ms} is {(body.ts_ms - now) // 1000} s in the future"
        try:
            check_plausible(body, device.rating)
        except VerificationError as exc:
            return exc.reason, str(exc)
        return None

    @staticmethod
    def _advance(head: ChainHead, message: Message, incoming: Incoming) -> None:
        """Move the chain head to ``message`` (accepted or chained-rejected). ``last_ts_ms`` is
        the accepted readings' alone: a reading dated in the future must not hold back the next."""
        head.last_seq = message.body.seq
        head.last_hash = chain_hash(message.raw)
        head.last_seen_ms = max(head.last_seen_ms or 0, incoming.received_ms)
        head.resync_pending = False
        head.dirty = True

    def _accept(
        self, candidate: _Candidate, device: DeviceInfo, head: ChainHead, writes: BatchWrites, result: BatchResult
    ) -> None:
        message = candidate.message
        body = message.body
        flow = reading_cash_flow(body, self._tariff)
        writes.readings.append(
            {
                "device_id": body.device,
                "seq": body.seq,
                "ts_ms": body.ts_ms,
                "window_s": body.window_s,
                "metrics": dict(body.metrics),
                "raw": message.raw,
                "leaf_hash": message.leaf_hash,
                "revenue": flow.revenue,
                "cost": flow.cost,
                "tariff_id": self._tariff.id,
                "received_ms": candidate.incoming.received_ms,
            }
        )
        if candidate.from_hold:
            writes.released.append((body.device, body.seq))
            result.released += 1
        m = body.metrics
        active = (
            m["uptime_s"]
            if body.kind is DeviceKind.MINER
            else m["active_s"]
            if body.kind is DeviceKind.CHARGER
            else (body.window_s if m["power_w"] > 0 else 0)
        )
        writes.add_hourly(
            device_id=body.device,
            asset=device.asset,
            hour_ms=body.ts_ms - body.ts_ms % HOUR_MS,
            tariff_id=self._tariff.id,
            readings=1,
            energy_wh=m["energy_wh"],
            revenue=flow.revenue,
            cost=flow.cost,
            online_s=body.window_s,
            active_s=active,
        )
        self._advance(head, message, candidate.incoming)
        head.last_ts_ms = body.ts_ms
        head.readings += 1
        result.accepted += 1

    def _release_held(
        self,
        conn: Any,
        devices: dict[str, DeviceInfo],
        heads: dict[str, ChainHead],
        writes: BatchWrites,
        result: BatchResult,
    ) -> None:
        """Take held readings that now follow their device's head, repeatedly (a run of held
        readings unwinds in one go, through chained rejections too)."""
        pending = [h for h in heads.values() if h.device_id in devices]
        while pending:
            rows = ingest.held_successors(conn, pending)
            # Held earlier in this very batch: not in the table yet, so never inserted now.
            wanted = {(h.device_id, h.last_seq + 1) for h in pending}
            fresh = [h for h in writes.held if (h["device_id"], h["seq"]) in wanted]
            if fresh:
                writes.held = [h for h in writes.held if (h["device_id"], h["seq"]) not in wanted]
                rows += [SimpleNamespace(**h) for h in fresh]
            released_now = set(writes.released)
            progressed: list[ChainHead] = []
            for row in rows:
                if (row.device_id, row.seq) in released_now:
                    continue
                head = heads[row.device_id]
                before = head.last_seq
                incoming = Incoming(row.topic, bytes(row.raw), row.received_ms)
                try:
                    message = decode_message(incoming.payload)
                except VerificationError as exc:  # cannot happen for rows we held, but never lose it
                    writes.released.append((row.device_id, row.seq))
                    self._quarantine(
                        writes,
                        incoming,
                        exc.reason,
                        str(exc),
                        publisher=row.device_id,
                        body_device=row.device_id,
                        seq=row.seq,
                    )
                    continue
                self._classify_one(
                    conn, _Candidate(incoming, message, None, from_hold=True), devices, heads, writes, result, {}
                )
                if head.last_seq != before:
                    progressed.append(head)
            pending = progressed

    def _quarantine(
        self,
        writes: BatchWrites,
        incoming: Incoming,
        reason: str,
        detail: str,
        *,
        publisher: str | None,
        body_device: str | None = None,
        seq: int | None = None,
        chained: bool = False,
    ) -> None:
        """Queue a quarantine row; :meth:`_settle_quarantine` applies the budget and counts it."""
        payload = incoming.payload
        writes.quarantine.append(
            {
                "received_ms": incoming.received_ms,
                "reason": reason,
                "detail": detail[:500],
                "topic": incoming.topic[:200],
                "device_id": publisher,
                "body_device": body_device,
                "seq": seq,
                "chained": chained,
                "raw": payload[:QUARANTINE_RAW_LIMIT],
                "raw_size": len(payload),
                "raw_sha256": hashlib.sha256(payload).digest(),
            }
        )

    def _settle_quarantine(
        self, conn: Any, writes: BatchWrites, heads: dict[str, ChainHead], result: BatchResult
    ) -> None:
        """Apply each publisher's quarantine budget to the batch's quarantine rows, in arrival
        order: within budget (or chained: links the auditor needs) a row is stored and counted
        under its publisher; past it, it is only tallied per publisher and reason."""
        if not writes.quarantine:
            return
        now = self._clock_ms()
        window_ms = self._budget.window_s * 1000
        writes.window_ms = now - now % window_ms
        usage = ingest.lock_quarantine_usage(
            conn, (row["device_id"] or "" for row in writes.quarantine), window_ms=writes.window_ms
        )
        kept: list[dict[str, Any]] = []
        for row in writes.quarantine:
            publisher = row["device_id"] or ""
            count, size = usage.get(publisher, (0, 0))
            stored = len(row["raw"])
            over = count + 1 > self._budget.messages or size + stored > self._budget.bytes
            if over and not row["chained"]:
                writes.add_dropped(
                    publisher=publisher, reason=row["reason"], size=row["raw_size"], received_ms=row["received_ms"]
                )
                result.dropped[row["reason"]] += 1
                continue
            usage[publisher] = (count + 1, size + stored)
            kept.append(row)
            result.quarantined[row["reason"]] += 1
            result.chained += row["chained"]
            head = heads.get(publisher)
            if head is not None:
                head.quarantined += 1
                head.dirty = True
        writes.quarantine = kept
        writes.usage = usage
