"""The demo's tokens (issue 15): an HKD stablecoin, one token per asset (the mining pod's a
hashrate token), a few allowlisted investors holding them, and a worker that funds every
anchored epoch with exactly its attested cap and lets one investor claim.

The issuer is a key of its own (generated here, never one of the registry's roles): issuing and
funding are the issuer's business, not the operator's. The worker sets the tokens up only once
the first epoch is anchored, so the demo's first anchor (measured) never waits on them, and
funds epochs strictly in order from epoch 0, each with its totals proof from the epoch's stored
metadata against the checkpoint read back from the chain (the contract checks both).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select

from attestor.epochs import metadata_of
from chain.deployment import Deployment, write_deployment
from chain.devchain import dev_fund
from chain.ids import asset_id_hash
from chain.token_types import TokenKind, TotalsProof, with_stablecoin, with_token
from chain.tokens import TokenClient
from chain.types import DeviceRegisteredEvent
from protocol.asset_totals import totals_proof
from store.status import EpochStatus
from store.tables import EPOCH

log = logging.getLogger("assetproof.demo.tokens")

INVESTORS: Final = 3
HOLDING_BPS: Final = (5_000, 3_000, 2_000)
"""Each investor's part of a token's supply (the first is the one that claims)."""
INVESTOR_SHARE_BPS: Final = 5_000
"""The investors' declared share of each asset's attested net."""
SHARES: Final = 1_000
"""Supply of a (non-hashrate) share token."""
ISSUER_FLOAT: Final = 10**12
"""Demo HKD minted to the issuer (cents): far more than any demo run distributes."""
GHS_PER_THS: Final = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenFigures:
    """One asset's token as the live view and the summary show it (amounts in HKD cents)."""

    asset: str
    address: str
    symbol: str
    kind: TokenKind
    supply: int
    epochs_funded: int
    cumulative_net: int
    funded: int
    claimed: int
    entitled: int
    """The investors' share of the cumulative attested net (0 while it is negative): what the
    contract lets be funded in all."""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "symbol": self.symbol,
            "kind": self.kind,
            "supply": self.supply,
            "epochs_funded": self.epochs_funded,
            "cumulative_net": self.cumulative_net,
            "funded": self.funded,
            "claimed": self.claimed,
            "entitled": self.entitled,
        }


def token_keys(path: Path) -> dict[str, Any]:
    """The issuer's and the investors' keys kept in ``path`` (JSON, mode 0600), made if missing."""
    if path.exists():
        keys: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return keys
    keys = {
        "issuer": "0x" + secrets.token_bytes(32).hex(),
        "investors": ["0x" + secrets.token_bytes(32).hex() for _ in range(INVESTORS)],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keys, handle, indent=2)
    return keys


def registered_hashrate_ths(client: TokenClient, asset: str) -> int:
    """The asset's hashrate as the registrar declared it on chain (sum of its miners' ratings)."""
    wanted = asset_id_hash(asset)
    ghs = sum(
        e.profile.rated_hashrate_ghs
        for e in client.registry_events()
        if isinstance(e, DeviceRegisteredEvent) and e.asset_id == wanted
    )
    return ghs // GHS_PER_THS


class DemoTokens:
    """Deploys the tokens and funds each anchored epoch; :meth:`run` is the demo's ``tokens``
    worker. :meth:`figures` may be read from another thread (a snapshot, replaced whole)."""

    def __init__(
        self,
        w3: Any,  # a Web3 (only chain/ imports web3)
        *,
        engine: Engine,
        deployment_path: Path,
        deployment: Deployment,
        keys_path: Path,
        assets: Sequence[tuple[str, str]],
        currency: str,
        poll_s: float = 0.5,
    ) -> None:
        self._w3 = w3
        self._engine = engine
        self._deployment_path = deployment_path
        self._deployment = deployment
        self._assets = assets
        self._currency = currency
        self._poll_s = poll_s
        keys = token_keys(keys_path)
        self.issuer = TokenClient(w3, account=keys["issuer"], deployment=deployment)
        self.investors = [TokenClient(w3, account=k, deployment=deployment) for k in keys["investors"]]
        self.tokens: dict[str, str] = {}
        self._figures: dict[str, TokenFigures] = {}
        self.funded_through = -1
        """The last epoch funded on every token (-1: none yet)."""
        self.ready = threading.Event()

    # --- set-up -------------------------------------------------------------------------------

    def set_up(self) -> None:
        issuer = self.issuer
        for client in (issuer, *self.investors):
            dev_fund(self._w3, client.address)
        coin = issuer.deploy_stablecoin()
        issuer.mint_stablecoin(coin.address, to=issuer.address, amount=ISSUER_FLOAT)
        deployment = with_stablecoin(self._deployment, coin)
        holders = [investor.address for investor in self.investors]
        for asset, kind in self._assets:
            hashrate = kind == "miner"
            token_kind: TokenKind = "hashrate" if hashrate else "share"
            supply = registered_hashrate_ths(issuer, asset) if hashrate else SHARES
            token = issuer.deploy_share_token(
                asset=asset,
                kind=token_kind,
                investor_share_bps=INVESTOR_SHARE_BPS,
                supply=supply,
                settlement=coin.address,
                currency=self._currency,
                start_epoch=0,
            )
            issuer.allow_many(token.address, holders)
            amounts = [supply * bps // 10_000 for bps in HOLDING_BPS]
            amounts[0] += supply - sum(amounts)
            issuer.issue_many(token.address, [(h, n) for h, n in zip(holders, amounts, strict=True) if n])
            deployment = with_token(deployment, asset, token)
            self.tokens[asset] = token.address
        # The API and the CLI find the tokens in the deployment file.
        write_deployment(self._deployment_path, deployment)
        self._deployment = deployment
        self._refresh()
        self.ready.set()

    # --- funding ------------------------------------------------------------------------------

    def _anchored_from(self, first: int) -> list[Any]:
        """The anchored epochs from ``first`` on, as long as they run without a gap."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(EPOCH).where(EPOCH.c.number >= first).order_by(EPOCH.c.number).limit(50)).all()
        run: list[Any] = []
        for row in rows:
            if row.number != first + len(run) or row.status != EpochStatus.ANCHORED:
                break
            run.append(row)
        return run

    def _proofs(self, asset: str, rows: Sequence[Any]) -> list[TotalsProof]:
        proofs = []
        for row in rows:
            meta = metadata_of(row)
            proof = totals_proof(asset=asset, epoch=row.number, currency=meta.tariff.currency, totals=meta.assets)
            proofs.append(TotalsProof.of(self.issuer.checkpoint(row.number), proof))
        return proofs

    def step(self) -> bool:
        """Fund every newly anchored epoch on every token (exactly its cap), then let the first
        investor claim what it is owed; True when anything was funded."""
        rows = self._anchored_from(self.funded_through + 1)
        if not rows:
            return False
        for asset, token in self.tokens.items():
            proofs = self._proofs(asset, rows)
            self.issuer.fund_epochs(token, proofs, self.issuer.cap_for(token, proofs))
        claimer = self.investors[0]
        for token in self.tokens.values():
            if claimer.claimable(token, claimer.address):
                claimer.claim(token)
        self._refresh()
        # Last: the demo's drain waits on this, and then the claims are in too.
        self.funded_through = rows[-1].number
        return True

    def _refresh(self) -> None:
        figures = {}
        for asset, token in self.tokens.items():
            info = self.issuer.token_info(token)
            figures[asset] = TokenFigures(
                asset=asset,
                address=token,
                symbol=info.symbol,
                kind=info.kind,
                supply=info.max_supply,
                epochs_funded=info.next_epoch - info.start_epoch,
                cumulative_net=info.cumulative_net,
                funded=info.total_funded,
                claimed=info.total_claimed,
                entitled=max(info.cumulative_net, 0) * info.investor_share_bps // 10_000,
            )
        self._figures = figures

    def figures(self) -> dict[str, TokenFigures]:
        return dict(self._figures)

    # --- the worker ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, first_anchor: Callable[[], bool]) -> None:
        """Wait for the first anchor (the demo measures it: nothing here delays it), set up,
        then fund epochs as they are anchored until ``stop``."""
        while not stop.is_set() and not first_anchor():
            stop.wait(self._poll_s)
        if stop.is_set():
            return
        self.set_up()
        log.info("tokens deployed: %s", self.tokens)
        while not stop.is_set():
            if not self.step():
                stop.wait(self._poll_s)
