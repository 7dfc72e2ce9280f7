"""``assetproof token deploy|allow|issue|transfer|holders``, ``assetproof distribute`` and
``assetproof claim``: cash-flow tokens whose payouts the chain caps at the investors' share of
the attested net (issue 15).

The issuer's key is ``ASSETPROOF_ISSUER_KEY`` (``--key`` overrides it); a holder's is ``--key``.
An asset's token and the settlement coin are in the deployment file's ``tokens`` section, which
``token deploy`` writes. Exit codes: 0 done; 1 the contract refused (its error named, with its
arguments: ``CapExceeded(cap, amount)``, ``EpochAlreadyFunded(epoch)``, ``NotAllowlisted(account)``,
...); 2 unusable input, caught before any transaction (bad arguments, no token for the asset, an
epoch the store does not hold or the chain has not anchored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.audit_cmd import parse_epochs
from cli.chain_cmd import connect
from cli.common import DatabaseOption, DeploymentOption, RpcOption, fail, secret

if TYPE_CHECKING:
    from chain.deployment import Deployment
    from chain.token_types import TotalsProof
    from chain.tokens import TokenClient

app = typer.Typer(help="Cash-flow tokens: deploy, allowlist, issue, transfer, list holders.", no_args_is_help=True)

EXIT_REFUSED = 1
EXIT_UNUSABLE = 2
DEMO_FLOAT = 10**12
"""Demo stablecoins minted to the issuer with ``--demo-stablecoin`` (minor units: 10 billion HKD)."""

AssetOption = Annotated[str, typer.Option("--asset", help="The asset's name, as its devices are registered.")]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="The private key to sign with (default: $ASSETPROOF_ISSUER_KEY).", show_default=False),
]
HolderKeyOption = Annotated[str, typer.Option("--key", help="The holder's private key (0x hex).", show_default=False)]


def _deployment(path: Path) -> Deployment:
    from chain.deployment import read_deployment
    from chain.errors import ChainError

    try:
        return read_deployment(path)
    except ChainError as exc:
        raise fail(str(exc)) from None


def _client(rpc: str, deployment: Path, key: str | None) -> TokenClient:
    from chain.errors import ChainError
    from chain.tokens import TokenClient

    try:
        return TokenClient(
            connect(rpc), account=key or secret("require_issuer_key"), deployment=_deployment(deployment)
        )
    except (ChainError, ValueError) as exc:
        raise fail(str(exc)) from None


def _token(client: TokenClient, asset: str) -> str:
    from chain.errors import DeploymentError
    from chain.token_types import tokens_section

    try:
        return tokens_section(client.deployment).token(asset).address
    except DeploymentError as exc:
        raise fail(f"{exc}: deploy it first (assetproof token deploy --asset {asset!r} ...)") from None


def _refused(exc: Exception) -> typer.Exit:
    """One line for a contract's refusal (exit 1) or an unusable chain (exit 2)."""
    from chain.errors import ContractRevert

    if isinstance(exc, ContractRevert):
        return fail(f"refused: {exc}", EXIT_REFUSED)
    return fail(f"chain: {exc}", EXIT_UNUSABLE)


def _registered_hashrate_ths(client: TokenClient, asset: str) -> int:
    """The asset's registered hashrate in whole TH/s: the sum of its unrevoked devices' rated
    hashrate in their DeviceRegistry profiles (registered in GH/s)."""
    from chain.ids import asset_id_hash
    from chain.types import DeviceRegisteredEvent, DeviceRevokedEvent

    events = client.registry_events()
    revoked = {e.device_hash for e in events if isinstance(e, DeviceRevokedEvent)}
    wanted = asset_id_hash(asset)
    ghs = sum(
        e.profile.rated_hashrate_ghs
        for e in events
        if isinstance(e, DeviceRegisteredEvent) and e.asset_id == wanted and e.device_hash not in revoked
    )
    return ghs // 1_000


@app.command()
def deploy(
    asset: AssetOption,
    investor_share_bps: Annotated[
        int, typer.Option("--investor-share-bps", min=1, max=10_000, help="The investors' share of the net, in bps.")
    ],
    rpc: RpcOption,
    deployment: DeploymentOption,
    kind: Annotated[str, typer.Option("--kind", help="share, or hashrate (one token per registered TH/s).")] = "share",
    supply: Annotated[
        int | None,
        typer.Option("--supply", min=1, help="The most tokens there will be (hashrate: default the registered TH/s)."),
    ] = None,
    settlement: Annotated[
        str | None, typer.Option("--settlement", help="The settlement ERC-20 the issuer funds in.")
    ] = None,
    demo_stablecoin: Annotated[
        bool,
        typer.Option(
            "--demo-stablecoin",
            help="Deploy (once) a demo HKD stablecoin as the settlement and mint the issuer a float.",
        ),
    ] = False,
    start_epoch: Annotated[int, typer.Option("--start-epoch", min=0, help="The first epoch it distributes.")] = 0,
    key: KeyOption = None,
) -> None:
    """As the issuer: deploy the asset's token over the deployment's AnchorRegistry and record it
    in the deployment file's tokens section."""
    from chain.deployment import write_deployment
    from chain.errors import ChainError
    from chain.token_types import tokens_section, with_stablecoin, with_token

    if kind not in ("share", "hashrate"):
        raise fail(f"--kind must be share or hashrate, not {kind!r}")
    if settlement is not None and demo_stablecoin:
        raise fail("give --settlement ADDRESS or --demo-stablecoin, not both")
    client = _client(rpc, deployment, key)
    section = tokens_section(client.deployment)
    if asset in section.assets:
        raise fail(f"asset {asset!r} already has a token: {section.assets[asset].address}")
    try:
        if supply is None:
            if kind != "hashrate":
                raise fail("--supply is required for a share token")
            supply = _registered_hashrate_ths(client, asset)
            if supply < 1:
                raise fail(f"asset {asset!r} has no registered hashrate on chain: register its miners first")
        updated = client.deployment
        if settlement is None:
            if demo_stablecoin and section.settlement is None:
                coin = client.deploy_stablecoin()
                client.mint_stablecoin(coin.address, to=client.address, amount=DEMO_FLOAT)
                updated = with_stablecoin(updated, coin)
                settlement = coin.address
            elif section.settlement is not None:
                settlement = section.settlement.address
            else:
                raise fail("no settlement token: give --settlement ADDRESS or --demo-stablecoin")
        token = client.deploy_share_token(
            asset=asset,
            kind=kind,  # type: ignore[arg-type]
            investor_share_bps=investor_share_bps,
            supply=supply,
            settlement=settlement,
            start_epoch=start_epoch,
        )
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    write_deployment(deployment, with_token(updated, asset, token))
    typer.echo(
        f"{kind} token for {asset}: {token.address} (supply cap {supply}, investors {investor_share_bps} bps,"
        f" settlement {settlement}); recorded in {deployment}"
    )


@app.command()
def allow(
    addresses: Annotated[list[str], typer.Argument(metavar="ADDRESS...", help="Accounts to allowlist.")],
    asset: AssetOption,
    rpc: RpcOption,
    deployment: DeploymentOption,
    remove: Annotated[bool, typer.Option("--remove", help="Take them off the allowlist instead.")] = False,
    key: KeyOption = None,
) -> None:
    """As the compliance officer: put accounts on the asset's token allowlist (or take them off)."""
    from chain.errors import ChainError

    client = _client(rpc, deployment, key)
    token = _token(client, asset)
    try:
        if remove:
            for address in addresses:
                client.allow(token, address, allowed=False)
        else:
            client.allow_many(token, addresses)
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"{'removed' if remove else 'allowlisted'} {len(addresses)} account(s) on {asset}'s token")


@app.command()
def issue(
    asset: AssetOption,
    to: Annotated[str, typer.Option("--to", help="The allowlisted holder.")],
    amount: Annotated[int, typer.Option("--amount", min=1, help="Whole tokens.")],
    rpc: RpcOption,
    deployment: DeploymentOption,
    key: KeyOption = None,
) -> None:
    """As the issuer: mint tokens to an allowlisted holder (never past the supply cap)."""
    from chain.errors import ChainError

    client = _client(rpc, deployment, key)
    token = _token(client, asset)
    try:
        client.issue(token, to=to, amount=amount)
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"issued {amount} {asset} token(s) to {to}")


@app.command()
def transfer(
    asset: AssetOption,
    to: Annotated[str, typer.Option("--to", help="The allowlisted recipient.")],
    amount: Annotated[int, typer.Option("--amount", min=1, help="Whole tokens.")],
    key: HolderKeyOption,
    rpc: RpcOption,
    deployment: DeploymentOption,
) -> None:
    """As a holder: transfer tokens (both ends must be on the allowlist); what each was owed so
    far stays theirs to claim."""
    from chain.errors import ChainError

    client = _client(rpc, deployment, key)
    token = _token(client, asset)
    try:
        client.transfer(token, to=to, amount=amount)
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"transferred {amount} {asset} token(s) from {client.address} to {to}")


@app.command()
def holders(
    asset: AssetOption,
    rpc: RpcOption,
    deployment: DeploymentOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Holders (from the token's Transfer events), with balance, claimable and claimed amounts,
    and the token's distribution totals."""
    from chain.errors import ChainError
    from chain.token_types import tokens_section
    from chain.tokens import TokenReader

    d = _deployment(deployment)
    try:
        entry = tokens_section(d).token(asset)
    except ChainError as exc:
        raise fail(str(exc)) from None
    try:
        reader = TokenReader(connect(rpc), deployment=d)
        info = reader.token_info(entry.address)
        found = reader.holders(entry.address, from_block=entry.block)
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    if as_json:
        doc: dict[str, Any] = {
            "asset": asset,
            "token": info.address,
            "kind": info.kind,
            "investorShareBps": info.investor_share_bps,
            "totalSupply": info.total_supply,
            "maxSupply": info.max_supply,
            "totalFunded": info.total_funded,
            "totalClaimed": info.total_claimed,
            "cap": info.cap,
            "dust": info.dust,
            "holders": [
                {
                    "address": h.address,
                    "balance": h.balance,
                    "claimable": h.claimable,
                    "claimed": h.claimed,
                    "allowed": h.allowed,
                }
                for h in found
            ],
        }
        typer.echo(json.dumps(doc))
        return
    typer.echo(
        f"{asset} {info.kind} token {info.address}: supply {info.total_supply}/{info.max_supply},"
        f" funded {info.total_funded}, claimed {info.total_claimed}, cap now {info.cap} (minor units)"
    )
    for h in found:
        typer.echo(
            f"  {h.address}  balance {h.balance:>8}  claimable {h.claimable:>10}  claimed {h.claimed:>10}"
            + ("" if h.allowed else "  (not allowlisted)")
        )


def _proofs(client: TokenClient, database: str, *, asset: str, first: int, last: int) -> list[TotalsProof]:
    """Each epoch's totals proof, computed from the epoch's metadata in the store and checked
    against the checkpoint the chain anchored (exit 2 naming the first epoch that is missing)."""
    from sqlalchemy import select

    from chain.errors import ContractRevert
    from chain.token_types import TotalsProof
    from protocol.asset_totals import totals_proof
    from protocol.epoch import EpochMetadata
    from store.db import make_engine
    from store.status import EpochStatus
    from store.tables import EPOCH

    engine = make_engine(database)
    try:
        with engine.connect() as conn:
            rows = {
                row.number: row
                for row in conn.execute(select(EPOCH).where(EPOCH.c.number >= first, EPOCH.c.number <= last))
            }
    finally:
        engine.dispose()
    proofs = []
    for epoch in range(first, last + 1):
        row = rows.get(epoch)
        if row is None:
            raise fail(f"epoch {epoch} is not closed in {database}: nothing to fund it against")
        if row.status != EpochStatus.ANCHORED:
            raise fail(f"epoch {epoch} is not anchored yet (status {row.status}): its totals cannot be proven")
        meta = EpochMetadata.from_json(json.loads(bytes(row.metadata_json)))
        if asset not in meta.assets:
            raise fail(f"asset {asset!r} has no totals in epoch {epoch}")
        try:
            checkpoint = client.checkpoint(epoch)
        except ContractRevert as exc:
            raise fail(f"epoch {epoch} is not anchored on chain ({exc.name})") from None
        proof = totals_proof(asset=asset, epoch=epoch, currency=meta.tariff.currency, totals=meta.assets)
        if checkpoint.assets_root != meta.assets_root:
            raise fail(f"epoch {epoch}: the store's assets root is not the one anchored on chain")
        proofs.append(TotalsProof.of(checkpoint, proof))
    return proofs


def distribute(
    asset: AssetOption,
    epochs: Annotated[str, typer.Option("--epochs", help="Epochs A..B (inclusive), or one epoch A, in order.")],
    rpc: RpcOption,
    deployment: DeploymentOption,
    database: DatabaseOption,
    amount: Annotated[
        int | None,
        typer.Option(
            "--amount",
            min=0,
            help="Fund each epoch with this (settlement minor units) instead of its attested cap; the chain"
            " refuses it above the cap.",
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """As the issuer: fund the asset's distribution for epochs A..B, each with its totals proof
    against the anchored checkpoint. By default each epoch gets exactly its cap (the investors'
    share of the cumulative attested net, losses carried forward, less what was funded before);
    the contract refuses more (CapExceeded), an epoch twice, or out of order."""
    from chain.errors import ChainError

    try:
        first, last = parse_epochs(epochs)
    except typer.BadParameter as exc:
        raise fail(f"--epochs: {exc.message}") from None
    client = _client(rpc, deployment, key)
    token = _token(client, asset)
    proofs = _proofs(client, database, asset=asset, first=first, last=last)
    try:
        caps = client.cap_for(token, proofs)
        amounts = caps if amount is None else [amount] * len(proofs)
        funded = 0
        for proof, cap, pay in zip(proofs, caps, amounts, strict=True):
            client.fund_epochs(token, [proof], [pay])
            funded += pay
            typer.echo(f"funded {asset} epoch {proof.epoch}: net {proof.net}, cap {cap}, funded {pay}")
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"funded {funded} (minor units) over epochs {first}..{last}")


def claim(
    asset: AssetOption,
    key: HolderKeyOption,
    rpc: RpcOption,
    deployment: DeploymentOption,
) -> None:
    """As a holder: claim everything the asset's token owes this key's account."""
    from chain.errors import ChainError

    client = _client(rpc, deployment, key)
    token = _token(client, asset)
    try:
        paid, _receipt = client.claim(token)
    except (ChainError, ValueError) as exc:
        raise _refused(exc) from None
    typer.echo(f"claimed {paid} (minor units) from {asset}'s token to {client.address}")
