"""The token endpoints against a real chain: the API data set's eth-tester chain with a hashrate
token (the mining pod) and a share token (the rooftops), every anchored epoch funded at its cap,
a claim and a transfer (tests/api/token_market.py). Every figure is checked against the chain
(``TokenReader``) or the store's anchored epochs, never a copy of the API's own answer."""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from attestor.epochs import metadata_of
from attestor.tokens import TokenBook
from chain.deployment import read_deployment, write_deployment
from chain.tokens import TokenReader
from config import Settings
from protocol.cashflow import reading_cash_flow
from protocol.envelope import DeviceKind
from protocol.epoch import EpochMetadata
from store.db import make_engine
from store.tables import EPOCH
from tests.api.dataset import API_NOW_MS, Dataset
from tests.api.token_market import POD, POD_THS, ROOF, ROOF_SHARES, Market, open_market

pytestmark = pytest.mark.parametrize("dataset", ["sqlite"], indirect=True)

DEAD_RPC = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def market(dataset: Dataset) -> Market:
    return open_market(dataset)


@pytest.fixture(scope="module")
def api(dataset: Dataset, market: Market) -> Iterator[TestClient]:
    settings = Settings(database_url=dataset.url, deployment=dataset.deployment_path)
    app = create_app(settings, clock_ms=lambda: API_NOW_MS, token_book=market.book(dataset))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def metas(dataset: Dataset) -> dict[int, EpochMetadata]:
    engine = make_engine(dataset.url)
    with engine.connect() as conn:
        rows = conn.execute(EPOCH.select().where(EPOCH.c.number.in_(dataset.anchored_epochs))).all()
    engine.dispose()
    return {int(r.number): metadata_of(r) for r in rows}


def reader(market: Market) -> TokenReader:
    return TokenReader(market.w3, deployment=None)


def test_tokens_are_listed_as_the_chain_declares_them(api: TestClient, market: Market) -> None:
    body = api.get("/v1/tokens").json()
    assert [t["asset"] for t in body["items"]] == sorted([POD, ROOF])
    for token in body["items"]:
        info = reader(market).token_info(market.tokens[token["asset"]])
        assert token["address"] == info.address
        assert (token["kind"], token["max_supply"], token["total_supply"]) == (
            info.kind,
            info.max_supply,
            info.total_supply,
        )
        assert (token["total_funded"], token["total_claimed"], token["cap"], token["dust"]) == (
            info.total_funded,
            info.total_claimed,
            info.cap,
            info.dust,
        )
        assert (token["settlement_symbol"], token["settlement_decimals"]) == ("HKD", 2)
    pod = api.get(f"/v1/tokens/{POD}").json()
    assert (pod["kind"], pod["max_supply"], pod["investor_share_bps"]) == ("hashrate", POD_THS, 8_000)


def test_distributions_stand_beside_the_attested_net_of_each_epoch(
    api: TestClient, market: Market, metas: dict[int, EpochMetadata]
) -> None:
    for asset, supply in ((ROOF, ROOF_SHARES), (POD, POD_THS)):
        body = api.get(f"/v1/tokens/{asset}/distributions").json()
        on_chain = {d.epoch: d for d in reader(market).distributions(market.tokens[asset])}
        assert [e["epoch"] for e in body["items"]] == sorted(metas)
        for item in body["items"]:
            meta, funding = metas[item["epoch"]], on_chain[item["epoch"]]
            assert item["attested_net"] == meta.assets[asset].net == funding.net
            assert item["funded"] is True
            assert (item["cap"], item["amount"], item["claimed"]) == (funding.cap, funding.funded, funding.claimed)
            assert item["amount"] == market.funded[asset][item["epoch"]]
            assert item["yield_per_token"] == pytest.approx(funding.funded / supply)
    roof = api.get(f"/v1/tokens/{ROOF}/distributions").json()["items"]
    assert all(e["yield_per_th_day"] is None and e["hashprice_per_th_day"] is None for e in roof)


def test_the_hashrate_token_yields_per_th_per_day_beside_the_tariffs_hashprice(
    api: TestClient, dataset: Dataset, metas: dict[int, EpochMetadata]
) -> None:
    dataset_rigs = [sim for sim in dataset.devices.values() if sim.asset == POD]
    for item in api.get(f"/v1/tokens/{POD}/distributions").json()["items"]:
        meta = metas[item["epoch"]]
        # Each rig reports once a minute: the pod's running days are its readings over its rigs.
        days = meta.assets[POD].readings * 60 / len(dataset_rigs) / 86_400
        assert item["operating_days"] == pytest.approx(days)
        assert item["yield_per_th_day"] == pytest.approx(item["amount"] / POD_THS / days)
        # One TH/s for a day, priced by the protocol's own miner formula (integer, rounded down).
        day_of_one_ths = types.SimpleNamespace(kind=DeviceKind.MINER, metrics={"hashes_gh": 86_400_000, "energy_wh": 0})
        revenue = reading_cash_flow(day_of_one_ths, meta.tariff).revenue  # type: ignore[arg-type]
        assert revenue <= item["hashprice_per_th_day"] < revenue + 1
        assert revenue > 0


def test_holders_and_claims_follow_the_chain_across_a_transfer(api: TestClient, market: Market) -> None:
    body = api.get(f"/v1/tokens/{ROOF}/holders").json()
    chain = reader(market)
    token = market.tokens[ROOF]
    rows = {h["address"]: h for h in body["items"]}
    alice, bob = rows[market.alice.address], rows[market.bob.address]
    assert (alice["balance"], bob["balance"]) == (800, 200)  # 700 + 100 from bob; 300 - 100
    assert alice["share"] == pytest.approx(0.8)
    assert alice["claimed"] == market.alice.balance_of(chain.token_info(token).settlement, market.alice.address)
    assert alice["claimable"] == chain.claimable(token, market.alice.address) == 0
    # Bob was owed his 30 % of the funding before he transferred: it stays his.
    assert bob["claimable"] == chain.claimable(token, bob["address"]) == sum(market.funded[ROOF]) * 300 // 1_000
    assert alice["claimed"] + bob["claimable"] <= sum(market.funded[ROOF])


def test_an_investors_holdings_across_assets(api: TestClient, market: Market) -> None:
    chain = reader(market)
    body = api.get(f"/v1/investors/{market.bob.address.lower()}/holdings").json()
    assert [h["asset"] for h in body["items"]] == sorted([POD, ROOF])
    for holding in body["items"]:
        token = market.tokens[holding["asset"]]
        assert holding["balance"] == chain.balance_of(token, market.bob.address)
        assert holding["claimable"] == chain.claimable(token, market.bob.address)
        assert holding["claimed"] == 0
        assert holding["allowed"] is True
    assert body["total_claimable"] == sum(h["claimable"] for h in body["items"]) > 0
    nobody = api.get("/v1/investors/0x000000000000000000000000000000000000dEaD/holdings").json()
    assert (nobody["items"], nobody["total_claimable"]) == ([], 0)
    bad = api.get("/v1/investors/0x1234/holdings")
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_parameter")


def test_the_credit_view_computes_coverage_and_dscr_from_attested_net(
    api: TestClient, market: Market, metas: dict[int, EpochMetadata]
) -> None:
    body = api.get(f"/v1/assets/{ROOF}/credit").json()
    nets = [metas[n].assets[ROOF].net for n in sorted(metas)]
    funded = market.funded[ROOF]
    scheduled = round(sum(funded) / len(funded))
    assert [e["net"] for e in body["epochs"]] == nets
    assert [e["funded"] for e in body["epochs"]] == funded
    assert body["scheduled"] == scheduled
    assert body["cumulative_net"] == sum(nets)
    assert body["coverage"] == pytest.approx(sum(nets) / sum(funded))
    assert body["dscr_min"] == pytest.approx(min(nets) / scheduled)
    assert body["dscr_mean"] == pytest.approx(sum(nets) / len(nets) / scheduled)
    assert body["currency"] == "HKD"
    given = api.get(f"/v1/assets/{ROOF}/credit", params={"scheduled": 400}).json()
    assert [e["dscr"] for e in given["epochs"]] == pytest.approx([n / 400 for n in nets])
    # An asset without a token: its attested history, and no distributions to cover.
    hub = api.get("/v1/assets/kowloon-hub/credit").json()
    assert (hub["total_funded"], hub["coverage"], hub["scheduled"]) == (0, None, None)
    assert len(hub["epochs"]) == len(metas)


def test_unknown_assets_and_assets_without_a_token_are_not_found(api: TestClient) -> None:
    for path in (
        "/v1/tokens/kowloon-hub",
        "/v1/tokens/kowloon-hub/holders",
        "/v1/tokens/no-such-asset/distributions",
        "/v1/assets/no-such-asset/credit",
    ):
        response = api.get(path)
        assert (response.status_code, response.json()["reason"]) == (404, "not_found"), path


def test_an_unreachable_chain_answers_503_and_no_tokens_need_no_chain(
    dataset: Dataset, market: Market, tmp_path: Path
) -> None:
    settings = Settings(database_url=dataset.url, deployment=dataset.deployment_path, rpc=DEAD_RPC)
    with TestClient(create_app(settings, clock_ms=lambda: API_NOW_MS)) as client:
        response = client.get("/v1/tokens")
        assert (response.status_code, response.json()["reason"]) == (503, "chain_unavailable")
    bare = tmp_path / "deployment.json"
    deployment = read_deployment(dataset.deployment_path)
    write_deployment(bare, replace(deployment, extra={}))
    book = TokenBook.over_rpc(DEAD_RPC, deployment_path=bare)
    settings = Settings(database_url=dataset.url, deployment=bare)
    with TestClient(create_app(settings, clock_ms=lambda: API_NOW_MS, token_book=book)) as client:
        assert client.get("/v1/tokens").json() == {"items": []}
        assert client.get(f"/v1/investors/{market.bob.address}/holdings").json()["items"] == []
        assert client.get(f"/v1/assets/{ROOF}/credit").json()["total_funded"] == 0
