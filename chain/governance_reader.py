"""Reading who holds each role, the changes the governor proposed, and the deployment's parameters."""

from __future__ import annotations

from typing import Any, Final

from web3 import Web3

from chain._args import as_bytes
from chain._contracts import ContractAccess
from chain.errors import DeploymentError, GovernorSplitError
from chain.ids import ROLE_IDS, ROLE_NAMES
from chain.types import (
    GOVERNED_CONTRACTS,
    ROLE_CONTRACTS,
    GovernedContract,
    PendingRoleChange,
    RegistryParams,
    RoleEvent,
    RoleEventKind,
    RoleName,
    Roles,
)

__all__ = ["GovernanceReader"]

_HOLDER_GETTERS: Final[dict[RoleName, tuple[GovernedContract, str]]] = {
    "attestor": ("AnchorRegistry", "attestor"),
    "registrar": ("DeviceRegistry", "registrar"),
    "pricing_authority": ("TariffRegistry", "pricingAuthority"),
}
_ROLE_EVENTS: Final = {
    "RoleChangeProposed": RoleEventKind.PROPOSED,
    "RoleChangeCancelled": RoleEventKind.CANCELLED,
    "RoleChanged": RoleEventKind.CHANGED,
}


class GovernanceReader(ContractAccess):
    """Roles and parameters as the contracts hold them (not as any file says)."""

    def governors(self) -> dict[GovernedContract, str]:
        """Each governed contract's governor (checksummed)."""
        return {name: self._address(self._call(name, "governor")) for name in GOVERNED_CONTRACTS}

    def roles(self) -> Roles:
        """Who holds each role now. Raises :class:`GovernorSplitError` when the contracts name
        different governors (a governor change executed on some of them only)."""
        governors = self.governors()
        if len(set(governors.values())) != 1:
            raise GovernorSplitError(governors)
        holders = {role: self._address(self._call(name, getter)) for role, (name, getter) in _HOLDER_GETTERS.items()}
        return Roles(governor=governors["AnchorRegistry"], **holders)

    def registry_params(self) -> RegistryParams:
        """The deployment's parameters, read from the contracts' immutables.
        :class:`DeploymentError` when the contracts disagree on the governance delay. Immutables:
        read once per reader."""
        if self._registry_params is not None:
            return self._registry_params
        delays = {name: int(self._call(name, "governanceDelay")) for name in GOVERNED_CONTRACTS}
        if len(set(delays.values())) != 1:
            shown = ", ".join(f"{name} {delay} s" for name, delay in delays.items())
            raise DeploymentError(f"the contracts have different governance delays: {shown}")
        params = RegistryParams(
            governance_delay=delays["AnchorRegistry"],
            rotation_grace=int(self._call("DeviceRegistry", "rotationGrace")),
            max_backfill=int(self._call("DeviceRegistry", "maxBackfill")),
            max_growth=int(self._call("AnchorRegistry", "maxGrowth")),
        )
        self._registry_params = params
        return params

    def pending_role_changes(self) -> list[PendingRoleChange]:
        """Every role change proposed and neither executed nor cancelled, contract by contract."""
        pending = []
        for role, contracts in ROLE_CONTRACTS.items():
            for name in contracts:
                account, eta = self._call(name, "pendingChange", ROLE_IDS[role])
                if int(account, 16) != 0:
                    pending.append(PendingRoleChange(contract=name, role=role, account=self._address(account), eta=eta))
        return pending

    def role_events(self, *, from_block: int | None = None, to_block: int | None = None) -> list[RoleEvent]:
        """Every role change proposed, cancelled or made in ``from_block..to_block`` (inclusive;
        defaults: the deployment block and the latest block), in chain order, with its block's
        time. The constructors' initial holders are ``changed`` events from the zero address."""
        first = self.deployment.deployment_block if from_block is None else from_block
        last = self.block_number() if to_block is None else to_block
        found: list[tuple[GovernedContract, str, Any]] = [
            (name, event, log)
            for name in GOVERNED_CONTRACTS
            for event in _ROLE_EVENTS
            for log in self._logs(name, event, from_block=first, to_block=last)
        ]
        times = self._timestamps(log["blockNumber"] for _, _, log in found)
        events = []
        for name, event, log in found:
            args = log["args"]
            kind = _ROLE_EVENTS[event]
            events.append(
                RoleEvent(
                    contract=name,
                    role=ROLE_NAMES[as_bytes(args["role"])],
                    kind=kind,
                    account=self._address(args["account"]),
                    previous=self._address(args["previous"]) if kind is RoleEventKind.CHANGED else None,
                    eta=int(args["eta"]) if kind is RoleEventKind.PROPOSED else None,
                    block_number=int(log["blockNumber"]),
                    timestamp=times[int(log["blockNumber"])],
                    log_index=int(log["logIndex"]),
                )
            )
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return events

    @staticmethod
    def _address(value: Any) -> str:
        return str(Web3.to_checksum_address(value))
