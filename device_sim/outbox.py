"""The devices' disk queue: signed messages waiting for the broker, and each device's chain head.

One SQLite file in WAL mode holds two tables: ``outbox`` (a FIFO of messages to publish) and
``chain_state`` (per device: the last seq used, the ``prev`` its next reading must carry, and the
model's state). A genuine reading is enqueued together with the chain state it leaves behind in
one transaction, so after a crash either both exist or neither does: a restarted simulator
continues each chain exactly and never signs two different readings with the same seq.

Durability: the writer's connection uses ``synchronous=FULL``. In WAL mode ``NORMAL`` keeps the
file consistent but may lose the last commits on power loss, and a lost commit here is worse
than lost data: the reading may already have been published (and stored by the gateway), so on
restart the device would sign a *different* reading with the same seq, a replay, and every later
reading would fork the chain (bad_prev) for good. Removing acknowledged messages is different:
losing a removal only re-sends a message, which the gateway counts as a duplicate, so a
publisher may open its own ``Outbox(path, synchronous="NORMAL")``.

Ids use AUTOINCREMENT so they are never reused, even after the queue empties: a publisher can
keep a cursor (``entries(after_id=...)``) and FIFO order is id order.

Thread safety: each thread gets its own connection; one writer thread and one publisher thread
may use the same instance (or two instances on the same file) concurrently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from config.clock import wall_ms
from protocol.envelope import GENESIS_PREV, chain_hash
from protocol.errors import AssetproofError

__all__ = ["ChainState", "Entry", "Outbox", "OutboxError", "OutboxMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_device ON outbox (device_id, id);
CREATE TABLE IF NOT EXISTS chain_state (
    device_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    prev BLOB NOT NULL,
    model_state TEXT NOT NULL
);
"""


class OutboxError(AssetproofError):
    """A reading does not extend its device's stored chain, or the file is unusable."""


@dataclass(frozen=True, slots=True)
class ChainState:
    """A device's chain head as the simulator last committed it."""

    seq: int
    """The last seq used (0 before the first reading)."""
    prev: bytes
    """The ``prev`` the next reading must carry: the hash of the last reading's bytes."""
    model_state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message for :meth:`Outbox.enqueue_many`. For a genuine reading ``seq``, ``prev`` (the
    reading's own ``prev``) and ``model_state`` (after the reading) are set and the device's
    chain advances; a message with ``seq=None`` (a fault, say) leaves the chain alone."""

    device_id: str
    topic: str
    payload: bytes
    seq: int | None = None
    prev: bytes | None = None
    model_state: Mapping[str, Any] | None = None


class Entry(NamedTuple):
    id: int
    device_id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = Path(path)
        self._synchronous = synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn()  # create the schema now, in the constructing thread

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), so a reader
            # never has to upgrade to a writer midway and deadlock against the other thread.
            # check_same_thread=False only so close() may run in any thread; each connection is
            # otherwise used by the thread that opened it alone.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.executescript(_SCHEMA)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def release(self) -> None:
        """Close the calling thread's connection (a thread that is about to end calls this)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._all.remove(conn)
            conn.close()

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the outbox any more)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- writing --------------------------------------------------------------------------------

    def enqueue(self, device_id: str, topic: str, payload: bytes) -> None:
        """Queue a message that is not part of the device's chain."""
        self.enqueue_many([OutboxMessage(device_id, topic, payload)])

    def enqueue_reading(
        self, device_id: str, topic: str, payload: bytes, seq: int, prev: bytes, model_state: Mapping[str, Any]
    ) -> None:
        """Queue a genuine reading and advance the device's chain to it, atomically. ``prev`` is
        the reading's own ``prev``; it must match the stored head, and ``seq`` must follow it."""
        self.enqueue_many([OutboxMessage(device_id, topic, payload, seq, prev, model_state)])

    def enqueue_many(self, messages: Iterable[OutboxMessage]) -> int:
        """Queue ``messages`` in order, in one transaction; returns how many."""
        conn = self._conn()
        now_ms = wall_ms()
        rows: list[tuple[str, str, bytes, int]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for m in messages:
                if not isinstance(m.payload, bytes):
                    raise OutboxError(f"payload must be bytes, got {type(m.payload).__name__}")
                if m.seq is not None:
                    self._advance(conn, m)
                rows.append((m.device_id, m.topic, m.payload, now_ms))
            conn.executemany("INSERT INTO outbox (device_id, topic, payload, created_ms) VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    @staticmethod
    def _advance(conn: sqlite3.Connection, m: OutboxMessage) -> None:
        row = conn.execute("SELECT seq, prev FROM chain_state WHERE device_id = ?", (m.device_id,)).fetchone()
        head_seq, head_prev = (row[0], bytes(row[1])) if row else (0, GENESIS_PREV)
        if m.seq != head_seq + 1 or m.prev != head_prev:
            raise OutboxError(
                f"reading seq {m.seq} of {m.device_id} does not extend its stored chain (head seq {head_seq})"
            )
        state = json.dumps(dict(m.model_state or {}), sort_keys=True, allow_nan=False)
        conn.execute(
            "INSERT INTO chain_state (device_id, seq, prev, model_state) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, prev = excluded.prev,"
            " model_state = excluded.model_state",
            (m.device_id, m.seq, chain_hash(m.payload), state),
        )

    def remove(self, ids: Iterable[int]) -> int:
        """Delete messages (acknowledged or given up on); returns how many existed."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in ids))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return cursor.rowcount

    # --- reading --------------------------------------------------------------------------------

    def peek(self, limit: int) -> list[tuple[int, str, bytes]]:
        """The oldest ``limit`` messages as ``(id, topic, payload)``, in FIFO order."""
        rows = self._conn().execute("SELECT id, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,))
        return [(i, t, bytes(p)) for i, t, p in rows]

    def entries(
        self, *, after_id: int = 0, limit: int = 1000, up_to: int | None = None, device_id: str | None = None
    ) -> list[Entry]:
        """Messages with ``after_id < id <= up_to``, oldest first, with the device that queued
        them; only ``device_id``'s if given."""
        sql = "SELECT id, device_id, topic, payload FROM outbox WHERE id > ?"
        args: list[Any] = [after_id]
        if up_to is not None:
            sql += " AND id <= ?"
            args.append(up_to)
        if device_id is not None:
            sql += " AND device_id = ?"
            args.append(device_id)
        rows = self._conn().execute(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return [Entry(i, d, t, bytes(p)) for i, d, t, p in rows]

    def pending(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM outbox").fetchone()[0])

    def device_state(self, device_id: str) -> ChainState | None:
        row = (
            self._conn()
            .execute("SELECT seq, prev, model_state FROM chain_state WHERE device_id = ?", (device_id,))
            .fetchone()
        )
        return None if row is None else ChainState(row[0], bytes(row[1]), json.loads(row[2]))

    def device_states(self, device_ids: Sequence[str] | None = None) -> dict[str, ChainState]:
        """Chain heads of many devices at once (all of them by default)."""
        rows = self._conn().execute("SELECT device_id, seq, prev, model_state FROM chain_state")
        wanted = None if device_ids is None else set(device_ids)
        return {d: ChainState(s, bytes(p), json.loads(m)) for d, s, p, m in rows if wanted is None or d in wanted}
