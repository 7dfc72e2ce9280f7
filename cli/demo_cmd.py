"""``assetproof demo``: everything on embedded defaults, with a live view."""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer


class Broker(enum.StrEnum):
    auto = "auto"
    mosquitto = "mosquitto"
    amqtt = "amqtt"


def demo(
    devices: Annotated[int, typer.Option(min=3, max=10_000, help="Devices, split over three assets.")] = 12,
    accelerate: Annotated[
        float, typer.Option(min=1.0, help="Simulated seconds per wall second (replaying the recent past).")
    ] = 60.0,
    seconds: Annotated[
        float | None, typer.Option(min=1.0, help="Stop after this many seconds, print a summary, exit 1 on loss.")
    ] = None,
    home: Annotated[Path, typer.Option(help="Where the demo keeps its state (recreated each run).")] = Path("var/demo"),
    port: Annotated[int, typer.Option(help="The API and dashboard port (0: any free port).")] = 8000,
    epoch_seconds: Annotated[float, typer.Option(min=0.5, help="Epoch window.")] = 5.0,
    broker: Annotated[
        Broker, typer.Option(help="auto: Mosquitto when installed, else the embedded amqtt broker (MQTT 3.1.1).")
    ] = Broker.auto,
) -> None:
    """Run the whole pipeline: broker, chain, contracts, a fleet of three assets, gateway,
    attestor, API with the dashboard, and the simulator, with a live view."""
    from rich.console import Console
    from rich.live import Live

    from demo.options import DemoError, DemoOptions
    from demo.stack import DemoStack
    from demo.view import Rates, render, summary_table
    from protocol.errors import AssetproofError

    console = Console()
    # The services log to a file: the live view owns the terminal.
    home.mkdir(parents=True, exist_ok=True)
    # A fresh log each run, like the state under ``home``: it never grows across runs.
    logging.basicConfig(
        filename=str(home.parent / "demo.log"),
        filemode="w",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    options = DemoOptions(
        devices=devices,
        accelerate=accelerate,
        seconds=seconds,
        home=home,
        api_port=port,
        epoch_seconds=epoch_seconds,
        broker=broker.value,
    )
    stack = DemoStack(options, say=lambda line: console.print(f"[dim]·[/] {line}"))
    interrupted = _first_ctrl_c_drains()
    try:
        try:
            with console.status("starting broker, chain, contracts, fleet, gateway, attestor, API ..."):
                stack.start()
        except (AssetproofError, OSError) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        rates = Rates()
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            try:
                with Live(console=console, refresh_per_second=2, transient=False) as live:
                    while not interrupted.is_set() and (deadline is None or time.monotonic() < deadline):
                        snap = stack.snapshot()
                        live.update(
                            render(
                                snap,
                                rates.update(snap),
                                chain=stack.chain_label,
                                broker=stack.broker_label,
                                dashboard=stack.dashboard_url,
                            )
                        )
                        if (failure := stack.failed()) is not None:
                            raise DemoError(f"a service failed: {failure}")
                        interrupted.wait(1.0)
            finally:
                if not console.is_terminal:
                    # Without a terminal, rich prints the live panel's last frame without ending
                    # its line: end it, or the next line would run on from the panel's border.
                    console.line()
        except DemoError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None
        if interrupted.is_set():
            console.print(
                "stopping (Ctrl-C): letting the fleet's last readings be stored and anchored ..."
                " (Ctrl-C again forces the stop)"
            )
        with console.status("draining: every signed reading stored, every epoch anchored ..."):
            summary = stack.finish()
        # A blank line between the live panel's last frame and the summary's title.
        console.print()
        console.print(summary_table(summary))
        console.print(f"summary written to {home / 'summary.json'}; logs in {home.parent / 'demo.log'}")
        if not summary.ok:
            raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("[bold red]forced stop[/] (second Ctrl-C): services stopped without draining; result not checked")
        raise typer.Exit(130) from None
    finally:
        stack.close()


def _first_ctrl_c_drains() -> threading.Event:
    """SIGINT handling for the demo: the first Ctrl-C sets the returned event (set-up completes,
    then the demo drains and stops its services itself, which run in their own sessions and so
    never see the terminal's signal); a second one raises KeyboardInterrupt to force the stop."""
    interrupted = threading.Event()

    def on_sigint(_signum: int, _frame: object) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    signal.signal(signal.SIGINT, on_sigint)
    return interrupted
