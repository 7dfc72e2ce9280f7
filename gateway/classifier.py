"""The classification of one batch inside its write transaction: each candidate message ends
accepted, duplicate, held or quarantined, and the chain heads move as they are accepted.

:class:`BatchClassifier` holds the batch's state (the transaction, the devices and their chain
heads, the rows to write, the tallies) so each step reads it instead of being handed it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace

from sqlalchemy import Connection

from gateway.quarantine import quarantine_row
from gateway.records import BatchResult, Candidate, Incoming
from protocol.cashflow import HOUR_MS, Tariff, reading_cash_flow
from protocol.envelope import GENESIS_PREV, DeviceKind, Message, chain_hash, decode_message
from protocol.errors import BadSignatureError, VerificationError
from protocol.plausibility import check_reading
from protocol.quarantine import QuarantineReason
from store import ingest
from store.ingest import ChainHead, DeviceInfo
from store.status import DeviceStatus
from store.writes import BatchWrites


class BatchClassifier:
    """Classifies one batch's messages against the chain heads locked in ``conn``."""

    def __init__(
        self,
        conn: Connection,
        *,
        devices: dict[str, DeviceInfo],
        heads: dict[str, ChainHead],
        writes: BatchWrites,
        result: BatchResult,
        tariff: Tariff,
        clock_ms: Callable[[], int],
        max_future_skew_ms: int,
    ) -> None:
        self._conn = conn
        self._devices = devices
        self._heads = heads
        self._writes = writes
        self._result = result
        self._tariff = tariff
        self._clock_ms = clock_ms
        self._max_future_skew_ms = max_future_skew_ms
        self._in_batch: dict[tuple[str, int], bytes] = {}
        """(device, seq) → raw of the messages this batch already linked or held."""

    def classify_all(self, candidates: Iterable[Candidate]) -> None:
        for candidate in candidates:
            self.classify(candidate)

    def classify(self, candidate: Candidate) -> None:
        # A held reading is judged against the stored chain alone: it was checked against its
        # own batch when it was held.
        in_batch = {} if candidate.from_hold else self._in_batch
        incoming, message = candidate.incoming, candidate.message
        body = message.body
        device = self._devices.get(body.device)
        head = self._heads.get(body.device)
        key = (body.device, body.seq)
        writes, result = self._writes, self._result

        def reject(reason: str, detail: str) -> None:
            if candidate.from_hold:
                writes.released.append(key)
            writes.quarantine.append(
                quarantine_row(incoming, reason, detail, publisher=body.device, body_device=body.device, seq=body.seq)
            )

        if device is None or head is None:
            return reject(QuarantineReason.UNKNOWN_DEVICE, f"device {body.device!r} is not registered")
        if device.status != DeviceStatus.ACTIVE:
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
            stored = in_batch.get(key) or ingest.stored_raw(self._conn, device_id=body.device, seq=body.seq)
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
            stored = ingest.stored_raw(self._conn, device_id=body.device, seq=body.seq)
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
            writes.quarantine.append(
                quarantine_row(
                    incoming,
                    reason,
                    detail,
                    publisher=body.device,
                    body_device=body.device,
                    seq=body.seq,
                    chained=True,
                )
            )
            _advance(head, message, incoming)
            head.rejected += 1
            return None
        self._accept(candidate, device, head)

    def _content_problem(self, *, message: Message, device: DeviceInfo, head: ChainHead) -> tuple[str, str] | None:
        """Why a signed, linked reading cannot count (reason, detail), or None if it can: the
        rules of :func:`protocol.plausibility.check_reading`, against the device as registered
        and its last accepted reading (``last_ts_ms`` is 0 before the first one)."""
        try:
            check_reading(
                message.body,
                kind=device.kind,
                rating=device.rating,
                registered_window_s=device.window_s,
                previous_ts_ms=head.last_ts_ms or None,
                not_after_ms=self._clock_ms() + self._max_future_skew_ms,
            )
        except VerificationError as exc:
            return exc.reason, str(exc)
        return None

    def _accept(self, candidate: Candidate, device: DeviceInfo, head: ChainHead) -> None:
        message = candidate.message
        body = message.body
        flow = reading_cash_flow(body, self._tariff)
        self._writes.readings.append(
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
            self._writes.released.append((body.device, body.seq))
            self._result.released += 1
        m = body.metrics
        active = (
            m["uptime_s"]
            if body.kind is DeviceKind.MINER
            else m["active_s"]
            if body.kind is DeviceKind.CHARGER
            else (body.window_s if m["power_w"] > 0 else 0)
        )
        self._writes.add_hourly(
            device_id=body.device,
            asset=device.asset,
            hour_ms=body.ts_ms - body.ts_ms % HOUR_MS,
            tariff_id=self._tariff.id,
            sums={
                "readings": 1,
                "energy_wh": m["energy_wh"],
                "revenue": flow.revenue,
                "cost": flow.cost,
                "online_s": body.window_s,
                "active_s": active,
            },
        )
        _advance(head, message, candidate.incoming)
        head.last_ts_ms = body.ts_ms
        head.readings += 1
        self._result.accepted += 1

    def release_held(self) -> None:
        """Take held readings that now follow their device's head, repeatedly (a run of held
        readings unwinds in one go, through chained rejections too)."""
        writes, heads = self._writes, self._heads
        pending = [h for h in heads.values() if h.device_id in self._devices]
        while pending:
            rows = ingest.held_successors(self._conn, pending)
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
                    writes.quarantine.append(
                        quarantine_row(
                            incoming,
                            exc.reason,
                            str(exc),
                            publisher=row.device_id,
                            body_device=row.device_id,
                            seq=row.seq,
                        )
                    )
                    continue
                self.classify(Candidate(incoming, message, None, from_hold=True))
                if head.last_seq != before:
                    progressed.append(head)
            pending = progressed


def _advance(head: ChainHead, message: Message, incoming: Incoming) -> None:
    """Move the chain head to ``message`` (accepted or chained-rejected). ``last_ts_ms`` is
    the accepted readings' alone: a reading dated in the future must not hold back the next."""
    head.last_seq = message.body.seq
    head.last_hash = chain_hash(message.raw)
    head.last_seen_ms = max(head.last_seen_ms or 0, incoming.received_ms)
    head.resync_pending = False
    head.dirty = True
