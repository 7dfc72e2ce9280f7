"""The demo deploys the HKD stablecoin and a token per asset (the mining pod's a hashrate token
of its registered TH/s), held by allowlisted investors, under an issuer key of its own; it funds
every anchored epoch in order with exactly its attested cap and lets an investor claim. Checked
against the chain itself: each funding at most its cap, the books balanced, the summary's
figures the chain's."""

from __future__ import annotations

import json
import time
from pathlib import Path

from chain.deployment import read_deployment
from chain.ids import asset_id_hash
from chain.reader import ChainReader
from chain.token_types import tokens_section
from chain.tokens import TokenReader
from chain.types import DeviceRegisteredEvent
from demo.options import ASSETS, DemoOptions
from demo.stack import DemoStack
from demo.tokens import INVESTOR_SHARE_BPS, token_keys

SECONDS = 20.0
POD = "hydro-pod"
SETTLE_TIMEOUT_S = 180.0
"""The most the run may take to fund and claim something (it takes about 10 s on a quiet machine)."""


def _funded_and_claimed(stack: DemoStack) -> bool:
    tokens = stack.snapshot().tokens
    return any(t.funded > 0 for t in tokens.values()) and any(t.claimed > 0 for t in tokens.values())


def test_the_demo_funds_every_anchored_epoch_at_its_cap_and_an_investor_claims(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    stack = DemoStack(DemoOptions(seconds=SECONDS, home=home, api_port=0), say=lambda _line: None)
    try:
        stack.start()
        assert stack.anvil is not None, "the test reads the chain back after the run: it needs anvil"
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        # A condition, not a duration: the run lasts until the tokens have been funded and claimed.
        while not _funded_and_claimed(stack):
            assert stack.failed() is None
            assert time.monotonic() < deadline, f"nothing funded and claimed: {stack.snapshot().tokens}"
            time.sleep(0.5)
        summary = stack.finish()
        assert stack.failed() is None

        w3 = stack.anvil.web3()
        deployment = read_deployment(home / "deployment.json")
        section = tokens_section(deployment)
        reader = TokenReader(w3, deployment=deployment)
        chain = ChainReader(w3, deployment=deployment)
        assert section.settlement is not None
        assert (section.settlement.symbol, section.settlement.decimals) == ("HKD", 2)
        assert set(section.assets) == {asset for asset, _kind, _alg in ASSETS}
        last_anchored = chain.latest_checkpoint()
        assert last_anchored is not None

        # The issuer is a key of its own, none of the registry's roles.
        keys = token_keys(home / "token-keys.json")
        issuer = w3.eth.account.from_key(keys["issuer"]).address
        roles = deployment.roles
        assert issuer not in {roles.governor, roles.attestor, roles.registrar, roles.pricing_authority}

        for asset, token in section.assets.items():
            info = reader.token_info(token.address)
            contract = reader._token(token.address)
            assert contract.functions.hasRole(contract.functions.ISSUER_ROLE().call(), issuer).call()
            assert info.investor_share_bps == INVESTOR_SHARE_BPS
            # Every anchored epoch funded, in order from 0, each with exactly its cap.
            assert info.next_epoch == last_anchored.epoch + 1, asset
            distributions = reader.distributions(token.address)
            assert [d.epoch for d in distributions] == list(range(last_anchored.epoch + 1))
            for d in distributions:
                assert d.funded <= d.cap, (asset, d)
                assert d.funded == d.cap, (asset, d)
            entitled = max(info.cumulative_net, 0) * info.investor_share_bps // 10_000
            assert info.total_funded == sum(d.funded for d in distributions)
            assert info.total_funded <= entitled
            assert info.total_claimed + info.dust <= info.total_funded
            holders = reader.holders(token.address)
            assert len(holders) == 3
            assert all(h.allowed for h in holders)
            assert sum(h.balance for h in holders) == info.total_supply == info.max_supply
            # The summary's figures are the chain's.
            figures = summary.tokens[asset]
            assert (figures["funded"], figures["claimed"], figures["entitled"]) == (
                info.total_funded,
                info.total_claimed,
                entitled,
            )
            assert figures["address"] == token.address

        # The pod's token is a hashrate token: one per TH/s the registrar put on chain.
        pod = reader.token_info(section.token(POD).address)
        ghs = sum(
            e.profile.rated_hashrate_ghs
            for e in chain.registry_events()
            if isinstance(e, DeviceRegisteredEvent) and e.asset_id == asset_id_hash(POD)
        )
        assert pod.kind == "hashrate"
        assert ghs > 0
        assert pod.max_supply == ghs // 1_000
        assert {section.token(a).kind for a, _k, _g in ASSETS if a != POD} == {"share"}
    finally:
        stack.close()

    assert summary.ok, summary
    assert summary.epochs_not_distributed == 0
    earning = [t for t in summary.tokens.values() if t["entitled"] > 0]
    assert earning
    assert all(t["funded"] > 0 for t in earning)
    assert sum(t["claimed"] for t in summary.tokens.values()) > 0
    written = json.loads((home / "summary.json").read_text())
    assert written["tokens"] == summary.tokens
    assert written["ok"] is True
