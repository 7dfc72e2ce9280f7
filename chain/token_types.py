"""The values of the token layer (issue 15): share and hashrate tokens, their distributions and
holders, a totals proof to fund an epoch with, and the deployment file's ``tokens`` section.

Nothing here talks to a node. Amounts are integers in the settlement token's minor units (HKD
cents for the demo stablecoin); token balances are whole tokens (shares, or TH/s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from chain.deployment import Deployment
from chain.errors import DeploymentError
from chain.types import Checkpoint
from protocol.asset_totals import AssetTotalsProof, asset_key

__all__ = [
    "KIND_CODES",
    "TOKENS_KEY",
    "ClaimEvent",
    "Distribution",
    "HolderBalance",
    "ShareTokenInfo",
    "StablecoinDeployment",
    "TokenDeployment",
    "TokenKind",
    "TokensSection",
    "TotalsProof",
    "asset_key",
    "tokens_section",
    "with_stablecoin",
    "with_token",
]

TokenKind = Literal["share", "hashrate"]
KIND_CODES: Final[dict[TokenKind, int]] = {"share": 0, "hashrate": 1}
"""``ShareToken.kind``: KIND_SHARE 0, KIND_HASHRATE 1."""
TOKENS_KEY: Final = "tokens"
"""The deployment file's key for the tokens (an extra top-level key: readers of
``assetproof-deployment/2`` that know nothing of tokens keep it as is)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TotalsProof:
    """One asset's totals for one epoch and their inclusion proof under the assets root of the
    anchored checkpoint: what ``ShareToken.fund`` checks through the AnchorRegistry."""

    checkpoint: Checkpoint
    totals: bytes
    """The 83-byte encoding (assetKey, epoch, readings, energy, revenue, cost, net, currency)."""
    index: int
    count: int
    path: Sequence[bytes] = ()

    @classmethod
    def of(cls, checkpoint: Checkpoint, proof: AssetTotalsProof) -> TotalsProof:
        """From the attestor's proof of an asset's leaf (``protocol.asset_totals.totals_proof``)
        and the anchored checkpoint of its epoch."""
        return cls(checkpoint=checkpoint, totals=proof.encoded, index=proof.index, count=proof.count, path=proof.proof)

    @property
    def epoch(self) -> int:
        return self.checkpoint.epoch

    @property
    def net(self) -> int:
        """The net (int64) the totals declare, read from the encoding (unchecked)."""
        return int.from_bytes(self.totals[72:80], "big", signed=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareTokenInfo:
    address: str
    name: str
    symbol: str
    asset_key: bytes
    currency: str
    kind: TokenKind
    investor_share_bps: int
    start_epoch: int
    max_supply: int
    """For a hashrate token: the pod's registered hashrate in TH/s."""
    total_supply: int
    settlement: str
    registry: str
    next_epoch: int
    cumulative_net: int
    total_funded: int
    total_claimed: int
    cap: int
    """What could be funded now without a new epoch's totals."""
    dust: int
    """Funded but claimable by nobody (rounding); stays in the contract."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """One funded epoch, from its ``Funded`` event."""

    epoch: int
    net: int
    """The asset's attested net in the epoch (minor units; may be negative)."""
    cap: int
    """The most the issuer could have funded for it."""
    funded: int
    cumulative_net: int
    claimed: int
    """The part of ``funded`` claimed so far, claims taken as paying the oldest funding first
    (claims are not per epoch on chain: a holder claims everything it is owed at once)."""
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimEvent:
    account: str
    amount: int
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class HolderBalance:
    address: str
    balance: int
    claimable: int
    claimed: int
    allowed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenDeployment:
    address: str
    block: int
    kind: TokenKind
    investor_share_bps: int
    start_epoch: int
    max_supply: int

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "block": self.block,
            "kind": self.kind,
            "investorShareBps": self.investor_share_bps,
            "startEpoch": self.start_epoch,
            "maxSupply": self.max_supply,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenDeployment:
        kind = data["kind"]
        if kind not in KIND_CODES:
            raise DeploymentError(f"tokens: unknown kind {kind!r}")
        return cls(
            address=str(data["address"]),
            block=int(data["block"]),
            kind=kind,
            investor_share_bps=int(data["investorShareBps"]),
            start_epoch=int(data["startEpoch"]),
            max_supply=int(data["maxSupply"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StablecoinDeployment:
    address: str
    block: int
    symbol: str
    decimals: int

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "block": self.block, "symbol": self.symbol, "decimals": self.decimals}


@dataclass(frozen=True, slots=True, kw_only=True)
class TokensSection:
    """``deployment["tokens"]``: the settlement token and each asset's token by asset name."""

    settlement: StablecoinDeployment | None = None
    assets: Mapping[str, TokenDeployment] = field(default_factory=dict)

    def token(self, asset: str) -> TokenDeployment:
        try:
            return self.assets[asset]
        except KeyError:
            raise DeploymentError(f"the deployment has no token for asset {asset!r}") from None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"assets": {name: t.to_json() for name, t in sorted(self.assets.items())}}
        if self.settlement is not None:
            data["settlement"] = self.settlement.to_json()
        return data


def tokens_section(deployment: Deployment) -> TokensSection:
    """The deployment file's tokens (empty when it has none)."""
    raw = deployment.extra.get(TOKENS_KEY)
    if raw is None:
        return TokensSection()
    try:
        settlement = raw.get("settlement")
        return TokensSection(
            settlement=None
            if settlement is None
            else StablecoinDeployment(
                address=str(settlement["address"]),
                block=int(settlement["block"]),
                symbol=str(settlement["symbol"]),
                decimals=int(settlement["decimals"]),
            ),
            assets={str(name): TokenDeployment.from_json(t) for name, t in raw.get("assets", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DeploymentError(f"unreadable tokens section: {exc.__class__.__name__}: {exc}") from None


def _with_section(deployment: Deployment, section: TokensSection) -> Deployment:
    return replace(deployment, extra={**deployment.extra, TOKENS_KEY: section.to_json()})


def with_token(deployment: Deployment, asset: str, token: TokenDeployment) -> Deployment:
    """``deployment`` with ``token`` as ``asset``'s (write it with ``write_deployment``)."""
    section = tokens_section(deployment)
    return _with_section(deployment, replace(section, assets={**section.assets, asset: token}))


def with_stablecoin(deployment: Deployment, coin: StablecoinDeployment) -> Deployment:
    return _with_section(deployment, replace(tokens_section(deployment), settlement=coin))
