"""Roles under a governor's delay, on anvil and eth-tester: who holds what, proposals anyone can
watch, the delay enforced, a leaked attestor key stopped by the growth cap and replaced."""

from __future__ import annotations

import pytest
from eth_account import Account

from chain.devchain import mine, set_next_block_timestamp
from chain.errors import DeploymentError, GovernorSplitError
from chain.ids import ROLE_IDS
from chain.types import PendingRoleChange, RegistryParams, RoleEventKind, Roles
from chain.writer import ChainClient
from protocol.merkle.log import MerkleLog
from tests.support.chain import Chain, assets, funded_account, grow, meta, registration, reverts, sample_tariff


def now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def test_roles_and_parameters_are_read_from_the_contracts(chain: Chain) -> None:
    reader = chain.reader()
    assert reader.roles() == Roles(
        governor=chain.governor.address,
        attestor=chain.attestor.address,
        registrar=chain.registrar.address,
        pricing_authority=chain.pricing.address,
    )
    assert reader.roles() == chain.deployment.roles
    assert (
        reader.registry_params()
        == chain.deployment.params
        == RegistryParams(governance_delay=3_600, rotation_grace=600, max_backfill=259_200, max_growth=1_048_576)
    )
    assert reader.pending_role_changes() == []
    # The deployment's own holders, from the constructors' events.
    events = reader.role_events()
    assert {(e.contract, e.role, e.account) for e in events} == {
        ("AnchorRegistry", "governor", chain.governor.address),
        ("AnchorRegistry", "attestor", chain.attestor.address),
        ("DeviceRegistry", "governor", chain.governor.address),
        ("DeviceRegistry", "registrar", chain.registrar.address),
        ("TariffRegistry", "governor", chain.governor.address),
        ("TariffRegistry", "pricing_authority", chain.pricing.address),
    }
    assert all(e.kind is RoleEventKind.CHANGED and e.previous == "0x" + "00" * 20 for e in events)


def test_deploy_defaults_every_role_to_the_deployer(w3: object) -> None:
    from web3 import Web3

    assert isinstance(w3, Web3)
    client = ChainClient(w3, account=funded_account(w3))
    deployment = client.deploy()
    me = client.address
    assert deployment.roles == Roles(governor=me, attestor=me, registrar=me, pricing_authority=me)
    assert client.roles() == deployment.roles
    assert deployment.params == RegistryParams(
        governance_delay=86_400, rotation_grace=600, max_backfill=259_200, max_growth=1_048_576
    )


def test_the_governor_replaces_the_attestor_after_the_delay(chain: Chain) -> None:
    """A leaked attestor key: the governor proposes a new attestor, everyone sees it, nobody can
    put it in place before the delay, anyone can after it; the old key is then refused."""
    reader, w3 = chain.reader(), chain.w3
    log = grow(MerkleLog(), 10)
    chain.attestor.anchor(epoch=0, tree_size=5, root=log.root(5), meta_hash=meta(0), assets_root=assets(0), proof=[])
    fresh = funded_account(w3)
    delay = chain.deployment.params.governance_delay
    t = now(chain) + 10
    set_next_block_timestamp(w3, t)
    chain.governor.propose_role(contract="AnchorRegistry", role="attestor", account=fresh.address)
    assert reader.pending_role_changes() == [
        PendingRoleChange(contract="AnchorRegistry", role="attestor", account=fresh.address, eta=t + delay)
    ]
    [proposed] = [e for e in reader.role_events() if e.kind is RoleEventKind.PROPOSED]
    assert (proposed.contract, proposed.role, proposed.account, proposed.eta, proposed.timestamp) == (
        "AnchorRegistry",
        "attestor",
        fresh.address,
        t + delay,
        t,
    )
    # Shortly before the due time (anvil judges a call at the latest block's time, eth-tester at
    # the next block's: ten seconds early is early on both).
    set_next_block_timestamp(w3, t + delay - 10)
    mine(w3)
    with reverts("ChangeNotDue", role=ROLE_IDS["attestor"], eta=t + delay):
        chain.stranger.execute_role(contract="AnchorRegistry", role="attestor")
    # Meanwhile the old attestor still anchors.
    chain.attestor.anchor(
        epoch=1,
        tree_size=7,
        root=log.root(7),
        meta_hash=meta(1),
        assets_root=assets(1),
        proof=log.consistency_proof(5, 7),
    )
    set_next_block_timestamp(w3, t + delay)
    mine(w3)
    chain.stranger.execute_role(contract="AnchorRegistry", role="attestor")  # anyone may
    assert reader.roles().attestor == fresh.address
    assert reader.pending_role_changes() == []
    changed = [e for e in reader.role_events() if e.kind is RoleEventKind.CHANGED][-1]
    assert (changed.role, changed.previous, changed.account) == ("attestor", chain.attestor.address, fresh.address)
    with reverts("NotAttestor"):
        chain.attestor.anchor(
            epoch=2,
            tree_size=10,
            root=log.root(10),
            meta_hash=meta(2),
            assets_root=assets(2),
            proof=log.consistency_proof(7, 10),
        )
    new_attestor = chain.client(fresh)
    new_attestor.anchor(
        epoch=2,
        tree_size=10,
        root=log.root(10),
        meta_hash=meta(2),
        assets_root=assets(2),
        proof=log.consistency_proof(7, 10),
    )
    assert reader.epoch_count() == 3
    # The deployment file written before the change no longer matches the chain: rewrite it.
    with pytest.raises(DeploymentError, match=f"names attestor {chain.attestor.address}, but the chain's is"):
        reader.verify_deployment()


def test_a_leaked_attestor_key_cannot_brick_the_log(chain: Chain) -> None:
    limit = chain.deployment.params.max_growth
    log = grow(MerkleLog(), 3)
    chain.attestor.anchor(epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), assets_root=assets(0), proof=[])
    # A phantom tree of 2^64 - 1 leaves: refused before its proof is even looked at.
    with reverts("GrowthTooLarge", limit=limit, growth=2**64 - 1 - 3):
        chain.attestor.anchor(
            epoch=1, tree_size=2**64 - 1, root=bytes([7]) * 32, meta_hash=meta(1), assets_root=assets(1), proof=[]
        )
    with reverts("GrowthTooLarge", limit=limit, growth=limit + 1):
        chain.attestor.anchor(
            epoch=1, tree_size=3 + limit + 1, root=bytes([7]) * 32, meta_hash=meta(1), assets_root=assets(1), proof=[]
        )
    big = ChainClient(chain.w3, account=funded_account(chain.w3))
    big.deploy()
    with reverts("GrowthTooLarge", limit=limit, growth=limit + 1):
        big.anchor(
            epoch=0, tree_size=limit + 1, root=bytes([7]) * 32, meta_hash=meta(0), assets_root=assets(0), proof=[]
        )


def test_only_the_governor_proposes_and_cancels(chain: Chain) -> None:
    someone = Account.create().address
    for client in (chain.attestor, chain.registrar, chain.pricing, chain.stranger):
        with reverts("NotGovernor", caller=client.address):
            client.propose_role(contract="DeviceRegistry", role="registrar", account=someone)
    # The governor cannot act in a role itself.
    with reverts("NotRegistrar", caller=chain.governor.address):
        chain.governor.register(registration("sol-1", bytes(32)))
    with reverts("NotPricingAuthority", caller=chain.governor.address):
        chain.governor.publish_tariff(sample_tariff(), effective_from=0)
    with reverts("NotAttestor"):
        chain.governor.anchor(
            epoch=0, tree_size=1, root=bytes([1]) * 32, meta_hash=meta(0), assets_root=assets(0), proof=[]
        )
    # Roles a contract does not know, the zero address, nothing pending.
    with reverts("UnknownRole", role=ROLE_IDS["attestor"]):
        chain.governor.propose_role(contract="DeviceRegistry", role="attestor", account=someone)
    with reverts("UnknownRole", role=ROLE_IDS["registrar"]):
        chain.reader()._call("TariffRegistry", "roleHolder", ROLE_IDS["registrar"])
    with reverts("ZeroAddress", role=ROLE_IDS["registrar"]):
        chain.governor.transact("DeviceRegistry", "proposeRole", ROLE_IDS["registrar"], "0x" + "00" * 20)
    for call in (
        lambda: chain.governor.cancel_role(contract="DeviceRegistry", role="registrar"),
        lambda: chain.stranger.execute_role(contract="DeviceRegistry", role="registrar"),
    ):
        with reverts("NoPendingChange", role=ROLE_IDS["registrar"]):
            call()
    # Proposed, then cancelled: nothing left to execute.
    chain.governor.propose_role(contract="DeviceRegistry", role="registrar", account=someone)
    with reverts("NotGovernor", caller=chain.stranger.address):
        chain.stranger.cancel_role(contract="DeviceRegistry", role="registrar")
    chain.governor.cancel_role(contract="DeviceRegistry", role="registrar")
    assert chain.reader().pending_role_changes() == []
    kinds = [e.kind for e in chain.reader().role_events() if e.contract == "DeviceRegistry" and e.role == "registrar"]
    assert kinds == [RoleEventKind.CHANGED, RoleEventKind.PROPOSED, RoleEventKind.CANCELLED]
    with reverts("NoPendingChange"):
        chain.stranger.execute_role(contract="DeviceRegistry", role="registrar")
    assert chain.reader().roles().registrar == chain.registrar.address


def test_the_governor_replaces_itself_contract_by_contract(chain: Chain) -> None:
    reader, w3 = chain.reader(), chain.w3
    successor = funded_account(w3)
    delay = chain.deployment.params.governance_delay
    t = now(chain) + 10
    set_next_block_timestamp(w3, t)
    for contract in ("AnchorRegistry", "DeviceRegistry", "TariffRegistry"):
        chain.governor.propose_role(contract=contract, role="governor", account=successor.address)  # type: ignore[arg-type]
    assert len(reader.pending_role_changes()) == 3
    set_next_block_timestamp(w3, t + delay + 5)
    mine(w3)
    chain.stranger.execute_role(contract="AnchorRegistry", role="governor")
    # Executed on one contract only: the roles are split, and said so.
    with pytest.raises(GovernorSplitError, match="different governors") as split:
        reader.roles()
    assert split.value.governors["AnchorRegistry"] == successor.address
    assert split.value.governors["DeviceRegistry"] == chain.governor.address
    with pytest.raises(DeploymentError, match=f"names governor {chain.governor.address}, but AnchorRegistry names"):
        reader.verify_deployment()
    chain.stranger.execute_role(contract="DeviceRegistry", role="governor")
    chain.stranger.execute_role(contract="TariffRegistry", role="governor")
    assert reader.roles().governor == successor.address
    with reverts("NotGovernor", caller=chain.governor.address):
        chain.governor.propose_role(contract="AnchorRegistry", role="attestor", account=successor.address)
    chain.client(successor).propose_role(contract="AnchorRegistry", role="attestor", account=successor.address)
