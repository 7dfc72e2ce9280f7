"""The deployment file: where the contracts live on which chain, and which artifacts they are.

JSON, written by ``assetproof chain deploy`` (through :meth:`chain.writer.ChainClient.deploy`)
and read by the attestor and the auditor::

    {
      "format": "assetproof-deployment/1",
      "chainId": 31337,
      "deploymentBlock": 1,
      "attestor": "0x...",
      "admin": "0x...",
      "contracts": {
        "AnchorRegistry": {"address": "0x...", "block": 1, "artifactSha256": "..."},
        "DeviceRegistry": {"address": "0x...", "block": 2, "artifactSha256": "..."},
        "ReadingVerifier": {"address": "0x...", "block": 3, "artifactSha256": "..."}
      }
    }

``artifactSha256`` is the SHA-256 of the committed artifact file the contract was deployed
from; :meth:`chain.reader.ChainReader.verify_deployment` checks the code on chain against it.
``ReadingVerifier`` is optional: files written before it existed have none, still load, and
:meth:`chain.reader.ChainReader.verify_reading_onchain` then says it is not deployed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from chain.errors import DeploymentError

__all__ = ["DEPLOYMENT_FORMAT", "ContractDeployment", "Deployment", "read_deployment", "write_deployment"]

DEPLOYMENT_FORMAT: Final = "assetproof-deployment/1"
_REQUIRED: Final = ("AnchorRegistry", "DeviceRegistry")
_OPTIONAL: Final = ("ReadingVerifier",)
_NAMES: Final = _REQUIRED + _OPTIONAL


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractDeployment:
    address: str
    """Checksummed 0x address."""
    block: int
    artifact_sha256: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    chain_id: int
    attestor: str
    admin: str
    anchor_registry: ContractDeployment
    device_registry: ContractDeployment
    reading_verifier: ContractDeployment | None = None
    """None in a deployment made before the ReadingVerifier existed."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other top-level keys found in the file, kept when it is rewritten."""

    @property
    def deployment_block(self) -> int:
        """The first block that can hold an event of these contracts (the ReadingVerifier emits
        none)."""
        return min(self.anchor_registry.block, self.device_registry.block)

    def to_json(self) -> str:
        contracts = {
            name: {"address": c.address, "block": c.block, "artifactSha256": c.artifact_sha256.hex()}
            for name, c in zip(_NAMES, (self.anchor_registry, self.device_registry, self.reading_verifier), strict=True)
            if c is not None
        }
        data = {
            **self.extra,
            "format": DEPLOYMENT_FORMAT,
            "chainId": self.chain_id,
            "deploymentBlock": self.deployment_block,
            "attestor": self.attestor,
            "admin": self.admin,
            "contracts": contracts,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Deployment:
        try:
            data = json.loads(text)
            if data.get("format") != DEPLOYMENT_FORMAT:
                raise DeploymentError(f"not an {DEPLOYMENT_FORMAT} file (format {data.get('format')!r})")
            listed = data["contracts"]
            contracts = [_contract(listed[name], name) for name in _REQUIRED]
            verifier = _contract(listed[_OPTIONAL[0]], _OPTIONAL[0]) if _OPTIONAL[0] in listed else None
            known = {"format", "chainId", "deploymentBlock", "attestor", "admin", "contracts"}
            return cls(
                chain_id=_int(data["chainId"], "chainId"),
                attestor=_address(data["attestor"], "attestor"),
                admin=_address(data["admin"], "admin"),
                anchor_registry=contracts[0],
                device_registry=contracts[1],
                reading_verifier=verifier,
                extra={k: v for k, v in data.items() if k not in known},
            )
        except DeploymentError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeploymentError(f"unreadable deployment file: {exc.__class__.__name__}: {exc}") from None


def _int(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise DeploymentError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _address(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise DeploymentError(f"{name} must be a 0x address, got {value!r}")
    int(value, 16)
    return value


def _contract(data: Mapping[str, Any], name: str) -> ContractDeployment:
    digest = bytes.fromhex(data["artifactSha256"])
    if len(digest) != 32:
        raise DeploymentError(f"{name}.artifactSha256 must be 32 bytes")
    return ContractDeployment(
        address=_address(data["address"], f"{name}.address"),
        block=_int(data["block"], f"{name}.block"),
        artifact_sha256=digest,
    )


def write_deployment(path: Path | str, deployment: Deployment) -> None:
    """Write ``deployment`` to ``path`` atomically (a temporary file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(deployment.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_deployment(path: Path | str) -> Deployment:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentError(f"cannot read deployment file {path}: {exc}") from exc
    return Deployment.from_json(text)
