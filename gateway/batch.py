"""One batch of MQTT messages in, one database transaction out.

Every message ends in exactly one outcome: ``accepted`` (stored as a reading), ``duplicate`` (a
redelivered copy of a stored reading: counted, not stored again), ``held`` (verified but ahead of
its predecessor: stored durably until the predecessor arrives) or ``quarantined`` with a reason.
The caller acknowledges the batch's MQTT messages only after :meth:`BatchProcessor.process`
returns, i.e. after the commit.

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
from typing import Any

from sqlalchemy import Engine

from gateway.plausibility import check_plausible
from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import DeviceKind, Message, chain_hash, decode_message
from protocol.errors import BadSignatureError, VerificationError
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


@dataclass(slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    released: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)

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
    ) -> None:
        self._engine = engine
        self._reader = reader
        self._tariff = tariff
        self._clock_ms = clock_ms
        self._max_future_skew_ms = max_future_skew_ms
        self._hold_ms = hold_ms
        self._devices: dict[str, tuple[float, DeviceInfo]] = {}
        # pyca/cryptography releases the GIL while it verifies, so a few threads verify a batch
        # in parallel with each other and with the MQTT network thread.
        self._verifier = ThreadPoolExecutor(verify_threads, thread_name_prefix="verify") if verify_threads > 1 else None
        self._device_ttl_s = device_cache_s

    # --- the batch ------------------------------------------------------------------------------

    def process(self, batch: Sequence[Incoming]) -> BatchResult:
        result = BatchResult()
        writes = BatchWrites()
        candidates = self._decode_and_verify(batch, writes, result)
        with self._engine.begin() as conn:
            heads = ingest.lock_heads(conn, (c.message.body.device for c in candidates))
            devices = self._current_devices(conn, heads)
            self._classify(conn, candidates, devices, heads, writes, result)
            self._release_held(conn, devices, heads, writes, result)
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
        with self._engine.begin() as conn:
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
                    result,
                    Incoming(row.topic, bytes(row.raw), row.received_ms),
                    "gap",
                    f"seq {row.seq} waited {self._hold_ms // 1000} s for seq {expected}, which never arrived",
                    device_id=row.device_id,
                    seq=row.seq,
                    head=head,
                )
            ingest.write_batch(conn, writes, heads.values(), stored_ms=self._clock_ms())
        return result

    # --- steps ----------------------------------------------------------------------------------

    def _decode_and_verify(
        self, batch: Sequence[Incoming], writes: BatchWrites, result: BatchResult
    ) -> list[_Candidate]:
        decoded: list[tuple[Incoming, Message]] = []
        for incoming in batch:
            try:
                topic_device = device_from_topic(incoming.topic)
                message = decode_message(incoming.payload)
            except VerificationError as exc:
                self._quarantine(writes, result, incoming, exc.reason, str(exc))
                continue
            if message.body.device != topic_device:
                self._quarantine(
                    writes,
                    result,
                    incoming,
                    "topic_mismatch",
                    f"message from {message.body.device!r} published on the topic of {topic_device!r}",
                    device_id=message.body.device,
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

        def reject(reason: str, detail: str) -> None:
            if candidate.from_hold:
                writes.released.append((body.device, body.seq))
            self._quarantine(writes, result, incoming, reason, detail, device_id=body.device, seq=body.seq, head=head)

        if device is None or head is None:
            return reject("unknown_device", f"device {body.device!r} is not registered")
        if device.status != "active":
            return reject("revoked_device", f"device {body.device!r} is {device.status}")
        if candidate.verified_with != device.public_key:
            try:
                message.verify(alg=device.alg, public_key=device.public_key)
            except VerificationError as exc:
                return reject(exc.reason if isinstance(exc, BadSignatureError) else "bad_signature", str(exc))
        if device.kind != body.kind.value:
            return reject("malformed", f"device {body.device!r} is a {device.kind}, the reading says {body.kind.value}")

        key = (body.device, body.seq)
        if body.seq <= head.last_seq or key in in_batch:
            stored = in_batch.get(key) or ingest.stored_raw(conn, device_id=body.device, seq=body.seq)
            if stored == message.raw:
                if candidate.from_hold:
                    writes.released.append(key)
                head.duplicates += 1
                head.dirty = True
                result.duplicates += 1
                return None
            return reject("replay", f"seq {body.seq} is already used by another reading (head is at {head.last_seq})")
        if body.seq > head.last_seq + 1:
            if body.prev == head.last_hash:
                return reject(
                    "gap",
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
                return reject("replay", f"seq {body.seq} is already held with other content")
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
        if body.prev != head.last_hash:
            return reject("bad_prev", f"prev does not match the hash of seq {head.last_seq}: the chain forks here")
        if body.ts_ms < head.last_ts_ms:
            return reject("clock_skew", f"ts_ms {body.ts_ms} is before the previous reading's {head.last_ts_ms}")
        now = self._clock_ms()
        if body.ts_ms > now + self._max_future_skew_ms:
            return reject("clock_skew", f"ts_ms {body.ts_ms} is {(body.ts_ms - now) // 1000} s in the future")
        try:
            check_plausible(body, device.rating)
        except VerificationError as exc:
            return reject(exc.reason, str(exc))
        self._accept(candidate, device, head, writes, result)
        in_batch[key] = message.raw

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
        head.last_seq = body.seq
        head.last_hash = chain_hash(message.raw)
        head.last_ts_ms = body.ts_ms
        head.last_seen_ms = max(head.last_seen_ms or 0, candidate.incoming.received_ms)
        head.readings += 1
        head.dirty = True
        result.accepted += 1

    def _release_held(
        self,
        conn: Any,
        devices: dict[str, DeviceInfo],
        heads: dict[str, ChainHead],
        writes: BatchWrites,
        result: BatchResult,
    ) -> None:
        """Accept held readings that now follow their device's head, repeatedly (a run of held
        readings unwinds in one go)."""
        pending = [h for h in heads.values() if h.device_id in devices]
        while pending:
            rows = ingest.held_successors(conn, pending)
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
                        writes, result, incoming, exc.reason, str(exc), device_id=row.device_id, seq=row.seq
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
        result: BatchResult,
        incoming: Incoming,
        reason: str,
        detail: str,
        *,
        device_id: str | None = None,
        seq: int | None = None,
        head: ChainHead | None = None,
    ) -> None:
        payload = incoming.payload
        writes.quarantine.append(
            {
                "received_ms": incoming.received_ms,
                "reason": reason,
                "detail": detail[:500],
                "topic": incoming.topic[:200],
                "device_id": device_id,
                "seq": seq,
                "raw": payload[:QUARANTINE_RAW_LIMIT],
                "raw_size": len(payload),
                "raw_sha256": hashlib.sha256(payload).digest(),
            }
        )
        if head is not None:
            head.quarantined += 1
            head.dirty = True
        result.quarantined[reason] += 1
