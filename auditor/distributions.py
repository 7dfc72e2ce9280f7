"""Distributions of cash-flow tokens (issue 15), checked from the chain alone.

For every token of the auditor's deployment file (its ``tokens`` section), every ``Funded``
event from the token's deployment on is replayed in order: the investors' share of the cumulative
attested net (losses carried forward) less what was funded before is the epoch's cap, recomputed
here rather than taken from the event, and a funding above it is named as an excess. The net of
each funded epoch in the audited window is compared with the asset's totals in the exported
metadata (which the audit ties to the anchored assets root). Claims (``Claimed`` events) must
never add up to more than was funded, and the contract's own totals must agree with the events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chain.reader import ChainReader
from chain.token_types import tokens_section
from chain.tokens import TokenReader

__all__ = ["DistributionCheck", "check_distributions"]

Find = Callable[..., None]


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributionCheck:
    """One funded epoch of one asset's token, as the auditor recomputed it."""

    asset: str
    token: str
    epoch: int
    net: int
    cap: int
    """Recomputed from the cumulative attested net and the funding before."""
    funded: int
    excess: int

    def to_json(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "token": self.token,
            "epoch": self.epoch,
            "net": self.net,
            "cap": self.cap,
            "funded": self.funded,
            "excess": self.excess,
        }


def check_distributions(
    chain: ChainReader,
    *,
    first: int,
    last: int,
    to_block: int,
    nets: Mapping[int, Mapping[str, int]],
    find: Find,
) -> list[DistributionCheck]:
    """Check every token's distributions funded for epochs ``first..last`` up to ``to_block``.

    ``nets``: per audited epoch, each asset's net from the exported metadata. Findings go to
    ``find``: ``distribution_over_cap``, ``distribution_net_mismatch``, ``distribution_order``,
    ``claims_over_funding``, ``distribution_totals_mismatch``."""
    section = tokens_section(chain.deployment)
    reader = TokenReader(chain.web3, deployment=chain.deployment)
    checked: list[DistributionCheck] = []
    for asset, token in sorted(section.assets.items()):
        info = reader.token_info(token.address)
        funded_logs = reader.distributions(token.address, from_block=token.block, to_block=to_block)
        cumulative = funded_total = 0
        expected_epoch = info.start_epoch
        for d in funded_logs:
            if d.epoch != expected_epoch:
                find(
                    "distribution_order",
                    f"{asset}: epoch {d.epoch} funded where epoch {expected_epoch} was due",
                    epoch=d.epoch,
                )
            expected_epoch = d.epoch + 1
            cumulative += d.net
            entitled = cumulative * info.investor_share_bps // 10_000 if cumulative > 0 else 0
            cap = max(entitled - funded_total, 0)
            excess = max(d.funded - cap, 0)
            funded_total += d.funded
            if not first <= d.epoch <= last:
                continue
            if excess:
                find(
                    "distribution_over_cap",
                    f"{asset}: epoch {d.epoch} funded {d.funded} above its cap {cap} (excess {excess})",
                    epoch=d.epoch,
                )
            attested = nets.get(d.epoch, {}).get(asset)
            if d.epoch in nets and attested != d.net:
                find(
                    "distribution_net_mismatch",
                    f"{asset}: epoch {d.epoch} funded on a net of {d.net}, the anchored totals say {attested}",
                    epoch=d.epoch,
                )
            checked.append(
                DistributionCheck(
                    asset=asset,
                    token=token.address,
                    epoch=d.epoch,
                    net=d.net,
                    cap=cap,
                    funded=d.funded,
                    excess=excess,
                )
            )
        claimed = sum(c.amount for c in reader.claims(token.address, from_block=token.block, to_block=to_block))
        if claimed > funded_total:
            find(
                "claims_over_funding",
                f"{asset}: claims of {claimed} exceed the {funded_total} funded (excess {claimed - funded_total})",
            )
        latest = to_block >= reader.block_number()
        if latest and (info.total_funded, info.total_claimed) != (funded_total, claimed):
            find(
                "distribution_totals_mismatch",
                f"{asset}: the token says funded {info.total_funded}, claimed {info.total_claimed};"
                f" its events say {funded_total}, {claimed}",
            )
    return checked
