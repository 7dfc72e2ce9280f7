"""Share and hashrate tokens on chain (issue 15): deploying them and the demo stablecoin,
allowlisting, issuing, transferring, funding epochs against their attested totals, claiming;
and reading holders (from ``Transfer`` events) and distributions (from ``Funded`` events).

:class:`TokenReader` needs no key; :class:`TokenClient` is a :class:`~chain.writer.ChainClient`
(one key) that also drives tokens. Every method takes the token's address (an asset's is in the
deployment file's ``tokens`` section: :func:`chain.token_types.tokens_section`). Every refusal
is a :class:`~chain.errors.ContractRevert` named after the contract's custom error:
``CapExceeded(cap, amount)``, ``EpochAlreadyFunded(epoch)``, ``EpochOutOfOrder(expected, got)``,
``EpochBeforeStart``, ``CheckpointForAnotherEpoch``, ``TotalsForAnotherAsset(expected, got)``,
``WrongCurrency``, ``NotAllowlisted(account)``, ``NothingToClaim(account)``,
``SupplyCapExceeded(maxSupply, supplyAfter)``, ``NoSupply``, the AnchorRegistry's own
(``UnknownEpoch``, ``CheckpointMismatch``, ``TotalsNotIncluded``, ``TotalsForAnotherEpoch``,
``MalformedTotals``) and OpenZeppelin's (``AccessControlUnauthorizedAccount(account,
neededRole)``, ``ERC20InsufficientBalance``, ``ERC20InsufficientAllowance``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from chain._args import as_bytes, checkpoint_args
from chain._artifacts import load_artifact
from chain._contracts import LOG_CHUNK, ContractAccess
from chain.errors import DeploymentError
from chain.reverts import edge
from chain.token_types import (
    KIND_CODES,
    ClaimEvent,
    Distribution,
    HolderBalance,
    ShareTokenInfo,
    StablecoinDeployment,
    TokenDeployment,
    TokenKind,
    TotalsProof,
    asset_key,
)
from chain.types import TxReceipt
from chain.writer import ChainClient

__all__ = ["TokenClient", "TokenReader"]

_KINDS: Final[dict[int, TokenKind]] = {code: kind for kind, code in KIND_CODES.items()}
_ZERO: Final = "0x0000000000000000000000000000000000000000"


def _checksum(address: str) -> str:
    return str(Web3.to_checksum_address(address))


class TokenReader(ContractAccess):
    """Read-only views of share tokens and the settlement token."""

    def _token(self, address: str) -> Contract:
        return self._w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact("ShareToken").abi)

    def _coin(self, address: str) -> Contract:
        return self._w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact("DemoStablecoin").abi)

    def _token_call(self, token: str, fn_name: str, *args: Any) -> Any:
        with edge():
            return self._token(token).functions[fn_name](*args).call()

    def token_info(self, token: str) -> ShareTokenInfo:
        """Everything the token declares and its distribution totals, read now."""
        call = self._token_call
        return ShareTokenInfo(
            address=_checksum(token),
            name=str(call(token, "name")),
            symbol=str(call(token, "symbol")),
            asset_key=as_bytes(call(token, "assetKey")),
            currency=as_bytes(call(token, "currency")).decode("ascii"),
            kind=_KINDS[int(call(token, "kind"))],
            investor_share_bps=int(call(token, "investorShareBps")),
            start_epoch=int(call(token, "startEpoch")),
            max_supply=int(call(token, "maxSupply")),
            total_supply=int(call(token, "totalSupply")),
            settlement=_checksum(call(token, "settlement")),
            registry=_checksum(call(token, "registry")),
            next_epoch=int(call(token, "nextEpoch")),
            cumulative_net=int(call(token, "cumulativeNet")),
            total_funded=int(call(token, "totalFunded")),
            total_claimed=int(call(token, "totalClaimed")),
            cap=int(call(token, "cap")),
            dust=int(call(token, "dust")),
        )

    def balance_of(self, token: str, account: str) -> int:
        """``account``'s balance of ``token`` (a share token or the settlement token: both ERC-20)."""
        return int(self._token_call(token, "balanceOf", _checksum(account)))

    def claimable(self, token: str, account: str) -> int:
        return int(self._token_call(token, "claimable", _checksum(account)))

    def is_allowed(self, token: str, account: str) -> bool:
        return bool(self._token_call(token, "isAllowed", _checksum(account)))

    def _events(self, token: str, event: str, *, from_block: int, to_block: int | None) -> list[Any]:
        handle = self._token(token).events[event]
        last = self.block_number() if to_block is None else to_block
        found: list[Any] = []
        for start in range(from_block, last + 1, LOG_CHUNK):
            end = min(last, start + LOG_CHUNK - 1)
            with edge():
                found.extend(handle.get_logs(from_block=start, to_block=end))
        return found

    def claims(self, token: str, *, from_block: int = 0, to_block: int | None = None) -> list[ClaimEvent]:
        return [
            ClaimEvent(
                account=_checksum(log["args"]["account"]),
                amount=int(log["args"]["amount"]),
                block_number=int(log["blockNumber"]),
                tx_hash=as_bytes(log["transactionHash"]),
            )
            for log in self._events(token, "Claimed", from_block=from_block, to_block=to_block)
        ]

    def holders(self, token: str, *, from_block: int = 0, to_block: int | None = None) -> list[HolderBalance]:
        """Every account that ever received the token (from its ``Transfer`` events), with its
        balance (checked against ``balanceOf``), what it can claim and has claimed; sorted by
        balance, largest first. Accounts whose balance is now 0 but that can still claim stay."""
        balances: dict[str, int] = {}
        for log in self._events(token, "Transfer", from_block=from_block, to_block=to_block):
            sender, recipient, value = (
                _checksum(log["args"]["from"]),
                _checksum(log["args"]["to"]),
                log["args"]["value"],
            )
            if sender != _ZERO:
                balances[sender] = balances.get(sender, 0) - int(value)
            balances[recipient] = balances.get(recipient, 0) + int(value)
        claimed: dict[str, int] = {}
        for claim in self.claims(token, from_block=from_block, to_block=to_block):
            claimed[claim.account] = claimed.get(claim.account, 0) + claim.amount
        found = []
        for account, balance in balances.items():
            if to_block is None and balance != self.balance_of(token, account):
                raise DeploymentError(f"the Transfer events of {token} disagree with balanceOf({account})")
            owed = self.claimable(token, account)
            if balance or owed or account in claimed:
                found.append(
                    HolderBalance(
                        address=account,
                        balance=balance,
                        claimable=owed,
                        claimed=claimed.get(account, 0),
                        allowed=self.is_allowed(token, account),
                    )
                )
        return sorted(found, key=lambda h: (-h.balance, h.address))

    def distributions(self, token: str, *, from_block: int = 0, to_block: int | None = None) -> list[Distribution]:
        """Each funded epoch in order: attested net, cap, funded, and the part claimed (claims
        attributed to the oldest funding first)."""
        logs = self._events(token, "Funded", from_block=from_block, to_block=to_block)
        unpaid_claims = sum(c.amount for c in self.claims(token, from_block=from_block, to_block=to_block))
        found = []
        for log in sorted(logs, key=lambda entry: int(entry["args"]["epoch"])):
            funded = int(log["args"]["amount"])
            paid = min(funded, unpaid_claims)
            unpaid_claims -= paid
            found.append(
                Distribution(
                    epoch=int(log["args"]["epoch"]),
                    net=int(log["args"]["net"]),
                    cap=int(log["args"]["cap"]),
                    funded=funded,
                    cumulative_net=int(log["args"]["cumulativeNet"]),
                    claimed=paid,
                    block_number=int(log["blockNumber"]),
                    tx_hash=as_bytes(log["transactionHash"]),
                )
            )
        return found

    def cap_for(self, token: str, proofs: Sequence[TotalsProof]) -> list[int]:
        """The most each epoch of ``proofs`` could be funded with if each before it is funded with
        its own most (what ``assetproof distribute`` funds by default); computed here from the
        token's totals and the proofs' declared nets, which the contract checks when funding."""
        info = self.token_info(token)
        cumulative, funded, caps = info.cumulative_net, info.total_funded, []
        for proof in proofs:
            cumulative += proof.net
            entitled = cumulative * info.investor_share_bps // 10_000 if cumulative > 0 else 0
            cap = max(entitled - funded, 0)
            caps.append(cap)
            funded += cap
        return caps


class TokenClient(ChainClient, TokenReader):
    """A :class:`ChainClient` that also deploys and drives tokens, as whichever role its key
    holds on each: the stablecoin's owner, a token's issuer or compliance officer, a holder."""

    def _deploy_raw(self, name: str, *args: Any) -> tuple[str, int]:
        artifact = load_artifact(name)
        factory = self._w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx_hash = self._send(factory.constructor(*args))
        receipt = self.wait(tx_hash)
        with edge():
            address = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))["contractAddress"]
        if address is None:
            raise DeploymentError(f"{name} deployment has no contract address")
        return _checksum(address), receipt.block_number

    def deploy_stablecoin(
        self, *, name: str = "Hong Kong Dollar (assetproof demo)", symbol: str = "HKD", decimals: int = 2
    ) -> StablecoinDeployment:
        """A settlement token for demos and tests, owned (and minted) by this client's key."""
        address, block = self._deploy_raw("DemoStablecoin", name, symbol, decimals, self.address)
        return StablecoinDeployment(address=address, block=block, symbol=symbol, decimals=decimals)

    def deploy_share_token(
        self,
        *,
        asset: str,
        kind: TokenKind,
        investor_share_bps: int,
        supply: int,
        settlement: str,
        currency: str = "HKD",
        start_epoch: int = 0,
        name: str | None = None,
        symbol: str | None = None,
        issuer: str | None = None,
        compliance: str | None = None,
    ) -> TokenDeployment:
        """Deploy ``asset``'s token over the attached deployment's AnchorRegistry.

        ``supply`` is the most tokens there will ever be: the number of shares, or for a
        ``hashrate`` token the pod's registered hashrate in TH/s (one token per TH/s).
        ``issuer`` (mints, funds) and ``compliance`` (keeps the allowlist) default to this
        client's address. Refusals: ``BadInvestorShare(bps)``, ``BadMaxSupply(maxSupply)``,
        ``BadKind``, ``ZeroConfigAddress(field)``."""
        if kind not in KIND_CODES:
            raise ValueError(f"kind must be share or hashrate, not {kind!r}")
        code = currency.encode("ascii")
        if len(code) != 3:
            raise ValueError(f"currency must be a 3-letter code, not {currency!r}")
        label = "hashrate (TH/s)" if kind == "hashrate" else "shares"
        config = (
            self.deployment.anchor_registry.address,
            _checksum(settlement),
            asset_key(asset),
            code,
            KIND_CODES[kind],
            investor_share_bps,
            start_epoch,
            supply,
            _checksum(issuer or self.address),
            _checksum(compliance or self.address),
        )
        address, block = self._deploy_raw(
            "ShareToken",
            name or f"{asset} {label}",
            symbol or ("THS" if kind == "hashrate" else "SHR"),
            config,
        )
        return TokenDeployment(
            address=address,
            block=block,
            kind=kind,
            investor_share_bps=investor_share_bps,
            start_epoch=start_epoch,
            max_supply=supply,
        )

    def _token_tx(self, token: str, fn_name: str, *args: Any) -> TxReceipt:
        return self.wait(self._send(self._token(token).functions[fn_name](*args)))

    def mint_stablecoin(self, coin: str, *, to: str, amount: int) -> TxReceipt:
        """Mint demo stablecoins (the coin's owner only: ``OwnableUnauthorizedAccount``)."""
        return self.wait(self._send(self._coin(coin).functions.mint(_checksum(to), amount)))

    def approve(self, coin: str, *, spender: str, amount: int) -> TxReceipt:
        return self.wait(self._send(self._coin(coin).functions.approve(_checksum(spender), amount)))

    def allow(self, token: str, account: str, *, allowed: bool = True) -> TxReceipt:
        """Put ``account`` on ``token``'s allowlist, or take it off (the compliance role)."""
        return self._token_tx(token, "setAllowed", _checksum(account), allowed)

    def allow_many(self, token: str, accounts: Sequence[str]) -> list[TxReceipt]:
        """Allowlist many accounts, the transactions sent back to back and then awaited."""
        return self._pipelined(token, "setAllowed", [(_checksum(a), True) for a in accounts])

    def issue(self, token: str, *, to: str, amount: int) -> TxReceipt:
        """Mint ``amount`` tokens to ``to`` (allowlisted; the issuer role)."""
        return self._token_tx(token, "issue", _checksum(to), amount)

    def issue_many(self, token: str, amounts: Sequence[tuple[str, int]]) -> list[TxReceipt]:
        return self._pipelined(token, "issue", [(_checksum(a), n) for a, n in amounts])

    def _pipelined(self, token: str, fn_name: str, rows: Sequence[tuple[Any, ...]]) -> list[TxReceipt]:
        with edge():
            nonce = self._w3.eth.get_transaction_count(self._account.address, "pending")
        fn = self._token(token).functions[fn_name]
        hashes = [self._send(fn(*row), nonce=nonce + i) for i, row in enumerate(rows)]
        return [self.wait(tx_hash) for tx_hash in hashes]

    def transfer(self, token: str, *, to: str, amount: int) -> TxReceipt:
        """Transfer from this client's account (both ends allowlisted: ``NotAllowlisted``)."""
        return self._token_tx(token, "transfer", _checksum(to), amount)

    def fund_epoch(self, token: str, *, proof: TotalsProof, amount: int, epoch: int | None = None) -> TxReceipt:
        """Fund ``proof.epoch`` (or ``epoch``: tests name another to see it refused) with
        ``amount`` (approve the settlement first: see :meth:`fund_epochs`)."""
        return self._token_tx(
            token,
            "fund",
            proof.epoch if epoch is None else epoch,
            amount,
            checkpoint_args(proof.checkpoint),
            proof.totals,
            proof.index,
            proof.count,
            list(proof.path),
        )

    def fund_epochs(self, token: str, proofs: Sequence[TotalsProof], amounts: Sequence[int]) -> list[TxReceipt]:
        """Approve the sum of ``amounts`` of the token's settlement coin, then fund each epoch
        of ``proofs`` in order with its amount. Stops at the first refusal (its revert raised);
        the epochs before it stay funded."""
        if len(proofs) != len(amounts):
            raise ValueError("one amount per proof")
        total = sum(amounts)
        if total:
            settlement = _checksum(self._token_call(token, "settlement"))
            self.approve(settlement, spender=token, amount=total)
        return [self.fund_epoch(token, proof=p, amount=a) for p, a in zip(proofs, amounts, strict=True)]

    def claim(self, token: str) -> tuple[int, TxReceipt]:
        """Claim everything this account is owed; the amount paid and the receipt
        (``NothingToClaim(account)`` when it is owed nothing)."""
        receipt = self._token_tx(token, "claim")
        with edge():
            raw = self._w3.eth.get_transaction_receipt(HexBytes(receipt.tx_hash))
            # The settlement token's Transfer is in the same receipt: not a Claimed, skipped.
            events = self._token(token).events.Claimed().process_receipt(raw, errors=DISCARD)
        return sum(int(event["args"]["amount"]) for event in events), receipt
