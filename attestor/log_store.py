"""The Merkle log's nodes in the database: a ``protocol.merkle.NodeStore``.

Only complete subtrees are stored (``merkle_node``: level, index, hash) with the log's size in
``log_state``, so a proof or a root for any size costs one query for O(log n) rows and memory
does not grow with the log.

The store writes in the transaction it is bound to (:meth:`DbNodeStore.bound`): the attestor
assigns readings their log indexes and adds the nodes that covers in one transaction, so after a
crash the log and the readings agree. A ``MerkleLog`` over this store caches the right frontier;
after a failed transaction, build a new ``MerkleLog`` (it reloads the frontier from the store).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import ColumnElement, Connection, Engine, and_, or_, select, tuple_

from protocol.errors import AssetproofError
from protocol.merkle.hashing import NodeId
from store.tables import LOG_STATE, MERKLE_NODE

_READ_CHUNK = 400  # ids per query: a proof needs ~2 log2(n); SQLite allows 32,766 parameters


class LogStoreError(AssetproofError):
    """The stored log is inconsistent (a node that must exist does not)."""


def _node_filter(conn: Connection, ids: Sequence[NodeId]) -> ColumnElement[bool]:
    """``(level, idx) IN (...)``. SQLite plans a row-value IN list as a scan of the whole table
    (118 ms at a million leaves), so there it is spelled as ORed primary-key lookups."""
    if conn.dialect.name == "sqlite":
        return or_(*(and_(MERKLE_NODE.c.level == level, MERKLE_NODE.c.idx == idx) for level, idx in ids))
    return tuple_(MERKLE_NODE.c.level, MERKLE_NODE.c.idx).in_(ids)


class DbNodeStore:
    """Reads use the bound transaction if there is one, else a short read of their own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    @contextmanager
    def bound(self, conn: Connection) -> Iterator[DbNodeStore]:
        """Route reads and writes through ``conn`` (an open transaction) for the block."""
        previous, self._conn = self._conn, conn
        try:
            yield self
        finally:
            self._conn = previous

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self._engine.connect() as conn:
                yield conn

    def size(self) -> int:
        with self._connection() as conn:
            return int(conn.execute(select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar() or 0)

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        found: dict[NodeId, bytes] = {}
        wanted = list(dict.fromkeys(ids))
        with self._connection() as conn:
            for start in range(0, len(wanted), _READ_CHUNK):
                chunk = wanted[start : start + _READ_CHUNK]
                rows = conn.execute(
                    select(MERKLE_NODE.c.level, MERKLE_NODE.c.idx, MERKLE_NODE.c.hash).where(_node_filter(conn, chunk))
                )
                found.update(((r.level, r.idx), bytes(r.hash)) for r in rows)
        try:
            return [found[i] for i in ids]
        except KeyError as exc:
            raise LogStoreError(f"merkle node {exc.args[0]} is missing from the database") from None

    def add_nodes(self, *, size: int, levels: Sequence[bytes]) -> None:
        if self._conn is None:
            with self._engine.begin() as conn, self.bound(conn):
                self._write(conn, size=size, levels=levels)
        else:
            self._write(self._conn, size=size, levels=levels)

    def _write(self, conn: Connection, *, size: int, levels: Sequence[bytes]) -> None:
        old = int(conn.execute(select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar() or 0)
        rows: list[dict[str, object]] = []
        for level, packed in enumerate(levels):
            first = old >> level
            rows.extend(
                {"level": level, "idx": first + i, "hash": packed[i * 32 : i * 32 + 32]}
                for i in range(len(packed) // 32)
            )
        if rows:
            conn.execute(MERKLE_NODE.insert(), rows)
        if conn.execute(LOG_STATE.update().where(LOG_STATE.c.id == 1).values(size=size)).rowcount == 0:
            conn.execute(LOG_STATE.insert().values(id=1, size=size))
