"""Build signed readings and registered devices for gateway tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import rfc8785
from sqlalchemy import Engine

from protocol.cashflow import Tariff
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, Message, sign_body
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from store.devices import NewDevice, ensure_asset, register_devices

TARIFF = Tariff(
    id="test-tariff",
    currency="HKD",
    solar_fit_per_kwh=400,
    charger_price_per_kwh=450,
    charger_session_fee=1000,
    grid_price_per_kwh=150,
    miner_power_price_per_kwh=60,
    btc_price=70_000_000,
    btc_difficulty=150_000_000_000_000,
    btc_subsidy_sats=312_500_000,
    btc_fees_sats=10_000_000,
    pool_fee_bps=200,
)
RATING = {"rated_power_w": 5_000}
NOW_MS = int(time.time() * 1000)


class Clock:
    """A clock the test moves by hand (milliseconds), starting at ``NOW_MS``."""

    def __init__(self) -> None:
        self.now = NOW_MS

    def __call__(self) -> int:
        return self.now


def solar_metrics(energy_wh: int = 80) -> dict[str, int]:
    return {"energy_wh": energy_wh, "power_w": energy_wh * 60, "irradiance_wm2": 700, "temp_dc": 350}


@dataclass
class SimDevice:
    """A minimal device: a key, a seq counter and a prev chain."""

    id: str
    key: DeviceKey
    seq: int = 0
    prev: bytes = GENESIS_PREV
    ts_ms: int = NOW_MS - 3_600_000
    sent: list[Message] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return telemetry_topic(self.id)

    def body(
        self, *, seq: int | None = None, prev: bytes | None = None, ts_ms: int | None = None, energy_wh: int = 80
    ) -> Body:
        return Body(
            device=self.id,
            seq=self.seq + 1 if seq is None else seq,
            ts_ms=self.ts_ms + 60_000 if ts_ms is None else ts_ms,
            kind=DeviceKind.SOLAR,
            window_s=60,
            metrics=solar_metrics(energy_wh),
            prev=self.prev if prev is None else prev,
        )

    def next(self, **kw: int) -> Message:
        """The device's next genuine reading (advances its chain)."""
        message = sign_body(self.body(**kw), self.key)
        self.seq = message.body.seq
        self.prev = message.chain_hash
        self.ts_ms = message.body.ts_ms
        self.sent.append(message)
        return message

    def forged(self, body: Body, key: DeviceKey | None = None) -> Message:
        """A reading that does not advance the device's own chain."""
        return sign_body(body, key or self.key)


def register(
    engine: Engine, count: int = 1, *, asset: str = "rooftop", alg: str = "ed25519", prefix: str = "sol"
) -> list[SimDevice]:
    ensure_asset(engine, name=asset, kind="solar", now_ms=NOW_MS)
    devices = [SimDevice(f"{prefix}-{i:04d}", DeviceKey.generate(alg)) for i in range(count)]
    register_devices(
        engine,
        asset=asset,
        devices=[
            NewDevice(id=d.id, kind="solar", alg=alg, public_key=d.key.public_key, rating=dict(RATING), window_s=60)
            for d in devices
        ],
        now_ms=NOW_MS,
    )
    return devices


def rewrite(message: Message, change: object) -> bytes:
    obj = json.loads(message.raw)
    change(obj)  # type: ignore[operator]
    return rfc8785.dumps(obj)
