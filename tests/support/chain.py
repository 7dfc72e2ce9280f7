"""Chains for tests: anvil (required, never skipped) and eth-tester, a fresh deployment with
funded accounts, and small builders for Merkle logs, epoch metadata and expected reverts.

The fixtures that hand these out (``anvil_node``, ``w3``, ``chain``, ``anvil_chain``) live in
tests/conftest.py, so every package's tests share one anvil per session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.deployment import Deployment
from chain.devchain import dev_fund
from chain.errors import ContractRevert
from chain.reader import ChainReader
from chain.writer import ChainClient
from devstack.anvil import find_anvil
from protocol.merkle.log import MerkleLog

ANVIL_MISSING = "anvil is not installed: run `npm ci --prefix chain` (installs the pinned @foundry-rs/anvil binary)"


def require_anvil() -> None:
    if find_anvil() is None:
        pytest.fail(ANVIL_MISSING, pytrace=False)


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


# --- logs, metadata and reverts for contract tests ---------------------------------------------


def leaf(i: int, *, salt: bytes = b"") -> bytes:
    return b"reading-" + salt + i.to_bytes(8, "big")


def grow(log: MerkleLog, size: int, *, salt: bytes = b"") -> MerkleLog:
    """Append leaves until ``log`` holds ``size``."""
    log.extend(leaf(i, salt=salt) for i in range(log.size, size))
    return log


def meta(epoch: int) -> bytes:
    return hashlib.sha256(b"epoch metadata %d" % epoch).digest()


@contextmanager
def reverts(name: str, **arguments: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a :class:`ContractRevert` named ``name`` whose arguments include ``arguments``."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.name == name, f"expected {name}, got {info.value}"
    for key, value in arguments.items():
        assert info.value.arguments[key] == value, f"{key}: {info.value.arguments}"


def flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]
