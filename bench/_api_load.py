"""Loading ``bench.api``'s store through the code it measures: the gateway's batch writes
(``store.ingest``), the attestor's log append and epoch closing (``attestor.epochs``) and the
anchorer's attested sums (``store.cashflow.record_attested``). Only the chain is faked: anchored
epochs get a made-up transaction, as no chain runs here."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from sqlalchemy import Engine, bindparam, select, text, update

from attestor.epochs import EpochBuilder, EpochPolicy
from bench._api_data import ASSETS, DAY_MS, WINDOW_S, Data
from gateway.tariff import record_tariff
from protocol.cashflow import HOUR_MS
from store.cashflow import record_attested
from store.db import make_engine, migrate
from store.devices import NewDevice, ensure_asset, register_devices
from store.ingest import lock_heads, write_batch
from store.status import EpochStatus
from store.tables import EPOCH, READING
from store.writes import BatchWrites

EPOCH_LEAVES = 10_000
UNLOGGED_TAIL = 3_000
UNANCHORED_EPOCHS = 2
BATCH = 5_000
"""Readings per gateway batch (one transaction each)."""


def load(url: str, data: Data, *, seed: int) -> dict[str, Any]:
    """Fill a migrated database with ``data`` as the pipeline would have left it."""
    rng = random.Random(seed)
    timings: dict[str, float] = {}
    engine = make_engine(url)
    try:
        migrate(engine)
        _register(engine, data)
        total = len(data.readings)
        logged = total - UNLOGGED_TAIL
        epochs = logged // EPOCH_LEAVES
        anchored = max(0, epochs - UNANCHORED_EPOCHS)  # a small store: its epochs all stay unanchored

        started = time.perf_counter()
        hourly_rows = _ingest(engine, data)
        timings["readings_s"] = time.perf_counter() - started

        started = time.perf_counter()
        quarantined = _quarantine(engine, data, rng)
        timings["quarantine_s"] = time.perf_counter() - started

        started = time.perf_counter()
        _log_and_close(engine, logged=logged, epochs=epochs)
        timings["merkle_s"] = time.perf_counter() - started

        started = time.perf_counter()
        _anchor(engine, rng, anchored=anchored)
        timings["epochs_s"] = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            # What autovacuum does shortly after a bulk load (PostgreSQL 13+ vacuums after inserts
            # too): statistics for the planner, and the visibility map that lets an index-only
            # scan skip the table.
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        return {
            "readings": total,
            "logged": logged,
            "epochs": epochs,
            "anchored_epochs": anchored,
            "hourly_rows": hourly_rows,
            "quarantined": quarantined,
            "load_s": {name: round(value, 1) for name, value in timings.items()},
        }
    finally:
        engine.dispose()


def _register(engine: Engine, data: Data) -> None:
    registered = data.start_ms - DAY_MS
    record_tariff(engine, data.tariff)
    for asset, kind, _alg, _share in ASSETS:
        ensure_asset(engine, name=asset, kind=kind.value, now_ms=registered, description=f"{kind.value} pool")
        register_devices(
            engine,
            asset=asset,
            devices=[
                NewDevice(
                    id=s.id,
                    kind=s.kind.value,
                    alg=s.alg,
                    public_key=s.key.public_key,
                    rating=s.rating,
                    window_s=WINDOW_S,
                )
                for s in data.specs
                if s.asset == asset
            ],
            now_ms=registered,
        )


def _ingest(engine: Engine, data: Data) -> int:
    """The readings, hourly sums and chain heads, in gateway batches of ``BATCH`` readings;
    returns the number of hourly rows."""
    hours: set[tuple[str, int]] = set()
    for start in range(0, len(data.readings), BATCH):
        batch = data.readings[start : start + BATCH]
        writes = BatchWrites()
        with engine.begin() as conn:
            heads = lock_heads(conn, {data.specs[d].id for d, _ in batch})
            for position, (d, r) in enumerate(batch, start=start):
                spec = data.specs[d]
                received = r.ts_ms + 1_500 + position % 700
                writes.readings.append(
                    {
                        "device_id": spec.id,
                        "seq": r.seq,
                        "ts_ms": r.ts_ms,
                        "window_s": WINDOW_S,
                        "metrics": r.metrics,
                        "raw": r.raw,
                        "leaf_hash": r.leaf_hash,
                        "revenue": r.revenue,
                        "cost": r.cost,
                        "tariff_id": data.tariff.id,
                        "received_ms": received,
                    }
                )
                hour = r.ts_ms - r.ts_ms % HOUR_MS
                hours.add((spec.id, hour))
                writes.add_hourly(
                    device_id=spec.id,
                    asset=spec.asset,
                    hour_ms=hour,
                    tariff_id=data.tariff.id,
                    sums={
                        "readings": 1,
                        "energy_wh": r.metrics["energy_wh"],
                        "revenue": r.revenue,
                        "cost": r.cost,
                        "online_s": WINDOW_S,
                        "active_s": r.active_s,
                    },
                )
                head = heads[spec.id]
                head.last_seq, head.last_hash, head.last_ts_ms = r.seq, r.chain_hash, r.ts_ms
                head.last_seen_ms = received
                head.readings += 1
                head.dirty = True
            write_batch(conn, writes, heads.values(), stored_ms=received + 40)
    return len(hours)


def _quarantine(engine: Engine, data: Data, rng: random.Random) -> int:
    """A few hundred refused messages over the period (the epochs that close later take them)."""
    reasons = ("bad_signature", "gap", "replay", "clock_skew", "implausible", "malformed", "unknown_device")
    writes = BatchWrites()
    for n in range(400):
        d, r = data.readings[rng.randrange(len(data.readings))]
        payload = r.raw[:-3] + b'00"}' if n % 2 else b"junk %d" % n
        writes.quarantine.append(
            {
                "received_ms": r.ts_ms + 900,
                "reason": reasons[n % len(reasons)],
                "detail": "generated by bench.api",
                "topic": f"assetproof/v1/devices/{data.specs[d].id}/telemetry",
                "device_id": data.specs[d].id,
                "body_device": data.specs[d].id if n % 2 else None,
                "seq": r.seq,
                "chained": False,
                "raw": payload,
                "raw_size": len(payload),
                "raw_sha256": hashlib.sha256(payload).digest(),
            }
        )
    writes.quarantine.sort(key=lambda q: q["received_ms"])
    with engine.begin() as conn:
        write_batch(conn, writes, [], stored_ms=0)
    return len(writes.quarantine)


def _log_and_close(engine: Engine, *, logged: int, epochs: int) -> None:
    """The attestor's work: append readings to the Merkle log an epoch's worth at a time and
    close each full epoch; the newest ``logged % EPOCH_LEAVES`` logged readings stay in no
    epoch and the rest stay out of the log."""
    builder = EpochBuilder(engine, policy=EpochPolicy(max_leaves=EPOCH_LEAVES))
    done = 0
    while done < logged:
        done += builder.append_pending(limit=min(EPOCH_LEAVES, logged - done))
        if done % EPOCH_LEAVES == 0 and done // EPOCH_LEAVES <= epochs:
            with engine.connect() as conn:
                newest = conn.execute(select(READING.c.stored_ms).where(READING.c.log_index == done - 1)).scalar_one()
            closed = builder.close_due_epoch(now_ms=newest + 60_000)
            if closed is None:
                raise RuntimeError(f"epoch {done // EPOCH_LEAVES - 1} did not close")


def _anchor(engine: Engine, rng: random.Random, *, anchored: int) -> None:
    """Mark the first ``anchored`` epochs anchored (a made-up transaction) and add their attested
    sums, as the anchorer does on confirmation."""
    for number in range(anchored):
        with engine.begin() as conn:
            end_ms = conn.execute(select(EPOCH.c.end_ms).where(EPOCH.c.number == number)).scalar_one()
            conn.execute(
                update(EPOCH)
                .where(EPOCH.c.number == bindparam("b_number"))
                .values(
                    status=EpochStatus.ANCHORED,
                    tx_hash=bindparam("b_tx"),
                    block_number=bindparam("b_block"),
                    block_timestamp=bindparam("b_time"),
                    gas_used=bindparam("b_gas"),
                    anchored_ms=bindparam("b_anchored"),
                ),
                [
                    {
                        "b_number": number,
                        "b_tx": rng.randbytes(32),
                        "b_block": 1_000 + 3 * number,
                        "b_time": end_ms // 1000 + 12,
                        "b_gas": rng.randrange(69_000, 75_000),
                        "b_anchored": end_ms + 13_000,
                    }
                ],
            )
            record_attested(conn, epoch=number)
