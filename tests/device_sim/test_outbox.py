"""Outbox: FIFO order, chain state advanced atomically with the message, two threads at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from device_sim.outbox import Outbox, OutboxError, OutboxMessage
from protocol.envelope import GENESIS_PREV, chain_hash


def reading(device: str, seq: int, prev: bytes, payload: bytes | None = None) -> OutboxMessage:
    payload = payload if payload is not None else f"{device}:{seq}".encode()
    return OutboxMessage(device, f"t/{device}", payload, seq, prev, {"steps": seq})


def test_fifo_peek_remove_pending(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(5):
        box.enqueue("d", f"t/{i}", bytes([i]))
    assert box.pending() == 5
    first = box.peek(3)
    assert [(t, p) for _, t, p in first] == [("t/0", b"\x00"), ("t/1", b"\x01"), ("t/2", b"\x02")]
    assert box.remove([first[1][0]]) == 1
    assert [t for _, t, _ in box.peek(10)] == ["t/0", "t/2", "t/3", "t/4"]
    assert [e.topic for e in box.entries(after_id=first[0][0], limit=2)] == ["t/2", "t/3"]
    box.remove(i for i, _, _ in box.peek(10))
    assert box.pending() == 0
    # Ids are never reused, even once the queue was empty: a publisher's cursor stays valid.
    box.enqueue("d", "t/new", b"")
    assert box.peek(1)[0][0] > first[-1][0] + 2


def test_reading_advances_chain_in_the_same_transaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    assert box.device_state("a") is None
    box.enqueue_reading("a", "t/a", b"one", 1, GENESIS_PREV, {"steps": 1})
    state = box.device_state("a")
    assert state is not None
    assert (state.seq, state.prev, dict(state.model_state)) == (1, chain_hash(b"one"), {"steps": 1})
    box.enqueue_many([reading("a", 2, chain_hash(b"one"), b"two"), reading("b", 1, GENESIS_PREV)])
    assert box.device_state("a").seq == 2  # type: ignore[union-attr]
    assert set(box.device_states()) == {"a", "b"}

    # A batch that breaks a chain anywhere is refused whole: no message, no state change.
    with pytest.raises(OutboxError, match="does not extend"):
        box.enqueue_many([reading("b", 2, chain_hash(b"b:1")), reading("a", 2, chain_hash(b"two"))])
    with pytest.raises(OutboxError):
        box.enqueue_reading("a", "t/a", b"x", 3, GENESIS_PREV, {})  # wrong prev
    with pytest.raises(OutboxError):
        box.enqueue_reading("a", "t/a", b"x", 5, chain_hash(b"two"), {})  # seq jump
    assert box.pending() == 3
    assert box.device_state("b").seq == 1  # type: ignore[union-attr]


def test_state_survives_reopen_and_a_crash_mid_transaction(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    box.enqueue_reading("a", "t/a", b"one", 1, GENESIS_PREV, {"k": 1.5})

    class BoomError(Exception):
        pass

    def exploding() -> object:
        yield reading("a", 2, chain_hash(b"one"), b"two")
        raise BoomError

    with pytest.raises(BoomError):
        box.enqueue_many(exploding())  # type: ignore[arg-type]
    box.close()
    again = Outbox(path)
    state = again.device_state("a")
    assert state is not None
    assert (state.seq, dict(state.model_state)) == (1, {"k": 1.5})
    assert again.pending() == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_one_writer_and_one_publisher_thread(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    total = 3000
    seen: list[bytes] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            prev = GENESIS_PREV
            for start in range(0, total, 50):
                batch = []
                for seq in range(start + 1, start + 51):
                    payload = seq.to_bytes(4, "big")
                    batch.append(reading("a", seq, prev, payload))
                    prev = chain_hash(payload)
                box.enqueue_many(batch)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def publisher() -> None:
        try:
            while not (done.is_set() and box.pending() == 0):
                rows = box.peek(200)
                seen.extend(p for _, _, p in rows)
                box.remove(i for i, _, _ in rows)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=publisher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert [int.from_bytes(p, "big") for p in seen] == list(range(1, total + 1))
    assert box.device_state("a").seq == total  # type: ignore[union-attr]


def test_connections_are_per_thread_and_closable_from_any_thread(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.enqueue("d", "t", b"x")
    counts: list[int] = []

    def worker() -> None:
        counts.append(box.pending())
        box.release()  # a thread that ends closes its own connection
        counts.append(box.pending())  # and gets a new one if it carries on

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert counts == [1, 1]
    other = threading.Thread(target=box.pending)
    other.start()
    other.join(5)
    box.close()  # closes the main thread's and the other thread's connections
    assert box.pending() == 1  # reopened on demand
