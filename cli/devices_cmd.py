"""``assetproof devices``: provision, list, revoke, rotate and resync device identities.

Provisioning is three steps that must agree: keys in the keystore (private keys stay there,
mode 0600), the devices in the store (what the gateway verifies against), and the broker's
logins and access rules (Mosquitto's dynamic-security config, :mod:`devstack.broker_auth`:
each device may publish only on its own topic and subscribe to nothing). Keys created for a
batch the store then refuses are removed again.

A running broker owns its config file, so logins are added and removed through its ``$CONTROL``
topic when it answers at ``--broker``, and in the file when it does not
(:mod:`devstack.broker_control`); the commands say which happened.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from cli.common import BrokerOption, DatabaseOption, KeystoreOption, RpcOption, fail, secret, setting, settings
from config.clock import wall_ms

app = typer.Typer(help="Provision, list, revoke and rotate devices.", no_args_is_help=True)
console = Console()

BrokerAuthOption = Annotated[Path, setting("broker_auth", "--broker-auth")]
ShareGroupOption = Annotated[str, setting("gateway_group", "--share-group")]


def _engine(database: str):  # type: ignore[no-untyped-def]
    from store.db import make_engine, migrate

    engine = make_engine(database)
    migrate(engine)
    return engine


ChainDeploymentOption = Annotated[
    Path,
    setting(
        "deployment",
        "--deployment",
        help="When this deployment file exists, keys are registered (rotated, revoked) on chain too.",
    ),
]
ChainKeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The registrar's key. Default: $ASSETPROOF_REGISTRAR_KEY (in development: $ASSETPROOF_CHAIN_KEY,"
        " else anvil's).",
        show_default=False,
    ),
]


def _chain(deployment: Path, rpc: str, key: str | None):  # type: ignore[no-untyped-def]
    """The registrar's client, or None when no contracts are deployed."""
    if not deployment.exists():
        return None
    from chain.deployment import read_deployment
    from chain.writer import ChainClient
    from cli.chain_cmd import connect

    account = key or secret("require_registrar_key")
    return ChainClient(connect(rpc), account=account, deployment=read_deployment(deployment))


@app.command()
def provision(
    kind: Annotated[str, typer.Option(help="solar, charger or miner")],
    count: Annotated[int, typer.Option(min=1, max=100_000)],
    asset: Annotated[str, typer.Option(help="The asset (pool of devices) they belong to.")],
    database: DatabaseOption,
    keystore: KeystoreOption,
    broker_auth: BrokerAuthOption,
    broker: BrokerOption,
    share_group: ShareGroupOption,
    deployment: ChainDeploymentOption,
    rpc: RpcOption,
    alg: Annotated[str, typer.Option(help="ed25519 or es256")] = "ed25519",
    window: Annotated[int, typer.Option(help="Reading interval in seconds.", min=1, max=86_400)] = 60,
    seed: Annotated[int, typer.Option(help="Seed for the devices' nameplate ratings.")] = 0,
    key: ChainKeyOption = None,
) -> None:
    """Create device keys, register the devices (in the store and, when contracts are deployed,
    on chain, where auditors learn them), and give each a broker login that may publish on its own
    topic only (through the running broker's $CONTROL when it answers at --broker, else in the
    broker's config file)."""
    from devstack.fleet import provision_fleet
    from protocol.errors import AssetproofError

    engine = _engine(database)
    chain = _chain(deployment, rpc, key)
    changes: list[Any] = []
    try:
        devices = provision_fleet(
            engine=engine,
            keystore=keystore,
            broker_auth=broker_auth,
            broker=broker,
            broker_tls_ca=settings().broker_tls_ca,
            share_group=share_group,
            on_broker_change=changes.append,
            chain=chain,
            kind=kind,
            count=count,
            asset=asset,
            alg=alg,
            window=window,
            seed=seed,
        )
    except AssetproofError as exc:
        raise fail(str(exc)) from None
    device_kind = devices[0].kind
    engine.dispose()
    console.print(
        f"provisioned {len(devices)} {device_kind.value} device(s) in asset [bold]{asset}[/]: "
        f"{devices[0].id} .. {devices[-1].id}"
    )
    # soft_wrap: paths and addresses stay whole, for the reader and for scripts.
    console.print(f"keys in {keystore}/; broker logins: {changes[-1].detail if changes else '-'}", soft_wrap=True)
    if chain is not None:
        console.print(f"keys registered on chain {chain.chain_id()} in {chain.deployment.device_registry.address}")


@app.command(name="list")
def list_(
    database: DatabaseOption,
    asset: Annotated[str | None, typer.Option(help="Only this asset's devices.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List devices with their status, key and chain head."""
    from store.devices import list_devices

    engine = _engine(database)
    rows = list_devices(engine, asset=asset)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps([{**r, "public_key": bytes(r["public_key"]).hex()} for r in rows]))
        return
    # Ids are never cut short: the device column is as wide as the longest id, and any other
    # cell that does not fit folds onto a second line instead of ending in an ellipsis.
    widest = max((len(r["id"]) for r in rows), default=6)
    headers = ("kind", "asset", "alg", "status", "last seq", "readings", "quarantined", "dropped", "last seen")
    table = Table(
        Column("device", no_wrap=True, min_width=widest),
        *(Column(h, overflow="fold") for h in headers),
    )
    for r in rows:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["last_seen_ms"] / 1000)) if r["last_seen_ms"] else "-"
        table.add_row(
            r["id"],
            r["kind"],
            r["asset"],
            r["alg"],
            r["status"],
            str(r["last_seq"]),
            str(r["readings"]),
            f"{r['quarantined']} ({r['rejected']} chained)" if r["rejected"] else str(r["quarantined"]),
            str(r["dropped"]),
            seen,
        )
    console.print(table)


@app.command()
def revoke(
    device_id: str,
    database: DatabaseOption,
    broker_auth: BrokerAuthOption,
    broker: BrokerOption,
    deployment: ChainDeploymentOption,
    rpc: RpcOption,
    key: ChainKeyOption = None,
) -> None:
    """Revoke a device: everything it sends from now on is quarantined, auditors see the key end
    on chain, and its broker login is removed (through the running broker's $CONTROL, which also
    disconnects it, when the broker answers at --broker; else in the broker's config file). Run
    again on a revoked device, it removes a broker login left behind."""
    from devstack.broker_auth import BrokerAuthDir
    from devstack.broker_control import remove_device_login
    from protocol.errors import AssetproofError
    from store.devices import list_devices, revoke_device
    from store.status import DeviceStatus

    engine = _engine(database)
    try:
        status = next((r["status"] for r in list_devices(engine) if r["id"] == device_id), None)
        if status is None:
            raise AssetproofError(f"unknown device {device_id!r}")
        if status == DeviceStatus.REVOKED:
            console.print(f"{device_id} was already revoked in the store")
        else:
            revoke_device(engine, device_id=device_id, now_ms=wall_ms())
            chain = _chain(deployment, rpc, key)
            if chain is not None:
                chain.revoke(device_id=device_id)
            console.print(f"revoked {device_id}")
        change = remove_device_login(
            BrokerAuthDir(broker_auth), device_id=device_id, broker=broker, tls_ca=settings().broker_tls_ca
        )
    except AssetproofError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    console.print(f"broker login: {change.detail}", soft_wrap=True)


@app.command()
def rotate(
    device_id: str,
    database: DatabaseOption,
    keystore: KeystoreOption,
    deployment: ChainDeploymentOption,
    rpc: RpcOption,
    key: ChainKeyOption = None,
) -> None:
    """Give a device a new key; the old one stops being accepted now."""
    from store.devices import rotate_key

    _new_key(device_id, database=database, keystore=keystore, chain_args=(deployment, rpc, key), record=rotate_key)
    console.print(f"rotated the key of {device_id}")


def _new_key(device_id: str, *, database: str, keystore: Path, chain_args: tuple[Any, ...], record: Any) -> Any:
    """Rotate a device's key in the keystore, record it in the store with ``record`` (returning
    what it returns) and, when contracts are deployed, on chain."""
    from device_sim.keystore import Keystore
    from protocol.errors import AssetproofError

    engine = _engine(database)
    try:
        credentials = Keystore(keystore).rotate(device_id)
        recorded = record(
            engine, device_id=device_id, alg=credentials.alg, public_key=credentials.public_key, now_ms=wall_ms()
        )
        chain = _chain(*chain_args)
        if chain is not None:
            chain.rotate(device_id=device_id, public_key=credentials.public_key)
    except AssetproofError as exc:
        raise fail(str(exc)) from None
    finally:
        engine.dispose()
    return recorded


@app.command()
def resync(
    device_id: str,
    database: DatabaseOption,
    keystore: KeystoreOption,
    deployment: ChainDeploymentOption,
    rpc: RpcOption,
    key: ChainKeyOption = None,
) -> None:
    """For a device that lost its state (seq counter and last hash): a key rotation whose new
    key starts a new chain. Its first reading carries a seq above the printed head and prev =
    32 zero bytes; the gateway accepts exactly that, once. On chain it is the key rotation."""
    from store.devices import resync_device

    head = _new_key(
        device_id, database=database, keystore=keystore, chain_args=(deployment, rpc, key), record=resync_device
    )
    console.print(
        f"resynchronised {device_id}: a new key starts a new chain; its first reading must carry"
        f" seq > {head} and prev = 32 zero bytes"
    )
