"""The contracts of a deployment, attached to a web3 connection: what every reader builds on."""

from __future__ import annotations

from typing import Any, Final

from web3 import Web3
from web3.contract import Contract

from chain._artifacts import load_artifact
from chain.deployment import ContractDeployment, Deployment
from chain.errors import DeploymentError, NotDeployedError
from chain.reverts import edge
from chain.types import ContractName, PublishedTariff, RegistryParams

__all__ = ["LOG_CHUNK", "ContractAccess"]

LOG_CHUNK: Final = 2_000
"""Blocks per eth_getLogs request: eth-tester slows down badly on wide ranges."""


class ContractAccess:
    """The deployment's contracts on one web3 connection, and calls to them through :func:`edge`."""

    def __init__(self, web3: Web3, *, deployment: Deployment | None) -> None:
        self._w3 = web3
        self._deployment: Deployment | None = None
        self._contracts: dict[ContractName, Contract] = {}
        self._p256: bool | None = None
        self._registry_params: RegistryParams | None = None
        self._tariff_events: dict[tuple[int, bytes, int], PublishedTariff] = {}
        if deployment is not None:
            self._attach(deployment)

    def _attach(self, deployment: Deployment) -> None:
        self._deployment = deployment
        # What a reader remembers of the contracts (their immutables, published tariffs' events)
        # belongs to these contracts only.
        self._registry_params = None
        self._tariff_events = {}
        entries: dict[ContractName, ContractDeployment | None] = {
            "AnchorRegistry": deployment.anchor_registry,
            "DeviceRegistry": deployment.device_registry,
            "TariffRegistry": deployment.tariff_registry,
            "ReadingVerifier": deployment.reading_verifier,
        }
        self._contracts = {
            name: self._w3.eth.contract(address=Web3.to_checksum_address(entry.address), abi=load_artifact(name).abi)
            for name, entry in entries.items()
            if entry is not None
        }
        self._p256 = None

    @property
    def web3(self) -> Web3:
        return self._w3

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
        return self._deployment

    def _contract(self, name: ContractName) -> Contract:
        if self._deployment is None:
            raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
        contract = self._contracts.get(name)
        if contract is None:
            raise NotDeployedError(
                "the deployment has no ReadingVerifier: deploy one with"
                " ChainClient.deploy_reading_verifier(), or verify the reading off chain"
            )
        return contract

    def _call(self, name: ContractName, fn_name: str, *args: Any) -> Any:
        with edge():
            return self._contract(name).functions[fn_name](*args).call()

    def chain_id(self) -> int:
        with edge():
            return int(self._w3.eth.chain_id)

    def block_number(self) -> int:
        with edge():
            return int(self._w3.eth.block_number)

    def block_timestamp(self, block: int) -> int:
        """The time (seconds) in the header of block ``block``."""
        with edge():
            return int(self._w3.eth.get_block(block)["timestamp"])

    def _timestamps(self, blocks: Any) -> dict[int, int]:
        """The header time of each of ``blocks``, each asked once."""
        return {block: self.block_timestamp(block) for block in sorted(set(blocks))}

    def _logs(self, name: ContractName, event: str, *, from_block: int, to_block: int | None) -> list[Any]:
        """The ``event`` logs of contract ``name`` in ``from_block..to_block`` (inclusive;
        default: the latest block), fetched in bounded ranges."""
        handle = self._contract(name).events[event]
        last = self.block_number() if to_block is None else to_block
        found: list[Any] = []
        for start in range(from_block, last + 1, LOG_CHUNK):
            end = min(last, start + LOG_CHUNK - 1)
            with edge():
                found.extend(handle.get_logs(from_block=start, to_block=end))
        return found
