"""Where the open-ended demo's simulated clock starts, for every time of day it may be started at
(the clock injected, never read): inside the dashboard's default range of 48 hours, within the
chain's 72-hour backfill window, and on a Hong Kong morning, so that in the first wall minute the
rooftops produce (solar earns nothing at night)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from demo.options import MAX_REPLAY_MS, replay_start_ms
from device_sim.models.common import local_hour
from device_sim.models.factory import build_model
from protocol.cashflow import HOUR_MS
from protocol.envelope import DeviceKind

DASHBOARD_DEFAULT_MS = 48 * HOUR_MS
"""The investor view's default range (api/static/js/views/investor.js, "48 hours, hourly")."""
BACKFILL_MS = 72 * HOUR_MS
NOWS = [
    int(datetime(2026, month, 15, tzinfo=UTC).timestamp() * 1000) + quarter * 15 * 60_000 + 7_123
    for month in (1, 6, 12)
    for quarter in range(96)
]


@pytest.mark.parametrize("accelerate", [60.0, 600.0])
def test_open_ended_replay_starts_on_a_morning_inside_the_default_range(accelerate: float) -> None:
    for now in NOWS:
        start = replay_start_ms(now_ms=now, accelerate=accelerate, seconds=None)
        back = now - start
        assert 12 * HOUR_MS <= back <= 36 * HOUR_MS, (now, back)
        assert back < DASHBOARD_DEFAULT_MS
        assert back < BACKFILL_MS
        assert local_hour(start / 1000) == 9
        assert start % HOUR_MS == 0


def test_the_first_simulated_hour_earns_on_the_rooftops_at_any_hour() -> None:
    for now in NOWS[::7]:
        solar = build_model(DeviceKind.SOLAR, seed=0)
        start = replay_start_ms(now_ms=now, accelerate=60.0, seconds=None)
        energy = sum(solar.step(start_ms=start + k * 60_000, window_s=60)["energy_wh"] for k in range(60))
        assert energy > 0, datetime.fromtimestamp(start / 1000, tz=UTC)


def test_a_bounded_run_replays_what_it_can_catch_up_with() -> None:
    now = NOWS[0]
    assert replay_start_ms(now_ms=now, accelerate=60.0, seconds=60) == now - 59 * 60_000
    assert replay_start_ms(now_ms=now, accelerate=1.0, seconds=60) == now
    # never further back than the backfill window allows, however long or fast
    assert replay_start_ms(now_ms=now, accelerate=3600.0, seconds=3600) == now - MAX_REPLAY_MS
