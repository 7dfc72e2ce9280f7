"""The tariff the gateway prices readings with: a JSON file of ``protocol.cashflow.Tariff``
fields, or the packaged default (Hong Kong, November 2026)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from config.clock import wall_ms
from protocol.cashflow import Tariff
from protocol.errors import MetadataError
from store.tables import TARIFF

DEFAULT_TARIFF_FILE = Path(__file__).with_name("default_tariff.json")


def load_tariff(path: Path | None = None) -> Tariff:
    """The tariff in ``path`` (default: the packaged one); :class:`MetadataError` if unusable."""
    source = path or DEFAULT_TARIFF_FILE
    try:
        return Tariff.from_json(json.loads(source.read_text()))
    except (OSError, ValueError) as exc:
        raise MetadataError(f"cannot read tariff {source}: {exc}") from None


def record_tariff(engine: Engine, tariff: Tariff) -> None:
    """Keep every tariff version used in the database; a changed tariff needs a new id."""
    with engine.begin() as conn:
        existing = conn.execute(select(TARIFF.c.body).where(TARIFF.c.id == tariff.id)).scalar()
        if existing is not None:
            if existing != tariff.to_json():
                raise MetadataError(f"tariff {tariff.id!r} is already recorded with other values: give it a new id")
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(TARIFF)
            .values(id=tariff.id, body=tariff.to_json(), loaded_ms=wall_ms())
            .on_conflict_do_nothing()
        )
