"""The fleet and its readings for ``bench.api``: genuine signed messages, each device's hash chain
unbroken, encoded and hashed by ``protocol`` (the gateway accepts them as they are)."""

from __future__ import annotations

import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from config.clock import wall_ms
from device_sim.provision import KIND_PREFIX
from protocol.cashflow import HOUR_MS, Tariff, reading_cash_flow
from protocol.envelope import Body, DeviceKind, decode_and_verify, sign_body
from protocol.merkle.hashing import leaf_hash
from protocol.signing import DeviceKey

WINDOW_S = 900
SLOT_MS = WINDOW_S * 1000
DAY_MS = 24 * HOUR_MS
ASSETS = (  # name, kind, alg, share of the devices
    ("hk-rooftops", DeviceKind.SOLAR, "ed25519", 0.4),
    ("kowloon-hub", DeviceKind.CHARGER, "es256", 0.33),
    ("hydro-pod", DeviceKind.MINER, "ed25519", 0.27),
)


@dataclass(frozen=True, slots=True)
class Spec:
    id: str
    asset: str
    kind: DeviceKind
    alg: str
    secret: bytes
    rating: dict[str, int]
    seed: int

    @property
    def key(self) -> DeviceKey:
        return DeviceKey.from_private_bytes(self.alg, self.secret)


@dataclass(frozen=True, slots=True)
class Generated:
    """One reading as the gateway would have classified it."""

    seq: int
    ts_ms: int
    metrics: dict[str, int]
    raw: bytes
    leaf_hash: bytes
    chain_hash: bytes
    revenue: int
    cost: int
    active_s: int


def fleet(devices: int, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    specs = []
    for asset, kind, alg, share in ASSETS:
        count = max(1, round(devices * share))
        for n in range(1, count + 1):
            if kind is DeviceKind.SOLAR:
                rating = {"rated_power_w": rng.randrange(4_000, 10_001, 500)}
            elif kind is DeviceKind.CHARGER:
                rating = {"rated_power_w": rng.choice([7_000, 7_000, 22_000, 60_000])}
            else:
                rating = {"rated_power_w": 5_040, "rated_hashrate_ghs": 288_000}
            specs.append(
                Spec(
                    id=f"{KIND_PREFIX[kind]}-{asset}-{n:04d}",
                    asset=asset,
                    kind=kind,
                    alg=alg,
                    secret=rng.randbytes(32),
                    rating=rating,
                    seed=rng.randrange(1 << 30),
                )
            )
    return specs


def _metrics(spec: Spec, rng: random.Random, start_ms: int, cloud: float) -> tuple[dict[str, int], int]:
    """One window's metrics and its producing seconds, from a simple profile of the kind."""
    hour = (start_ms / HOUR_MS + 8) % 24  # Hong Kong time drives sun and traffic
    power = spec.rating["rated_power_w"]
    if spec.kind is DeviceKind.SOLAR:
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12))
        output = int(power * 0.85 * sun * cloud * rng.uniform(0.9, 1.0))
        metrics = {
            "energy_wh": output * WINDOW_S // 3600,
            "power_w": output,
            "irradiance_wm2": int(1000 * sun * cloud),
            "temp_dc": 250 + int(200 * sun),
        }
        return metrics, WINDOW_S if output > 0 else 0
    if spec.kind is DeviceKind.CHARGER:
        busy = 0.15 + 0.55 * math.exp(-(((hour - 19) / 3) ** 2)) + 0.25 * math.exp(-(((hour - 9) / 2) ** 2))
        active = rng.randrange(120, WINDOW_S + 1) if rng.random() < busy else 0
        energy = int(power * rng.uniform(0.6, 0.95) * active / 3600)
        started = int(active > 0 and rng.random() < 0.35)
        metrics = {
            "energy_wh": energy,
            "grid_wh": energy * 108 // 100,
            "sessions_started": started,
            "sessions_ended": int(active > 0 and rng.random() < 0.35),
            "active_s": active,
            "power_w": energy * 3600 // WINDOW_S,
        }
        return metrics, active
    curtailed = WINDOW_S if rng.random() < 0.04 else 0
    uptime = WINDOW_S - curtailed
    rate = int(spec.rating["rated_hashrate_ghs"] * rng.uniform(0.97, 1.01)) if uptime else 0
    draw = int(power * rng.uniform(0.97, 1.0)) if uptime else 50
    metrics = {
        "hashes_gh": rate * uptime,
        "hashrate_ghs": rate,
        "power_w": draw,
        "energy_wh": draw * WINDOW_S // 3600,
        "uptime_s": uptime,
        "curtailed_s": curtailed,
        "temp_dc": rng.randrange(450, 500) if uptime else 300,
    }
    return metrics, uptime


def device_readings(spec: Spec, *, start_ms: int, slots: int, tariff_json: dict[str, Any]) -> list[Generated]:
    """A device's signed readings, its hash chain unbroken."""
    tariff = Tariff.from_json(tariff_json)
    key = spec.key
    rng = random.Random(spec.seed)
    prev = bytes(32)
    cloud = 1.0
    out = []
    for slot in range(slots):
        window_start = start_ms + slot * SLOT_MS
        if slot % 96 == 0:
            cloud = rng.uniform(0.35, 1.0)
        metrics, active = _metrics(spec, rng, window_start, cloud)
        body = Body(
            device=spec.id,
            seq=slot + 1,
            ts_ms=window_start + SLOT_MS,
            kind=spec.kind,
            window_s=WINDOW_S,
            metrics=metrics,
            prev=prev,
        )
        message = sign_body(body, key)
        flow = reading_cash_flow(message.body, tariff)
        prev = message.chain_hash
        out.append(
            Generated(
                seq=body.seq,
                ts_ms=body.ts_ms,
                metrics=metrics,
                raw=message.raw,
                leaf_hash=leaf_hash(message.raw),
                chain_hash=prev,
                revenue=flow.revenue,
                cost=flow.cost,
                active_s=active,
            )
        )
    return out


def _generate_chunk(args: tuple[list[Spec], int, int, dict[str, Any]]) -> list[list[Generated]]:
    specs, start_ms, slots, tariff_json = args
    return [device_readings(s, start_ms=start_ms, slots=slots, tariff_json=tariff_json) for s in specs]


@dataclass
class Data:
    specs: list[Spec]
    readings: list[tuple[int, Generated]]
    """(device index, reading) in acceptance order: time order, devices interleaved."""
    start_ms: int
    slots: int
    tariff: Tariff


def generate(*, devices: int, days: int, seed: int, tariff: Tariff) -> Data:
    """``days`` of readings of ``devices`` devices ending at the last whole hour, on up to four
    processes."""
    specs = fleet(devices, seed)
    now = wall_ms()
    end_ms = now - now % HOUR_MS
    slots = days * DAY_MS // SLOT_MS
    start_ms = end_ms - slots * SLOT_MS
    workers = max(1, min(os.cpu_count() or 1, 4))
    chunks = [specs[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_generate_chunk, [(c, start_ms, slots, tariff.to_json()) for c in chunks]))
    per_device: dict[str, list[Generated]] = {}
    for chunk, result in zip(chunks, results, strict=True):
        per_device.update((s.id, r) for s, r in zip(chunk, result, strict=True))
    ordered = [per_device[s.id] for s in specs]
    readings = [(d, ordered[d][slot]) for slot in range(slots) for d in range(len(specs))]
    return Data(specs=specs, readings=readings, start_ms=start_ms, slots=slots, tariff=tariff)


def check_sample(data: Data) -> None:
    """The generated messages are what a gateway accepts: canonical, signed, chained."""
    for d in (0, len(data.specs) // 2, len(data.specs) - 1):
        spec = data.specs[d]
        first, second = (r for _, r in data.readings[d : d + 2 * len(data.specs) : len(data.specs)])
        message = decode_and_verify(second.raw, alg=spec.alg, public_key=spec.key.public_key)
        if message.body.prev != first.chain_hash:
            raise AssertionError(f"{spec.id}: readings do not chain")
