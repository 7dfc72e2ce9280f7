"""The operator's side of the epoch export (``assetproof export``, and the API's
``/v1/export/...``): the files of :mod:`protocol.export`, from the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select

from attestor.bundles import ChainContext, anchor_of
from attestor.log_store import DbNodeStore
from protocol.errors import AssetproofError
from protocol.export import EXPORT_FILES, EpochCheckpoint, QuarantineExport, QuarantineMessage, epoch_dir_name
from protocol.merkle.log import MerkleLog
from store.status import EpochStatus
from store.tables import EPOCH, QUARANTINE, READING

__all__ = [
    "EXPORT_FILES",
    "ClosedEpochs",
    "ExportError",
    "ExportSummary",
    "checkpoint_document",
    "closed_epochs",
    "epoch_dir_name",
    "export_epochs",
    "iter_leaves",
    "json_file",
    "metadata_bytes",
    "quarantine_document",
]


_LEAF_PAGE: Final = 5_000


class ExportError(AssetproofError):
    """The epochs asked for cannot be exported (not closed, or none)."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    first: int
    last: int
    leaves: int
    directory: Path


def _epoch_row(engine: Engine, epoch: int) -> Any:
    with engine.connect() as conn:
        row = conn.execute(select(EPOCH).where(EPOCH.c.number == epoch)).first()
    if row is None:
        raise ExportError(f"epoch {epoch} is not closed")
    return row


@dataclass(frozen=True, slots=True)
class ClosedEpochs:
    """What the database holds of a requested range: the closed epochs in it (None when none),
    and of those, the ones not anchored yet."""

    closed: tuple[int, int] | None
    not_anchored: tuple[int, ...]
    last_closed: int | None


def closed_epochs(engine: Engine, *, first: int, last: int) -> ClosedEpochs:
    """The part of ``first..last`` that is closed (epochs close in order, so it is a prefix)."""
    with engine.connect() as conn:
        last_closed = conn.execute(select(EPOCH.c.number).order_by(EPOCH.c.number.desc()).limit(1)).scalar()
        pending = conn.execute(
            select(EPOCH.c.number)
            .where(EPOCH.c.number >= first, EPOCH.c.number <= last, EPOCH.c.status != EpochStatus.ANCHORED)
            .order_by(EPOCH.c.number)
        ).scalars()
        not_anchored = tuple(int(n) for n in pending)
    if last_closed is None or last_closed < first:
        return ClosedEpochs(None, (), None if last_closed is None else int(last_closed))
    return ClosedEpochs((first, min(last, int(last_closed))), not_anchored, int(last_closed))


def checkpoint_document(engine: Engine, *, epoch: int, chain: ChainContext | None) -> dict[str, Any]:
    row = _epoch_row(engine, epoch)
    log = MerkleLog(DbNodeStore(engine))
    anchor = anchor_of(row, chain)
    return EpochCheckpoint(
        epoch=row.number,
        tree_size=row.leaves_to,
        root=bytes(row.root),
        meta_hash=bytes(row.meta_hash),
        frontier_size=row.leaves_from,
        frontier=tuple(log.compact_range(row.leaves_from)),
        consistency_proof=tuple(log.consistency_proof(row.leaves_from, row.leaves_to)),
        anchor=None if anchor is None else anchor.to_json(),
    ).to_json()


def metadata_bytes(engine: Engine, *, epoch: int) -> bytes:
    return bytes(_epoch_row(engine, epoch).metadata_json)


def iter_leaves(engine: Engine, *, epoch: int) -> Iterator[bytes]:
    """The epoch's messages in log order, read a page at a time."""
    row = _epoch_row(engine, epoch)
    start = row.leaves_from
    while start < row.leaves_to:
        end = min(start + _LEAF_PAGE, row.leaves_to)
        with engine.connect() as conn:
            page = conn.execute(
                select(READING.c.raw)
                .where(READING.c.log_index >= start, READING.c.log_index < end)
                .order_by(READING.c.log_index)
            ).all()
        for (raw,) in page:
            yield bytes(raw)
        start = end


def quarantine_document(engine: Engine, *, epoch: int) -> dict[str, Any]:
    """``quarantine.json``: the digests the epoch's quarantine root covers and, beside each, the
    message (stored bytes, reason, publisher, body device, seq, chained), in quarantine id order."""
    _epoch_row(engine, epoch)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                QUARANTINE.c.raw_sha256,
                QUARANTINE.c.reason,
                QUARANTINE.c.chained,
                QUARANTINE.c.device_id,
                QUARANTINE.c.body_device,
                QUARANTINE.c.seq,
                QUARANTINE.c.raw_size,
                QUARANTINE.c.raw,
            )
            .where(QUARANTINE.c.epoch == epoch)
            .order_by(QUARANTINE.c.id)
        ).all()
    messages = tuple(
        QuarantineMessage(
            digest=bytes(r.raw_sha256),
            reason=r.reason,
            chained=bool(r.chained),
            publisher=r.device_id,
            device=r.body_device,
            seq=r.seq,
            raw_size=r.raw_size,
            raw=bytes(r.raw),
        )
        for r in rows
    )
    return QuarantineExport(digests=tuple(m.digest for m in messages), messages=messages).to_json()


def json_file(engine: Engine, *, epoch: int, name: str, chain: ChainContext | None) -> bytes:
    """The exact bytes of one of an epoch's JSON files (``checkpoint.json``, ``metadata.json``,
    ``quarantine.json``): what :func:`export_epochs` writes and the API serves."""
    if name == "checkpoint.json":
        return (json.dumps(checkpoint_document(engine, epoch=epoch, chain=chain), indent=1) + "\n").encode()
    if name == "metadata.json":
        return metadata_bytes(engine, epoch=epoch)
    if name == "quarantine.json":
        return (json.dumps(quarantine_document(engine, epoch=epoch)) + "\n").encode()
    raise ValueError(f"{name!r} is not a JSON file of the export")


def export_epochs(
    engine: Engine, *, first: int, last: int, directory: Path, chain: ChainContext | None
) -> ExportSummary:
    """Write epochs ``first..last`` (inclusive) under ``directory``, each folder complete before
    it is renamed into place, so an interrupted export never leaves a half-written epoch."""
    if first > last:
        raise ExportError(f"empty epoch range {first}..{last}")
    for epoch in range(first, last + 1):
        _epoch_row(engine, epoch)
    directory.mkdir(parents=True, exist_ok=True)
    leaves = 0
    for epoch in range(first, last + 1):
        final = directory / epoch_dir_name(epoch)
        partial = directory / (epoch_dir_name(epoch) + ".partial")
        partial.mkdir(exist_ok=True)
        for name in ("checkpoint.json", "metadata.json", "quarantine.json"):
            (partial / name).write_bytes(json_file(engine, epoch=epoch, name=name, chain=chain))
        with (partial / "leaves").open("wb") as out:
            for raw in iter_leaves(engine, epoch=epoch):
                out.write(raw + b"\n")
                leaves += 1
        if final.exists():
            for name in EXPORT_FILES:
                (final / name).unlink(missing_ok=True)
            final.rmdir()
        os.replace(partial, final)
    return ExportSummary(first, last, leaves, directory)
