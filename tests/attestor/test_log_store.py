"""The database-backed log gives the same roots and proofs as the in-memory one."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from attestor.log_store import DbNodeStore
from protocol.merkle.log import MerkleLog
from store.db import make_engine
from store.tables import MerkleNode


@pytest.fixture
def engine(db_url: str) -> Engine:
    return make_engine(db_url)


def test_proofs_equal_the_in_memory_log_at_several_sizes(engine: Engine) -> None:
    memory = MerkleLog()
    stored = MerkleLog(DbNodeStore(engine))
    added = 0
    for batch in (1, 1, 2, 3, 8, 17, 33, 64, 100):  # sizes 1, 2, 4, 7, 15, 32, 65, 129, 229
        leaves = [i.to_bytes(4, "big") for i in range(added, added + batch)]
        added += batch
        memory.extend(leaves)
        stored.extend(leaves)
        size = memory.size
        assert stored.size == size
        assert stored.root() == memory.root()
        for index in range(size):
            assert stored.inclusion_proof(index, size) == memory.inclusion_proof(index, size)
        for old in range(size + 1):
            assert stored.consistency_proof(old, size) == memory.consistency_proof(old, size)
            assert stored.root(old) == memory.root(old)
    reopened = MerkleLog(DbNodeStore(engine))  # a restarted attestor
    assert reopened.size == added
    assert reopened.root() == memory.root()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MerkleNode)).scalar_one() == 2 * added - bin(added).count(
            "1"
        )


def test_writes_follow_the_bound_transaction(engine: Engine) -> None:
    store = DbNodeStore(engine)
    log = MerkleLog(store)
    log.extend([b"a", b"b", b"c"])
    root = log.root()

    def crash_before_commit() -> None:
        with engine.begin() as conn, store.bound(conn):
            MerkleLog(store).extend([b"d", b"e"])
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        crash_before_commit()
    again = MerkleLog(store)
    assert again.size == 3
    assert again.root() == root
