"""Only one attestor leads; when it lets go (or dies), a waiting one takes over."""

from __future__ import annotations

from attestor.leader import LeaderLock
from store.db import make_engine


def test_one_leader_at_a_time(db_url: str) -> None:
    engine_a, engine_b = make_engine(db_url), make_engine(db_url)
    a, b = LeaderLock(engine_a), LeaderLock(engine_b)
    assert a.try_acquire()
    assert a.try_acquire()  # re-entrant for its holder
    assert not b.try_acquire()
    a.release()
    assert b.try_acquire()
    assert not a.try_acquire()
    b.release()
    engine_a.dispose()
    engine_b.dispose()
