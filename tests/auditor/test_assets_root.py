"""The audit's assets-tree check: recomputed from the leaves' totals, against the metadata and
the anchor, silent assets counted as zero."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from auditor.epoch_checks import check_assets_root
from chain.types import Checkpoint
from protocol.asset_totals import assets_root
from protocol.epoch import AssetTotals, EpochMetadata
from tests.protocol.test_cashflow_epoch_bundle import _meta

LEAVES = {
    "solar-rooftop": AssetTotals(readings=3, energy_wh=243, revenue=96, cost=0),
    "mining-pod": AssetTotals(readings=1, energy_wh=82, revenue=2, cost=4),
}


def _findings(meta: EpochMetadata, *, anchored_root: bytes, recomputed: dict[str, AssetTotals]) -> list[str]:
    found: list[str] = []

    def find(check: str, message: str, **where: Any) -> None:
        assert where == {"epoch": meta.epoch}
        found.append(f"{check}: {message}")

    anchored = Checkpoint(
        epoch=meta.epoch,
        tree_size=meta.tree_size,
        root=bytes(32),
        meta_hash=meta.meta_hash,
        assets_root=anchored_root,
        block_number=1,
        timestamp=1,
    )
    check_assets_root(meta, recomputed=recomputed, anchored=anchored, find=find)
    return found


def test_an_honest_epoch_with_a_silent_asset_passes() -> None:
    meta = _meta(assets={**LEAVES, "ev-hub": AssetTotals()})
    assert meta.assets_root == assets_root(epoch=3, currency=meta.tariff.currency, totals=meta.assets)
    assert _findings(meta, anchored_root=meta.assets_root, recomputed=dict(LEAVES)) == []


def test_a_root_that_leaves_out_a_silent_asset_or_differs_on_chain_is_named() -> None:
    honest = _meta(assets={**LEAVES, "ev-hub": AssetTotals()})
    # The attestor's key anchors (and states) the root of a tree without the silent asset.
    hiding = replace(honest, assets_root=assets_root(epoch=3, currency=honest.tariff.currency, totals=LEAVES))
    (finding,) = _findings(hiding, anchored_root=hiding.assets_root, recomputed=dict(LEAVES))
    assert finding.startswith("assets_root_mismatch: the assets tree recomputed from the leaves has root")
    assert honest.assets_root.hex() in finding
    assert "the metadata says" in finding
    assert "the anchor says" in finding
    # The metadata honest, the chain not: only the anchor is named.
    (finding,) = _findings(honest, anchored_root=bytes(32), recomputed=dict(LEAVES))
    assert "the anchor says " + "00" * 32 in finding
    assert "the metadata says" not in finding
