"""The wall clock in the project's unit: integer milliseconds since the Unix epoch (UTC).

One helper, so every service reads the same clock the same way (``protocol`` stays clock-free:
callers pass it the times it needs). Services take a ``clock_ms`` callable where tests need to
pin time; this is its default."""

from __future__ import annotations

import time

__all__ = ["wall_ms"]


def wall_ms() -> int:
    """Now, in whole milliseconds since the Unix epoch; integer arithmetic, no float rounding."""
    return time.time_ns() // 1_000_000
