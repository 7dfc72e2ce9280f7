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
15 minutes, each reading a genuine signed message in its device's hash chain (encoded, signed and
hashed by ``protocol``) with metrics from simple physical profiles, ~1,008,000 readings in time
order; the Merkle log over all but the newest 3,000; epochs of 10,000 leaves, all anchored but
the last two; hourly cash-flow sums; a few hundred quarantined messages. Readings are generated
once (on up to four processes) and loaded into each database (SQLite file; PostgreSQL database
``bench_api`` on ``--postgres``, created and dropped) through the code the pipeline runs
(:mod:`bench._api_load`: the gateway's batch writes, the attestor's log append and epoch
closing, the anchorer's attested sums); only the chain is faked. The timed requests run in a
fresh subprocess per database, so the loader's heap does not slow the server's garbage
collector.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._api_data import ASSETS, DAY_MS, WINDOW_S, check_sample, generate
from bench._api_load import EPOCH_LEAVES, UNLOGGED_TAIL, load
from protocol.cashflow import HOUR_MS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "bench_api"
PROOF_P99_TARGET_MS = 20.0
CASHFLOW_P99_TARGET_MS = 100.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _quantile(samples: Sequence[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


# --- measuring (in a subprocess) -----------------------------------------------------------------


def measure(url: str, *, proofs: int, cashflows: int, seed: int, deployment: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from api.app import create_app
    from config import Settings
    from protocol.bundle import ProofBundle, verify_bundle_offline
    from store.db import make_engine
    from store.tables import ASSET, EPOCH, READING

    asset_t, epoch_t, reading_t = ASSET, EPOCH, READING

    rng = random.Random(seed)
    engine = make_engine(url, writer=False)
    with engine.connect() as conn:
        closed = conn.execute(select(func.max(epoch_t.c.leaves_to))).scalar_one()
        if closed is None:  # main() refuses sizes that close no epoch; a store loaded otherwise
            raise RuntimeError(f"{url.split(':', 1)[0]}: no closed epoch, so no reading has a proof bundle")
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

    app = create_app(Settings(database_url=url, deployment=deployment), static_dir=deployment.parent / "none")
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
    check_sample(data)
    needed = UNLOGGED_TAIL + EPOCH_LEAVES
    if len(data.readings) < needed:
        # The proofs need a closed epoch: the newest UNLOGGED_TAIL readings stay out of the log
        # and an epoch closes at EPOCH_LEAVES leaves.
        parser.error(
            f"--devices {args.devices} --days {args.days} make {len(data.readings):,} readings; proof bundles"
            f" need a closed epoch, so at least {needed:,} ({UNLOGGED_TAIL:,} stay unlogged, an epoch holds"
            f" {EPOCH_LEAVES:,}): raise --devices or --days"
        )
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


if __name__ == "__main__":
    sys.exit(main())
