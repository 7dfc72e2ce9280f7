"""Outbox draining: which outbox rows each connection holds in memory, what it publishes next,
and which acknowledged rows leave the outbox.

Rows are read in id order into per-connection buffers. A row for a connection that is not up
stays on disk (the connection reads it back once up, :meth:`OutboxDrain.catch_up`), so a dead
connection never holds up the others. Acknowledged ids are removed in batches: a removal lost to
a crash only re-sends a message, which the gateway counts as a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from device_sim.connection import Conn, State
from device_sim.outbox import Entry, Outbox

__all__ = ["OutboxDrain"]

log = logging.getLogger(__name__)

_READ_CHUNK = 5_000
_ACK_FLUSH_COUNT = 1_000
ACK_FLUSH_S = 0.02
_PUBLISH_OVERHEAD = 16  # fixed header, topic length, packet id and properties, bounded from above


class OutboxDrain:
    """The in-memory side of the outbox for a set of connections (publisher thread only).

    ``route`` gives the connection of a device id (always the same one); ``on_parked`` is called
    for a connection that is down when rows for it arrive, so it gets (re)connected.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        route: Callable[[str], Conn],
        read_ahead: int,
        multiplexed: bool,
        on_parked: Callable[[Conn], None],
    ) -> None:
        self.outbox = outbox
        self._route = route
        self._read_ahead = read_ahead
        self._multiplexed = multiplexed
        self._on_parked = on_parked
        self.cursor = 0  # highest outbox id read into memory (or skipped for a connection)
        self.buffered = 0
        self._behind = False  # more rows may be waiting on disk
        self._blocked_on: Conn | None = None  # the full connection the last read stopped at
        self.busy: set[Conn] = set()  # connections with buffered messages or messages left on disk
        self._acked: list[int] = []
        self.acked_since = 0.0
        self.rejected = 0

    @property
    def has_acks(self) -> bool:
        return bool(self._acked)

    @staticmethod
    def buffer_cap(conn: Conn) -> int:
        return 2 * conn.window + 64

    def may_read_more(self) -> bool:
        blocked = self._blocked_on
        if blocked is not None and len(blocked.pending) >= self.buffer_cap(blocked) // 2:
            return False
        return self._behind and self.buffered < self._read_ahead // 2

    def read(self) -> None:
        """Move new outbox rows into their connections' buffers, in id order.

        A live connection whose buffer is full stops the read there: it is draining, and reading
        past it would only mean reading its rows twice.
        """
        room = self._read_ahead - self.buffered
        self._blocked_on = None
        self._behind = room <= 0
        if room <= 0:
            return
        entries = self.outbox.entries(after_id=self.cursor, limit=min(room, _READ_CHUNK))
        self._behind = len(entries) == min(room, _READ_CHUNK)
        for entry in entries:
            conn = self._route(entry.device_id)
            if conn.resume_from is None:
                if conn.state is not State.UP:
                    conn.resume_from = entry.id
                    self.busy.add(conn)
                    if conn.state is State.DOWN:
                        self._on_parked(conn)
                elif len(conn.pending) >= self.buffer_cap(conn):
                    self._behind = True
                    self._blocked_on = conn
                    return
                else:
                    conn.pending.append(entry)
                    self.buffered += 1
                    self.busy.add(conn)
            self.cursor = entry.id

    def catch_up(self, conn: Conn) -> None:
        """Refill a connection whose messages were left on disk, in id order, up to the cursor."""
        assert conn.resume_from is not None
        self.flush_acks(time.monotonic(), force=True)  # never read back what is already acked
        want = self.buffer_cap(conn) - len(conn.pending)
        after = conn.resume_from - 1
        while want > 0 and after < self.cursor:
            if self._multiplexed:
                rows = self.outbox.entries(after_id=after, limit=_READ_CHUNK, up_to=self.cursor)
            else:
                rows = self.outbox.entries(after_id=after, limit=want, up_to=self.cursor, device_id=conn.client_id)
            if not rows:
                break
            for entry in rows:
                after = entry.id
                if self._route(entry.device_id) is conn:
                    conn.pending.append(entry)
                    self.buffered += 1
                    want -= 1
                    if want == 0:
                        break
        conn.resume_from = None if after >= self.cursor or want > 0 else after + 1

    def publish_ready(self) -> bool:
        """Publish from every live connection's buffer up to its window; True if more could go
        right away (so the loop should not sleep)."""
        more = False
        for conn in list(self.busy):
            if conn.state is not State.UP or conn.client is None:
                continue
            if conn.resume_from is not None and len(conn.pending) < self.buffer_cap(conn) // 2:
                self.catch_up(conn)
            client = conn.client
            while conn.pending and len(conn.inflight) < conn.window:
                entry = conn.pending.popleft()
                if len(entry.payload) + len(entry.topic) + _PUBLISH_OVERHEAD > conn.max_packet:
                    self.buffered -= 1
                    self.reject(entry, f"larger than the broker's maximum packet size {conn.max_packet}")
                    continue
                try:
                    info = client.publish(entry.topic, entry.payload, qos=1)
                except ValueError as exc:  # a topic MQTT cannot carry (wildcards, empty)
                    self.buffered -= 1
                    self.reject(entry, str(exc))
                    continue
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    conn.pending.appendleft(entry)
                    break
                conn.inflight[info.mid] = entry
            if conn.pending and len(conn.inflight) < conn.window:
                more = True
            if not conn.pending and conn.resume_from is None:
                self.busy.discard(conn)
        return more

    def reject(self, entry: Entry, why: str) -> None:
        """A message that will never be delivered: count it, say why, and remove it."""
        self.rejected += 1
        log.warning("dropping message %d of %s on %s: %s", entry.id, entry.device_id, entry.topic, why)
        self.ack(entry.id)

    def ack(self, entry_id: int) -> None:
        if not self._acked:
            self.acked_since = time.monotonic()
        self._acked.append(entry_id)

    def flush_acks(self, now: float, *, force: bool = False) -> None:
        if self._acked and (force or len(self._acked) >= _ACK_FLUSH_COUNT or now - self.acked_since >= ACK_FLUSH_S):
            self.outbox.remove(self._acked)
            self._acked = []

    def forget(self, conn: Conn) -> None:
        """``conn`` is gone: drop what it held in memory; it resumes from the outbox later."""
        forgotten = [e.id for e in conn.inflight.values()] + [e.id for e in conn.pending]
        if forgotten:
            first = min(forgotten)
            conn.resume_from = first if conn.resume_from is None else min(first, conn.resume_from)
        elif conn.resume_from is None:
            conn.resume_from = self.cursor + 1  # nothing to resend; reconnect when there is work
        self.buffered -= len(conn.pending) + len(conn.inflight)
        conn.pending.clear()
        conn.inflight.clear()
        self.busy.add(conn)

    def reset(self, conns: list[Conn]) -> None:
        """After a stop: everything unacknowledged is read again on the next run."""
        self.flush_acks(time.monotonic(), force=True)
        for conn in conns:
            conn.pending.clear()
            conn.inflight.clear()
            conn.resume_from = None
        self.busy.clear()
        self.buffered = 0
        self.cursor = 0
