"""What ``assetproof demo`` runs: its options, its assets, and its error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from protocol.errors import AssetproofError

ASSETS: Final = (
    # (asset, device kind, signature algorithm): what the HK market tokenises
    ("hk-rooftops", "solar", "ed25519"),
    ("kowloon-hub", "charger", "es256"),
    ("hydro-pod", "miner", "ed25519"),
)


BrokerChoice = Literal["auto", "mosquitto", "amqtt"]
BROKER_CHOICES: Final[tuple[BrokerChoice, ...]] = ("auto", "mosquitto", "amqtt")


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
