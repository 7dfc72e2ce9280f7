"""Chain fixtures: every contract test runs on anvil AND on eth-tester.

anvil is required, not optional: when ``npm ci --prefix chain`` has not installed it, the anvil
half of the suite fails with a message saying so (nothing is skipped). One anvil serves the whole
session; each test deploys its own contracts on it, which costs a few milliseconds. eth-tester
chains are created per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.deployment import Deployment
from chain.devchain import dev_fund, eth_tester_web3
from chain.reader import ChainReader
from chain.writer import ChainClient
from devstack.anvil import AnvilNode, find_anvil, start_anvil

ANVIL_MISSING = "anvil is not installed: run `npm ci --prefix chain` (installs the pinned @foundry-rs/anvil binary)"


def require_anvil() -> None:
    if find_anvil() is None:
        pytest.fail(ANVIL_MISSING, pytrace=False)


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    require_anvil()
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture(params=["anvil", "eth-tester"])
def w3(request: pytest.FixtureRequest) -> Web3:
    if request.param == "anvil":
        node: AnvilNode = request.getfixturevalue("anvil_node")
        return node.web3()
    return eth_tester_web3()


def funded_account(w3: Web3) -> LocalAccount:
    account: LocalAccount = Account.create()
    dev_fund(w3, account.address)
    return account


@dataclass
class Chain:
    """A fresh deployment with three funded accounts: the attestor, the admin, a stranger."""

    w3: Web3
    deployment: Deployment
    attestor: ChainClient
    admin: ChainClient
    stranger: ChainClient

    def reader(self) -> ChainReader:
        return ChainReader(self.w3, deployment=self.deployment)


@pytest.fixture
def chain(w3: Web3) -> Chain:
    return deploy_chain(w3)


@pytest.fixture
def anvil_chain(anvil_node: AnvilNode) -> Chain:
    """A fresh deployment on anvil only (for what eth-tester lacks, such as the P-256 precompile)."""
    return deploy_chain(anvil_node.web3())


def deploy_chain(w3: Web3) -> Chain:
    attestor_account, admin_account, stranger_account = (funded_account(w3) for _ in range(3))
    deployer = ChainClient(w3, account=funded_account(w3))
    deployment = deployer.deploy(attestor=attestor_account.address, admin=admin_account.address)
    return Chain(
        w3=w3,
        deployment=deployment,
        attestor=ChainClient(w3, account=attestor_account, deployment=deployment),
        admin=ChainClient(w3, account=admin_account, deployment=deployment),
        stranger=ChainClient(w3, account=stranger_account, deployment=deployment),
    )
