"""Share and hashrate tokens with the capped distributor, on anvil and eth-tester: every bad
input of issue 15 refused with its named error, pro-rata claims across transfers, losses carried
forward, rounding that never pays more than was funded."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field, replace

import pytest

from chain.deployment import Deployment
from chain.errors import DeploymentError
from chain.token_types import (
    TokenDeployment,
    TotalsProof,
    asset_key,
    tokens_section,
    with_stablecoin,
    with_token,
)
from chain.tokens import TokenClient, TokenReader
from chain.types import Checkpoint
from protocol.asset_totals import AssetLeaf, assets_root, totals_proof
from protocol.merkle.log import MerkleLog
from tests.support.chain import Chain, flip, funded_account, grow, meta, reverts

POD = "Kowloon Mining Pod #1"
ROOF = "HK Rooftops #2"


def encode_totals(asset: str, epoch: int, net: int, *, currency: str = "HKD") -> bytes:
    """The 83-byte totals leaf: assetKey, epoch, readings, energyWh, revenue, cost, net, currency."""
    revenue, cost = (net + 1_000, 1_000) if net >= 0 else (0, -net)
    return asset_key(asset) + struct.pack(">QQQQQq", epoch, 60, 5_000, revenue, cost, net) + currency.encode()


@dataclass
class Attested:
    """Anchors epochs one after another, each with its assets tree, and hands out totals proofs."""

    chain: Chain
    log: MerkleLog = field(default_factory=MerkleLog)
    epoch: int = 0

    def anchor_root(self, assets_root: bytes) -> Checkpoint:
        """Anchor the next epoch (3 more readings) with ``assets_root``; its checkpoint."""
        epoch = self.epoch
        previous = self.log.size
        grow(self.log, previous + 3, salt=b"tokens")
        self.chain.attestor.anchor(
            epoch=epoch,
            tree_size=self.log.size,
            root=self.log.root(),
            meta_hash=meta(epoch),
            assets_root=assets_root,
            proof=self.log.consistency_proof(previous, self.log.size) if previous else [],
        )
        self.epoch += 1
        return self.chain.reader().checkpoint(epoch)

    def anchor(self, nets: dict[str, int], *, currency: str = "HKD") -> dict[str, TotalsProof]:
        epoch = self.epoch
        leaves = sorted((asset_key(a), a, encode_totals(a, epoch, n, currency=currency)) for a, n in nets.items())
        tree = MerkleLog()
        tree.extend(encoded for _, _, encoded in leaves)
        checkpoint = self.anchor_root(tree.root())
        return {
            asset: TotalsProof(
                checkpoint=checkpoint,
                totals=encoded,
                index=i,
                count=len(leaves),
                path=tuple(tree.inclusion_proof(i, len(leaves))),
            )
            for i, (_, asset, encoded) in enumerate(leaves)
        }


@dataclass
class Market:
    chain: Chain
    issuer: TokenClient
    compliance: TokenClient
    alice: TokenClient
    bob: TokenClient
    carol: TokenClient
    stranger: TokenClient
    coin: str
    attested: Attested

    def token(
        self, *, asset: str = POD, bps: int = 5_000, supply: int = 1_000, kind: str = "share", start_epoch: int = 0
    ) -> str:
        deployed = self.issuer.deploy_share_token(
            asset=asset,
            kind=kind,  # type: ignore[arg-type]
            investor_share_bps=bps,
            supply=supply,
            settlement=self.coin,
            start_epoch=start_epoch,
            compliance=self.compliance.address,
        )
        return deployed.address

    def holders(self, token: str, shares: dict[str, int]) -> None:
        """Allowlist and issue: ``shares`` by client name."""
        for name, amount in shares.items():
            account = getattr(self, name).address
            self.compliance.allow(token, account)
            self.issuer.issue(token, to=account, amount=amount)

    def paid(self, client: TokenClient) -> int:
        return client.balance_of(self.coin, client.address)


@pytest.fixture
def market(chain: Chain) -> Market:
    def client() -> TokenClient:
        return TokenClient(chain.w3, account=funded_account(chain.w3), deployment=chain.deployment)

    issuer = client()
    coin = issuer.deploy_stablecoin().address
    issuer.mint_stablecoin(coin, to=issuer.address, amount=10**12)
    return Market(
        chain=chain,
        issuer=issuer,
        compliance=client(),
        alice=client(),
        bob=client(),
        carol=client(),
        stranger=client(),
        coin=coin,
        attested=Attested(chain),
    )


# --- funding: the cap and the proof -----------------------------------------------------------------


def test_funding_pays_holders_pro_rata_and_never_above_the_cap(market: Market) -> None:
    token = market.token(bps=5_000)
    market.holders(token, {"alice": 600, "bob": 300, "carol": 100})
    proofs = market.attested.anchor({POD: 10_000, ROOF: 7_000})
    with reverts("CapExceeded", cap=5_000, amount=5_001):
        market.issuer.fund_epochs(token, [proofs[POD]], [5_001])
    market.issuer.fund_epochs(token, [proofs[POD]], [5_000])
    info = market.issuer.token_info(token)
    assert (info.next_epoch, info.cumulative_net, info.total_funded, info.cap) == (1, 10_000, 5_000, 0)
    for client, owed in ((market.alice, 3_000), (market.bob, 1_500), (market.carol, 500)):
        assert client.claimable(token, client.address) == owed
        assert client.claim(token)[0] == owed
        assert market.paid(client) == owed
    assert market.issuer.token_info(token).total_claimed == 5_000
    [distribution] = market.issuer.distributions(token)
    assert (distribution.epoch, distribution.net, distribution.cap, distribution.funded, distribution.claimed) == (
        0,
        10_000,
        5_000,
        5_000,
        5_000,
    )


@dataclass(frozen=True)
class Totals:
    readings: int
    energy_wh: int
    revenue: int
    cost: int


def test_the_attestors_totals_proof_funds_the_token(market: Market) -> None:
    """The proof as the attestor builds it (protocol.asset_totals), not this module's encoder."""
    token = market.token(bps=2_500)
    market.holders(token, {"alice": 3, "bob": 1})
    totals = {POD: Totals(60, 400_000, 9_000, 1_000), ROOF: Totals(30, 80_000, 0, 5_000), "Hub": Totals(0, 0, 0, 0)}
    checkpoint = market.attested.anchor_root(assets_root(epoch=0, currency="HKD", totals=totals))
    proof = TotalsProof.of(checkpoint, totals_proof(asset=POD, epoch=0, currency="HKD", totals=totals))
    assert proof.totals == encode_totals(POD, 0, 8_000)[:48] + proof.totals[48:]  # key, epoch, readings
    assert AssetLeaf.decode(proof.totals).net == proof.net == 8_000
    assert market.issuer.cap_for(token, [proof]) == [2_000]
    with reverts("CapExceeded", cap=2_000, amount=2_001):
        market.issuer.fund_epochs(token, [proof], [2_001])
    market.issuer.fund_epochs(token, [proof], [2_000])
    assert (market.alice.claim(token)[0], market.bob.claim(token)[0]) == (1_500, 500)


def test_an_epoch_is_funded_once_and_in_order(market: Market) -> None:
    token = market.token()
    market.holders(token, {"alice": 1})
    first, second, third = (market.attested.anchor({POD: 1_000}) for _ in range(3))
    market.issuer.fund_epochs(token, [first[POD]], [0])  # 0 is a funding too: the epoch is done
    with reverts("EpochAlreadyFunded", epoch=0):
        market.issuer.fund_epochs(token, [first[POD]], [100])
    with reverts("EpochOutOfOrder", expected=1, got=2):
        market.issuer.fund_epochs(token, [third[POD]], [100])
    market.issuer.fund_epochs(token, [second[POD], third[POD]], [500, 500])
    assert market.issuer.token_info(token).cap == 500  # epoch 0's share, left unfunded, is not lost
    late = market.token(start_epoch=2)
    market.holders(late, {"alice": 1})
    with reverts("EpochBeforeStart", startEpoch=2, epoch=1):
        market.issuer.fund_epochs(late, [second[POD]], [0])


def test_an_epoch_not_yet_anchored_is_refused(market: Market) -> None:
    token = market.token()
    market.holders(token, {"alice": 1})
    anchored = market.attested.anchor({POD: 1_000})[POD]
    market.issuer.fund_epochs(token, [anchored], [0])
    # Epoch 1's totals, with a checkpoint the attestor has not (yet) anchored.
    unanchored = replace(
        anchored,
        checkpoint=replace(anchored.checkpoint, epoch=1, block_number=anchored.checkpoint.block_number + 1),
        totals=encode_totals(POD, 1, 1_000),
    )
    with reverts("UnknownEpoch", epoch=1):
        market.issuer.fund_epochs(token, [unanchored], [100])


def test_a_proof_for_another_asset_or_epoch_or_a_forged_root_is_refused(market: Market) -> None:
    token = market.token(asset=POD)
    market.holders(token, {"alice": 1})
    epoch0 = market.attested.anchor({POD: 1_000, ROOF: 900_000})
    epoch1 = market.attested.anchor({POD: 1_000, ROOF: 900_000})
    with reverts("TotalsForAnotherAsset", expected=asset_key(POD), got=asset_key(ROOF)):
        market.issuer.fund_epochs(token, [epoch0[ROOF]], [1])
    with reverts("CheckpointForAnotherEpoch", expected=0, got=1):
        market.issuer.fund_epoch(token, proof=epoch1[POD], amount=1, epoch=0)
    # The totals inflated, under the real checkpoint: not in its assets tree.
    inflated = replace(epoch0[POD], totals=encode_totals(POD, 0, 900_000))
    with reverts("TotalsNotIncluded"):
        market.issuer.fund_epochs(token, [inflated], [400_000])
    # A forged assets tree with the inflated totals: its root is not the anchored one.
    forged_tree = MerkleLog()
    forged_tree.extend([inflated.totals])
    forged = replace(
        inflated, checkpoint=replace(inflated.checkpoint, assets_root=forged_tree.root()), index=0, count=1, path=()
    )
    with reverts("CheckpointMismatch", epoch=0):
        market.issuer.fund_epochs(token, [forged], [400_000])
    # A proof path with one bit flipped.
    tampered = replace(epoch0[POD], path=(flip(epoch0[POD].path[0]), *epoch0[POD].path[1:]))
    with reverts("TotalsNotIncluded"):
        market.issuer.fund_epochs(token, [tampered], [1])
    market.issuer.fund_epochs(token, [epoch0[POD]], [500])  # the genuine proof still funds


def test_totals_in_another_currency_are_refused(market: Market) -> None:
    token = market.token()
    market.holders(token, {"alice": 1})
    proofs = market.attested.anchor({POD: 1_000}, currency="USD")
    with reverts("WrongCurrency", expected=b"HKD", got=b"USD"):
        market.issuer.fund_epochs(token, [proofs[POD]], [1])


def test_only_the_issuer_funds_and_issues_and_only_compliance_allowlists(market: Market) -> None:
    token = market.token()
    proofs = market.attested.anchor({POD: 1_000})
    for client in (market.stranger, market.compliance):
        with reverts("AccessControlUnauthorizedAccount", account=client.address):
            client.fund_epoch(token, proof=proofs[POD], amount=0)
        with reverts("AccessControlUnauthorizedAccount", account=client.address):
            client.issue(token, to=client.address, amount=1)
    for client in (market.stranger, market.issuer):
        with reverts("AccessControlUnauthorizedAccount", account=client.address):
            client.allow(token, client.address)
    with reverts("NoSupply"):  # funding with no holder at all
        market.issuer.fund_epochs(token, [proofs[POD]], [1])


def test_a_hashrate_token_is_one_token_per_registered_ths(market: Market) -> None:
    token = market.token(kind="hashrate", supply=288)  # one S21e Hyd: 288 TH/s
    info = market.issuer.token_info(token)
    assert (info.kind, info.max_supply, info.symbol) == ("hashrate", 288, "THS")
    market.holders(token, {"alice": 200, "bob": 88})
    with reverts("SupplyCapExceeded", maxSupply=288, supplyAfter=289):
        market.issuer.issue(token, to=market.alice.address, amount=1)


# --- the allowlist --------------------------------------------------------------------------------


def test_transfers_only_between_allowlisted_accounts(market: Market) -> None:
    token = market.token()
    with reverts("NotAllowlisted", account=market.alice.address):
        market.issuer.issue(token, to=market.alice.address, amount=10)
    market.holders(token, {"alice": 10})
    with reverts("NotAllowlisted", account=market.stranger.address):
        market.alice.transfer(token, to=market.stranger.address, amount=1)
    market.compliance.allow(token, market.bob.address)
    market.alice.transfer(token, to=market.bob.address, amount=4)
    market.compliance.allow(token, market.bob.address, allowed=False)
    with reverts("NotAllowlisted", account=market.bob.address):  # a frozen holder cannot send
        market.bob.transfer(token, to=market.alice.address, amount=1)
    assert (market.alice.balance_of(token, market.alice.address), market.bob.balance_of(token, market.bob.address)) == (
        6,
        4,
    )
    assert not market.alice.is_allowed(token, market.bob.address)


# --- claims ---------------------------------------------------------------------------------------


def test_a_non_holder_and_a_second_claim_get_nothing(market: Market) -> None:
    token = market.token()
    market.holders(token, {"alice": 1})
    market.issuer.fund_epochs(token, [market.attested.anchor({POD: 1_000})[POD]], [500])
    with reverts("NothingToClaim", account=market.stranger.address):
        market.stranger.claim(token)
    assert market.alice.claim(token)[0] == 500
    with reverts("NothingToClaim", account=market.alice.address):
        market.alice.claim(token)


def test_tokens_transferred_between_funding_and_claim(market: Market) -> None:
    token = market.token(bps=10_000)
    market.holders(token, {"alice": 600, "bob": 300, "carol": 100})
    market.issuer.fund_epochs(token, [market.attested.anchor({POD: 10_000})[POD]], [10_000])
    market.alice.transfer(token, to=market.bob.address, amount=300)  # alice 300, bob 600
    market.carol.transfer(token, to=market.bob.address, amount=100)  # carol 0, bob 700
    market.issuer.fund_epochs(token, [market.attested.anchor({POD: 20_000})[POD]], [20_000])
    owed = {"alice": 6_000 + 6_000, "bob": 3_000 + 14_000, "carol": 1_000}
    for name, amount in owed.items():
        client: TokenClient = getattr(market, name)
        assert client.claim(token)[0] == amount
        assert market.paid(client) == amount
    holders = {h.address: h for h in market.issuer.holders(token)}
    assert holders[market.carol.address].balance == 0  # still listed: it claimed
    assert holders[market.bob.address].claimed == 17_000
    assert sum(owed.values()) == 30_000


def test_negative_epochs_lower_the_cap_and_later_profits_first_make_good_the_loss(market: Market) -> None:
    token = market.token(bps=5_000)
    market.holders(token, {"alice": 1})
    nets = [10_000, -6_000, 4_000, 4_000]
    proofs = [market.attested.anchor({POD: net})[POD] for net in nets]
    market.issuer.fund_epochs(token, [proofs[0]], [5_000])
    assert market.issuer.cap_for(token, proofs[1:]) == [0, 0, 1_000]
    with reverts("CapExceeded", cap=0, amount=1):  # cumulative 4,000: half is 2,000 < 5,000 paid
        market.issuer.fund_epochs(token, [proofs[1]], [1])
    market.issuer.fund_epochs(token, [proofs[1]], [0])
    with reverts("CapExceeded", cap=0, amount=1):  # cumulative 8,000: 4,000 < 5,000
        market.issuer.fund_epochs(token, [proofs[2]], [1])
    market.issuer.fund_epochs(token, [proofs[2]], [0])
    with reverts("CapExceeded", cap=1_000, amount=1_001):  # cumulative 12,000: 6,000 - 5,000
        market.issuer.fund_epochs(token, [proofs[3]], [1_001])
    market.issuer.fund_epochs(token, [proofs[3]], [1_000])
    rows = [(d.epoch, d.net, d.cap, d.funded, d.cumulative_net) for d in market.issuer.distributions(token)]
    assert rows == [
        (0, 10_000, 5_000, 5_000, 10_000),
        (1, -6_000, 0, 0, 4_000),
        (2, 4_000, 0, 0, 8_000),
        (3, 4_000, 1_000, 1_000, 12_000),
    ]
    assert market.issuer.token_info(token).cumulative_net == 12_000


def test_rounding_never_pays_more_than_funded_and_dust_is_accounted(market: Market) -> None:
    token = market.token(bps=10_000, supply=3)
    clients = (market.alice, market.bob, market.carol)
    market.holders(token, {"alice": 1, "bob": 1, "carol": 1})
    market.issuer.fund_epochs(token, [market.attested.anchor({POD: 100})[POD]], [100])
    assert sum(client.claim(token)[0] for client in clients) == 99  # 33 each: never 100
    info = market.issuer.token_info(token)
    assert info.total_claimed == 99
    # The unit left is the holders' thirds (each keeps its 1/3 toward a later claim); the part
    # that no holder can ever claim (the per-share increment rounded down) is below one unit.
    assert info.dust == 0
    assert market.issuer.balance_of(market.coin, token) == info.total_funded - info.total_claimed == 1
    market.issuer.fund_epochs(token, [market.attested.anchor({POD: 200})[POD]], [200])
    # 100 / 3 + 200 / 3 = 99.99...: each holder's remainders now add up to 66 more, not 67
    # (the increments rounded down), and the sum of claims stays below the funding.
    assert [client.claim(token)[0] for client in clients] == [66, 66, 66]
    info = market.issuer.token_info(token)
    assert info.total_claimed == 297 <= info.total_funded == 300
    assert market.issuer.balance_of(market.coin, token) == 3
    assert sum(client.claimable(token, client.address) for client in clients) + info.dust <= 3


def test_random_fundings_transfers_and_claims_keep_the_books(market: Market) -> None:
    rng = random.Random(15)
    token = market.token(bps=7_000, supply=1_000)
    market.holders(token, {"alice": 331, "bob": 7, "carol": 1})
    clients = [market.alice, market.bob, market.carol]
    for _ in range(5):
        proof = market.attested.anchor({POD: rng.randrange(-3_000, 10_000)})[POD]
        [cap] = market.issuer.cap_for(token, [proof])
        market.issuer.fund_epochs(token, [proof], [rng.randrange(0, cap + 1)])
        sender, recipient = rng.sample(clients, 2)
        balance = sender.balance_of(token, sender.address)
        if balance:
            sender.transfer(token, to=recipient.address, amount=rng.randrange(1, balance + 1))
        for client in clients:
            if rng.random() < 0.5 and client.claimable(token, client.address):
                client.claim(token)
        info = market.issuer.token_info(token)
        owed = sum(client.claimable(token, client.address) for client in clients)
        assert info.total_claimed + owed + info.dust <= info.total_funded
        assert info.total_funded - (info.total_claimed + owed + info.dust) <= len(clients)  # sub-unit remainders
        assert market.issuer.balance_of(market.coin, token) == info.total_funded - info.total_claimed


# --- the deployment file ---------------------------------------------------------------------------


def test_the_deployment_file_keeps_a_tokens_section(market: Market) -> None:
    coin = market.issuer.deploy_stablecoin()
    deployed: TokenDeployment = market.issuer.deploy_share_token(
        asset=POD, kind="hashrate", investor_share_bps=8_000, supply=288, settlement=coin.address
    )
    deployment = with_token(with_stablecoin(market.chain.deployment, coin), POD, deployed)
    again = Deployment.from_json(deployment.to_json())
    section = tokens_section(again)
    assert section.token(POD) == deployed
    assert section.settlement == coin
    assert '"format": "assetproof-deployment/2"' in again.to_json()
    reader = TokenReader(market.chain.w3, deployment=again)
    assert reader.token_info(section.token(POD).address).registry == again.anchor_registry.address


def test_a_token_refuses_a_bad_configuration(market: Market) -> None:
    for bps in (0, 10_001):
        with reverts("BadInvestorShare", bps=bps):
            market.token(bps=bps)
    for supply in (0, 2**64 + 1):
        with reverts("BadMaxSupply", maxSupply=supply):
            market.token(supply=supply)
    with reverts("ZeroConfigAddress", field=b"settlement".ljust(32, b"\0")):
        market.issuer.deploy_share_token(
            asset=POD, kind="share", investor_share_bps=1, supply=1, settlement="0x" + "00" * 20
        )


def test_an_unreadable_tokens_section_is_a_deployment_error(market: Market) -> None:
    broken = replace(market.chain.deployment, extra={"tokens": {"assets": {POD: {"address": "0x00"}}}})
    with pytest.raises(DeploymentError, match="unreadable tokens section"):
        tokens_section(broken)
    with pytest.raises(DeploymentError, match="no token for asset"):
        tokens_section(market.chain.deployment).token(POD)
