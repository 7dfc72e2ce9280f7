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
from chain.types import DeployParams, DeviceRegistration, Roles
from chain.writer import ChainClient
from devstack.anvil import find_anvil
from protocol.cashflow import Tariff
from protocol.envelope import DeviceKind
from protocol.merkle.log import MerkleLog

DEV_PARAMS = DeployParams(governance_delay=3_600, rotation_grace=600, max_backfill=259_200, max_growth=1_048_576)
"""The contract tests' parameters: the defaults but an hour's governance delay (tests move block
time past it rather than wait)."""

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
    """A fresh deployment with a funded account per role, and a stranger (who holds none)."""

    w3: Web3
    deployment: Deployment
    governor: ChainClient
    attestor: ChainClient
    registrar: ChainClient
    pricing: ChainClient
    stranger: ChainClient

    def reader(self) -> ChainReader:
        return ChainReader(self.w3, deployment=self.deployment)

    def client(self, account: LocalAccount) -> ChainClient:
        return ChainClient(self.w3, account=account, deployment=self.deployment)


def deploy_chain(w3: Web3, *, params: DeployParams = DEV_PARAMS) -> Chain:
    governor, attestor, registrar, pricing, stranger = (funded_account(w3) for _ in range(5))
    deployer = ChainClient(w3, account=funded_account(w3))
    roles = Roles(
        governor=governor.address,
        attestor=attestor.address,
        registrar=registrar.address,
        pricing_authority=pricing.address,
    )
    deployment = deployer.deploy(roles=roles, params=params)
    return Chain(
        w3=w3,
        deployment=deployment,
        **{
            name: ChainClient(w3, account=account, deployment=deployment)
            for name, account in (
                ("governor", governor),
                ("attestor", attestor),
                ("registrar", registrar),
                ("pricing", pricing),
                ("stranger", stranger),
            )
        },
    )


def registration(
    device_id: str,
    public_key: bytes,
    *,
    asset: str = "HK Rooftops #2",
    alg: str = "ed25519",
    kind: DeviceKind = DeviceKind.SOLAR,
    window_s: int = 60,
    rated_power_w: int = 5_000,
    rated_hashrate_ghs: int | None = None,
    cert_hash: bytes = b"",
) -> DeviceRegistration:
    """A registration with a plausible profile for its kind (tests only: real callers give every
    field)."""
    if rated_hashrate_ghs is None:
        rated_hashrate_ghs = 288_000 if kind is DeviceKind.MINER else 0
    return DeviceRegistration(
        device_id=device_id,
        asset=asset,
        alg=alg,
        public_key=public_key,
        kind=kind,
        window_s=window_s,
        rated_power_w=rated_power_w,
        rated_hashrate_ghs=rated_hashrate_ghs,
        cert_hash=cert_hash,
    )


def sample_tariff(tariff_id: str = "hk-2026", *, btc_price: int = 50_000_000) -> Tariff:
    return Tariff(
        id=tariff_id,
        currency="HKD",
        solar_fit_per_kwh=300,
        charger_price_per_kwh=450,
        charger_session_fee=500,
        grid_price_per_kwh=150,
        miner_power_price_per_kwh=120,
        btc_price=btc_price,
        btc_difficulty=90_000_000_000_000,
        btc_subsidy_sats=312_500_000,
        btc_fees_sats=20_000_000,
        pool_fee_bps=200,
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


def assets(epoch: int) -> bytes:
    """A stand-in assets root for ``epoch`` (distinct from every ``meta``)."""
    return hashlib.sha256(b"epoch assets %d" % epoch).digest()


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
