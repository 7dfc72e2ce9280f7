"""Readings with every metric of each device kind, for envelope and bundle tests."""

from protocol.envelope import GENESIS_PREV, Body, DeviceKind

SOLAR_METRICS = {"energy_wh": 81, "power_w": 4860, "irradiance_wm2": 812, "temp_dc": 453}
CHARGER_METRICS = {
    "energy_wh": 1100,
    "grid_wh": 1183,
    "sessions_started": 1,
    "sessions_ended": 0,
    "active_s": 60,
    "power_w": 66000,
}
MINER_METRICS = {
    "hashes_gh": 17_280_000,
    "hashrate_ghs": 288_000,
    "power_w": 4_900,
    "energy_wh": 82,
    "uptime_s": 60,
    "curtailed_s": 0,
    "temp_dc": 512,
}
METRICS_BY_KIND = {
    DeviceKind.SOLAR: SOLAR_METRICS,
    DeviceKind.CHARGER: CHARGER_METRICS,
    DeviceKind.MINER: MINER_METRICS,
}


def body(
    kind: DeviceKind = DeviceKind.SOLAR, *, seq: int = 1, device: str = "sol-0001", prev: bytes = GENESIS_PREV
) -> Body:
    return Body(
        device=device,
        seq=seq,
        ts_ms=1_763_700_000_000 + seq * 60_000,
        kind=kind,
        window_s=60,
        metrics=dict(METRICS_BY_KIND[kind]),
        prev=prev,
    )
