"""protocol.plausibility and protocol.timing: the rules the gateway quarantines by, the auditor
checks and the simulator obeys."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from protocol.envelope import Body, DeviceKind
from protocol.errors import VerificationError
from protocol.plausibility import (
    MAX_IRRADIANCE_WM2,
    MAX_TEMP_DC,
    MIN_TEMP_DC,
    ImplausibleError,
    check_metrics,
    check_plausible,
    check_reading,
    plausible_maxima,
)
from protocol.quarantine import QuarantineReason
from protocol.timing import (
    BackInTimeError,
    FutureReadingError,
    TooSoonError,
    WrongWindowError,
    check_not_after,
    check_spacing,
    check_window,
    earliest_next_ts_ms,
)

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


# --- the reporting-window rules (protocol.timing) and their order in check_reading ------------

T0 = 1_763_700_000_000


def body(*, kind: DeviceKind = DeviceKind.SOLAR, ts_ms: int = T0, window_s: int = WINDOW_S, **metrics: int) -> Body:
    return Body(
        device="sol-0001",
        seq=2,
        ts_ms=ts_ms,
        kind=kind,
        window_s=window_s,
        metrics={**CALM[kind], **metrics},
        prev=bytes(32),
    )


def test_window_must_be_the_registered_one() -> None:
    check_window(body(), registered_window_s=WINDOW_S)
    with pytest.raises(WrongWindowError, match="registered with a 60 s reporting window") as caught:
        check_window(body(window_s=86_400), registered_window_s=WINDOW_S)
    assert caught.value.reason == QuarantineReason.WRONG_WINDOW == "wrong_window"
    assert (caught.value.window_s, caught.value.registered_window_s) == (86_400, WINDOW_S)
    with pytest.raises(WrongWindowError):
        check_window(body(window_s=59), registered_window_s=WINDOW_S)


@pytest.mark.parametrize(
    ("delta_ms", "error"),
    [
        (60_000, None),  # back to back: the new window starts where the previous ended
        (60_001, None),
        (3_600_000, None),  # a device that was silent for an hour
        (59_999, TooSoonError),
        (1, TooSoonError),
        (0, TooSoonError),  # the same time twice
        (-1, BackInTimeError),
        (-3_600_000, BackInTimeError),
    ],
)
def test_spacing_is_at_least_one_window_and_never_back(delta_ms: int, error: type[Exception] | None) -> None:
    if error is None:
        check_spacing(previous_ts_ms=T0, ts_ms=T0 + delta_ms, window_s=60)
        return
    with pytest.raises(error) as caught:
        check_spacing(previous_ts_ms=T0, ts_ms=T0 + delta_ms, window_s=60)
    assert isinstance(caught.value, VerificationError)
    expected = QuarantineReason.TOO_SOON if error is TooSoonError else QuarantineReason.CLOCK_SKEW
    assert caught.value.reason == expected


def test_spacing_uses_the_window_it_is_given_and_a_first_reading_has_no_predecessor() -> None:
    check_spacing(previous_ts_ms=T0, ts_ms=T0 + 900_000, window_s=900)
    with pytest.raises(TooSoonError, match="less than its 900 s window"):
        check_spacing(previous_ts_ms=T0, ts_ms=T0 + 899_999, window_s=900)
    check_spacing(previous_ts_ms=None, ts_ms=0, window_s=86_400)
    assert earliest_next_ts_ms(previous_ts_ms=T0, window_s=900) == T0 + 900_000


def test_future_bound_is_the_callers() -> None:
    check_not_after(ts_ms=T0, not_after_ms=T0)
    with pytest.raises(FutureReadingError, match="in the future") as caught:
        check_not_after(ts_ms=T0 + 1, not_after_ms=T0)
    assert caught.value.reason == QuarantineReason.CLOCK_SKEW


def judge(b: Body, *, previous_ts_ms: int | None = T0 - 60_000, not_after_ms: int | None = T0) -> str | None:
    try:
        check_reading(
            b,
            kind=DeviceKind.SOLAR,
            rating=SOLAR,
            registered_window_s=WINDOW_S,
            previous_ts_ms=previous_ts_ms,
            not_after_ms=not_after_ms,
        )
    except VerificationError as exc:
        return exc.reason
    return None


def test_check_reading_accepts_a_genuine_reading() -> None:
    assert judge(body()) is None
    assert judge(body(), previous_ts_ms=None, not_after_ms=None) is None


def test_check_reading_reports_the_first_rule_broken_in_a_fixed_order() -> None:
    huge = plausible_maxima(DeviceKind.SOLAR, SOLAR, window_s=WINDOW_S)["energy_wh"] + 1
    # Each case breaks its own rule and every later one: the reason is the earliest.
    assert judge(body(kind=DeviceKind.CHARGER, window_s=86_400, ts_ms=T0 - 1)) == "kind_mismatch"
    assert judge(body(window_s=86_400, ts_ms=T0 - 60_001, energy_wh=huge * 1_000)) == "wrong_window"
    assert judge(body(ts_ms=T0 - 60_001, energy_wh=huge)) == "clock_skew"  # back in time
    assert judge(body(ts_ms=T0 + 1, energy_wh=huge)) == "clock_skew"  # in the future
    assert judge(body(ts_ms=T0 - 1, energy_wh=huge)) == "implausible"  # and too soon
    assert judge(body(ts_ms=T0 - 1)) == "too_soon"
    assert judge(body(ts_ms=T0 + 1), not_after_ms=None) is None  # no clock: no future bound


def test_a_signed_day_long_window_cannot_claim_a_days_energy_every_minute() -> None:
    """The attack protocol.timing closes: a device key signs window_s = 86400 with a day's
    plausible energy, once a minute."""
    day = plausible_maxima(DeviceKind.SOLAR, SOLAR, window_s=86_400)["energy_wh"]
    claim = body(window_s=86_400, energy_wh=day, power_w=3_000)
    check_plausible(claim, SOLAR)  # the metrics alone are plausible for a day
    assert judge(claim) == "wrong_window"
