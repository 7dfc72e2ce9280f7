"""Anchoring cost and speed, and the database log at a million leaves, in one run.

    python -m bench.anchor --json

Prints one JSON object:

- ``gas_per_anchor``: gas of each anchor (consistency check on chain included) as the log grows
  through ``SIZES`` to 1,010,000 leaves, on anvil started here, with the roots and proofs of an
  in-memory ``protocol.merkle.log.MerkleLog``; ``gas_worst_case_at_1m``: the anchor into
  1,000,000 leaves from the previous size whose consistency proof is the costliest (the most
  elements and SHA-256 calls), on a fresh deployment; ``gas_epochs_of_10k_near_1m``: epochs of
  10,000 readings from a random size in 990,000..999,999 (``--epoch-samples`` of them, and the
  costliest shape in that range), each on a fresh deployment: what an attestor closing
  10,000-reading epochs pays around a million leaves.
- ``gas_per_reading_at_10k``: the gas of the epoch of 10,000 readings from 1,000,000 to
  1,010,000 leaves, divided by 10,000.
- ``anchor_p50_ms``: ``ChainClient.anchor`` as the attestor calls it (reading and verifying the
  previous checkpoint, which ``anchor`` takes as calldata; gas estimate, send, receipt; no extra
  confirmations; anvil mines each transaction at once), median of ``--anchors`` epochs.
- ``proof_ms_at_1m``: an inclusion proof from the DATABASE log (``attestor.log_store.
  DbNodeStore`` under ``MerkleLog``) of 1,000,000 leaves, median over ``--proofs`` random
  indexes, each through the engine as the attestor makes it (pool checkout, one query), for
  SQLite (a file in a temporary directory) and PostgreSQL (a fresh database on ``--postgres``,
  dropped afterwards). Every proof is verified against the root, outside the timing.
- ``attestor_rss_mb``: the peak RSS of the process that built the database log (10,000 leaves
  per ``extend_hashes``, one transaction each, as the attestor appends), the larger of the two
  databases; ``attestor_rss_mb_by_size`` has the peak at 100,000 and at 1,000,000 leaves per
  database, to show it does not grow with the log. Each database is built in its own
  subprocess, so no other phase counts.

- ``gas_registry``: the gas of the registries' transactions on anvil (receipts): ``register``
  of one ed25519 device without and with a certificate hash and of one es256 device with one,
  ``registerMany`` per device in a batch of 100 (ed25519, no certificate), ``rotate`` (es256,
  with a certificate hash), ``revoke``, ``publishTariff`` (the first and a later one, the
  canonical tariff bytes in calldata and event); and ``isValidReading`` (``estimate_gas`` of the
  ``eth_call``) for an es256 reading in epoch 0 of a one-leaf log and in epoch 1 of a
  1,000,000-leaf log (a 20-element proof, the previous checkpoint checked too).

Leaf ``i`` is the RFC 6962 leaf hash of its 8-byte big-endian index, in every phase, so the
database roots must equal the in-memory ones (``roots_equal``).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import MerkleLog
from protocol.merkle.verify import verify_inclusion

if TYPE_CHECKING:
    from chain.writer import ChainClient
    from devstack.anvil import AnvilNode

REPO = Path(__file__).resolve().parent.parent
SIZES = [1, 2, 10, 100, 1_000, 10_000, 100_000, 500_000, 1_000_000, 1_010_000]
MILLION = 1_000_000
CHUNK = 10_000
RSS_POINTS = (100_000, MILLION)
GAS_TARGET = 80_000
PROOF_MS_TARGET = 1.0
RSS_MB_TARGET = 300.0
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def leaf_hashes(start: int, end: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(8, "big")) for i in range(start, end)]


def memory_log(size: int) -> MerkleLog:
    log = MerkleLog()
    for start in range(0, size, CHUNK):
        log.extend_hashes(leaf_hashes(start, min(size, start + CHUNK)))
    return log


def _peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (Linux's ``ru_maxrss`` survives ``exec``, so a child
    would report its parent's peak), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# --- chain ---------------------------------------------------------------------------------------


def consistency_shape(size1: int, size2: int) -> tuple[int, int]:
    """(proof elements, SHA-256 calls) of the on-chain RFC 9162 consistency check from
    ``size1`` to ``size2``: the verifier's own walk, so the proof has exactly this length."""
    elements = 0 if size1 & (size1 - 1) == 0 else 1
    hashes = 0
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    while sn:
        elements += 1
        if fn & 1 or fn == sn:
            hashes += 2
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            hashes += 1
        fn >>= 1
        sn >>= 1
    return elements, hashes


def _cost(size1: int, size2: int) -> int:
    """The gas a consistency check adds, roughly: 510 of calldata per proof element, 300 per
    SHA-256 call with its share of the loop."""
    elements, hashes = consistency_shape(size1, size2)
    return elements * 510 + hashes * 300


def costliest_previous(size2: int) -> int:
    """The previous checkpoint size whose consistency proof to ``size2`` costs the most gas."""
    return max(range(1, size2), key=lambda size1: _cost(size1, size2))


def _client(node: AnvilNode) -> ChainClient:
    from eth_account import Account

    from chain.devchain import dev_fund
    from chain.writer import ChainClient

    w3 = node.web3()
    account = Account.create()
    dev_fund(w3, account.address)
    client = ChainClient(w3, account=account)
    client.deploy()
    return client


def _meta(epoch: int) -> bytes:
    return leaf_hash(b"epoch metadata %d" % epoch)


def _assets(epoch: int) -> bytes:
    return leaf_hash(b"epoch assets %d" % epoch)


def _anchor(client: ChainClient, log: MerkleLog, *, epoch: int, previous: int, size: int) -> int:
    proof = log.consistency_proof(previous, size)
    return client.anchor(
        epoch=epoch,
        tree_size=size,
        root=log.root(size),
        meta_hash=_meta(epoch),
        assets_root=_assets(epoch),
        proof=proof,
    ).gas_used


def _fresh_epoch(node: AnvilNode, log: MerkleLog, size1: int, size2: int) -> dict[str, int]:
    """Anchor ``size1`` then ``size2`` on a fresh deployment; the second anchor's shape and gas."""
    client = _client(node)
    _anchor(client, log, epoch=0, previous=0, size=size1)
    gas = _anchor(client, log, epoch=1, previous=size1, size=size2)
    elements, hashes = consistency_shape(size1, size2)
    if elements != len(log.consistency_proof(size1, size2)):
        raise AssertionError(f"the proof from {size1} to {size2} does not have the computed {elements} elements")
    return {"tree_size": size2, "proof_len": elements, "sha256_calls": hashes, "gas": gas}


def run_chain(log: MerkleLog, *, anchors: int, epoch_samples: int, seed: int) -> dict[str, Any]:
    from devstack.anvil import start_anvil

    result: dict[str, Any] = {}
    with start_anvil() as node:
        client = _client(node)
        rows = []
        previous = 0
        for epoch, size in enumerate(SIZES):
            proof = log.consistency_proof(previous, size)
            receipt = client.anchor(
                epoch=epoch,
                tree_size=size,
                root=log.root(size),
                meta_hash=_meta(epoch),
                assets_root=_assets(epoch),
                proof=proof,
            )
            rows.append({"tree_size": size, "gas": receipt.gas_used, "proof_len": len(proof)})
            previous = size
        result["gas_per_anchor"] = rows
        last = rows[-1]["gas"]  # the epoch of 10,000 readings from 1,000,000 to 1,010,000 leaves
        result["gas_per_reading_at_10k"] = round(last / 10_000, 2)
        result["gas_per_reading_epoch"] = {"from": MILLION, "to": 1_010_000, "gas": last}

        # Send to confirmed, epoch after epoch of 100 new leaves.
        log.extend_hashes(leaf_hashes(log.size, log.size + 100 * anchors))
        times = []
        epoch = len(SIZES)
        for _ in range(anchors):
            size = previous + 100
            root = log.root(size)
            proof = log.consistency_proof(previous, size)
            start = time.perf_counter()
            client.anchor(
                epoch=epoch, tree_size=size, root=root, meta_hash=_meta(epoch), assets_root=_assets(epoch), proof=proof
            )
            times.append(time.perf_counter() - start)
            epoch += 1
            previous = size
        result["anchor_p50_ms"] = _ms(statistics.median(times))
        result["anchor_max_ms"] = _ms(max(times))
        result["anchor_samples"] = anchors

        # The costliest proof shape into 1,000,000 leaves, on a fresh deployment.
        worst = costliest_previous(MILLION)
        result["gas_worst_case_at_1m"] = {"from": worst, **_fresh_epoch(node, log, worst, MILLION)}

        # Epochs of 10,000 readings ending between 1,000,000 and 1,010,000 leaves: the anchors
        # an attestor closing 10,000-reading epochs pays around a million leaves.
        rng = random.Random(seed)
        starts = sorted(rng.randrange(MILLION - 10_000, MILLION) for _ in range(epoch_samples))
        costliest = max(range(MILLION - 10_000, MILLION), key=lambda size1: _cost(size1, size1 + 10_000))
        samples = [_fresh_epoch(node, log, size1, size1 + 10_000)["gas"] for size1 in starts]
        samples.sort()
        result["gas_registry"] = run_registry_gas(node)
        result["gas_epochs_of_10k_near_1m"] = {
            "samples": len(samples),
            "from": [MILLION - 10_000, MILLION],
            "p50": samples[len(samples) // 2],
            "p90": samples[int(len(samples) * 0.9)],
            "max": samples[-1],
            "over_80000": sum(gas > GAS_TARGET for gas in samples),
            "costliest": {"from": costliest, **_fresh_epoch(node, log, costliest, costliest + 10_000)},
        }
    return result


def run_registry_gas(node: AnvilNode) -> dict[str, int]:
    """The gas of the DeviceRegistry's and TariffRegistry's transactions and of
    ``isValidReading``, each on its own deployment state (see the module's docstring)."""
    import hashlib

    from chain.types import DeviceRegistration
    from protocol.cashflow import Tariff
    from protocol.envelope import GENESIS_PREV, Body, DeviceKind, sign_body
    from protocol.signing import DeviceKey

    client = _client(node)
    cert = hashlib.sha256(b"manufacturer certificate").digest()

    def device(name: str, key: DeviceKey, *, cert_hash: bytes) -> DeviceRegistration:
        return DeviceRegistration(
            device_id=name,
            asset="bench-asset",
            alg=key.alg,
            public_key=key.public_key,
            kind=DeviceKind.CHARGER,
            window_s=60,
            rated_power_w=22_000,
            rated_hashrate_ghs=0,
            cert_hash=cert_hash,
        )

    es_key = DeviceKey.generate("es256")
    gas = {
        "register_ed25519": client.register(device("ed-0", DeviceKey.generate("ed25519"), cert_hash=b"")).gas_used,
        "register_ed25519_cert": client.register(
            device("ed-1", DeviceKey.generate("ed25519"), cert_hash=cert)
        ).gas_used,
        "register_es256_cert": client.register(device("chg-0", es_key, cert_hash=cert)).gas_used,
    }
    batch = [device(f"ed-b{i}", DeviceKey.generate("ed25519"), cert_hash=b"") for i in range(100)]
    gas["register_many_per_device_ed25519"] = client.register_devices(batch, batch_size=100)[0].gas_used // 100
    gas["rotate_es256_cert"] = client.rotate(
        device_id="chg-0", public_key=DeviceKey.generate("es256").public_key, cert_hash=cert
    ).gas_used
    gas["revoke"] = client.revoke(device_id="ed-1").gas_used
    tariff = Tariff(
        id="bench-2026",
        currency="HKD",
        solar_fit_per_kwh=300,
        charger_price_per_kwh=450,
        charger_session_fee=500,
        grid_price_per_kwh=150,
        miner_power_price_per_kwh=120,
        btc_price=50_000_000,
        btc_difficulty=90_000_000_000_000,
        btc_subsidy_sats=312_500_000,
        btc_fees_sats=20_000_000,
        pool_fee_bps=200,
    )
    gas["publish_tariff_first"] = client.publish_tariff(tariff, effective_from=0).gas_used
    later = client.block_timestamp(client.block_number()) + 3_600
    gas["publish_tariff_next"] = client.publish_tariff(tariff, effective_from=later).gas_used

    # isValidReading: a reading of a registered es256 charger, anchored after its registration.
    client = _client(node)
    signer = DeviceKey.generate("es256")
    client.register(device("chg-1", signer, cert_hash=cert))
    at_ms = client.block_timestamp(client.block_number()) * 1000
    body = Body(
        device="chg-1",
        seq=1,
        ts_ms=at_ms,
        kind=DeviceKind.CHARGER,
        window_s=60,
        metrics={
            "energy_wh": 300,
            "grid_wh": 320,
            "sessions_started": 1,
            "sessions_ended": 0,
            "active_s": 60,
            "power_w": 18_000,
        },
        prev=GENESIS_PREV,
    )
    message = sign_body(body, signer).raw
    small = MerkleLog()
    small.append(message)
    _anchor(client, small, epoch=0, previous=0, size=1)
    gas["is_valid_reading_1_leaf"] = _is_valid_gas(client, small, message, epoch=0, index=0)

    client = _client(node)
    client.register(device("chg-1", signer, cert_hash=cert))
    big = MerkleLog()
    half = MILLION // 2
    for start in range(0, half, CHUNK):
        big.extend_hashes(leaf_hashes(start, start + CHUNK))
    big.append(message)
    for start in range(half + 1, MILLION, CHUNK):
        big.extend_hashes(leaf_hashes(start, min(MILLION, start + CHUNK)))
    _anchor(client, big, epoch=0, previous=0, size=half)
    _anchor(client, big, epoch=1, previous=half, size=MILLION)
    gas["is_valid_reading_at_1m"] = _is_valid_gas(client, big, message, epoch=1, index=half)
    return gas


def _is_valid_gas(client: ChainClient, log: MerkleLog, message: bytes, *, epoch: int, index: int) -> int:
    checkpoint = client.checkpoint(epoch)
    arguments: dict[str, Any] = {
        "message": message,
        "device_id": "chg-1",
        "leaf_index": index,
        "tree_size": checkpoint.tree_size,
        "proof": log.inclusion_proof(index, checkpoint.tree_size),
        "checkpoint": checkpoint,
    }
    if not client.verify_reading_onchain(**arguments).valid:
        raise AssertionError("the benchmark's reading does not verify on chain")
    return client.reading_verification_gas(**arguments)


# --- the database log (each in a subprocess) -----------------------------------------------------


def _time_proofs(log: MerkleLog, indexes: list[int], size: int) -> tuple[list[float], list[list[bytes]]]:
    for index in indexes[:20]:  # warm the pool and the caches
        log.inclusion_proof(index, size)
    times = []
    made = []
    for index in indexes:
        begin = time.perf_counter()
        proof = log.inclusion_proof(index, size)
        times.append(time.perf_counter() - begin)
        made.append(proof)
    return times, made


def run_database(url: str, *, leaves: int, proofs: int, seed: int) -> dict[str, Any]:
    from attestor.log_store import DbNodeStore
    from store.db import make_engine, migrate

    engine = make_engine(url)
    try:
        migrate(engine)
        store = DbNodeStore(engine)
        log = MerkleLog(store)
        rss: dict[str, float] = {}
        start = time.perf_counter()
        while log.size < leaves:
            end = min(leaves, log.size + CHUNK)
            hashes = leaf_hashes(log.size, end)
            with engine.begin() as conn, store.bound(conn):
                log.extend_hashes(hashes)
            if end in RSS_POINTS:
                rss[str(end)] = round(_peak_rss_mb(), 1)
        build_s = time.perf_counter() - start
        root = log.root()

        rng = random.Random(seed)
        indexes = [rng.randrange(leaves) for _ in range(proofs)]
        times, made = _time_proofs(log, indexes, leaves)
        for index, proof in zip(indexes, made, strict=True):
            verify_inclusion(
                leaf_hash=leaf_hashes(index, index + 1)[0], index=index, size=leaves, proof=proof, root=root
            )
        return {
            "root": root.hex(),
            "build_s": round(build_s, 1),
            "rss_mb": rss,
            "proof_ms_p50": _ms(statistics.median(times)),
            "proof_ms_p99": _ms(statistics.quantiles(times, n=100)[98]),
        }
    finally:
        engine.dispose()


def _in_subprocess(url: str, *, leaves: int, proofs: int, seed: int) -> dict[str, Any]:
    argv = ["--child-db", url, "--leaves", str(leaves), "--proofs", str(proofs), "--seed", str(seed)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.anchor", *argv], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the database phase failed on {url.split(':', 1)[0]}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_sqlite(*, leaves: int, proofs: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-anchor-") as work:
        return _in_subprocess(f"sqlite:///{Path(work) / 'log.db'}", leaves=leaves, proofs=proofs, seed=seed)


def run_postgresql(admin_url: str, *, leaves: int, proofs: int, seed: int) -> dict[str, Any]:
    from sqlalchemy import text

    from store.db import make_engine

    admin = make_engine(admin_url)
    name = f"assetproof_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        try:
            return _in_subprocess(url, leaves=leaves, proofs=proofs, seed=seed)
        finally:
            with admin.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                )
    finally:
        admin.dispose()


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anchor", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--anchors", type=int, default=30, help="anchors timed for anchor_p50_ms")
    parser.add_argument("--epoch-samples", type=int, default=40, help="10,000-reading epochs sampled near 1M")
    parser.add_argument("--proofs", type=int, default=1_000, help="inclusion proofs timed per database")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL admin URL (a database is created)")
    parser.add_argument("--seed", type=int, default=6962)
    parser.add_argument("--child-db", help=argparse.SUPPRESS)
    parser.add_argument("--leaves", type=int, default=MILLION, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_db:
        print(json.dumps(run_database(args.child_db, leaves=args.leaves, proofs=args.proofs, seed=args.seed)))
        return 0

    started = time.perf_counter()
    log = memory_log(SIZES[-1])
    chain = run_chain(log, anchors=args.anchors, epoch_samples=args.epoch_samples, seed=args.seed)
    memory_root = log.root(MILLION).hex()
    del log
    databases = {
        "sqlite": run_sqlite(leaves=MILLION, proofs=args.proofs, seed=args.seed),
        "postgresql": run_postgresql(args.postgres, leaves=MILLION, proofs=args.proofs, seed=args.seed),
    }
    gas_at_1m = next(row["gas"] for row in chain["gas_per_anchor"] if row["tree_size"] == MILLION)
    proof_ms = {name: db["proof_ms_p50"] for name, db in databases.items()}
    rss_mb = max(db["rss_mb"][str(MILLION)] for db in databases.values())
    result = {
        **chain,
        "gas_at_1m": gas_at_1m,
        "proof_ms_at_1m": proof_ms,
        "proof_ms_p99_at_1m": {name: db["proof_ms_p99"] for name, db in databases.items()},
        "attestor_rss_mb": rss_mb,
        "attestor_rss_mb_by_size": {name: db["rss_mb"] for name, db in databases.items()},
        "db_build_s": {name: db["build_s"] for name, db in databases.items()},
        "roots_equal": all(db["root"] == memory_root for db in databases.values()),
        "targets_met": {
            "gas_at_1m": gas_at_1m <= GAS_TARGET,
            "gas_worst_case_at_1m": chain["gas_worst_case_at_1m"]["gas"] <= GAS_TARGET,
            "gas_epochs_of_10k_near_1m": chain["gas_epochs_of_10k_near_1m"]["max"] <= GAS_TARGET,
            "proof_ms_at_1m": all(ms <= PROOF_MS_TARGET for ms in proof_ms.values()),
            "attestor_rss_mb": rss_mb <= RSS_MB_TARGET,
        },
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}  {value}")
    return 0 if result["roots_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
