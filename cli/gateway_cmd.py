"""``assetproof gateway``: run one gateway worker."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import start_http_server

from cli.common import DEFAULT_DATABASE, BrokerOption, DatabaseOption, configure_logging, parse_broker, stop_on_signals


def gateway(
    database: DatabaseOption = DEFAULT_DATABASE,
    broker: BrokerOption = "127.0.0.1:1883",
    username: Annotated[str | None, typer.Option(envvar="ASSETPROOF_BROKER_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="ASSETPROOF_BROKER_PASSWORD")] = None,
    client_id: Annotated[
        str | None,
        typer.Option(envvar="ASSETPROOF_GATEWAY_CLIENT_ID", help="Stable per worker: it names the persistent session."),
    ] = None,
    share_group: Annotated[str, typer.Option(envvar="ASSETPROOF_GATEWAY_GROUP")] = "assetproof-gateway",
    tariff: Annotated[Path | None, typer.Option(envvar="ASSETPROOF_TARIFF", help="Tariff JSON file.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    hold_seconds: Annotated[float, typer.Option(help="How long a reading waits for its predecessor.")] = 30.0,
    metrics_port: Annotated[int | None, typer.Option(envvar="ASSETPROOF_GATEWAY_METRICS_PORT")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a gateway worker: verify, sequence and store telemetry; quarantine the rest."""
    from gateway.service import Gateway, GatewayConfig
    from gateway.tariff import load_tariff

    configure_logging(verbose)
    host, port = parse_broker(broker)
    config = GatewayConfig(
        database_url=database,
        tariff=load_tariff(tariff),
        broker_host=host,
        broker_port=port,
        username=username,
        password=password,
        client_id=client_id or f"assetproof-gateway-{socket.gethostname()}",
        share_group=share_group,
        batch_size=batch_size,
        hold_ms=int(hold_seconds * 1000),
    )
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    stop = stop_on_signals()
    Gateway(config).run(stop)
