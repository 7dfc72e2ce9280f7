"""Device physics models: schema, plausibility, physics sanity, determinism and persistence."""

import json
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_sim.models import (
    ChargerRating,
    ChargingPile,
    DeviceModel,
    MinerRating,
    MiningRig,
    SolarPanel,
    SolarRating,
    ambient_c,
    build_model,
    clear_sky_poa_wm2,
    should_curtail,
)
from protocol.cashflow import HOUR_MS, Tariff, reading_cash_flow
from protocol.envelope import GENESIS_PREV, METRICS, Body, DeviceKind
from protocol.plausibility import check_metrics

T0 = 1_767_196_800_000  # 2026-01-01 00:00 in Hong Kong (UTC+8)
DAY_MS = 24 * HOUR_MS
JULY = T0 + 181 * DAY_MS

PROFITABLE = Tariff(
    id="hydro-cheap",
    currency="HKD",
    solar_fit_per_kwh=400,
    charger_price_per_kwh=450,
    charger_session_fee=1000,
    grid_price_per_kwh=150,
    miner_power_price_per_kwh=40,  # HK$0.40/kWh: hydro power at a mining site
    btc_price=70_000_000,  # HK$700,000 per BTC, in cents
    btc_difficulty=150_000_000_000_000,
    btc_subsidy_sats=312_500_000,
    btc_fees_sats=10_000_000,
    pool_fee_bps=200,
)
# At HK$1.20/kWh (Hong Kong's commercial tariff) a 17.5 J/TH rig earns about HK$3.5/h and
# burns about HK$6/h: it should curtail.
UNPROFITABLE = replace(PROFITABLE, id="hk-retail", miner_power_price_per_kwh=120)

ModelFactory = Callable[[int], DeviceModel]

MODELS: dict[str, ModelFactory] = {
    "solar-5kwp": lambda seed: SolarPanel(seed=seed),
    "solar-pool-200kwp": lambda seed: SolarPanel(seed=seed, rating=SolarRating(rated_power_w=200_000, tilt_deg=10)),
    "charger-7kw": lambda seed: ChargingPile(seed=seed, rating=ChargerRating.for_power_kw(7)),
    "charger-60kw": lambda seed: ChargingPile(seed=seed, rating=ChargerRating.for_power_kw(60)),
    "charger-120kw": lambda seed: ChargingPile(seed=seed, rating=ChargerRating.for_power_kw(120)),
    "miner": lambda seed: MiningRig(seed=seed),
    "miner-profitable": lambda seed: MiningRig(seed=seed, tariff=PROFITABLE),
    "miner-curtailed": lambda seed: MiningRig(seed=seed, tariff=UNPROFITABLE),
}


def windows(start_ms: int, window_s: int, count: int) -> Iterator[int]:
    return (start_ms + i * window_s * 1000 for i in range(count))


def run(model: DeviceModel, start_ms: int, window_s: int, count: int) -> list[dict[str, int]]:
    return [model.step(start_ms=s, window_s=window_s) for s in windows(start_ms, window_s, count)]


def check_reading(model: DeviceModel, metrics: dict[str, int], *, start_ms: int, window_s: int) -> None:
    """Everything a single reading must satisfy, whatever the model."""
    kind = model.kind
    assert metrics.keys() == METRICS[kind].keys()
    for name, spec in METRICS[kind].items():
        assert type(metrics[name]) is int, name
        assert spec.minimum <= metrics[name] <= spec.maximum, (name, metrics[name])
    Body(
        device="sim-0001",
        seq=1,
        ts_ms=start_ms + window_s * 1000,
        kind=kind,
        window_s=window_s,
        metrics=metrics,
        prev=GENESIS_PREV,
    )
    check_metrics(kind, metrics, model.rating_json(), window_s=window_s)  # the gateway's own rule
    # Integer energy carries a sub-Wh remainder and the power is rounded to the watt.
    if kind is not DeviceKind.MINER or metrics["curtailed_s"] == 0:
        assert abs(metrics["energy_wh"] - metrics["power_w"] * window_s / 3600) <= 1 + window_s / 7200
    if kind is DeviceKind.CHARGER:
        rated = model.rating_json()["rated_power_w"]
        assert metrics["grid_wh"] >= metrics["energy_wh"]
        assert metrics["active_s"] <= window_s
        assert metrics["power_w"] <= rated
        # Delivered energy fits in the charging seconds, up to the rounding of both figures.
        assert metrics["power_w"] * window_s <= rated * (metrics["active_s"] + 1) + window_s / 2
    if kind is DeviceKind.MINER:
        rated = model.rating_json()["rated_hashrate_ghs"]
        assert metrics["uptime_s"] + metrics["curtailed_s"] <= window_s
        assert metrics["hashes_gh"] == metrics["hashrate_ghs"] * metrics["uptime_s"]
        if metrics["uptime_s"]:
            assert 0.98 * rated <= metrics["hashrate_ghs"] <= 1.02 * rated


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    ("window_s", "starts", "count"),
    [
        # 1 s windows: bursts around night, morning commute, noon and the evening peak.
        (1, [T0 + d * DAY_MS + h * HOUR_MS for d in (0, 1, 190) for h in (0, 8, 12, 18)], 60),
        (60, [T0 + 6 * HOUR_MS, JULY + 12 * HOUR_MS], 480),
        (900, [T0 + 60 * DAY_MS], 7 * 96),
        (86_400, [T0], 14),
    ],
    ids=["1s", "60s", "900s", "1day"],
)
def test_readings_fit_schema_and_plausibility(name: str, window_s: int, starts: list[int], count: int) -> None:
    model = MODELS[name](7)
    for start in starts:
        for s in windows(start, window_s, count):
            check_reading(model, model.step(start_ms=s, window_s=window_s), start_ms=s, window_s=window_s)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(MODELS)),
    seed=st.integers(min_value=-(2**63), max_value=2**63),
    start_ms=st.integers(min_value=0, max_value=4_102_444_800_000),  # to 2100
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10 * DAY_MS), st.integers(min_value=1, max_value=86_400)),
        min_size=1,
        max_size=12,
    ),
)
def test_arbitrary_start_times_and_window_lengths(
    name: str, seed: int, start_ms: int, steps: list[tuple[int, int]]
) -> None:
    model = MODELS[name](seed)
    t = start_ms
    for gap_ms, window_s in steps:
        t += gap_ms
        check_reading(model, model.step(start_ms=t, window_s=window_s), start_ms=t, window_s=window_s)
        t += window_s * 1000


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_sequence_different_seed_differs(name: str) -> None:
    def sequence(seed: int) -> list[dict[str, int]]:
        return run(MODELS[name](seed), JULY, 900, 2 * 96)

    assert sequence(1) == sequence(1)
    assert sequence(1) != sequence(2)


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_seed_streams_are_independent_of_the_global_random(kind: DeviceKind) -> None:
    import random

    random.seed(1)
    first = run(build_model(kind, seed=3), JULY, 900, 96)
    random.seed(2)
    assert run(build_model(kind, seed=3), JULY, 900, 96) == first


# --- solar ----------------------------------------------------------------------------------


def test_clear_sky_irradiance_follows_the_sun() -> None:
    june_21_noon = (T0 + 171 * DAY_MS + 12 * HOUR_MS + 20 * 60_000) / 1000  # solar noon, 12:20 HKT
    dec_21_noon = (T0 + 354 * DAY_MS + 12 * HOUR_MS + 25 * 60_000) / 1000
    assert 850 <= clear_sky_poa_wm2(june_21_noon, tilt_deg=22) <= 1100
    assert 750 <= clear_sky_poa_wm2(dec_21_noon, tilt_deg=22) <= 1000
    # Tilting towards the equator helps in winter, when the sun is low in the south.
    assert clear_sky_poa_wm2(dec_21_noon, tilt_deg=22) > clear_sky_poa_wm2(dec_21_noon, tilt_deg=0)
    for hour in (0, 3, 21):
        assert clear_sky_poa_wm2((T0 + 171 * DAY_MS + hour * HOUR_MS) / 1000, tilt_deg=22) == 0
    assert ambient_c(june_21_noon + 2 * 3600) > ambient_c(dec_21_noon + 2 * 3600) + 8


@pytest.mark.parametrize("start", [T0, JULY])
def test_solar_dark_at_midnight_and_producing_at_noon(start: int) -> None:
    panel = SolarPanel(seed=11)
    noon_powers = []
    for day in range(14):
        midnight = start + day * DAY_MS
        night = panel.step(start_ms=midnight, window_s=900)
        assert (night["energy_wh"], night["power_w"], night["irradiance_wm2"]) == (0, 0, 0)
        noon = panel.step(start_ms=midnight + 12 * HOUR_MS, window_s=900)
        assert noon["energy_wh"] > 0
        assert noon["irradiance_wm2"] > 0
        assert noon["temp_dc"] > night["temp_dc"]
        noon_powers.append(noon["power_w"])
    # Two weeks hold a clear-ish day on which a 5 kWp string gives 40 % of its rating at noon
    # (a clear noon gives 60-70 %; Hong Kong winters have fortnight-long overcast spells).
    assert max(noon_powers) > 2_000


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("start", [T0, T0 + 90 * DAY_MS, JULY, T0 + 270 * DAY_MS])
def test_solar_daily_energy_is_plausible(seed: int, start: int) -> None:
    week = run(SolarPanel(seed=seed), start, 3600, 7 * 24)
    daily_kwh = sum(m["energy_wh"] for m in week) / 7 / 1000
    # 5 kWp in Hong Kong: about 15 kWh/day on average, 25-28 on a clear summer day.
    assert 5 <= daily_kwh <= 35


def test_solar_energy_does_not_depend_on_window_length_on_average() -> None:
    """The sub-Wh carry keeps 1 s readings from losing energy to rounding: a year's mean daily
    energy at 60 s and at 1 day windows agree within the weather's spread."""
    minutes = sum(m["energy_wh"] for m in run(SolarPanel(seed=5), JULY, 60, 1440 * 3)) / 3
    days = sum(m["energy_wh"] for m in run(SolarPanel(seed=5), JULY, 86_400, 60)) / 60
    assert 0.4 <= minutes / days <= 2.5


def test_solar_power_clips_at_rating_and_derates_with_heat() -> None:
    small = SolarPanel(seed=1, rating=SolarRating(rated_power_w=5_000))
    hot = SolarPanel(seed=1, rating=SolarRating(rated_power_w=5_000, temp_coeff_ppm_per_c=-10_000))
    noon = JULY + 12 * HOUR_MS
    a = small.step(start_ms=noon, window_s=600)
    b = hot.step(start_ms=noon, window_s=600)
    assert a["irradiance_wm2"] == b["irradiance_wm2"]
    assert b["power_w"] < a["power_w"] <= 5_000


# --- charger --------------------------------------------------------------------------------


def test_charger_sessions_follow_the_hour_of_day() -> None:
    pile = ChargingPile(seed=4, rating=ChargerRating.for_power_kw(60))
    by_hour = [0] * 24
    for start in windows(T0, 300, 30 * 288):
        by_hour[(start - T0) // HOUR_MS % 24] += pile.step(start_ms=start, window_s=300)["sessions_started"]
    assert by_hour[18] > 2 * by_hour[4]
    assert 200 <= sum(by_hour) <= 600  # 14 a day would arrive at a free pile; some find it busy


def test_charger_sessions_span_windows_and_balance() -> None:
    pile = ChargingPile(seed=2, rating=ChargerRating.for_power_kw(120))
    readings = run(pile, JULY, 60, 3 * 1440)
    continuing = [m for m in readings if m["active_s"] == 60 and m["sessions_started"] == 0]
    assert continuing
    assert all(m["power_w"] > 0 for m in continuing)
    started = sum(m["sessions_started"] for m in readings)
    ended = sum(m["sessions_ended"] for m in readings)
    assert started - ended in (0, 1)
    energy_kwh = sum(m["energy_wh"] for m in readings) / 1000
    assert 10 <= energy_kwh / started <= 60


def test_charger_tapers_near_full() -> None:
    """A session's delivered power falls below the rating before it ends (constant-voltage
    phase), visible at 1 s resolution."""
    busy = replace(ChargerRating.for_power_kw(60), sessions_per_day=300)
    powers = [m["power_w"] for m in run(ChargingPile(seed=9, rating=busy), JULY + 18 * HOUR_MS, 1, 3600)]
    assert max(powers) > 40_000
    assert any(0 < p < 0.5 * max(powers) for p in powers)


def test_charger_gap_ends_the_ongoing_session() -> None:
    pile = ChargingPile(seed=2, rating=ChargerRating.for_power_kw(7))
    for start in windows(T0, 60, 7 * 1440):
        m = pile.step(start_ms=start, window_s=60)
        if m["active_s"] == 60:
            break
    else:
        pytest.fail("no session in a week")
    after_gap = pile.step(start_ms=start + DAY_MS, window_s=60)
    assert after_gap["sessions_ended"] >= 1


def test_charger_rating_defaults_follow_the_power_class() -> None:
    assert ChargerRating.from_json({"rated_power_w": 120_000}) == ChargerRating.for_power_kw(120)
    assert ChargerRating.from_json({"rated_power_w": 120_000}).efficiency_bp == 9_500
    assert ChargerRating.from_json({}).efficiency_bp == 9_300
    assert ChargerRating.from_json({"rated_power_w": 7_000, "sessions_per_day": 9}).sessions_per_day == 9


# --- miner ----------------------------------------------------------------------------------


def test_miner_hashes_at_rating_with_rare_short_outages() -> None:
    rig = MiningRig(seed=1)
    readings = run(rig, T0, 300, 20 * 288)
    assert all(m["curtailed_s"] == 0 for m in readings)
    partial = [m for m in readings if m["uptime_s"] < 300]
    assert 0 < len(partial) < 0.02 * len(readings)
    uptime = sum(m["uptime_s"] for m in readings) / (300 * len(readings))
    assert 0.98 < uptime < 1
    full = [m for m in readings if m["uptime_s"] == 300]
    mean_w = sum(m["power_w"] for m in full) / len(full)
    assert 4_900 < mean_w < 5_200  # 288 TH/s at 17.5 J/TH
    assert all(400 <= m["temp_dc"] <= 560 for m in full)


def test_miner_curtails_only_when_hashing_loses_money() -> None:
    rating = MinerRating()
    assert should_curtail(rating, UNPROFITABLE)
    assert not should_curtail(rating, PROFITABLE)
    curtailed = run(MiningRig(seed=1, tariff=UNPROFITABLE), JULY, 60, 60)
    assert all(m["curtailed_s"] == 60 and m["uptime_s"] == 0 and m["hashes_gh"] == 0 for m in curtailed)
    assert all(m["power_w"] == rating.idle_power_w for m in curtailed)
    hashing = run(MiningRig(seed=1, tariff=PROFITABLE), JULY, 60, 60)
    assert all(m["curtailed_s"] == 0 and m["hashes_gh"] > 0 for m in hashing)


def test_miner_curtailment_matches_the_published_cash_flow() -> None:
    """The decision agrees with protocol.cashflow applied to the rig's own readings."""

    def hour_net(tariff: Tariff) -> int:
        net = 0
        for start, m in zip(windows(JULY, 60, 60), run(MiningRig(seed=3), JULY, 60, 60), strict=True):
            body = Body(
                device="min-0001",
                seq=1,
                ts_ms=start,
                kind=DeviceKind.MINER,
                window_s=60,
                metrics=m,
                prev=GENESIS_PREV,
            )
            net += reading_cash_flow(body, tariff).net
        return net

    assert hour_net(PROFITABLE) > 0
    assert hour_net(UNPROFITABLE) < 0


def test_miner_set_tariff_switches_curtailment() -> None:
    rig = build_model(DeviceKind.MINER, seed=1, tariff=UNPROFITABLE)
    assert isinstance(rig, MiningRig)
    assert rig.curtailed
    rig.set_tariff(PROFITABLE)
    assert not rig.curtailed
    assert rig.step(start_ms=JULY, window_s=60)["uptime_s"] > 0
    rig.set_tariff(None)
    assert not rig.curtailed


def test_miner_efficiency_rating() -> None:
    rating = MinerRating.for_efficiency(rated_hashrate_ghs=288_000, j_per_th=17.5)
    assert rating == MinerRating()
    assert rating.efficiency_j_per_th == pytest.approx(17.5)


# --- persistence, factory, argument checks --------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_state_round_trip_continues_identically(name: str) -> None:
    original = MODELS[name](21)
    run(original, JULY + 17 * HOUR_MS, 60, 97)  # mid-session for a busy charger
    saved = json.loads(json.dumps(original.state_json()))
    expected = run(original, JULY + 17 * HOUR_MS + 97 * 60_000, 60, 300)
    restored = MODELS[name](21)
    restored.restore(saved)
    assert restored.state_json() == saved
    assert run(restored, JULY + 17 * HOUR_MS + 97 * 60_000, 60, 300) == expected


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_restore_refuses_foreign_state(kind: DeviceKind) -> None:
    state = build_model(kind, seed=1).state_json()
    with pytest.raises(ValueError, match="seed"):
        build_model(kind, seed=2).restore(state)
    with pytest.raises(ValueError, match="keys"):
        build_model(kind, seed=1).restore({**state, "extra": 1})


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_build_model_from_stored_rating(kind: DeviceKind) -> None:
    model = build_model(kind, seed=5)
    rating = json.loads(json.dumps(model.rating_json()))
    assert all(type(v) is int for v in rating.values())
    again = build_model(kind, seed=5, rating=rating)
    assert run(again, JULY, 900, 96) == run(model, JULY, 900, 96)
    with pytest.raises(ValueError, match="unknown"):
        build_model(kind, seed=5, rating={**rating, "bogus": 1})
    with pytest.raises(ValueError, match="int"):
        build_model(kind, seed=5, rating={next(iter(rating)): 1.5})  # type: ignore[dict-item]


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_step_refuses_bad_windows(kind: DeviceKind) -> None:
    model = build_model(kind, seed=1)
    for start_ms, window_s in [(-1, 60), (0, 0), (0, 86_401)]:
        with pytest.raises(ValueError, match="must be"):
            model.step(start_ms=start_ms, window_s=window_s)
    model.step(start_ms=JULY, window_s=60)
    with pytest.raises(ValueError, match="before the previous one ended"):
        model.step(start_ms=JULY + 59_999, window_s=60)
    model.step(start_ms=JULY + 60_000, window_s=60)
