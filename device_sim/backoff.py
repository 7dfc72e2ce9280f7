"""How long a connection waits before it tries again: one formula for every retry.

Exponential in the number of consecutive failures, capped, with jitter so that a thousand device
connections dropped by the same broker restart do not all come back in the same instant.
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]

_MAX_DOUBLINGS = 30  # 2**30 times any sane base is past any cap; keeps the float finite


def backoff_delay(failures: int, *, backoff_s: tuple[float, float], rng: random.Random) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0 for the first retry).

    ``backoff_s`` is ``(base, cap)``: the delay doubles from ``base`` with each failure up to
    ``cap``, then a uniform factor in [0.5, 1.0] from ``rng`` spreads the retries out (so the
    result lies in ``[base / 2, cap]``).
    """
    base, cap = backoff_s
    if failures < 0:
        raise ValueError("failures must not be negative")
    return min(cap, base * 2.0 ** min(failures, _MAX_DOUBLINGS)) * rng.uniform(0.5, 1.0)
