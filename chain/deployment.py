"""The deployment file: where the contracts live on which chain, who holds each role, with which
parameters, and which artifacts the contracts are.

JSON, written by ``assetproof chain deploy`` (through :meth:`chain.writer.ChainClient.deploy`)
and read by the attestor and the auditor::

    {
      "format": "assetproof-deployment/2",
      "chainId": 31337,
      "deploymentBlock": 1,
      "roles": {"governor": "0x...", "attestor": "0x...", "registrar": "0x...",
                "pricingAuthority": "0x..."},
      "parameters": {"governanceDelay": 86400, "rotationGrace": 600, "maxBackfill": 259200,
                     "maxGrowth": 1048576},
      "contracts": {
        "AnchorRegistry": {"address": "0x...", "block": 1, "artifactSha256": "..."},
        "DeviceRegistry": {"address": "0x...", "block": 2, "artifactSha256": "..."},
        "TariffRegistry": {"address": "0x...", "block": 3, "artifactSha256": "..."},
        "ReadingVerifier": {"address": "0x...", "block": 4, "artifactSha256": "..."}
      }
    }

``artifactSha256`` is the SHA-256 of the committed artifact file the contract was deployed
from; :meth:`chain.reader.ChainReader.verify_deployment` checks the code on chain against it,
and the role holders and parameters on chain against ``roles`` and ``parameters``: an auditor's
own copy of this file pins whom it trusts. ``ReadingVerifier`` may be missing (it holds no
privilege; :meth:`chain.writer.ChainClient.deploy_reading_verifier` adds one). Files of format
``assetproof-deployment/1`` were made before roles existed and are refused with a message
saying to redeploy.
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
from chain.types import RegistryParams, Roles

__all__ = ["DEPLOYMENT_FORMAT", "ContractDeployment", "Deployment", "read_deployment", "write_deployment"]

DEPLOYMENT_FORMAT: Final = "assetproof-deployment/2"
_FORMAT_1: Final = "assetproof-deployment/1"
_REQUIRED: Final = ("AnchorRegistry", "DeviceRegistry", "TariffRegistry")
_OPTIONAL: Final = ("ReadingVerifier",)
_NAMES: Final = _REQUIRED + _OPTIONAL
_ROLE_KEYS: Final = {
    "governor": "governor",
    "attestor": "attestor",
    "registrar": "registrar",
    "pricing_authority": "pricingAuthority",
}
_PARAMETER_KEYS: Final = {
    "governance_delay": "governanceDelay",
    "rotation_grace": "rotationGrace",
    "max_backfill": "maxBackfill",
    "max_growth": "maxGrowth",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractDeployment:
    address: str
    """Checksummed 0x address."""
    block: int
    artifact_sha256: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    chain_id: int
    roles: Roles
    """The holders when the file was written: :meth:`~chain.reader.ChainReader.verify_deployment`
    refuses a chain whose holders differ (after a governor's change, write the file anew)."""
    params: RegistryParams
    anchor_registry: ContractDeployment
    device_registry: ContractDeployment
    tariff_registry: ContractDeployment
    reading_verifier: ContractDeployment | None = None
    """None when deployed without one (add it with ``ChainClient.deploy_reading_verifier``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other top-level keys found in the file, kept when it is rewritten."""

    @property
    def attestor(self) -> str:
        """The attestor named by the file (``roles.attestor``)."""
        return self.roles.attestor

    @property
    def deployment_block(self) -> int:
        """The first block that can hold an event of these contracts (the ReadingVerifier emits
        none)."""
        return min(self.anchor_registry.block, self.device_registry.block, self.tariff_registry.block)

    def to_json(self) -> str:
        entries = (self.anchor_registry, self.device_registry, self.tariff_registry, self.reading_verifier)
        contracts = {
            name: {"address": c.address, "block": c.block, "artifactSha256": c.artifact_sha256.hex()}
            for name, c in zip(_NAMES, entries, strict=True)
            if c is not None
        }
        data = {
            **self.extra,
            "format": DEPLOYMENT_FORMAT,
            "chainId": self.chain_id,
            "deploymentBlock": self.deployment_block,
            "roles": {key: getattr(self.roles, name) for name, key in _ROLE_KEYS.items()},
            "parameters": {key: getattr(self.params, name) for name, key in _PARAMETER_KEYS.items()},
            "contracts": contracts,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Deployment:
        try:
            data = json.loads(text)
            found = data.get("format")
            if found == _FORMAT_1:
                raise DeploymentError(
                    f"this deployment file ({_FORMAT_1}) was made before roles existed: its contracts have one"
                    " operator key for everything; redeploy with `assetproof chain deploy`"
                )
            if found != DEPLOYMENT_FORMAT:
                raise DeploymentError(f"not an {DEPLOYMENT_FORMAT} file (format {found!r})")
            listed = data["contracts"]
            missing = [name for name in _REQUIRED if name not in listed]
            if missing:
                raise DeploymentError(f"the deployment file lists no {', '.join(missing)}")
            contracts = [_contract(listed[name], name) for name in _REQUIRED]
            verifier = _contract(listed[_OPTIONAL[0]], _OPTIONAL[0]) if _OPTIONAL[0] in listed else None
            roles = _object(data["roles"], "roles", _ROLE_KEYS.values())
            params = _object(data["parameters"], "parameters", _PARAMETER_KEYS.values())
            known = {"format", "chainId", "deploymentBlock", "roles", "parameters", "contracts"}
            return cls(
                chain_id=_int(data["chainId"], "chainId"),
                roles=Roles(**{name: _address(roles[key], f"roles.{key}") for name, key in _ROLE_KEYS.items()}),
                params=RegistryParams(
                    **{name: _int(params[key], f"parameters.{key}") for name, key in _PARAMETER_KEYS.items()}
                ),
                anchor_registry=contracts[0],
                device_registry=contracts[1],
                tariff_registry=contracts[2],
                reading_verifier=verifier,
                extra={k: v for k, v in data.items() if k not in known},
            )
        except DeploymentError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeploymentError(f"unreadable deployment file: {exc.__class__.__name__}: {exc}") from None


def _object(value: object, name: str, keys: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DeploymentError(f"{name} must be a JSON object")
    expected = set(keys)
    if value.keys() != expected:
        raise DeploymentError(
            f"{name} must have exactly {sorted(expected)}: missing {sorted(expected - value.keys())},"
            f" unknown {sorted(value.keys() - expected)}"
        )
    return value


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
