"""Pregenerated, signed load for ``bench.ingest``: devices of all three kinds with plausible
metrics, readings in publishing order (round-robin over devices, each device's in seq order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.clock import wall_ms
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, sign_body
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic

WINDOW_S = 60
_KINDS = [
    (DeviceKind.SOLAR, "bench-solar", {"rated_power_w": 5_000}),
    (DeviceKind.CHARGER, "bench-charging", {"rated_power_w": 60_000}),
    (DeviceKind.MINER, "bench-mining", {"rated_power_w": 5_040, "rated_hashrate_ghs": 288_000}),
]
_METRICS: dict[DeviceKind, dict[str, int]] = {
    DeviceKind.SOLAR: {"energy_wh": 60, "power_w": 3_600, "irradiance_wm2": 700, "temp_dc": 420},
    DeviceKind.CHARGER: {
        "energy_wh": 900,
        "grid_wh": 950,
        "sessions_started": 0,
        "sessions_ended": 0,
        "active_s": 60,
        "power_w": 54_000,
    },
    DeviceKind.MINER: {
        "hashes_gh": 17_280_000,
        "hashrate_ghs": 288_000,
        "power_w": 5_000,
        "energy_wh": 83,
        "uptime_s": 60,
        "curtailed_s": 0,
        "temp_dc": 480,
    },
}


@dataclass(frozen=True, slots=True)
class LoadDevice:
    id: str
    kind: str
    asset: str
    alg: str
    public_key: bytes
    rating: dict[str, Any]
    window_s: int


@dataclass(frozen=True, slots=True)
class Load:
    devices: list[LoadDevice]
    messages: list[tuple[str, bytes, str, int]]  # topic, payload, device id, seq


def generate_load(*, devices: int, per_device: int, alg: str = "ed25519") -> Load:
    base_ms = wall_ms() - per_device * WINDOW_S * 1000
    fleet = []
    keys = []
    for i in range(devices):
        kind, asset, rating = _KINDS[i % 3]
        key = DeviceKey.generate(alg)
        keys.append(key)
        fleet.append(
            LoadDevice(f"{asset[6:9]}-{i:06d}", kind.value, asset, alg, key.public_key, dict(rating), WINDOW_S)
        )
    prevs = [GENESIS_PREV] * devices
    messages = []
    for seq in range(1, per_device + 1):
        ts = base_ms + seq * WINDOW_S * 1000
        for i, device in enumerate(fleet):
            kind = DeviceKind(device.kind)
            body = Body(
                device=device.id, seq=seq, ts_ms=ts, kind=kind, window_s=WINDOW_S, metrics=_METRICS[kind], prev=prevs[i]
            )
            message = sign_body(body, keys[i])
            prevs[i] = message.chain_hash
            messages.append((telemetry_topic(device.id), message.raw, device.id, seq))
    return Load(fleet, messages)
