"""One attestor at a time: the others wait.

On PostgreSQL the leader holds a session-level advisory lock on a dedicated connection: if the
leader dies, its connection closes and the lock passes to a waiting attestor. SQLite has no such
lock, and its attestors share one machine, so they take an exclusive ``flock`` on a file beside
the database, which the kernel releases when the holder dies.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

LOCK_KEY = 0x61737365_7470726F  # "assetpro": one advisory lock key for the attestor role


class LeaderLock:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._fd: int | None = None
        url = make_url(str(engine.url))
        self._file = Path(f"{url.database}.attestor.lock") if url.get_backend_name() == "sqlite" else None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self._file is not None:
            fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        conn = self._engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar())
        conn.commit()
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def acquire(self, stop: threading.Event, *, poll_s: float = 1.0) -> bool:
        """Wait until this process leads or ``stop`` is set; True when leading."""
        while not stop.is_set():
            if self.try_acquire():
                return True
            stop.wait(poll_s)
        return False

    @property
    def held(self) -> bool:
        return self._fd is not None or self._conn is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            # Closing would only return the session (and the lock) to the pool: unlock, then
            # drop the physical connection.
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            finally:
                self._conn.invalidate()
                self._conn.close()
                self._conn = None

    def __enter__(self) -> LeaderLock:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
