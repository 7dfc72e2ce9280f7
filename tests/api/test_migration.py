"""Migration 0004 fills the attested sums of epochs anchored before it existed exactly as the
anchorer fills them for epochs anchored after."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import select

from store.db import alembic_config
from store.tables import CashflowAttestedAssetHourly, CashflowAttestedHourly
from tests.api.dataset import Dataset


def _snapshot(dataset: Dataset) -> dict[str, list[Any]]:
    with dataset.engine.connect() as conn:
        return {
            "device": sorted(map(tuple, conn.execute(select(CashflowAttestedHourly)).all())),
            "asset": sorted(map(tuple, conn.execute(select(CashflowAttestedAssetHourly)).all())),
        }


def test_backfill_matches_what_anchoring_recorded(dataset: Dataset) -> None:
    recorded = _snapshot(dataset)
    assert recorded["device"]
    per_asset: dict[tuple[str, int], list[int]] = {}
    for _device, hour, asset, *sums in recorded["device"]:
        total = per_asset.setdefault((asset, hour), [0, 0, 0, 0])
        for i, value in enumerate(sums):
            total[i] += value
    assert recorded["asset"] == sorted((asset, hour, *sums) for (asset, hour), sums in per_asset.items())

    config = alembic_config(dataset.engine)
    command.downgrade(config, "0003")
    command.upgrade(config, "head")
    assert _snapshot(dataset) == recorded
