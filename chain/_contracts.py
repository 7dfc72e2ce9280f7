"""The contracts of a deployment, attached to a web3 connection: what every reader builds on."""

from __future__ import annotations

from typing import Any, Final

from web3 import Web3
from web3.contract import Contract

from chain._artifacts import load_artifact
from chain.deployment import Deployment
from chain.errors import DeploymentError, NotDeployedError
from chain.reverts import edge
from chain.types import ContractName

__all__ = ["LOG_CHUNK", "ContractAccess"]

LOG_CHUNK: Final = 2_000
"""Blocks per eth_getLogs request: eth-tester slows down badly on wide ranges."""


class ContractAccess:
    """The deployment's contracts on one web3 connection, and calls to them through :func:`edge`."""

    def __init__(self, web3: Web3, *, deployment: Deployment | None) -> None:
        self._w3 = web3
        self._deployment: Deployment | None = None
        self._anchor: Contract | None = None
        self._devices: Contract | None = None
        self._verifier: Contract | None = None
        self._p256: bool | None = None
        if deployment is not None:
            self._attach(deployment)

    def _attach(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._anchor = self._w3.eth.contract(
            address=Web3.to_checksum_address(deployment.anchor_registry.address),
            abi=load_artifact("AnchorRegistry").abi,
        )
        self._devices = self._w3.eth.contract(
            address=Web3.to_checksum_address(deployment.device_registry.address),
            abi=load_artifact("DeviceRegistry").abi,
        )
        verifier = deployment.reading_verifier
        self._verifier = (
            None
            if verifier is None
            else self._w3.eth.contract(
                address=Web3.to_checksum_address(verifier.address), abi=load_artifact("ReadingVerifier").abi
            )
        )
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
        if name == "ReadingVerifier":
            if self._verifier is None:
                if self._deployment is None:
                    raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
                raise NotDeployedError(
                    "the deployment has no ReadingVerifier (made before it existed): deploy one with"
                    " ChainClient.deploy_reading_verifier(), or verify the reading off chain"
                )
            return self._verifier
        contract = self._anchor if name == "AnchorRegistry" else self._devices
        if contract is None:
            raise DeploymentError("no contracts attached: deploy() them or pass a deployment")
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
