"""What ``assetproof demo`` runs: its options, its assets, and its error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from protocol.cashflow import HOUR_MS
from protocol.errors import AssetproofError

ASSETS: Final = (
    # (asset, device kind, signature algorithm): what the HK market tokenises
    ("hk-rooftops", "solar", "ed25519"),
    ("kowloon-hub", "charger", "es256"),
    ("hydro-pod", "miner", "ed25519"),
)


BrokerChoice = Literal["auto", "mosquitto", "amqtt"]
BROKER_CHOICES: Final[tuple[BrokerChoice, ...]] = ("auto", "mosquitto", "amqtt")


DAY_MS: Final = 24 * HOUR_MS
REPLAY_START_UTC_HOUR: Final = 1
"""09:00 in Hong Kong (UTC+8): an open-ended demo replays from a morning, so in its first wall
minute the rooftops produce, the chargers see the morning commute and every asset earns, whatever
the hour the demo is started at."""
REPLAY_MIN_MS: Final = 12 * HOUR_MS
"""An open-ended demo replays at least this much of the past: a day's shape on the charts, and
time to watch the backlog drain before the fleet runs at wall speed."""
MAX_REPLAY_MS: Final = 71 * HOUR_MS
"""Readings stay within the chain's 72-hour backfill window before registration (the devices are
registered moments before the fleet starts), with an hour to spare."""


def replay_start_ms(*, now_ms: int, accelerate: float, seconds: float | None) -> int:
    """Where the simulated clock starts. The dashboard's default range is the last 48 hours, so
    every reading the demo replays lands inside it from the first minute.

    A bounded run (``seconds``) replays exactly the past it can catch up with in its span, at
    ``accelerate``. An open-ended run starts from the most recent 09:00 Hong Kong time at least
    :data:`REPLAY_MIN_MS` ago (12 to 36 hours back). Neither reaches back past
    :data:`MAX_REPLAY_MS`."""
    if seconds is not None:
        start = now_ms - int(seconds * max(accelerate - 1, 0) * 1000)
    else:
        start = now_ms - now_ms % DAY_MS + REPLAY_START_UTC_HOUR * HOUR_MS
        while start > now_ms - REPLAY_MIN_MS:
            start -= DAY_MS
    return max(start, now_ms - MAX_REPLAY_MS)


class DemoError(AssetproofError):
    """The demo cannot start (a missing tool) or its pipeline failed."""


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    devices: int = 12
    accelerate: float = 60.0
    seconds: float | None = None
    home: Path = Path("var/demo")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    epoch_seconds: float = 5.0
    fault_rate: float = 0.01
    seed: int = 0
    broker: BrokerChoice = "auto"
    """``auto``: Mosquitto when installed, else the embedded amqtt broker (MQTT 3.1.1)."""

    def __post_init__(self) -> None:
        if self.broker not in BROKER_CHOICES:
            raise DemoError(f"unknown broker {self.broker!r}: one of {', '.join(BROKER_CHOICES)}")


def split_devices(devices: int) -> list[int]:
    """Devices per asset, as even as possible, at least one each."""
    base, extra = divmod(max(devices, len(ASSETS)), len(ASSETS))
    return [base + (1 if i < extra else 0) for i in range(len(ASSETS))]
