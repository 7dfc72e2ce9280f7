"""One batch of MQTT messages in, one database transaction out.

Every message ends in exactly one outcome: ``accepted`` (stored as a reading), ``duplicate`` (a
redelivered copy of a stored reading: counted, not stored again), ``held`` (verified but ahead of
its predecessor: stored durably until the predecessor arrives) or ``quarantined`` with a reason.
The caller acknowledges the batch's MQTT messages only after :meth:`BatchProcessor.process`
returns, i.e. after the commit.

A reading that is signed by its device's current key and linked to the device's chain head
(``seq`` = head + 1, ``prev`` = the head's hash) but rejected for its content (the rules of
``protocol.plausibility.check_reading``: kind, window, time, plausibility, spacing) is
quarantined ``chained``: it advances the head, so the device's next reading is accepted.
Nothing else that fails advances anything. A resynchronised device (``assetproof devices
resync``) may instead start a new chain: its new key's first reading carries ``prev`` = 32 zero
bytes and any ``seq`` above the head.

Quarantine is filed under the device whose topic carried the message (the publisher), with the
body's device beside it, and is bounded per publisher by
:class:`gateway.quarantine.QuarantineBudget`: past it, messages are counted per reason but not
stored. Chained rejections are always stored.

Signatures are verified before the write transaction opens (they are the expensive part, and a
write lock must not wait on them); the transaction re-reads each device's key and status and
re-verifies only if the key changed in between. The classification itself is
:class:`gateway.classifier.BatchClassifier`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection, Engine

from gateway.classifier import BatchClassifier
from gateway.quarantine import DEFAULT_BUDGET, QuarantineBudget, quarantine_row, settle_quarantine
from gateway.records import BatchResult, Candidate, Incoming
from protocol.cashflow import Tariff
from protocol.envelope import Message, decode_message
from protocol.errors import VerificationError
from protocol.quarantine import QuarantineReason
from protocol.topics import device_from_topic
from store import ingest
from store.ingest import ChainHead, DeviceInfo
from store.writes import BatchWrites

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
        budget: QuarantineBudget = DEFAULT_BUDGET,
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
            classifier = self._classifier(conn, heads, writes, result)
            classifier.classify_all(candidates)
            classifier.release_held()
            self._settle(conn, writes, heads, result)
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
            classifier = self._classifier(conn, heads, writes, result)
            classifier.release_held()
            for row in ingest.expired_held(conn, before_ms=now - self._hold_ms):
                key = (row.device_id, row.seq)
                if key in writes.released:
                    continue
                head = heads.get(row.device_id)
                incoming = Incoming(row.topic, bytes(row.raw), row.received_ms)
                if head is not None and row.seq <= head.last_seq:
                    # A copy of it was accepted directly meanwhile: a duplicate or a replay.
                    classifier.classify(Candidate(incoming, decode_message(incoming.payload), None, from_hold=True))
                    continue
                expected = head.last_seq + 1 if head else 1
                writes.released.append(key)
                writes.quarantine.append(
                    quarantine_row(
                        incoming,
                        QuarantineReason.GAP,
                        f"seq {row.seq} waited {self._hold_ms // 1000} s for seq {expected}, which never arrived",
                        publisher=row.device_id,
                        body_device=row.device_id,
                        seq=row.seq,
                    )
                )
            self._settle(conn, writes, heads, result)
            ingest.write_batch(conn, writes, heads.values(), stored_ms=self._clock_ms())
        return result

    # --- steps ----------------------------------------------------------------------------------

    def _classifier(
        self, conn: Connection, heads: dict[str, ChainHead], writes: BatchWrites, result: BatchResult
    ) -> BatchClassifier:
        return BatchClassifier(
            conn,
            devices=self._current_devices(conn, heads),
            heads=heads,
            writes=writes,
            result=result,
            tariff=self._tariff,
            clock_ms=self._clock_ms,
            max_future_skew_ms=self._max_future_skew_ms,
        )

    def _settle(self, conn: Connection, writes: BatchWrites, heads: dict[str, ChainHead], result: BatchResult) -> None:
        settle_quarantine(conn, budget=self._budget, clock_ms=self._clock_ms, writes=writes, heads=heads, result=result)

    def _decode_and_verify(self, batch: Sequence[Incoming], writes: BatchWrites) -> list[Candidate]:
        decoded: list[tuple[Incoming, Message]] = []
        for incoming in batch:
            try:
                topic_device = device_from_topic(incoming.topic)
            except VerificationError as exc:
                writes.quarantine.append(quarantine_row(incoming, exc.reason, str(exc), publisher=None))
                continue
            try:
                message = decode_message(incoming.payload)
            except VerificationError as exc:
                # The broker's ACL lets only the topic's device publish there: it is the sender.
                writes.quarantine.append(quarantine_row(incoming, exc.reason, str(exc), publisher=topic_device))
                continue
            if message.body.device != topic_device:
                # Filed under the publisher; the device the body names (maybe a victim) beside it.
                writes.quarantine.append(
                    quarantine_row(
                        incoming,
                        QuarantineReason.TOPIC_MISMATCH,
                        f"message from {message.body.device!r} published on the topic of {topic_device!r}",
                        publisher=topic_device,
                        body_device=message.body.device,
                        seq=message.body.seq,
                    )
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
        return [Candidate(incoming, message, key) for (incoming, message), key in zip(decoded, verified, strict=True)]

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

    def _current_devices(self, conn: Connection, heads: dict[str, ChainHead]) -> dict[str, DeviceInfo]:
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
