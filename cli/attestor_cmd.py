"""``assetproof attestor``: the Merkle log, epochs and anchoring."""

from __future__ import annotations

from typing import Annotated

import typer
from prometheus_client import start_http_server

from cli.chain_cmd import connect
from cli.common import DatabaseOption, DeploymentOption, RpcOption, configure_logging, secret, setting, stop_on_signals


def attestor(
    database: DatabaseOption,
    rpc: RpcOption,
    deployment: DeploymentOption,
    epoch_seconds: Annotated[float, setting("epoch_seconds", min=0.001)],
    epoch_leaves: Annotated[int, setting("epoch_leaves", min=1)],
    confirmations: Annotated[int, setting("confirmations", min=0)],
    metrics_port: Annotated[int | None, setting("attestor_metrics_port", "--metrics-port")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The anchoring key (0x hex). Default: $ASSETPROOF_ATTESTOR_KEY; in development mode only, else"
            " $ASSETPROOF_CHAIN_KEY, else anvil's first account.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Append accepted readings to the Merkle log, close epochs and anchor them on chain."""
    from attestor.epochs import EpochPolicy
    from attestor.service import Attestor
    from chain.deployment import read_deployment
    from chain.errors import ChainError
    from chain.writer import ChainClient
    from store.db import make_engine, migrate

    configure_logging(verbose)
    try:
        client = ChainClient(
            connect(rpc),
            account=key or secret("require_attestor_key"),
            deployment=read_deployment(deployment),
            confirmations=confirmations,
        )
    except (ChainError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(database)
    migrate(engine)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    service = Attestor(engine, client, policy=EpochPolicy(window_ms=int(epoch_seconds * 1000), max_leaves=epoch_leaves))
    stats = service.run(stop_on_signals())
    engine.dispose()
    typer.echo(f"attestor stopped: {stats}")
