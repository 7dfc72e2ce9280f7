"""The one retry delay: exponential from ``backoff_s``'s base to its cap, jittered by the given RNG."""

from __future__ import annotations

import random

import pytest

from device_sim.backoff import backoff_delay


class FixedRandom(random.Random):
    """An RNG whose uniform() always lands at one point of the interval (0 = low end, 1 = high end)."""

    def __init__(self, at: float) -> None:
        super().__init__(0)
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 0.25), (1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (50, 3.0), (10_000, 3.0)],
)
def test_doubles_from_the_base_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff_delay(failures, backoff_s=(0.25, 3.0), rng=FixedRandom(1.0)) == pytest.approx(expected)


def test_jitter_spreads_each_delay_over_its_upper_half() -> None:
    assert backoff_delay(2, backoff_s=(0.25, 3.0), rng=FixedRandom(0.0)) == pytest.approx(0.5)
    assert backoff_delay(2, backoff_s=(0.25, 3.0), rng=FixedRandom(0.5)) == pytest.approx(0.75)
    rng = random.Random(7)
    delays = [backoff_delay(5, backoff_s=(0.1, 2.0), rng=rng) for _ in range(1_000)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert max(delays) - min(delays) > 0.5  # jittered, not one fixed pause


def test_honours_backoff_s() -> None:
    """Both callers (a lost connection, a broker with no subscriber) get the caller's figures."""
    fast = backoff_delay(3, backoff_s=(0.01, 0.05), rng=FixedRandom(1.0))
    slow = backoff_delay(3, backoff_s=(1.0, 60.0), rng=FixedRandom(1.0))
    assert fast == pytest.approx(0.05)
    assert slow == pytest.approx(8.0)


def test_same_seed_same_delays() -> None:
    def delays(rng: random.Random) -> list[float]:
        return [backoff_delay(n, backoff_s=(0.1, 5.0), rng=rng) for n in range(8)]

    assert delays(random.Random(3)) == delays(random.Random(3))


def test_negative_failures_are_a_bug() -> None:
    with pytest.raises(ValueError, match="negative"):
        backoff_delay(-1, backoff_s=(0.1, 5.0), rng=random.Random(0))
