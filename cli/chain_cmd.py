"""``assetproof chain``: deploy the contracts, publish a tariff, and run a local node."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    DatabaseOption,
    DeploymentOption,
    KeystoreOption,
    RpcOption,
    fail,
    secret,
    settings,
    stop_on_signals,
)
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


def connect(rpc: str, *, wait_s: float = 10.0):  # type: ignore[no-untyped-def]
    """A web3 on ``rpc``, once the node answers: a node started a moment ago in the background
    (`chain node &`) gets ``wait_s`` seconds to come up before the command gives up."""
    import time

    from chain.rpc import http_web3

    w3 = http_web3(rpc)
    deadline = time.monotonic() + wait_s
    while not w3.is_connected() and time.monotonic() < deadline:
        time.sleep(0.2)
    return w3


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
    tariff_file: Annotated[
        Path | None,
        typer.Option("--tariff", help="When the deployer is the pricing authority: the first tariff to publish."),
    ] = None,
    no_tariff: Annotated[bool, typer.Option("--no-tariff", help="Publish no tariff at deployment.")] = False,
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
        current = settings()

        def holder(address: str | None, key: Any) -> str:
            # An address given wins; else the role key's address when that key is set.
            if address is not None:
                return address
            return me if key is None else ChainClient(w3, account=key.get_secret_value()).address

        roles = Roles(
            governor=holder(governor, current.governor_key),
            attestor=holder(attestor, None),
            registrar=holder(registrar, current.registrar_key),
            pricing_authority=holder(pricing_authority, current.pricing_key),
        )
        deployment = client.deploy(roles=roles)
        published = None
        if roles.pricing_authority == me and not no_tariff:
            # Development convenience: the deployer is also the pricing authority, so the
            # packaged tariff goes on chain as the first one (in force since always).
            from gateway.tariff import load_tariff

            tariff = load_tariff(tariff_file or settings().tariff)
            ChainClient(w3, account=client.account, deployment=deployment).publish_tariff(tariff, effective_from=0)
            published = tariff.id
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
                "roles": {
                    "governor": roles.governor,
                    "attestor": roles.attestor,
                    "registrar": roles.registrar,
                    "pricing_authority": roles.pricing_authority,
                },
                "tariff_published": published,
                "deployment": str(out),
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


def _client(rpc: str, deployment: Path, key: str):  # type: ignore[no-untyped-def]
    from chain.deployment import read_deployment
    from chain.errors import ChainError
    from chain.writer import ChainClient

    try:
        return ChainClient(connect(rpc), account=key, deployment=read_deployment(deployment))
    except ChainError as exc:
        raise fail(str(exc)) from None


RolesKeyOption = Annotated[
    str | None,
    typer.Option("--key", help="This role's private key (default: its ASSETPROOF_*_KEY setting).", show_default=False),
]


@app.command(name="register-devices")
def register_devices(
    rpc: RpcOption,
    deployment: DeploymentOption,
    database: DatabaseOption,
    keystore: KeystoreOption,
    key: RolesKeyOption = None,
    manufacturer_roots: Annotated[
        Path | None,
        typer.Option(
            help="PEM file of the manufacturer roots device certificates must chain to (default:"
            " $ASSETPROOF_MANUFACTURER_ROOTS, else the keystore's simulated manufacturer root)."
        ),
    ] = None,
) -> None:
    """As the registrar: register on chain every active device of the store that is not there yet,
    with its profile (kind, window, ratings) and its manufacturer certificate's hash, checked
    against the manufacturer roots (for devices provisioned before the contracts were deployed)."""
    from sqlalchemy import select

    from chain.errors import ChainError
    from device_sim.keystore import Keystore
    from protocol.errors import AssetproofError
    from registrar.register import read_roots, registration
    from store.db import make_engine
    from store.status import DeviceStatus
    from store.tables import DEVICE

    client = _client(rpc, deployment, key or secret("require_registrar_key"))
    store = Keystore(keystore)
    roots_path = manufacturer_roots or settings().manufacturer_roots or store.manufacturer_root_path
    engine = make_engine(database)
    with engine.connect() as conn:
        rows = conn.execute(select(DEVICE).where(DEVICE.c.status == DeviceStatus.ACTIVE).order_by(DEVICE.c.id)).all()
    engine.dispose()
    if not rows:
        raise fail(f"no active devices in {database}: provision some first (assetproof devices provision)")
    try:
        roots = read_roots(roots_path) if roots_path.exists() else []
        now = dt.datetime.now(dt.UTC)
        registrations = []
        for row in rows:
            chain_pem = store.load_certificate_chain(row.id) if store.path(row.id).exists() else None
            registrations.append(
                registration(
                    device_id=row.id,
                    asset=row.asset,
                    alg=row.alg,
                    public_key=bytes(row.public_key),
                    kind=row.kind,
                    rating=row.rating,
                    window_s=row.window_s,
                    certificate_chain=chain_pem,
                    roots=roots,
                    at=now,
                )
            )
        before = {r.device_id for r in registrations if client.key_count(r.device_id) > 0}
        client.register_devices(registrations)
    except (AssetproofError, ChainError, ValueError) as exc:
        raise fail(str(exc)) from None
    added = [r for r in registrations if r.device_id not in before]
    attested = sum(1 for r in added if r.cert_hash)
    typer.echo(
        f"registered {len(added)} device(s) on chain {client.chain_id()} ({attested} with a manufacturer"
        f" certificate); {len(before)} already there"
    )


tariff_app = typer.Typer(help="The pricing authority's tariffs on chain.", no_args_is_help=True)
app.add_typer(tariff_app, name="tariff")


@tariff_app.command(name="publish")
def tariff_publish(
    rpc: RpcOption,
    deployment: DeploymentOption,
    tariff_file: Annotated[
        Path | None, typer.Argument(help="The tariff JSON (default: $ASSETPROOF_TARIFF, else the packaged one).")
    ] = None,
    effective_from: Annotated[
        int | None,
        typer.Option(
            help="Unix seconds it takes effect (default: a minute from now, so the transaction lands before it;"
            " the first tariff: 0, since always)."
        ),
    ] = None,
    key: RolesKeyOption = None,
) -> None:
    """As the pricing authority: publish a tariff on chain. Epochs whose window starts at or after
    its effective time are priced with it; nobody can reprice the past."""
    from chain.errors import ChainError
    from gateway.tariff import load_tariff
    from protocol.cashflow import tariff_hash
    from protocol.errors import AssetproofError

    client = _client(rpc, deployment, key or secret("require_pricing_key"))
    try:
        tariff = load_tariff(tariff_file or settings().tariff)
        first = client.tariff_count() == 0
        when = effective_from if effective_from is not None else (0 if first else _soon(client))
        receipt = client.publish_tariff(tariff, effective_from=when)
    except (AssetproofError, ChainError) as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"published tariff {tariff.id} (sha256 {tariff_hash(tariff).hex()}) in force from {when}"
        f" (block {receipt.block_number})"
    )


@tariff_app.command(name="list")
def tariff_list(rpc: RpcOption, deployment: DeploymentOption) -> None:
    """Every tariff published on chain, with its hash and effective time."""
    from chain.deployment import read_deployment
    from chain.errors import ChainError
    from chain.reader import ChainReader

    try:
        reader = ChainReader(connect(rpc), deployment=read_deployment(deployment))
        for t in reader.published_tariffs():
            name = t.parsed.id if t.parsed is not None else f"unreadable ({t.problem})"
            typer.echo(f"#{t.index} {name} from {t.effective_from} sha256 {t.tariff_hash.hex()} block {t.block_number}")
    except ChainError as exc:
        raise fail(str(exc)) from None


def _soon(client: Any) -> int:
    # A later tariff may not take effect before its own block: leave the transaction a minute.
    latest = int(client.block_timestamp(client.block_number()))
    return max(int(dt.datetime.now(dt.UTC).timestamp()), latest) + 60


govern_app = typer.Typer(help="Replace role holders: the governor proposes, anyone executes after the delay.")
app.add_typer(govern_app, name="govern", no_args_is_help=True)

ContractArg = Annotated[str, typer.Option("--contract", help="AnchorRegistry, DeviceRegistry or TariffRegistry.")]
RoleArg = Annotated[str, typer.Option("--role", help="governor, attestor, registrar or pricing_authority.")]


def _governed(contract: str, role: str) -> tuple[Any, Any]:
    from chain.types import GOVERNED_CONTRACTS

    if contract not in GOVERNED_CONTRACTS:
        raise fail(f"--contract must be one of {', '.join(GOVERNED_CONTRACTS)}, got {contract!r}")
    if role not in ("governor", "attestor", "registrar", "pricing_authority"):
        raise fail(f"--role must be governor, attestor, registrar or pricing_authority, got {role!r}")
    return contract, role


@govern_app.command()
def propose(
    rpc: RpcOption,
    deployment: DeploymentOption,
    contract: ContractArg,
    role: RoleArg,
    account: Annotated[str, typer.Option(help="The new holder's address.")],
    key: RolesKeyOption = None,
) -> None:
    """As the governor: propose a new holder; it can take effect after the governance delay."""
    from chain.errors import ChainError

    name, role_name = _governed(contract, role)
    client = _client(rpc, deployment, key or secret("require_governor_key"))
    try:
        client.propose_role(contract=name, role=role_name, account=account)
        eta = next(p.eta for p in client.pending_role_changes() if p.contract == name and p.role == role_name)
    except (ChainError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"proposed {account} as {role} of {contract}: executable from block time {eta}")


@govern_app.command()
def execute(
    rpc: RpcOption, deployment: DeploymentOption, contract: ContractArg, role: RoleArg, key: RolesKeyOption = None
) -> None:
    """Put the proposed holder in place once the delay has passed (anyone may)."""
    from chain.errors import ChainError

    name, role_name = _governed(contract, role)
    client = _client(rpc, deployment, key or secret("require_chain_key"))
    try:
        client.execute_role(contract=name, role=role_name)
    except ChainError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{role} of {contract} replaced")


@govern_app.command()
def cancel(
    rpc: RpcOption, deployment: DeploymentOption, contract: ContractArg, role: RoleArg, key: RolesKeyOption = None
) -> None:
    """As the governor: withdraw a pending proposal."""
    from chain.errors import ChainError

    name, role_name = _governed(contract, role)
    client = _client(rpc, deployment, key or secret("require_governor_key"))
    try:
        client.cancel_role(contract=name, role=role_name)
    except ChainError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"the change of {role} on {contract} is withdrawn")
