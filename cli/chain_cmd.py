"""``assetproof chain``: deploy the contracts, publish a tariff, and run a local node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DeploymentOption, RpcOption, secret, settings, stop_on_signals
from config import ANVIL_DEV_KEY

app = typer.Typer(help="Deploy the contracts; run a local anvil node.", no_args_is_help=True)

__all__ = ["ANVIL_DEV_KEY", "DeploymentOption", "KeyOption", "RpcOption", "app", "connect"]

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The deployer's / registry admin's private key (0x hex). Default: $ASSETPROOF_CHAIN_KEY, else (in"
        " development mode only) anvil's first account.",
        show_default=False,
    ),
]


def connect(rpc: str):  # type: ignore[no-untyped-def]
    from chain.rpc import http_web3

    return http_web3(rpc)


@app.command()
def deploy(
    rpc: RpcOption,
    out: DeploymentOption,
    key: KeyOption = None,
    attestor: Annotated[
        str | None,
        typer.Option(
            help="The attestor's address (default: the address of $ASSETPROOF_ATTESTOR_KEY when set, else the"
            " deploying account)."
        ),
    ] = None,
    registrar: Annotated[
        str | None,
        typer.Option(help="The registrar's address: registers, rotates, revokes devices (default: the deployer)."),
    ] = None,
    pricing_authority: Annotated[
        str | None, typer.Option(help="The pricing authority's address: publishes tariffs (default: the deployer).")
    ] = None,
    governor: Annotated[
        str | None,
        typer.Option(help="The governor's address: replaces role holders after a delay (default: the deployer)."),
    ] = None,
) -> None:
    """Deploy AnchorRegistry, DeviceRegistry, TariffRegistry and ReadingVerifier and write the
    deployment file. When the deployer is also the pricing authority (development), the
    configured tariff is published at once, in force from the start of time."""
    from chain.deployment import write_deployment
    from chain.errors import ChainError
    from chain.types import Roles
    from chain.writer import ChainClient

    try:
        w3 = connect(rpc)
        client = ChainClient(w3, account=key or secret("require_chain_key"))
        attestor_key = settings().attestor_key
        if attestor is None and attestor_key is not None:
            attestor = ChainClient(w3, account=attestor_key.get_secret_value()).address
        me = client.address
        roles = Roles(
            governor=governor or me,
            attestor=attestor or me,
            registrar=registrar or me,
            pricing_authority=pricing_authority or me,
        )
        deployment = client.deploy(roles=roles)
        if roles.pricing_authority == me:
            # The attestor prices every epoch with the tariff published on chain: with the
            # deployer as pricing authority (development), publish the configured one now.
            from gateway.tariff import load_tariff

            client.publish_tariff(load_tariff(settings().tariff), effective_from=0)
    except ChainError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_deployment(out, deployment)
    typer.echo(
        json.dumps(
            {
                "chain_id": deployment.chain_id,
                "AnchorRegistry": deployment.anchor_registry.address,
                "DeviceRegistry": deployment.device_registry.address,
                "TariffRegistry": deployment.tariff_registry.address,
                "deployment": str(out),
            }
        )
    )


@app.command("publish-tariff")
def publish_tariff(
    rpc: RpcOption,
    deployment: DeploymentOption,
    key: KeyOption = None,
    tariff: Annotated[
        Path | None, typer.Option(help="Tariff JSON file (default: $ASSETPROOF_TARIFF, else the bundled one).")
    ] = None,
    effective_from: Annotated[
        int | None,
        typer.Option(
            min=0, help="Block time (s) from which it prices epochs (default: now; the first tariff may be any time)."
        ),
    ] = None,
) -> None:
    """Publish a tariff on the TariffRegistry (the pricing authority's key): epochs whose window
    starts from ``--effective-from`` on are priced with it, and auditors check that they are."""
    from chain.deployment import read_deployment
    from chain.errors import ChainError, DeploymentError
    from chain.writer import ChainClient
    from gateway.tariff import load_tariff
    from protocol.cashflow import tariff_hash
    from protocol.errors import MetadataError

    try:
        chosen = load_tariff(tariff or settings().tariff)
        client = ChainClient(
            connect(rpc), account=key or secret("require_chain_key"), deployment=read_deployment(deployment)
        )
        when = effective_from if effective_from is not None else client.block_timestamp(client.block_number()) + 1
        receipt = client.publish_tariff(chosen, effective_from=when)
    except (ChainError, DeploymentError, MetadataError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        json.dumps(
            {
                "tariff": chosen.id,
                "hash": tariff_hash(chosen).hex(),
                "effective_from": when,
                "block_number": receipt.block_number,
            }
        )
    )


@app.command()
def node(
    port: Annotated[int, typer.Option(help="JSON-RPC port.")] = 8545,
    state: Annotated[Path | None, typer.Option(help="Keep the chain in this file across restarts.")] = None,
) -> None:
    """Run a local anvil node until interrupted (the npm-installed binary; see scripts/bootstrap)."""
    from chain.errors import NodeError
    from devstack.anvil import start_anvil

    try:
        anvil = start_anvil(port=port, state_file=state)
    except NodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"anvil listening on http://127.0.0.1:{port} (chain id 31337)")
    stop = stop_on_signals()
    stop.wait()
    anvil.stop()
