"""``assetproof attestor``: the Merkle log, epochs and anchoring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import start_http_server

from cli.chain_cmd import ANVIL_DEV_KEY, DeploymentOption, KeyOption, RpcOption, connect
from cli.common import DEFAULT_DATABASE, DatabaseOption, configure_logging, stop_on_signals


def attestor(
    database: DatabaseOption = DEFAULT_DATABASE,
    rpc: RpcOption = "http://127.0.0.1:8545",
    key: KeyOption = ANVIL_DEV_KEY,
    deployment: DeploymentOption = Path("var/deployment.json"),
    epoch_seconds: Annotated[float, typer.Option(envvar="ASSETPROOF_EPOCH_SECONDS", help="Epoch time window.")] = 60.0,
    epoch_leaves: Annotated[int, typer.Option(envvar="ASSETPROOF_EPOCH_LEAVES", help="Epoch size limit.")] = 10_000,
    confirmations: Annotated[int, typer.Option(envvar="ASSETPROOF_CONFIRMATIONS", min=0)] = 0,
    metrics_port: Annotated[int | None, typer.Option(envvar="ASSETPROOF_ATTESTOR_METRICS_PORT")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Append accepted readings to the Merkle log, close epochs and anchor them on chain."""
    from attestor.epochs import EpochPolicy
    from attestor.service import Attestor
    from chain.client import ChainClient
    from chain.deployment import read_deployment
    from chain.errors import ChainError
    from store.db import make_engine, migrate

    configure_logging(verbose)
    try:
        client = ChainClient(
            connect(rpc), account=key, deployment=read_deployment(deployment), confirmations=confirmations
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
