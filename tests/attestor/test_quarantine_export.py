"""quarantine.json carries every quarantined message of an epoch beside its digest, and parses
back into the same messages; the epoch's quarantine root is still over the digests alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import Engine

from attestor.epochs import EpochBuilder, EpochPolicy
from attestor.export import export_epochs
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from gateway.tariff import record_tariff
from protocol.envelope import MAX_MESSAGE_BYTES
from protocol.epoch import EpochMetadata, quarantine_root
from protocol.export import QuarantineExport, epoch_dir_name
from store.db import make_engine
from store.tables import QUARANTINE_RAW_LIMIT
from tests.support.devices import NOW_MS, TARIFF, register


def _ingest(db_url: str, engine: Engine, batch: list[Incoming]) -> None:
    reader = make_engine(db_url, writer=False)
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: NOW_MS)
    processor.process(batch)
    processor.close()
    reader.dispose()


def test_quarantine_json_round_trip(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    record_tariff(engine, TARIFF)
    dev, victim = register(engine, 2)
    first = dev.next()
    implausible = dev.next(energy_wh=10_000)
    skewed = dev.next(ts_ms=NOW_MS + 3_600_000)
    after = dev.next(ts_ms=first.body.ts_ms + 180_000)
    huge = b"{" + b" " * (QUARANTINE_RAW_LIMIT + 100) + b"}"
    stolen = victim.next()
    batch = [
        Incoming(dev.topic, raw, NOW_MS)
        for raw in (first.raw, implausible.raw, skewed.raw, after.raw, b"junk", huge, stolen.raw)
    ]
    _ingest(db_url, engine, batch)

    builder = EpochBuilder(engine, policy=EpochPolicy(window_ms=1, max_leaves=100))
    builder.append_pending()
    assert builder.close_due_epoch(now_ms=NOW_MS + 10) is not None
    export_epochs(engine, first=0, last=0, directory=tmp_path, chain=None)
    folder = tmp_path / epoch_dir_name(0)
    document = json.loads((folder / "quarantine.json").read_bytes())
    parsed = QuarantineExport.from_json(document)
    assert parsed.to_json() == document

    summary = [(m.reason, m.chained, m.publisher, m.device, m.seq) for m in parsed.messages]
    # Quarantine id order: messages refused before classification come first in a batch.
    assert summary == [
        ("malformed", False, dev.id, None, None),
        ("oversized", False, dev.id, None, None),
        ("topic_mismatch", False, dev.id, victim.id, 1),
        ("implausible", True, dev.id, dev.id, 2),
        ("clock_skew", True, dev.id, dev.id, 3),
    ]
    junk, truncated, mismatch, implausible_entry, skewed_entry = parsed.messages
    assert (implausible_entry.raw, skewed_entry.raw, junk.raw, mismatch.raw) == (
        implausible.raw,
        skewed.raw,
        b"junk",
        stolen.raw,
    )
    assert all(m.complete and hashlib.sha256(m.raw).digest() == m.digest for m in parsed.messages if m is not truncated)
    assert not truncated.complete
    assert (truncated.raw_size, truncated.raw) == (len(huge), huge[:QUARANTINE_RAW_LIMIT])
    assert truncated.raw_size > MAX_MESSAGE_BYTES
    assert truncated.digest == hashlib.sha256(huge).digest()

    meta = EpochMetadata.from_json(json.loads((folder / "metadata.json").read_bytes()))
    assert meta.quarantine_count == len(parsed.digests) == 5
    assert meta.quarantine_root == quarantine_root(list(parsed.digests))
    leaves = (folder / "leaves").read_bytes().split(b"\n")[:-1]
    assert leaves == [first.raw, after.raw]  # chained rejections are never leaves
    engine.dispose()
