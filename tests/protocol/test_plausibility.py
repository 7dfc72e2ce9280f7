"""protocol.plausibility: the one rule the gateway quarantines by and the simulator obeys."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from protocol.envelope import DeviceKind
from protocol.plausibility import (
    MAX_IRRADIANCE_WM2,
    MAX_TEMP_DC,
    MIN_TEMP_DC,
    ImplausibleError,
    check_metrics,
    plausible_maxima,
)
from protocol.quarantine import QuarantineReason

WINDOW_S = 60

SOLAR = {"rated_power_w": 5_000}
CHARGER = {"rated_power_w": 60_000}
MINER = {"rated_hashrate_ghs": 288_000, "rated_power_w": 5_040}

# A reading well inside every limit, per kind, for a 60 s window.
CALM: Mapping[DeviceKind, dict[str, int]] = {
    DeviceKind.SOLAR: {"energy_wh": 50, "power_w": 3_000, "irradiance_wm2": 800, "temp_dc": 400},
    DeviceKind.CHARGER: {
        "energy_wh": 500,
        "grid_wh": 550,
        "sessions_started": 0,
        "sessions_ended": 0,
        "active_s": 60,
        "power_w": 30_000,
    },
    DeviceKind.MINER: {
        "hashes_gh": 288_000 * 60,
        "hashrate_ghs": 288_000,
        "power_w": 5_040,
        "energy_wh": 84,
        "uptime_s": 60,
        "curtailed_s": 0,
        "temp_dc": 480,
    },
}
RATING: Mapping[DeviceKind, dict[str, int]] = {
    DeviceKind.SOLAR: SOLAR,
    DeviceKind.CHARGER: CHARGER,
    DeviceKind.MINER: MINER,
}


def test_maxima_follow_the_15_percent_margin() -> None:
    assert plausible_maxima(DeviceKind.SOLAR, SOLAR, window_s=3600) == {
        "power_w": 5_750,
        "energy_wh": 5_751,  # 5 kW * 1 h * 1.15 plus the 1 Wh carry
        "irradiance_wm2": MAX_IRRADIANCE_WM2,
        "temp_dc": MAX_TEMP_DC,
    }
    assert plausible_maxima(DeviceKind.CHARGER, CHARGER, window_s=60) == {
        "power_w": 69_000,
        "energy_wh": 1_151,
        "active_s": 60,
        "sessions_started": 2,  # one a minute, plus one
    }
    miner = plausible_maxima(DeviceKind.MINER, MINER, window_s=60)
    assert miner["hashrate_ghs"] == 331_200
    assert miner["hashes_gh"] == 331_200 * 60
    assert miner["power_w"] == 5_796


BOUNDARIES = [
    (kind, name, limit)
    for kind in DeviceKind
    for name, limit in plausible_maxima(kind, RATING[kind], window_s=WINDOW_S).items()
]


@pytest.mark.parametrize(("kind", "name", "limit"), BOUNDARIES, ids=[f"{k}-{n}" for k, n, _ in BOUNDARIES])
def test_exactly_at_the_maximum_passes_one_above_fails(kind: DeviceKind, name: str, limit: int) -> None:
    metrics = dict(CALM[kind])
    if kind is DeviceKind.CHARGER:
        metrics["grid_wh"] = 10**9  # keep the drawn >= delivered relation out of the way
    metrics[name] = limit
    check_metrics(kind, metrics, RATING[kind], window_s=WINDOW_S)
    metrics[name] = limit + 1
    with pytest.raises(ImplausibleError, match=name) as raised:
        check_metrics(kind, metrics, RATING[kind], window_s=WINDOW_S)
    assert raised.value.reason == QuarantineReason.IMPLAUSIBLE == "implausible"


@pytest.mark.parametrize("kind", [DeviceKind.SOLAR, DeviceKind.MINER])
def test_temperature_lower_bound(kind: DeviceKind) -> None:
    metrics = {**CALM[kind], "temp_dc": MIN_TEMP_DC}
    check_metrics(kind, metrics, RATING[kind], window_s=WINDOW_S)
    metrics["temp_dc"] = MIN_TEMP_DC - 1
    with pytest.raises(ImplausibleError, match="temp_dc"):
        check_metrics(kind, metrics, RATING[kind], window_s=WINDOW_S)


def test_relations_within_a_reading() -> None:
    check_metrics(DeviceKind.CHARGER, {**CALM[DeviceKind.CHARGER], "grid_wh": 500}, CHARGER, window_s=60)
    with pytest.raises(ImplausibleError, match="delivered more than drawn"):
        check_metrics(DeviceKind.CHARGER, {**CALM[DeviceKind.CHARGER], "grid_wh": 499}, CHARGER, window_s=60)
    check_metrics(DeviceKind.MINER, {**CALM[DeviceKind.MINER], "uptime_s": 30, "curtailed_s": 30}, MINER, window_s=60)
    with pytest.raises(ImplausibleError, match="uptime_s \\+ curtailed_s"):
        check_metrics(
            DeviceKind.MINER, {**CALM[DeviceKind.MINER], "uptime_s": 31, "curtailed_s": 30}, MINER, window_s=60
        )


@pytest.mark.parametrize("rating", [{}, {"rated_power_w": 0}, {"rated_power_w": 1.5}])
def test_a_rating_without_power_makes_every_reading_implausible(rating: dict[str, object]) -> None:
    with pytest.raises(ImplausibleError, match="rated_power_w"):
        check_metrics(DeviceKind.SOLAR, CALM[DeviceKind.SOLAR], rating, window_s=60)
    with pytest.raises(ImplausibleError, match="rated_hashrate_ghs"):
        check_metrics(DeviceKind.MINER, CALM[DeviceKind.MINER], {"rated_power_w": 5_040}, window_s=60)
