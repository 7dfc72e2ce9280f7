"""The API at a million stored readings: proof bundles and a month of cash flow, on SQLite and
PostgreSQL.

    python -m bench.api --json

Prints one JSON object:

- ``proof_p50_ms``, ``proof_p99_ms``: ``GET`` the proof bundle of a random reading through the
  HTTP API (the whole ASGI stack, with Starlette's TestClient), half by log index
  (``/v1/readings/{i}/bundle``) and half by device and seq; ``--proofs`` requests per database.
  Every bundle is then checked with ``protocol.bundle.verify_bundle_offline`` (signature,
  inclusion under its checkpoint's root, metadata hash), outside the timing.
- ``cashflow_p50_ms``, ``cashflow_p99_ms``: ``GET /v1/assets/{asset}/cashflow`` at hour
  granularity over a random 30-day window of a random asset (about 720 buckets, each split into
  attested and pending), ``--cashflows`` requests per database.
- per database (``databases``): how long loading and building took, and the sizes.

The store is what the pipeline leaves after ``--days`` days: ``--devices`` devices in three
assets (solar rooftops, a charging hub, a mining pod; Ed25519 and P-256 keys) reporting every
15 minutes, each reading a genuine signed message in its device's hash chain with metrics from
simple physical profiles, ~1,008,000 readings in time order; the Merkle log over all but the
newest 3,000; epochs of 10,000 leaves, all anchored but the last two (their attested sums filled
by ``store.cashflow.record_attested``, the call the anchorer makes); hourly cash-flow sums; a
few hundred quarantined messages. Readings are generated once (on two processes) and bulk-loaded
into each database (SQLite file; PostgreSQL database ``bench_api`` on ``--postgres``, created
and dropped). The timed requests run in a fresh subprocess per database, so the loader's heap
does not slow the server's garbage collector.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from device_sim.provision import KIND_PREFIX
from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import Body, DeviceKind

REPO = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "bench_api"
WINDOW_S = 900
SLOT_MS = WINDOW_S * 1000
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
EPOCH_LEAVES = 10_000
UNLOGGED_TAIL = 3_000
UNANCHORED_EPOCHS = 2
PROOF_P99_TARGET_MS = 20.0
CASHFLOW_P99_TARGET_MS = 100.0
ASSETS = (  # name, kind, alg, share of the devices
    ("hk-rooftops", DeviceKind.SOLAR, "ed25519", 0.4),
    ("kowloon-hub", DeviceKind.CHARGER, "es256", 0.33),
    ("hydro-pod", DeviceKind.MINER, "ed25519", 0.27),
)
READING_COLUMNS = (
    "device_id",
    "seq",
    "ts_ms",
    "window_s",
    "metrics",
    "raw",
    "leaf_hash",
    "revenue",
    "cost",
    "tariff_id",
    "received_ms",
    "stored_ms",
    "log_index",
    "epoch",
)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _quantile(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


# --- the fleet and its readings ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    id: str
    asset: str
    kind: DeviceKind
    alg: str
    secret: bytes
    rating: dict[str, int]
    seed: int


def fleet(devices: int, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    specs = []
    for asset, kind, alg, share in ASSETS:
        count = max(1, round(devices * share))
        for n in range(1, count + 1):
            if kind is DeviceKind.SOLAR:
                rating = {"rated_power_w": rng.randrange(4_000, 10_001, 500)}
            elif kind is DeviceKind.CHARGER:
                rating = {"rated_power_w": rng.choice([7_000, 7_000, 22_000, 60_000])}
            else:
                rating = {"rated_power_w": 5_040, "rated_hashrate_ghs": 288_000}
            specs.append(
                Spec(
                    id=f"{KIND_PREFIX[kind]}-{asset}-{n:04d}",
                    asset=asset,
                    kind=kind,
                    alg=alg,
                    secret=rng.randbytes(32),
                    rating=rating,
                    seed=rng.randrange(1 << 30),
                )
            )
    return specs


class _Priced:
    """What ``reading_cash_flow`` reads of a body: its kind and metrics."""

    __slots__ = ("kind", "metrics")

    def __init__(self, kind: DeviceKind, metrics: dict[str, int]) -> None:
        self.kind = kind
        self.metrics = metrics


def _metrics(spec: Spec, rng: random.Random, start_ms: int, cloud: float) -> tuple[dict[str, int], int]:
    """One window's metrics and its producing seconds, from a simple profile of the kind."""
    hour = (start_ms / HOUR_MS + 8) % 24  # Hong Kong time drives sun and traffic
    power = spec.rating["rated_power_w"]
    if spec.kind is DeviceKind.SOLAR:
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12))
        output = int(power * 0.85 * sun * cloud * rng.uniform(0.9, 1.0))
        metrics = {
            "energy_wh": output * WINDOW_S // 3600,
            "power_w": output,
            "irradiance_wm2": int(1000 * sun * cloud),
            "temp_dc": 250 + int(200 * sun),
        }
        return metrics, WINDOW_S if output > 0 else 0
    if spec.kind is DeviceKind.CHARGER:
        busy = 0.15 + 0.55 * math.exp(-(((hour - 19) / 3) ** 2)) + 0.25 * math.exp(-(((hour - 9) / 2) ** 2))
        active = rng.randrange(120, WINDOW_S + 1) if rng.random() < busy else 0
        energy = int(power * rng.uniform(0.6, 0.95) * active / 3600)
        started = int(active > 0 and rng.random() < 0.35)
        metrics = {
            "energy_wh": energy,
            "grid_wh": energy * 108 // 100,
            "sessions_started": started,
            "sessions_ended": int(active > 0 and rng.random() < 0.35),
            "active_s": active,
            "power_w": energy * 3600 // WINDOW_S,
        }
        return metrics, active
    curtailed = WINDOW_S if rng.random() < 0.04 else 0
    uptime = WINDOW_S - curtailed
    rate = int(spec.rating["rated_hashrate_ghs"] * rng.uniform(0.97, 1.01)) if uptime else 0
    draw = int(power * rng.uniform(0.97, 1.0)) if uptime else 50
    metrics = {
        "hashes_gh": rate * uptime,
        "hashrate_ghs": rate,
        "power_w": draw,
        "energy_wh": draw * WINDOW_S // 3600,
        "uptime_s": uptime,
        "curtailed_s": curtailed,
        "temp_dc": rng.randrange(450, 500) if uptime else 300,
    }
    return metrics, uptime


def device_readings(spec: Spec, *, start_ms: int, slots: int, tariff_json: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A device's signed readings, its hash chain unbroken: (seq, ts_ms, metrics, raw,
    leaf_hash, revenue, cost, active_s)."""
    from protocol.signing import DeviceKey

    tariff = Tariff.from_json(tariff_json)
    key = DeviceKey.from_private_bytes(spec.alg, spec.secret)
    rng = random.Random(spec.seed)
    prev = bytes(32)
    cloud = 1.0
    out = []
    head = b'{"alg":"' + spec.alg.encode() + b'","body":'
    for slot in range(slots):
        window_start = start_ms + slot * SLOT_MS
        if slot % 96 == 0:
            cloud = rng.uniform(0.35, 1.0)
        metrics, active = _metrics(spec, rng, window_start, cloud)
        body = {
            "device": spec.id,
            "kind": spec.kind.value,
            "metrics": metrics,
            "prev": prev.hex(),
            "seq": slot + 1,
            "ts_ms": window_start + SLOT_MS,
            "v": 1,
            "window_s": WINDOW_S,
        }
        # RFC 8785 for this schema (ASCII keys and strings, small integers) is sorted, compact JSON.
        signed = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        raw = head + signed + b',"sig":"' + key.sign(signed).hex().encode() + b'"}'
        flow = reading_cash_flow(cast(Body, _Priced(spec.kind, metrics)), tariff)
        out.append(
            (
                slot + 1,
                window_start + SLOT_MS,
                metrics,
                raw,
                hashlib.sha256(b"\x00" + raw).digest(),
                flow.revenue,
                flow.cost,
                active,
            )
        )
        prev = hashlib.sha256(raw).digest()
    return out


def _generate_chunk(args: tuple[list[Spec], int, int, dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
    specs, start_ms, slots, tariff_json = args
    return [device_readings(s, start_ms=start_ms, slots=slots, tariff_json=tariff_json) for s in specs]


@dataclass
class Data:
    specs: list[Spec]
    readings: list[tuple[int, tuple[Any, ...]]]
    """(device index, reading) in acceptance order: time order, devices interleaved."""
    start_ms: int
    slots: int
    tariff: Tariff


def generate(*, devices: int, days: int, seed: int, tariff: Tariff) -> Data:
    specs = fleet(devices, seed)
    now = time.time_ns() // 1_000_000
    end_ms = now - now % HOUR_MS
    slots = days * DAY_MS // SLOT_MS
    start_ms = end_ms - slots * SLOT_MS
    workers = max(1, min(os.cpu_count() or 1, 4))
    chunks = [specs[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_generate_chunk, [(c, start_ms, slots, tariff.to_json()) for c in chunks]))
    per_device: dict[str, list[tuple[Any, ...]]] = {}
    for chunk, result in zip(chunks, results, strict=True):
        per_device.update((s.id, r) for s, r in zip(chunk, result, strict=True))
    ordered = [per_device[s.id] for s in specs]
    readings = [(d, ordered[d][slot]) for slot in range(slots) for d in range(len(specs))]
    return Data(specs=specs, readings=readings, start_ms=start_ms, slots=slots, tariff=tariff)


# --- loading a database ----------------------------------------------------------------------------


def _reading_rows(data: Data, *, logged: int, closed: int) -> Iterator[tuple[Any, ...]]:
    for position, (d, r) in enumerate(data.readings):
        seq, ts, metrics, raw, leaf, revenue, cost, _active = r
        received = ts + 1_500 + position % 700
        yield (
            data.specs[d].id,
            seq,
            ts,
            WINDOW_S,
            json.dumps(metrics),
            raw,
            leaf,
            revenue,
            cost,
            data.tariff.id,
            received,
            received + 40,
            position if position < logged else None,
            position // EPOCH_LEAVES if position < closed else None,
        )


def _insert_readings(engine: Any, data: Data, *, logged: int, closed: int) -> None:
    rows = _reading_rows(data, logged=logged, closed=closed)
    columns = ", ".join(READING_COLUMNS)
    raw_conn = engine.raw_connection()
    try:
        driver = raw_conn.driver_connection
        if engine.dialect.name == "postgresql":
            with driver.cursor() as cur, cur.copy(f"COPY reading ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            driver.commit()
        else:
            marks = ", ".join("?" for _ in READING_COLUMNS)
            driver.execute("BEGIN IMMEDIATE")
            driver.executemany(f"INSERT INTO reading ({columns}) VALUES ({marks})", rows)  # noqa: S608
            driver.execute("COMMIT")
    finally:
        raw_conn.close()


def _bulk(engine: Any, table: Any, rows: list[dict[str, Any]], chunk: int = 20_000) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), chunk):
            conn.execute(table.insert(), rows[start : start + chunk])


def load(url: str, data: Data, *, seed: int) -> dict[str, Any]:
    """Fill a migrated database with ``data`` as the pipeline would have left it."""
    from sqlalchemy import text, update

    from attestor.log_store import DbNodeStore
    from gateway.tariff import record_tariff
    from protocol.epoch import AssetTotals, EpochMetadata, quarantine_root
    from protocol.merkle.log import MerkleLog
    from store.cashflow import record_attested
    from store.db import make_engine, migrate
    from store.devices import NewDevice, ensure_asset, register_devices
    from store.tables import CashflowHourly, DeviceState, Epoch, Quarantine

    rng = random.Random(seed)
    timings: dict[str, float] = {}
    engine = make_engine(url)
    try:
        migrate(engine)
        registered = data.start_ms - DAY_MS
        record_tariff(engine, data.tariff)
        for asset, kind, _alg, _share in ASSETS:
            ensure_asset(engine, name=asset, kind=kind.value, now_ms=registered, description=f"{kind.value} pool")
            specs = [s for s in data.specs if s.asset == asset]
            register_devices(
                engine,
                asset=asset,
                devices=[
                    NewDevice(
                        id=s.id,
                        kind=s.kind.value,
                        alg=s.alg,
                        public_key=_public_key(s),
                        rating=s.rating,
                        window_s=WINDOW_S,
                    )
                    for s in specs
                ],
                now_ms=registered,
            )

        total = len(data.readings)
        logged = total - UNLOGGED_TAIL
        epochs = logged // EPOCH_LEAVES
        closed = epochs * EPOCH_LEAVES
        anchored = epochs - UNANCHORED_EPOCHS

        started = time.perf_counter()
        _insert_readings(engine, data, logged=logged, closed=closed)
        timings["readings_s"] = time.perf_counter() - started

        started = time.perf_counter()
        store = DbNodeStore(engine)
        log = MerkleLog(store)
        for start in range(0, logged, EPOCH_LEAVES):
            hashes = [r[4] for _, r in data.readings[start : min(logged, start + EPOCH_LEAVES)]]
            with engine.begin() as conn, store.bound(conn):
                log.extend_hashes(hashes)
        timings["merkle_s"] = time.perf_counter() - started

        started = time.perf_counter()
        quarantine, digests_by_epoch = _quarantine(data, rng, closed_epochs=epochs)
        _bulk(engine, Quarantine.__table__, quarantine)  # type: ignore[attr-defined]
        epoch_rows = []
        for number in range(epochs):
            leaves_from, leaves_to = number * EPOCH_LEAVES, (number + 1) * EPOCH_LEAVES
            totals: dict[str, AssetTotals] = {}
            for d, r in data.readings[leaves_from:leaves_to]:
                asset = data.specs[d].asset
                totals[asset] = totals.get(asset, AssetTotals()).plus(
                    readings=1, energy_wh=r[2]["energy_wh"], revenue=r[5], cost=r[6]
                )
            window_end = data.readings[leaves_to - 1][1][1] + 60_000
            digests = digests_by_epoch.get(number, [])
            metadata = EpochMetadata(
                epoch=number,
                start_ms=data.readings[leaves_from][1][1],
                end_ms=window_end,
                leaves_from=leaves_from,
                leaves_to=leaves_to,
                tariff=data.tariff,
                assets=totals,
                quarantine_count=len(digests),
                quarantine_root=quarantine_root(digests),
            )
            is_anchored = number < anchored
            epoch_rows.append(
                {
                    "number": number,
                    "start_ms": metadata.start_ms,
                    "end_ms": metadata.end_ms,
                    "leaves_from": leaves_from,
                    "leaves_to": leaves_to,
                    "root": log.root(leaves_to),
                    "meta_hash": metadata.meta_hash,
                    "metadata_json": metadata.canonical_bytes(),
                    "status": "anchored" if is_anchored else "closed",
                    "tx_hash": rng.randbytes(32) if is_anchored else None,
                    "block_number": 1_000 + 3 * number if is_anchored else None,
                    "block_timestamp": window_end // 1000 + 12 if is_anchored else None,
                    "gas_used": rng.randrange(69_000, 75_000) if is_anchored else None,
                    "closed_ms": window_end,
                    "anchored_ms": window_end + 13_000 if is_anchored else None,
                }
            )
        _bulk(engine, Epoch.__table__, epoch_rows)  # type: ignore[attr-defined]
        for number in range(anchored):
            with engine.begin() as conn:
                record_attested(conn, epoch=number)
        timings["epochs_s"] = time.perf_counter() - started

        started = time.perf_counter()
        hourly: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
        for d, r in data.readings:
            sums = hourly[(data.specs[d].id, r[1] - r[1] % HOUR_MS)]
            for i, value in enumerate((1, r[2]["energy_wh"], r[5], r[6], WINDOW_S, r[7])):
                sums[i] += value
        assets = {s.id: s.asset for s in data.specs}
        _bulk(
            engine,
            CashflowHourly.__table__,  # type: ignore[attr-defined]
            [
                {
                    "device_id": device,
                    "hour_ms": hour,
                    "tariff_id": data.tariff.id,
                    "asset": assets[device],
                    "readings": s[0],
                    "energy_wh": s[1],
                    "revenue": s[2],
                    "cost": s[3],
                    "online_s": s[4],
                    "active_s": s[5],
                }
                for (device, hour), s in hourly.items()
            ],
        )
        last = {data.specs[d].id: r for d, r in data.readings[-len(data.specs) :]}
        state = DeviceState.__table__  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(
                update(state)
                .where(state.c.device_id == _param("b_device"))
                .values(
                    last_seq=_param("b_seq"),
                    last_hash=_param("b_hash"),
                    last_ts_ms=_param("b_ts"),
                    last_seen_ms=_param("b_seen"),
                    readings=_param("b_seq"),
                ),
                [
                    {
                        "b_device": device,
                        "b_seq": r[0],
                        "b_hash": hashlib.sha256(r[3]).digest(),
                        "b_ts": r[1],
                        "b_seen": r[1] + 1_500,
                    }
                    for device, r in last.items()
                ],
            )
        timings["cashflow_s"] = time.perf_counter() - started
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
            "hourly_rows": len(hourly),
            "quarantined": len(quarantine),
            "load_s": {name: round(value, 1) for name, value in timings.items()},
        }
    finally:
        engine.dispose()


def _param(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)


def _public_key(spec: Spec) -> bytes:
    from protocol.signing import DeviceKey

    return DeviceKey.from_private_bytes(spec.alg, spec.secret).public_key


def _quarantine(
    data: Data, rng: random.Random, *, closed_epochs: int
) -> tuple[list[dict[str, Any]], dict[int, list[bytes]]]:
    """A few hundred refused messages over the period, the closed epochs' share assigned to them."""
    reasons = ("bad_signature", "gap", "replay", "clock_skew", "implausible", "malformed", "unknown_device")
    rows: list[dict[str, Any]] = []
    digests: dict[int, list[bytes]] = defaultdict(list)
    for n in range(400):
        position = rng.randrange(len(data.readings))
        d, r = data.readings[position]
        payload = r[3][:-3] + b'00"}' if n % 2 else b"junk %d" % n
        digest = hashlib.sha256(payload).digest()
        epoch = position // EPOCH_LEAVES if position < closed_epochs * EPOCH_LEAVES else None
        rows.append(
            {
                "received_ms": r[1] + 900,
                "reason": reasons[n % len(reasons)],
                "detail": "generated by bench.api",
                "topic": f"assetproof/v1/devices/{data.specs[d].id}/telemetry",
                "device_id": data.specs[d].id,
                "seq": r[0],
                "raw": payload,
                "raw_size": len(payload),
                "raw_sha256": digest,
                "epoch": epoch,
            }
        )
    rows.sort(key=lambda q: q["received_ms"])
    for q in rows:
        if q["epoch"] is not None:
            digests[q["epoch"]].append(q["raw_sha256"])
    return rows, digests


# --- measuring (in a subprocess) -----------------------------------------------------------------


def measure(url: str, *, proofs: int, cashflows: int, seed: int, deployment: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from api.app import create_app
    from api.settings import Settings
    from protocol.bundle import ProofBundle, verify_bundle_offline
    from store.db import make_engine
    from store.tables import Asset, Epoch, Reading

    asset_t = Asset.__table__  # type: ignore[attr-defined]
    epoch_t = Epoch.__table__  # type: ignore[attr-defined]
    reading_t = Reading.__table__  # type: ignore[attr-defined]
    rng = random.Random(seed)
    engine = make_engine(url, writer=False)
    with engine.connect() as conn:
        closed = int(conn.execute(select(func.max(epoch_t.c.leaves_to))).scalar_one())
        first, last = conn.execute(select(func.min(reading_t.c.ts_ms), func.max(reading_t.c.ts_ms))).one()
        assets = list(conn.execute(select(asset_t.c.name)).scalars())
        targets = []
        for n in range(proofs):
            index = rng.randrange(closed)
            if n % 2:
                device, seq = conn.execute(
                    select(reading_t.c.device_id, reading_t.c.seq).where(reading_t.c.log_index == index)
                ).one()
                targets.append(f"/v1/devices/{device}/readings/{seq}/bundle")
            else:
                targets.append(f"/v1/readings/{index}/bundle")
    engine.dispose()

    app = create_app(Settings(database_url=url, deployment=deployment, static_dir=deployment.parent / "none"))
    with TestClient(app) as client:
        for path in targets[:20]:  # warm the pools, caches and the server's first-request work
            client.get(path)
        proof_times, bodies = [], []
        for path in targets:
            begin = time.perf_counter()
            response = client.get(path)
            proof_times.append(time.perf_counter() - begin)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
            bodies.append(response.content)

        hour = HOUR_MS
        span = 30 * DAY_MS
        windows = []
        for _ in range(cashflows):
            start = first - first % hour + rng.randrange(0, max(1, (last - first - span) // hour)) * hour
            windows.append((rng.choice(assets), start, start + span))
        for asset, start, end in windows[:5]:
            client.get(f"/v1/assets/{asset}/cashflow", params={"granularity": "hour", "from": start, "to": end})
        cash_times, buckets = [], []
        for asset, start, end in windows:
            begin = time.perf_counter()
            response = client.get(
                f"/v1/assets/{asset}/cashflow", params={"granularity": "hour", "from": start, "to": end}
            )
            cash_times.append(time.perf_counter() - begin)
            if response.status_code != 200:
                raise RuntimeError(f"cash flow of {asset}: {response.status_code} {response.text[:300]}")
            body = response.json()
            buckets.append(len(body["buckets"]))
            totals = body["totals"]
            if totals["attested"]["readings"] + totals["pending"]["readings"] != totals["readings"]:
                raise RuntimeError("attested + pending readings do not add up to the total")

    anchored = 0
    for content in bodies:  # outside the timing: every bundle must check
        bundle = ProofBundle.parse(content)
        verify_bundle_offline(bundle)
        anchored += bundle.anchor is not None
    return {
        "proof_p50_ms": _ms(statistics.median(proof_times)),
        "proof_p99_ms": _ms(_quantile(proof_times, 99)),
        "proof_max_ms": _ms(max(proof_times)),
        "proofs": len(proof_times),
        "proofs_verified": len(bodies),
        "proofs_with_anchor": anchored,
        "cashflow_p50_ms": _ms(statistics.median(cash_times)),
        "cashflow_p99_ms": _ms(_quantile(cash_times, 99)),
        "cashflow_max_ms": _ms(max(cash_times)),
        "cashflows": len(cash_times),
        "cashflow_buckets_median": statistics.median(buckets),
    }


def _measure_in_subprocess(url: str, args: argparse.Namespace, deployment: Path) -> dict[str, Any]:
    argv = [
        "--child-measure",
        url,
        "--proofs",
        str(args.proofs),
        "--cashflows",
        str(args.cashflows),
        "--seed",
        str(args.seed),
        "--deployment",
        str(deployment),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bench.api", *argv], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {url.split(':', 1)[0]} failed: {done.stderr.strip()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _deployment_file(directory: Path) -> Path:
    """A deployment file naming a chain and registry, so bundles carry their anchor section
    (the API reads only these two fields)."""
    path = directory / "deployment.json"
    path.write_text(
        json.dumps({"chainId": 31337, "contracts": {"AnchorRegistry": {"address": "0x" + "5f" * 20}}}, indent=2)
    )
    return path


def _postgres_url(admin_url: str, *, create: bool) -> str:
    from sqlalchemy import text

    from store.db import make_engine

    admin = make_engine(admin_url)
    try:
        with admin.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
            if create:
                conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
        return admin.url.set(database=PG_DATABASE).render_as_string(hide_password=False)
    finally:
        admin.dispose()


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--devices", type=int, default=300, help="devices in the three assets")
    parser.add_argument("--days", type=int, default=35, help="days of readings (one per device per 15 minutes)")
    parser.add_argument("--proofs", type=int, default=1_000, help="bundle requests timed per database")
    parser.add_argument("--cashflows", type=int, default=200, help="30-day cash-flow requests timed per database")
    parser.add_argument("--databases", default="sqlite,postgresql", help="which of sqlite,postgresql to run")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help=f"PostgreSQL admin URL ({PG_DATABASE} is made)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--child-measure", help=argparse.SUPPRESS)
    parser.add_argument("--deployment", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_measure:
        measured = measure(
            args.child_measure, proofs=args.proofs, cashflows=args.cashflows, seed=args.seed, deployment=args.deployment
        )
        print(json.dumps(measured))
        return 0
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    if not databases or set(databases) - {"sqlite", "postgresql"}:
        parser.error("--databases takes sqlite, postgresql or both")
    if args.days < 31:
        parser.error("--days must leave room for a 30-day window (at least 31)")

    from gateway.tariff import load_tariff

    started = time.perf_counter()
    data = generate(devices=args.devices, days=args.days, seed=args.seed, tariff=load_tariff())
    generate_s = time.perf_counter() - started
    _check_sample(data)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as work:
        deployment = _deployment_file(Path(work))
        urls = {}
        for name in databases:
            url = (
                f"sqlite:///{Path(work) / 'api.db'}" if name == "sqlite" else _postgres_url(args.postgres, create=True)
            )
            urls[name] = url
            results[name] = load(url, data, seed=args.seed)
        summary = {"readings": len(data.readings), "devices": len(data.specs), "days": args.days}
        del data  # the measurements run in fresh processes; free the loader's heap meanwhile
        try:
            for name, url in urls.items():
                results[name].update(_measure_in_subprocess(url, args, deployment))
        finally:
            if "postgresql" in urls:
                _postgres_url(args.postgres, create=False)
    figures = ("proof_p50_ms", "proof_p99_ms", "cashflow_p50_ms", "cashflow_p99_ms")
    result: dict[str, Any] = {
        **summary,
        "assets": len(ASSETS),
        "window_s": WINDOW_S,
        **{figure: {name: db[figure] for name, db in results.items()} for figure in figures},
        "targets_met": {
            "proof_p99_ms": all(db["proof_p99_ms"] <= PROOF_P99_TARGET_MS for db in results.values()),
            "cashflow_p99_ms": all(db["cashflow_p99_ms"] <= CASHFLOW_P99_TARGET_MS for db in results.values()),
        },
        "databases": results,
        "generate_s": round(generate_s, 1),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}  {value}")
    return 0


def _check_sample(data: Data) -> None:
    """The generated messages are what a gateway accepts: canonical, signed, chained."""
    from protocol.envelope import decode_and_verify

    for d in (0, len(data.specs) // 2, len(data.specs) - 1):
        spec = data.specs[d]
        first, second = (r for i, r in data.readings[d : d + 2 * len(data.specs) : len(data.specs)])
        message = decode_and_verify(second[3], alg=spec.alg, public_key=_public_key(spec))
        if message.body.prev != hashlib.sha256(first[3]).digest():
            raise AssertionError(f"{spec.id}: readings do not chain")


if __name__ == "__main__":
    sys.exit(main())
