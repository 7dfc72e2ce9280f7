"""Tokens on the API data set's chain (tests/api/dataset.py, eth-tester): a hashrate token for
the mining pod and a share token for the rooftops, investors allowlisted and issued, every
anchored epoch funded at its attested cap, one claim and one transfer; the deployment file gains
its ``tokens`` section. What the token API and the dashboard's token views are tested against."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from web3 import Web3

from attestor.epochs import metadata_of
from attestor.tokens import TokenBook
from chain.deployment import read_deployment, write_deployment
from chain.devchain import dev_fund
from chain.token_types import TotalsProof, with_stablecoin, with_token
from chain.tokens import TokenClient, TokenReader
from protocol.asset_totals import totals_proof
from store.db import make_engine
from store.tables import EPOCH
from tests.api.dataset import Dataset

POD = "hydro-pod"
ROOF = "hk-rooftops"
POD_THS = 576
"""Two S21e Hyd class rigs of 288 TH/s: one token per TH/s."""
ROOF_SHARES = 1_000


@dataclass
class Market:
    w3: Web3
    issuer: TokenClient
    alice: TokenClient
    bob: TokenClient
    tokens: dict[str, str]
    """Token address by asset."""
    funded: dict[str, list[int]]
    """Amount funded per anchored epoch, by asset."""

    def book(self, data: Dataset) -> TokenBook:
        return TokenBook(
            deployment_path=data.deployment_path,
            reader_for=lambda d: TokenReader(self.w3, deployment=d),
            serialize=True,
        )


def open_market(data: Dataset) -> Market:
    w3: Web3 = data.reader._w3  # the data set's in-process chain
    deployment = read_deployment(data.deployment_path)

    def client() -> TokenClient:
        account = Account.create()
        dev_fund(w3, account.address)
        return TokenClient(w3, account=account, deployment=deployment)

    issuer, alice, bob = client(), client(), client()
    coin = issuer.deploy_stablecoin()
    issuer.mint_stablecoin(coin.address, to=issuer.address, amount=10**12)
    pod = issuer.deploy_share_token(
        asset=POD, kind="hashrate", investor_share_bps=8_000, supply=POD_THS, settlement=coin.address
    )
    roof = issuer.deploy_share_token(
        asset=ROOF, kind="share", investor_share_bps=5_000, supply=ROOF_SHARES, settlement=coin.address
    )
    deployment = with_token(with_token(with_stablecoin(deployment, coin), POD, pod), ROOF, roof)
    write_deployment(data.deployment_path, deployment)
    tokens = {POD: pod.address, ROOF: roof.address}
    for token, shares in ((pod.address, (400, 176)), (roof.address, (700, 300))):
        issuer.allow_many(token, [alice.address, bob.address])
        issuer.issue_many(token, list(zip((alice.address, bob.address), shares, strict=True)))

    engine = make_engine(data.url)
    with engine.connect() as conn:
        rows = conn.execute(EPOCH.select().where(EPOCH.c.number.in_(data.anchored_epochs))).all()
    engine.dispose()
    metas = sorted((int(r.number), metadata_of(r)) for r in rows)
    funded: dict[str, list[int]] = {}
    for asset, token in tokens.items():
        proofs = [
            TotalsProof.of(
                data.reader.checkpoint(number),
                totals_proof(asset=asset, epoch=number, currency=meta.tariff.currency, totals=meta.assets),
            )
            for number, meta in metas
        ]
        caps = issuer.cap_for(token, proofs)
        issuer.fund_epochs(token, proofs, caps)
        funded[asset] = caps
    alice.claim(roof.address)
    # Bob's tokens change hands after the funding: what he was owed stays his to claim.
    bob.transfer(roof.address, to=alice.address, amount=100)
    return Market(w3=w3, issuer=issuer, alice=alice, bob=bob, tokens=tokens, funded=funded)
