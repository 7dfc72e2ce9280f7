"""The read-only view of a deployment: what an auditor needs, and all it may use.

:class:`ChainReader` joins the readers of the contracts (:mod:`chain.anchor_reader`,
:mod:`chain.device_reader`, :mod:`chain.tariff_reader`, :mod:`chain.governance_reader`,
:mod:`chain.verifier_reader`) and checks the deployment itself.
"""

from __future__ import annotations

from dataclasses import fields

from web3 import Web3

from chain._artifacts import load_artifact
from chain.anchor_reader import AnchorReader
from chain.deployment import ContractDeployment
from chain.device_reader import DeviceReader
from chain.errors import DeploymentError, GovernorSplitError
from chain.governance_reader import GovernanceReader
from chain.reverts import edge
from chain.tariff_reader import TariffReader
from chain.types import ContractName
from chain.verifier_reader import VerifierReader

__all__ = ["ChainReader"]


class ChainReader(VerifierReader, AnchorReader, DeviceReader, TariffReader, GovernanceReader):
    """Read-only access to a deployment: checkpoints, inclusion checks, devices and their keys,
    tariffs, roles.

    Holds no key and sends nothing: what an auditor needs, and all it may use.
    """

    def verify_deployment(self) -> None:
        """Raise :class:`DeploymentError` unless the chain id and the code at every address are
        those of the deployment file and of the committed artifacts, a ReadingVerifier (when the
        deployment has one) reads the deployment's own registries, and every role holder and
        parameter on chain is the one the file names (the message names the first mismatch)."""
        deployment = self.deployment
        if self.chain_id() != deployment.chain_id:
            raise DeploymentError(
                f"the node's chain id {self.chain_id()} is not the deployment's {deployment.chain_id}"
            )
        entries: list[tuple[ContractName, ContractDeployment]] = [
            ("AnchorRegistry", deployment.anchor_registry),
            ("DeviceRegistry", deployment.device_registry),
            ("TariffRegistry", deployment.tariff_registry),
        ]
        if deployment.reading_verifier is not None:
            entries.append(("ReadingVerifier", deployment.reading_verifier))
        for name, entry in entries:
            artifact = load_artifact(name)
            with edge():
                code = bytes(self._w3.eth.get_code(Web3.to_checksum_address(entry.address)))
            if not artifact.code_matches(code):
                raise DeploymentError(f"the code at {entry.address} is not the committed {name}")
            if entry.artifact_sha256 != artifact.sha256:
                raise DeploymentError(f"{name} was deployed from another artifact than the committed one")
        if deployment.reading_verifier is not None:
            # Its registries are immutables, masked out of the code comparison above.
            for getter, entry in (
                ("anchorRegistry", deployment.anchor_registry),
                ("deviceRegistry", deployment.device_registry),
            ):
                used = Web3.to_checksum_address(self._call("ReadingVerifier", getter))
                if used != Web3.to_checksum_address(entry.address):
                    raise DeploymentError(
                        f"the ReadingVerifier at {deployment.reading_verifier.address} reads {getter} {used},"
                        f" not the deployment's {entry.address}"
                    )
        self._verify_roles_and_params()

    def _verify_roles_and_params(self) -> None:
        deployment = self.deployment
        try:
            roles = self.roles()
        except GovernorSplitError as split:
            expected = Web3.to_checksum_address(deployment.roles.governor)
            wrong = {name: account for name, account in split.governors.items() if account != expected}
            shown = ", ".join(f"{name} names {account}" for name, account in wrong.items())
            raise DeploymentError(f"the deployment file names governor {expected}, but {shown}") from split
        for field in fields(roles):
            on_chain = getattr(roles, field.name)
            in_file = Web3.to_checksum_address(getattr(deployment.roles, field.name))
            if on_chain != in_file:
                raise DeploymentError(
                    f"the deployment file names {field.name} {in_file}, but the chain's is {on_chain}"
                    " (a governor's change since the file was written, or not the deployment you trust)"
                )
        params = self.registry_params()
        for field in fields(params):
            on_chain, in_file = getattr(params, field.name), getattr(deployment.params, field.name)
            if on_chain != in_file:
                raise DeploymentError(f"the deployment file says {field.name} {in_file}, but the chain's is {on_chain}")
