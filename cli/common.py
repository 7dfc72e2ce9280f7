"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

DEFAULT_DATABASE = "sqlite:///var/assetproof.db"

DatabaseOption = Annotated[
    str,
    typer.Option("--database", envvar="ASSETPROOF_DATABASE_URL", help="sqlite:///PATH or postgresql://USER@HOST/DB"),
]
BrokerOption = Annotated[str, typer.Option("--broker", envvar="ASSETPROOF_BROKER", help="MQTT broker as HOST:PORT")]


def parse_broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--broker")
    return host, int(port)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so services drain and exit cleanly."""
    stop = threading.Event()

    def _handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
