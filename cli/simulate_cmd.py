"""``assetproof simulate``: run the provisioned devices of a keystore as a live fleet."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import BrokerOption, KeystoreOption, configure_logging, parse_broker, setting, stop_on_signals
from config.clock import wall_ms

log = logging.getLogger("assetproof.simulate")


def simulate(
    keystore: KeystoreOption,
    broker: BrokerOption,
    outbox: Annotated[
        Path, setting("outbox", "--outbox", help="The on-disk queue; it also holds each device's chain.")
    ],
    username: Annotated[str | None, setting("broker_username", "--username", help="For --multiplex.")],
    password: Annotated[str | None, setting("broker_password", "--password", help="For --multiplex.")],
    tls_ca: Annotated[Path | None, setting("broker_tls_ca", "--tls-ca")],
    tls_cert: Annotated[Path | None, setting("broker_tls_cert", "--tls-cert", help="For --multiplex.")],
    tls_key: Annotated[Path | None, setting("broker_tls_key", "--tls-key", help="For --multiplex.")],
    device: Annotated[list[str] | None, typer.Option(help="Only these device ids (repeatable).")] = None,
    accelerate: Annotated[
        float, typer.Option(min=0.001, help="Simulated seconds per wall second (1440: a day a minute).")
    ] = 1.0,
    seconds: Annotated[float | None, typer.Option(help="Stop after this many wall seconds.")] = None,
    window: Annotated[
        int | None,
        typer.Option(
            min=1, max=86_400, help="Simulated seconds per reading (default: the devices' registered window)."
        ),
    ] = None,
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance per reading of one extra faulty message.")
    ] = 0.0,
    multiplex: Annotated[
        int | None, typer.Option(help="Share N connections among all devices (load tests) instead of one each.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulated start, ISO 8601 with a UTC offset (2026-06-01T02:00:00Z), in the past; "
            "default: derived from --seconds and --accelerate as above."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Sign and publish readings from simulated devices (store-and-forward while the broker is away).

    An accelerated clock starts in the past, so that readings never run ahead of the gateway's
    clock: with --seconds S it starts S x (X - 1) seconds ago, without it one simulated day ago.
    --start fixes it instead (tests and demos whose figures must not depend on the time of day).
    """
    from device_sim.fleet import FleetDevice, FleetRunner, SimClock
    from device_sim.keystore import Keystore
    from device_sim.outbox import Outbox
    from device_sim.publisher import Publisher
    from protocol.errors import AssetproofError

    configure_logging(verbose)
    start_ms = None if start is None else _parse_start(start, now_ms=wall_ms())
    host, port = parse_broker(broker)
    store = Keystore(keystore)
    ids = device or store.ids()
    if not ids:
        typer.echo(f"error: no devices in {keystore}: run assetproof devices provision first", err=True)
        raise typer.Exit(2)
    try:
        credentials = [store.load(i) for i in ids]
        devices = [FleetDevice.from_credentials(c) for c in credentials]
    except AssetproofError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    now = wall_ms()
    ahead_ms = (
        int((seconds if seconds is not None else 86_400 / accelerate) * (accelerate - 1) * 1000)
        if accelerate > 1
        else 0
    )
    outbox.parent.mkdir(parents=True, exist_ok=True)
    box = Outbox(outbox)
    clock = SimClock.resuming(box, start_ms=now - ahead_ms if start_ms is None else start_ms, acceleration=accelerate)
    passwords = {c.device_id: c.mqtt_password for c in credentials}
    tls = None
    if tls_ca is not None:
        from config.mqtt_tls import TLSFiles

        ca = tls_ca
        if multiplex and (tls_cert is None or tls_key is None):
            typer.echo("error: --multiplex over TLS needs --tls-cert and --tls-key", err=True)
            raise typer.Exit(2)

        def tls(login: str | None) -> TLSFiles:
            # Each device presents its own certificate (provisioned into the keystore); the
            # multiplexed load-test login presents --tls-cert.
            if multiplex and tls_cert is not None and tls_key is not None:
                return TLSFiles(ca=ca, cert=tls_cert, key=tls_key)
            _, cert, key = store.tls_paths(str(login))
            return TLSFiles(ca=ca, cert=cert, key=key)

    publisher = Publisher(
        outbox,
        host=host,
        port=port,
        passwords=None if multiplex else passwords,
        connections=multiplex,
        username=username,
        password=password,
        tls=tls,
    )
    try:
        runner = FleetRunner(
            devices, box, clock=clock, window_s=window, seed=seed, publisher=publisher, fault_rate=fault_rate
        )
    except AssetproofError as exc:  # e.g. a --window other than the devices' registered one
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    stop = stop_on_signals()
    publisher.start()
    try:
        stats = runner.run(stop, seconds=seconds)
    finally:
        drained = publisher.wait_until_drained(10)
        publisher.stop()
    published = publisher.stats()
    typer.echo(
        f"{len(devices)} devices: {stats.readings} readings signed, {sum(stats.faults.values())} faults injected; "
        f"{published.published} published, {published.rejected} refused by the broker, "
        f"{publisher.pending()} still queued{'' if drained else ' (broker unreachable: they go out on the next run)'}"
    )


def _parse_start(text: str, *, now_ms: int) -> int:
    """``--start`` in ms since the epoch; exits 2 on a time without an offset (whose instant would
    depend on the machine's zone) or one in the future (the gateway would refuse its readings)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        typer.echo(f"error: --start {text!r} is not an ISO 8601 time", err=True)
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        typer.echo(f"error: --start {text!r} has no UTC offset (add Z or +08:00)", err=True)
        raise typer.Exit(2)
    start_ms = int(moment.timestamp() * 1000)
    if start_ms > now_ms:
        typer.echo(f"error: --start {text!r} is in the future", err=True)
        raise typer.Exit(2)
    return start_ms
