"""The chain with an account: deploying, anchoring (the attestor), managing devices (the
registrar), publishing tariffs (the pricing authority) and changing role holders (the governor).
One client holds one key: the contract refuses a call from anyone but the role's holder."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound

from chain._args import as_bytes, require_hashes
from chain._artifacts import load_artifact
from chain.deployment import ContractDeployment, Deployment
from chain.errors import (
    ChainError,
    ConfirmationTimeoutError,
    ContractRevert,
    DeploymentError,
    RegistrationConflictError,
    TransactionFailedError,
)
from chain.ids import ALG_CODES, KIND_CODES, ROLE_IDS, asset_id_hash, cert_hash_to_chain, device_id_hash, key_to_chain
from chain.reader import ChainReader
from chain.reverts import edge
from chain.types import (
    AnchorReceipt,
    Checkpoint,
    ContractName,
    DeployParams,
    DeviceRegistration,
    GovernedContract,
    RoleName,
    Roles,
    TxReceipt,
)
from protocol.cashflow import Tariff, tariff_bytes
from protocol.signing import parse_algorithm

__all__ = ["ChainClient"]

_POLL_S: Final = 0.01
_DEFAULT_PARAMS: Final = DeployParams()


class ChainClient(ChainReader):
    """A :class:`ChainReader` with an account: deploys the contracts, anchors checkpoints
    (as the attestor), registers, rotates and revokes device keys (as the registrar), publishes
    tariffs (as the pricing authority), proposes role changes (as the governor).

    ``account`` is a private key (32 bytes or 0x hex) or an ``eth_account`` local account.
    Each transaction waits for its receipt and then for ``confirmations`` more blocks.
    """

    def __init__(
        self,
        web3: Web3,
        *,
        account: bytes | str | LocalAccount,
        deployment: Deployment | None = None,
        confirmations: int = 0,
        timeout: float = 120.0,
    ) -> None:
        super().__init__(web3, deployment=deployment)
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        self._account: LocalAccount = account if isinstance(account, LocalAccount) else Account.from_key(account)
        self.confirmations = confirmations
        self.timeout = timeout
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def account(self) -> LocalAccount:
        return self._account

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.chain_id()
        return self._chain_id

    # plumbing

    def _send(self, fn: Any, *, nonce: int | None = None) -> bytes:
        """Build (estimating gas, which runs the call: a revert raises here), sign and send."""
        with edge():
            if nonce is None:
                nonce = self._w3.eth.get_transaction_count(self._account.address, "pending")
            params = {"from": self._account.address, "nonce": nonce, "chainId": self._chain()}
            tx: dict[str, Any] = dict(fn.build_transaction(params))
            tx["gas"] = int(tx["gas"]) * 6 // 5 + 10_000  # headroom; unused gas is not charged
            tx.pop("from", None)
            signed = self._account.sign_transaction(tx)
            return bytes(self._w3.eth.send_raw_transaction(signed.raw_transaction))

    def wait(self, tx_hash: bytes, *, timeout: float | None = None) -> TxReceipt:
        """Wait for the receipt of ``tx_hash`` and ``confirmations`` blocks on top of it.

        A reverted transaction raises :class:`ContractRevert` (replayed to decode the error)
        or :class:`TransactionFailedError`; no receipt in time raises
        :class:`ConfirmationTimeoutError`.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with edge(tx_hash=tx_hash):
            try:
                receipt = self._w3.eth.wait_for_transaction_receipt(
                    HexBytes(tx_hash), timeout=max(limit, 0.0), poll_latency=_POLL_S
                )
            except TimeExhausted:
                raise ConfirmationTimeoutError(f"no receipt for {Web3.to_hex(tx_hash)} within {limit:.1f} s") from None
            if receipt["status"] != 1:
                raise self._replay_failure(tx_hash, receipt)
            block_number = int(receipt["blockNumber"])
            while self.confirmations and self._w3.eth.block_number < block_number + self.confirmations:
                if time.monotonic() > deadline:
                    raise ConfirmationTimeoutError(
                        f"{Web3.to_hex(tx_hash)} has fewer than {self.confirmations} confirmations after {limit:.1f} s"
                    )
                time.sleep(_POLL_S * 5)
            if self.confirmations:
                # A reorganisation may have moved or dropped it meanwhile.
                try:
                    again = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
                except TransactionNotFound:
                    raise ConfirmationTimeoutError(f"{Web3.to_hex(tx_hash)} left the chain while confirming") from None
                if again["blockHash"] != receipt["blockHash"]:
                    return self.wait(tx_hash, timeout=max(deadline - time.monotonic(), 0.0))
            return TxReceipt(tx_hash=tx_hash, block_number=block_number, gas_used=int(receipt["gasUsed"]))

    def _replay_failure(self, tx_hash: bytes, receipt: Any) -> ChainError:
        tx = self._w3.eth.get_transaction(HexBytes(tx_hash))
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"], "value": tx["value"]}
        try:
            with edge(tx_hash=tx_hash):
                self._w3.eth.call(call, block_identifier=int(receipt["blockNumber"]) - 1)  # type: ignore[arg-type]
        except ContractRevert as revert:
            return revert
        except ChainError:
            pass
        return TransactionFailedError(
            f"transaction {Web3.to_hex(tx_hash)} reverted in block {receipt['blockNumber']}", tx_hash=tx_hash
        )

    def transact(self, contract: ContractName, function: str, *args: Any) -> TxReceipt:
        """Call any function of a deployed contract as a transaction and wait for it (for
        tooling and tests; the typed methods below are the API)."""
        return self.wait(self._send(self._contract(contract).functions[function](*args)))

    # deployment

    def deploy(self, *, roles: Roles | None = None, params: DeployParams = _DEFAULT_PARAMS) -> Deployment:
        """Deploy the AnchorRegistry, the DeviceRegistry, the TariffRegistry and the
        ReadingVerifier over the first two, attach them to this client, and return the deployment
        (write it with :func:`chain.deployment.write_deployment`).

        ``roles`` names the holder of each role; without it every role is this account's, a
        convenience for development and tests only: a real deployment gives each role its own
        key, none of them the operator's but the attestor. ``params`` are the contracts'
        immutables (see :class:`DeployParams` for the defaults and why)."""
        if roles is None:
            me = self.address
            roles = Roles(governor=me, attestor=me, registrar=me, pricing_authority=me)
        roles = Roles(**{name: Web3.to_checksum_address(roles.holder(name)) for name in _ROLE_FIELDS})
        anchor_registry = self._deploy_contract(
            "AnchorRegistry", roles.attestor, roles.governor, params.governance_delay, params.max_growth
        )
        device_registry = self._deploy_contract(
            "DeviceRegistry",
            roles.registrar,
            roles.governor,
            params.governance_delay,
            params.rotation_grace,
            params.max_backfill,
        )
        tariff_registry = self._deploy_contract(
            "TariffRegistry", roles.pricing_authority, roles.governor, params.governance_delay
        )
        deployment = Deployment(
            chain_id=self._chain(),
            roles=roles,
            params=params.registry_params(),
            anchor_registry=anchor_registry,
            device_registry=device_registry,
            tariff_registry=tariff_registry,
            reading_verifier=self._deploy_contract("ReadingVerifier", anchor_registry.address, device_registry.address),
        )
        self._attach(deployment)
        return deployment

    def deploy_reading_verifier(self) -> Deployment:
        """Deploy a ReadingVerifier over the attached deployment's registries (one made before
        the verifier existed), attach it, and return the deployment with it (write that with
        :func:`chain.deployment.write_deployment`). Anyone may: it holds no privilege."""
        current = self.deployment
        verifier = self._deploy_contract(
            "ReadingVerifier", current.anchor_registry.address, current.device_registry.address
        )
        deployment = replace(current, reading_verifier=verifier)
        self._attach(deployment)
        return deployment

    def _deploy_contract(self, name: ContractName, *args: Any) -> ContractDeployment:
        artifact = load_artifact(name)
        factory = self._w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx_hash = self._send(factory.constructor(*args))
        receipt = self.wait(tx_hash)
        with edge():
            address = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))["contractAddress"]
        if address is None:
            raise DeploymentError(f"{name} deployment has no contract address")
        return ContractDeployment(
            address=Web3.to_checksum_address(address), block=receipt.block_number, artifact_sha256=artifact.sha256
        )

    # anchoring

    def _anchor_fn(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        assets_root: bytes,
        proof: Sequence[bytes],
        previous: Checkpoint | None,
    ) -> Any:
        require_hashes(root=root, meta_hash=meta_hash, assets_root=assets_root, proof=proof)
        fields = self._previous_fields(epoch, previous)
        return self._contract("AnchorRegistry").functions.anchor(
            epoch, tree_size, root, meta_hash, assets_root, fields, list(proof)
        )

    def _previous_fields(self, epoch: int, previous: Checkpoint | None) -> tuple[int, bytes, bytes, bytes, int, int]:
        """The ``Previous`` argument of ``anchor``: the checkpoint of ``epoch - 1`` (read and
        verified with :meth:`checkpoint` unless given), all zero for epoch 0 or when ``epoch - 1``
        is not anchored (the contract then refuses the epoch with ``WrongEpoch``)."""
        if previous is None and epoch > 0:
            try:
                previous = self.checkpoint(epoch - 1)
            except ContractRevert as revert:
                if revert.name != "UnknownEpoch":
                    raise
        if epoch == 0 and previous is not None:
            raise ValueError("epoch 0 has no previous checkpoint")
        if previous is None:
            return (0, bytes(32), bytes(32), bytes(32), 0, 0)
        if previous.epoch != epoch - 1:
            raise ValueError(f"the previous checkpoint of epoch {epoch} is epoch {epoch - 1}, not {previous.epoch}")
        require_hashes(root=previous.root, meta_hash=previous.meta_hash, assets_root=previous.assets_root, proof=())
        return (
            previous.tree_size,
            previous.root,
            previous.meta_hash,
            previous.assets_root,
            previous.block_number,
            previous.timestamp,
        )

    def check_anchor(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        assets_root: bytes,
        proof: Sequence[bytes],
        previous: Checkpoint | None = None,
    ) -> None:
        """Run the anchor as a call (nothing is sent): return if the contract would accept it,
        raise its :class:`ContractRevert` if not. ``previous`` as for :meth:`send_anchor`."""
        fn = self._anchor_fn(
            epoch=epoch,
            tree_size=tree_size,
            root=root,
            meta_hash=meta_hash,
            assets_root=assets_root,
            proof=proof,
            previous=previous,
        )
        with edge():
            fn.call({"from": self._account.address})

    def send_anchor(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        assets_root: bytes,
        proof: Sequence[bytes],
        nonce: int | None = None,
        previous: Checkpoint | None = None,
    ) -> bytes:
        """Send the anchor transaction of ``epoch`` and return its hash without waiting.

        The contract keeps no latest state: ``anchor`` takes the checkpoint of ``epoch - 1``
        and checks it against that epoch's commitment. It is read from the chain with
        :meth:`checkpoint` unless ``previous`` gives it (the caller then vouches for nothing:
        a wrong one is refused with ``PreviousCheckpointMismatch``).

        A checkpoint the contract would refuse raises :class:`ContractRevert` here, before
        anything is sent (the gas estimate runs the call).
        """
        fn = self._anchor_fn(
            epoch=epoch,
            tree_size=tree_size,
            root=root,
            meta_hash=meta_hash,
            assets_root=assets_root,
            proof=proof,
            previous=previous,
        )
        return self._send(fn, nonce=nonce)

    def wait_anchor(self, tx_hash: bytes, *, timeout: float | None = None) -> AnchorReceipt:
        """Wait for an anchor sent by :meth:`send_anchor` (possibly before a restart)."""
        return self.wait(tx_hash, timeout=timeout)

    def anchor(
        self,
        *,
        epoch: int,
        tree_size: int,
        root: bytes,
        meta_hash: bytes,
        assets_root: bytes,
        proof: Sequence[bytes],
        previous: Checkpoint | None = None,
    ) -> AnchorReceipt:
        """Anchor the checkpoint of ``epoch`` and wait until it is confirmed (``previous`` as
        for :meth:`send_anchor`)."""
        return self.wait_anchor(
            self.send_anchor(
                epoch=epoch,
                tree_size=tree_size,
                root=root,
                meta_hash=meta_hash,
                assets_root=assets_root,
                proof=proof,
                previous=previous,
            )
        )

    # devices (the registrar)

    def register_devices(
        self, devices: Iterable[DeviceRegistration], *, batch_size: int = 100, skip_registered: bool = True
    ) -> list[TxReceipt]:
        """Register devices with ``registerMany``, ``batch_size`` per transaction.

        With ``skip_registered`` a device already on chain exactly as given (asset, algorithm,
        current key, profile) is left out (so a provisioning run that stopped half way can be run
        again); one registered differently raises :class:`RegistrationConflictError`.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        rows = [(_registration_row(d), d) for d in devices]
        if skip_registered:
            rows = [(row, device) for row, device in rows if self._new(row, device)]
        receipts = []
        for start in range(0, len(rows), batch_size):
            batch = [row for row, _ in rows[start : start + batch_size]]
            receipts.append(self.wait(self._send(self._contract("DeviceRegistry").functions.registerMany(batch))))
        return receipts

    def _new(self, row: _Row, device: DeviceRegistration) -> bool:
        hashed, asset, alg, key = row[:4]
        if self._call("DeviceRegistry", "keyCount", hashed) == 0:
            return True
        info = self.device(device.device_id)
        if info.revoked:
            raise RegistrationConflictError(f"device {device.device_id} is already registered on chain, and revoked")
        current: bytes = as_bytes(self._call("DeviceRegistry", "keyAt", hashed, info.key_count - 1)[0])
        differs = [
            name
            for name, same in (
                ("asset", info.asset_id == asset),
                ("algorithm", ALG_CODES[info.alg] == alg),
                ("key", current == key),
                ("profile", self.device_profile(device.device_id) == device.profile),
            )
            if not same
        ]
        if differs:
            raise RegistrationConflictError(
                f"device {device.device_id} is already registered on chain with another {', '.join(differs)}"
            )
        return False

    def register(self, device: DeviceRegistration) -> TxReceipt:
        """Register one device (``register``); reverts ``AlreadyRegistered`` if it is."""
        return self.transact("DeviceRegistry", "register", _registration_row(device))

    def rotate(self, *, device_id: str, public_key: bytes, cert_hash: bytes = b"") -> TxReceipt:
        """Replace the device's key from the next block on; ``cert_hash`` is the SHA-256 of the
        new key's manufacturer certificate (``b""``: none)."""
        alg = self.device(device_id).alg
        return self.transact(
            "DeviceRegistry",
            "rotate",
            device_id_hash(device_id),
            key_to_chain(alg, public_key),
            cert_hash_to_chain(cert_hash),
        )

    def revoke(self, *, device_id: str) -> TxReceipt:
        """Revoke the device for good from the next block on."""
        return self.transact("DeviceRegistry", "revoke", device_id_hash(device_id))

    # tariffs (the pricing authority)

    def publish_tariff(self, tariff: Tariff, *, effective_from: int) -> TxReceipt:
        """Publish ``tariff`` (its canonical bytes, :func:`protocol.cashflow.tariff_bytes`) in
        force from block time ``effective_from`` (seconds). The first tariff may take effect at
        any time; every later one no earlier than its own block and after the one before
        (``RetroactiveTariff``, ``NotAfterPrevious``)."""
        return self.transact("TariffRegistry", "publish", tariff_bytes(tariff), effective_from)

    # roles (the governor; execute_role: anyone)

    def propose_role(self, *, contract: GovernedContract, role: RoleName, account: str) -> TxReceipt:
        """Propose ``account`` as ``role``'s next holder on ``contract``; it can take effect after
        the governance delay (:meth:`execute_role`). Governor only."""
        return self.transact(contract, "proposeRole", ROLE_IDS[role], Web3.to_checksum_address(account))

    def cancel_role(self, *, contract: GovernedContract, role: RoleName) -> TxReceipt:
        """Withdraw the change pending for ``role`` on ``contract``. Governor only."""
        return self.transact(contract, "cancelRole", ROLE_IDS[role])

    def execute_role(self, *, contract: GovernedContract, role: RoleName) -> TxReceipt:
        """Put the pending holder of ``role`` on ``contract`` in place, once its delay has passed
        (``ChangeNotDue`` before). Anyone may."""
        return self.transact(contract, "executeRole", ROLE_IDS[role])


_Row = tuple[bytes, bytes, int, bytes, int, int, int, int, bytes]
"""``DeviceRegistry.Registration``: deviceId, asset, alg, key, kind, windowS, ratedPowerW,
ratedHashrateGhs, certHash."""
_ROLE_FIELDS: Final[tuple[RoleName, ...]] = ("governor", "attestor", "registrar", "pricing_authority")


def _registration_row(device: DeviceRegistration) -> _Row:
    alg = parse_algorithm(device.alg)
    profile = device.profile
    return (
        device_id_hash(device.device_id),
        asset_id_hash(device.asset),
        ALG_CODES[alg],
        key_to_chain(alg, device.public_key),
        KIND_CODES[profile.kind],
        profile.window_s,
        profile.rated_power_w,
        profile.rated_hashrate_ghs,
        cert_hash_to_chain(device.cert_hash),
    )
