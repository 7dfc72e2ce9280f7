"""Share and hashrate tokens (issue 15): tokens, holders, distributions per epoch beside the
attested net, an investor's holdings, and an asset's credit view for a lender.

Token state is read from the chain by the API (``attestor.tokens``) and served as a convenience
copy: the chain is the source of truth for payouts, the contract caps every funding at the
investors' share of the attested net whatever these figures say. Attested nets come from the
store's anchored epochs (each provable with ``/assets/{name}/epochs/{n}/totals-proof``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api import queries
from api.context import Ctx
from api.errors import ApiError, not_found
from api.models import Problem
from api.pagination import MAX_LIMIT
from api.routes import PREFIX
from attestor.epochs import metadata_of
from attestor.tokens import AssetToken, TokenChainError
from protocol.cashflow import Tariff
from store.tables import DEVICE

router = APIRouter(prefix=PREFIX, tags=["tokens"])

_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")
CHAIN_UNAVAILABLE: Final[dict[int | str, dict[str, Any]]] = {
    503: {"model": Problem, "description": "The chain could not be read (`chain_unavailable`)."}
}
RESPONSES: Final[dict[int | str, dict[str, Any]]] = {404: {"model": Problem}, **CHAIN_UNAVAILABLE}
AssetName = Annotated[str, Path(max_length=63, examples=["hydro-pod"])]
T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(_Model):
    asset: str
    address: str
    name: str
    symbol: str
    kind: str = Field(description="`share`, or `hashrate`: one token per TH/s of the pod's registered hashrate.")
    investor_share_bps: int = Field(description="The investors' share of the asset's attested net, basis points.")
    start_epoch: int
    max_supply: int
    total_supply: int
    currency: str
    settlement: str = Field(description="The settlement token's address.")
    settlement_symbol: str | None
    settlement_decimals: int | None
    next_epoch: int = Field(description="The next epoch the issuer may fund.")
    cumulative_net: int
    total_funded: int
    total_claimed: int
    cap: int = Field(description="What could be funded now without a new epoch's totals.")
    dust: int = Field(description="Funded but claimable by nobody (rounding); stays in the contract.")


class TokenList(_Model):
    items: list[TokenOut]


class HolderOut(_Model):
    address: str
    balance: int
    share: float = Field(description="Balance over total supply.")
    claimable: int
    claimed: int
    allowed: bool


class HolderList(_Model):
    asset: str
    token: str
    total_supply: int
    items: list[HolderOut]


class EpochDistributionOut(_Model):
    epoch: int
    start_ms: int
    end_ms: int
    attested_net: int = Field(description="The asset's net in the anchored epoch (store, provable on chain).")
    funded: bool
    cap: int | None = Field(description="The most the issuer could fund for the epoch (from its `Funded` event).")
    amount: int | None = Field(description="Funded amount, minor units of the settlement token.")
    claimed: int | None = Field(description="Part of the funding claimed, oldest funding first.")
    yield_per_token: float | None = Field(description="Funded amount per token.")
    operating_days: float | None = Field(
        description="Hashrate token: days the pod ran in the epoch, from its readings (readings x reporting window"
        " / registered devices)."
    )
    yield_per_th_day: float | None = Field(description="Hashrate token: funded amount per TH/s per operating day.")
    hashprice_per_th_day: float | None = Field(
        description="Hashrate token: gross revenue per TH/s per day the epoch's tariff implies (after pool fee)."
    )


class DistributionList(_Model):
    asset: str
    token: TokenOut
    items: list[EpochDistributionOut]


class HoldingOut(_Model):
    asset: str
    token: str
    symbol: str
    kind: str
    currency: str
    balance: int
    total_supply: int
    share: float
    claimable: int
    claimed: int
    allowed: bool


class HoldingsOut(_Model):
    address: str
    items: list[HoldingOut]
    total_claimable: int
    total_claimed: int


class CreditEpochOut(_Model):
    epoch: int
    start_ms: int
    end_ms: int
    net: int
    funded: int | None
    dscr: float | None = Field(description="Net over the scheduled distribution of the epoch.")


class CreditOut(_Model):
    asset: str
    currency: str | None
    scheduled: int | None = Field(
        description="Scheduled distribution per epoch (the `scheduled` parameter, or else the mean funded"
        " amount of the funded epochs); null when there is neither."
    )
    epochs: list[CreditEpochOut]
    cumulative_net: int
    positive_epochs: int
    total_funded: int
    coverage: float | None = Field(description="Cumulative attested net over cumulative funded distributions.")
    dscr_min: float | None
    dscr_mean: float | None = Field(description="Mean net per epoch over the scheduled distribution.")


@contextmanager
def _chain_read() -> Iterator[None]:
    try:
        yield
    except TokenChainError as exc:
        raise ApiError(503, f"the chain could not be read: {exc}", reason="chain_unavailable") from None


def _read(fn: Callable[[], T]) -> T:
    with _chain_read():
        return fn()


def token_out(token: AssetToken) -> TokenOut:
    info = token.info
    return TokenOut(
        asset=token.asset,
        address=info.address,
        name=info.name,
        symbol=info.symbol,
        kind=info.kind,
        investor_share_bps=info.investor_share_bps,
        start_epoch=info.start_epoch,
        max_supply=info.max_supply,
        total_supply=info.total_supply,
        currency=info.currency,
        settlement=info.settlement,
        settlement_symbol=token.settlement_symbol,
        settlement_decimals=token.settlement_decimals,
        next_epoch=info.next_epoch,
        cumulative_net=info.cumulative_net,
        total_funded=info.total_funded,
        total_claimed=info.total_claimed,
        cap=info.cap,
        dust=info.dust,
    )


def hashprice_per_th_day(tariff: Tariff) -> float:
    """Gross revenue of 1 TH/s over a day under ``tariff`` (the cash-flow formula of a miner,
    ``protocol.cashflow``, for 10**12 * 86,400 hashes), in minor units."""
    hashes = 10**12 * 86_400
    sats = tariff.btc_subsidy_sats + tariff.btc_fees_sats
    return (
        hashes
        * sats
        * (10_000 - tariff.pool_fee_bps)
        * tariff.btc_price
        / (tariff.btc_difficulty * 2**32 * 10_000 * 10**8)
    )


def _attested(ctx: Ctx, asset: str) -> list[tuple[int, int, int, int, Tariff, int]]:
    """Each anchored epoch's (number, start, end, the asset's net, tariff, its readings), oldest first."""
    with ctx.reader.connect() as conn:
        rows = queries.epochs_page(conn=conn, status=None, anchored_only=True, before=None, limit=MAX_LIMIT)
    found = []
    for row in reversed(rows):
        meta = metadata_of(row)
        totals = meta.assets.get(asset)
        net, readings = (0, 0) if totals is None else (totals.net, totals.readings)
        found.append((int(row.number), meta.start_ms, meta.end_ms, net, meta.tariff, readings))
    return found


def _fleet(ctx: Ctx, asset: str) -> tuple[int, float]:
    """The asset's registered devices and their mean reporting window (seconds)."""
    with ctx.reader.connect() as conn:
        count, window = conn.execute(
            select(func.count(), func.avg(DEVICE.c.window_s)).where(DEVICE.c.asset == asset)
        ).one()
    return int(count), float(window or 0)


def _check_asset(ctx: Ctx, name: str) -> None:
    with ctx.reader.connect() as conn:
        if not queries.asset_exists(conn=conn, name=name):
            raise not_found(f"asset {name!r}")


@router.get("/tokens", summary="Every asset's token", response_model=TokenList, responses=CHAIN_UNAVAILABLE)
def list_tokens(ctx: Ctx) -> TokenList:
    """Each token of the deployment file's `tokens` section, read from the chain now: supply,
    investor share, and its distribution totals (funded, claimed, the cap left, dust)."""
    return TokenList(items=[token_out(t) for t in _read(ctx.tokens.tokens)])


@router.get("/tokens/{asset}", summary="An asset's token", response_model=TokenOut, responses=RESPONSES)
def get_token(ctx: Ctx, asset: AssetName) -> TokenOut:
    token = _read(lambda: ctx.tokens.token(asset))
    if token is None:
        raise not_found(f"token of asset {asset!r}")
    return token_out(token)


@router.get("/tokens/{asset}/holders", summary="A token's holders", response_model=HolderList, responses=RESPONSES)
def token_holders(ctx: Ctx, asset: AssetName) -> HolderList:
    """Every account that ever received the token (from its `Transfer` events), largest first,
    with what it can claim now and has claimed."""
    with _chain_read():
        token = ctx.tokens.token(asset)
        holders = ctx.tokens.holders(asset)
    if token is None or holders is None:
        raise not_found(f"token of asset {asset!r}")
    supply = token.info.total_supply
    return HolderList(
        asset=asset,
        token=token.info.address,
        total_supply=supply,
        items=[
            HolderOut(
                address=h.address,
                balance=h.balance,
                share=h.balance / supply if supply else 0.0,
                claimable=h.claimable,
                claimed=h.claimed,
                allowed=h.allowed,
            )
            for h in holders
        ],
    )


@router.get(
    "/tokens/{asset}/distributions",
    summary="A token's distributions beside the attested net, per epoch",
    response_model=DistributionList,
    responses=RESPONSES,
)
def token_distributions(ctx: Ctx, asset: AssetName) -> DistributionList:
    """Each anchored epoch: the asset's attested net, and if funded the cap, the amount funded,
    the part claimed and the yield per token (for a hashrate token per TH/s per day, beside the
    hashprice the epoch's tariff implies)."""
    with _chain_read():
        token = ctx.tokens.token(asset)
        distributions = ctx.tokens.distributions(asset)
    if token is None or distributions is None:
        raise not_found(f"token of asset {asset!r}")
    by_epoch = {d.epoch: d for d in distributions}
    supply = token.info.total_supply
    hashrate = token.info.kind == "hashrate"
    items = []
    devices, window_s = _fleet(ctx, asset)
    for number, start_ms, end_ms, net, tariff, readings in _attested(ctx, asset):
        d = by_epoch.get(number)
        per_token = None if d is None or not supply else d.funded / supply
        # The pod's running time, not the epoch's window: an epoch closes by size or by clock,
        # and a rig that was down earned nothing its holders should see spread over the gap.
        days = readings * window_s / devices / 86_400 if devices else 0.0
        items.append(
            EpochDistributionOut(
                epoch=number,
                start_ms=start_ms,
                end_ms=end_ms,
                attested_net=net,
                funded=d is not None,
                cap=None if d is None else d.cap,
                amount=None if d is None else d.funded,
                claimed=None if d is None else d.claimed,
                yield_per_token=per_token,
                operating_days=days if hashrate else None,
                yield_per_th_day=per_token / days if hashrate and per_token is not None and days > 0 else None,
                hashprice_per_th_day=hashprice_per_th_day(tariff) if hashrate else None,
            )
        )
    return DistributionList(asset=asset, token=token_out(token), items=items)


@router.get(
    "/investors/{address}/holdings",
    summary="An investor's holdings and claimable amounts across assets",
    response_model=HoldingsOut,
    responses={422: {"model": Problem}, **CHAIN_UNAVAILABLE},
)
def investor_holdings(
    ctx: Ctx, address: Annotated[str, Path(examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"])]
) -> HoldingsOut:
    """The account's balance of every asset's token, its share of the supply, what it can claim
    now (`assetproof claim` pays it) and what it has claimed."""
    if not _ADDRESS.fullmatch(address):
        raise ApiError(422, f"{address!r} is not an address (0x and 40 hex digits)", reason="invalid_parameter")
    holdings = _read(lambda: ctx.tokens.holdings(address))
    items = [
        HoldingOut(
            asset=h.token.asset,
            token=h.token.info.address,
            symbol=h.token.info.symbol,
            kind=h.token.info.kind,
            currency=h.token.info.currency,
            balance=h.balance,
            total_supply=h.token.info.total_supply,
            share=h.balance / h.token.info.total_supply if h.token.info.total_supply else 0.0,
            claimable=h.claimable,
            claimed=h.claimed,
            allowed=h.allowed,
        )
        for h in holdings
    ]
    return HoldingsOut(
        address=address,
        items=items,
        total_claimable=sum(h.claimable for h in items),
        total_claimed=sum(h.claimed for h in items),
    )


@router.get(
    "/assets/{name}/credit",
    summary="An asset's credit view for a lender",
    response_model=CreditOut,
    responses={404: {"model": Problem}, 422: {"model": Problem}, **CHAIN_UNAVAILABLE},
)
def asset_credit(
    ctx: Ctx,
    name: AssetName,
    scheduled: Annotated[
        int | None, Query(ge=1, le=2**53 - 1, description="Scheduled distribution per epoch (minor units).")
    ] = None,
) -> CreditOut:
    """The asset's attested net per anchored epoch, the distributions funded against it, the
    coverage (cumulative net over cumulative funded) and the debt-service coverage ratio of the
    scheduled distributions (each epoch's net over the scheduled amount)."""
    _check_asset(ctx, name)
    distributions = _read(lambda: ctx.tokens.distributions(name))
    funded = {d.epoch: d.funded for d in distributions or []}
    attested = _attested(ctx, name)
    if scheduled is None and funded:
        scheduled = max(1, round(sum(funded.values()) / len(funded)))
    epochs = [
        CreditEpochOut(
            epoch=number,
            start_ms=start_ms,
            end_ms=end_ms,
            net=net,
            funded=funded.get(number),
            dscr=None if scheduled is None else net / scheduled,
        )
        for number, start_ms, end_ms, net, _, _ in attested
    ]
    total_funded = sum(funded.values())
    cumulative = sum(e.net for e in epochs)
    ratios = [e.dscr for e in epochs if e.dscr is not None]
    return CreditOut(
        asset=name,
        currency=attested[-1][4].currency if attested else None,
        scheduled=scheduled,
        epochs=epochs,
        cumulative_net=cumulative,
        positive_epochs=sum(1 for e in epochs if e.net > 0),
        total_funded=total_funded,
        coverage=cumulative / total_funded if total_funded else None,
        dscr_min=min(ratios) if ratios else None,
        dscr_mean=sum(ratios) / len(ratios) if ratios else None,
    )
