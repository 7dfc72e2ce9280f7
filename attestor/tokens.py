"""The token layer read for the API (issue 15): each asset's share or hashrate token named in the
deployment file's ``tokens`` section, read from the chain through :class:`chain.tokens.TokenReader`.

The API may not import ``chain``; this module is its one door to the tokens. What it serves is
a convenience copy: the chain is the source of truth for payouts (the contract caps fundings
and pays claims, whatever any page shows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from chain.deployment import Deployment, read_deployment
from chain.errors import ChainError
from chain.rpc import http_web3
from chain.token_types import Distribution, HolderBalance, ShareTokenInfo, TokensSection, tokens_section
from chain.tokens import TokenReader

__all__ = ["AssetToken", "Holding", "TokenBook", "TokenChainError"]

TokenChainError = ChainError
"""What a read of the chain raises (the node unreachable, a call refused): the API answers 503."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetToken:
    asset: str
    info: ShareTokenInfo
    settlement_symbol: str | None
    settlement_decimals: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """One account's position in one asset's token."""

    token: AssetToken
    balance: int
    claimable: int
    claimed: int
    allowed: bool


class TokenBook:
    """The tokens of the deployment file at ``deployment_path`` (re-read on each call: tokens are
    deployed after the API starts), read through ``reader_for`` (a node per deployment)."""

    def __init__(
        self,
        *,
        deployment_path: Path,
        reader_for: Callable[[Deployment], TokenReader],
        serialize: bool = False,
    ) -> None:
        self._path = deployment_path
        self._reader_for = reader_for
        # An in-process chain (eth-tester) is not safe across the server's threads; a node is.
        self._lock: AbstractContextManager[object] = threading.Lock() if serialize else nullcontext()

    @classmethod
    def over_rpc(cls, rpc_url: str, *, deployment_path: Path) -> TokenBook:
        """Over JSON-RPC at ``rpc_url``: no connection is made until a token is read."""
        web3 = http_web3(rpc_url)
        return cls(deployment_path=deployment_path, reader_for=lambda d: TokenReader(web3, deployment=d))

    def _section(self) -> tuple[Deployment | None, TokensSection]:
        if not self._path.is_file():
            return None, TokensSection()
        deployment = read_deployment(self._path)
        return deployment, tokens_section(deployment)

    def _open(self) -> tuple[TokenReader | None, TokensSection]:
        deployment, section = self._section()
        if deployment is None or not section.assets:
            # No token, no node to ask: the API answers without a chain.
            return None, section
        return self._reader_for(deployment), section

    @staticmethod
    def _token(reader: TokenReader, section: TokensSection, asset: str) -> AssetToken:
        coin = section.settlement
        return AssetToken(
            asset=asset,
            info=reader.token_info(section.token(asset).address),
            settlement_symbol=None if coin is None else coin.symbol,
            settlement_decimals=None if coin is None else coin.decimals,
        )

    def _tokens(self) -> list[AssetToken]:
        reader, section = self._open()
        if reader is None:
            return []
        return [self._token(reader, section, asset) for asset in sorted(section.assets)]

    def _token_of(self, asset: str) -> AssetToken | None:
        reader, section = self._open()
        if reader is None or asset not in section.assets:
            return None
        return self._token(reader, section, asset)

    def _holders(self, asset: str) -> list[HolderBalance] | None:
        reader, section = self._open()
        if reader is None or asset not in section.assets:
            return None
        deployed = section.token(asset)
        return reader.holders(deployed.address, from_block=deployed.block)

    def _distributions(self, asset: str) -> list[Distribution] | None:
        reader, section = self._open()
        if reader is None or asset not in section.assets:
            return None
        deployed = section.token(asset)
        return reader.distributions(deployed.address, from_block=deployed.block)

    def _holdings(self, account: str) -> list[Holding]:
        """``account``'s position in every asset's token it holds, can claim from or has claimed from."""
        reader, section = self._open()
        if reader is None:
            return []
        found = []
        for asset in sorted(section.assets):
            deployed = section.token(asset)
            balance = reader.balance_of(deployed.address, account)
            claimable = reader.claimable(deployed.address, account)
            claimed = sum(
                c.amount
                for c in reader.claims(deployed.address, from_block=deployed.block)
                if c.account.lower() == account.lower()
            )
            if balance or claimable or claimed:
                found.append(
                    Holding(
                        token=self._token(reader, section, asset),
                        balance=balance,
                        claimable=claimable,
                        claimed=claimed,
                        allowed=reader.is_allowed(deployed.address, account),
                    )
                )
        return found

    def tokens(self) -> list[AssetToken]:
        """Every asset's token, read now."""
        with self._lock:
            return self._tokens()

    def token(self, asset: str) -> AssetToken | None:
        with self._lock:
            return self._token_of(asset)

    def holders(self, asset: str) -> list[HolderBalance] | None:
        """``None``: the asset has no token."""
        with self._lock:
            return self._holders(asset)

    def distributions(self, asset: str) -> list[Distribution] | None:
        """``None``: the asset has no token."""
        with self._lock:
            return self._distributions(asset)

    def holdings(self, account: str) -> list[Holding]:
        """``account``'s position in every asset's token it holds, can claim from or has claimed from."""
        with self._lock:
            return self._holdings(account)
