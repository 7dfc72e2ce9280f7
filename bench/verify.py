"""How fast an auditor checks: single bundles, and whole epochs from an export of a million leaves.

    python -m bench.verify --json

Builds, on an anvil started here, a deployment with ``--devices`` registered devices (a fifth of
them es256, the rest ed25519) and ``--leaves`` signed readings in epochs of ``--epoch-leaves``,
each epoch anchored with its metadata and written as an export folder (``protocol.export``).
Then, in one run, prints one JSON object:

- ``bundles_per_s_offline``: proof bundles parsed from JSON bytes and checked with
  ``protocol.bundle.verify_bundle_offline`` (canonical bytes, signature, leaf, inclusion,
  metadata) as a batch, ``auditor.verify.verify_bundles_offline`` on ``--threads`` threads;
  ``bundles_per_s_offline_1_thread`` the same one bundle after another.
- ``bundles_per_s_chain``: bundles checked with ``auditor.verify.verify_bundle`` against anvil
  (the key history and the checkpoint read from the chain: what ``assetproof verify`` does).
- ``audit_leaves_per_s``: leaves read from the export, hashed and folded into the checkpoint roots
  (``protocol.merkle.log.CompactRange``), each root compared with the anchored one.
- ``audit_sig_per_s``: the export's signatures re-verified as the audit does (keys parsed once
  per device, two threads), decoding excluded; ``bare_sig_per_s``: pyca/cryptography verifying
  the same signatures in a plain loop on one thread, measured in the same run;
  ``sig_ratio`` = audit / bare (target >= 0.8).
- ``audit_end_to_end``: ``assetproof audit`` over the whole export against anvil (decode,
  signatures, totals, completeness, chain reads), its leaves per second and its findings (none).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from auditor.audit import audit_epochs
from auditor.signatures import verify_chunk
from auditor.sources import DirectorySource
from auditor.verify import verify_bundle, verify_bundles_offline
from chain.reader import ChainReader
from chain.types import DeviceRegistration
from chain.writer import ChainClient
from config import ANVIL_DEV_KEY
from devstack.anvil import start_anvil
from gateway.tariff import load_tariff
from protocol.bundle import Checkpoint, ProofBundle, verify_bundle_offline
from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, Message, decode_message, sign_body
from protocol.epoch import AssetTotals, EpochMetadata, quarantine_root
from protocol.export import EpochCheckpoint, epoch_dir_name, split_leaves
from protocol.merkle.log import CompactRange, MerkleLog
from protocol.signing import DeviceKey, VerifyingKey

ASSET = "bench-rooftops"
START_MS = 1_763_700_000_000


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _metrics(rng: random.Random) -> dict[str, int]:
    return {
        "energy_wh": rng.randrange(0, 90),
        "power_w": rng.randrange(0, 5_400),
        "irradiance_wm2": rng.randrange(0, 1_000),
        "temp_dc": rng.randrange(100, 600),
    }


class Fleet:
    def __init__(self, devices: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.start_ms = START_MS
        """When the readings begin; main() moves it to the chain's time: keys count for readings
        dated at most the registry's backfill bound before their registration."""
        self.keys = {f"sol-{i:05d}": DeviceKey.generate("es256" if i % 5 == 0 else "ed25519") for i in range(devices)}
        self.heads = dict.fromkeys(self.keys, (0, GENESIS_PREV))

    def readings(self, count: int) -> list[Message]:
        out = []
        ids = list(self.keys)
        for n in range(count):
            device = ids[n % len(ids)]
            seq, prev = self.heads[device]
            body = Body(
                device=device,
                seq=seq + 1,
                ts_ms=self.start_ms + seq * 60_000,
                kind=DeviceKind.SOLAR,
                window_s=60,
                metrics=_metrics(self.rng),
                prev=prev,
            )
            message = sign_body(body, self.keys[device])
            self.heads[device] = (seq + 1, message.chain_hash)
            out.append(message)
        return out


def build(
    directory: Path, *, chain: ChainClient, fleet: Fleet, leaves: int, epoch_leaves: int, tariff: Tariff
) -> tuple[MerkleLog, list[EpochMetadata], list[bytes]]:
    """Anchor ``leaves`` readings in epochs and write the export; the log, metadata and leaves."""
    chain.publish_tariff(tariff, effective_from=0)  # every epoch's metadata must carry the published tariff
    chain.register_devices(
        DeviceRegistration(
            device_id=d,
            asset=ASSET,
            alg=k.alg,
            public_key=k.public_key,
            kind=DeviceKind.SOLAR,
            window_s=60,
            rated_power_w=10_000,
            rated_hashrate_ghs=0,
            cert_hash=b"",
        )
        for d, k in fleet.keys.items()
    )
    log = MerkleLog()
    metas: list[EpochMetadata] = []
    raws: list[bytes] = []
    previous = None
    for epoch, start in enumerate(range(0, leaves, epoch_leaves)):
        messages = fleet.readings(min(epoch_leaves, leaves - start))
        totals = AssetTotals()
        for m in messages:
            flow = reading_cash_flow(m.body, tariff)
            totals = totals.plus(
                readings=1, energy_wh=m.body.metrics["energy_wh"], revenue=flow.revenue, cost=flow.cost
            )
        frontier = log.compact_range(log.size)
        log.extend(m.raw for m in messages)
        meta = EpochMetadata(
            epoch=epoch,
            start_ms=messages[0].body.ts_ms,
            end_ms=messages[-1].body.ts_ms + 60_000,
            leaves_from=start,
            leaves_to=log.size,
            tariff=tariff,
            assets={ASSET: totals},
            quarantine_count=0,
            quarantine_root=quarantine_root([]),
        )
        proof = log.consistency_proof(start, log.size)
        chain.anchor(
            epoch=epoch,
            tree_size=log.size,
            root=log.root(),
            meta_hash=meta.meta_hash,
            assets_root=meta.assets_root,
            proof=proof,
            previous=previous,
        )
        previous = chain.checkpoint(epoch)
        folder = directory / epoch_dir_name(epoch)
        folder.mkdir(parents=True)
        doc = EpochCheckpoint(
            epoch=epoch,
            tree_size=log.size,
            root=log.root(),
            meta_hash=meta.meta_hash,
            frontier_size=start,
            frontier=tuple(frontier),
            consistency_proof=tuple(proof),
            anchor=None,
        )
        (folder / "checkpoint.json").write_text(json.dumps(doc.to_json()))
        (folder / "metadata.json").write_bytes(meta.canonical_bytes())
        (folder / "leaves").write_bytes(b"".join(m.raw + b"\n" for m in messages))
        (folder / "quarantine.json").write_text('{"digests": []}')
        metas.append(meta)
        raws.extend(m.raw for m in messages)
    return log, metas, raws


def bundles(
    log: MerkleLog, metas: list[EpochMetadata], raws: list[bytes], fleet: Fleet, *, count: int, seed: int
) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        meta = metas[rng.randrange(len(metas))]
        index = rng.randrange(meta.leaves_from, meta.leaves_to)
        message = decode_message(raws[index])
        key = fleet.keys[message.body.device]
        bundle = ProofBundle(
            message=message.raw,
            device_id=message.body.device,
            alg=key.alg,
            public_key=key.public_key,
            leaf_index=index,
            tree_size=meta.leaves_to,
            inclusion_proof=tuple(log.inclusion_proof(index, meta.leaves_to)),
            checkpoint=Checkpoint(
                epoch=meta.epoch, tree_size=meta.leaves_to, root=log.root(meta.leaves_to), meta_hash=meta.meta_hash
            ),
            metadata=meta,
        )
        out.append(json.dumps(bundle.to_json()).encode())
    return out


def offline_rate(encoded: list[bytes], *, threads: int = 1) -> float:
    started = time.perf_counter()
    if threads == 1:
        for data in encoded:
            verify_bundle_offline(ProofBundle.parse(data))
    else:
        failures = [r for r in verify_bundles_offline(encoded, threads=threads) if r is not None]
        assert not failures, failures[:3]
    return len(encoded) / (time.perf_counter() - started)


def chain_rate(encoded: list[bytes], reader: ChainReader) -> float:
    parsed = [ProofBundle.parse(data) for data in encoded]
    started = time.perf_counter()
    for bundle in parsed:
        verify_bundle(bundle, chain=reader)
    return len(parsed) / (time.perf_counter() - started)


def leaves_rate(directory: Path, epochs: int) -> tuple[float, bool]:
    """Read, hash and fold every leaf; compare each root with its checkpoint's."""
    started = time.perf_counter()
    log = CompactRange()
    count = 0
    all_equal = True
    for epoch in range(epochs):
        folder = directory / epoch_dir_name(epoch)
        doc = EpochCheckpoint.from_json(json.loads((folder / "checkpoint.json").read_bytes()))
        leaves = split_leaves((folder / "leaves").read_bytes())
        log.extend(leaves)
        count += len(leaves)
        all_equal &= log.root() == doc.root and log.size == doc.tree_size
    return count / (time.perf_counter() - started), all_equal


def signature_rates(directory: Path, epochs: int, fleet: Fleet, *, threads: int, bare_sample: int) -> dict[str, Any]:
    verifiers = {d: VerifyingKey.from_bytes(k.alg, k.public_key) for d, k in fleet.keys.items()}
    timed = 0.0
    count = 0
    failures = 0
    bare_work: list[tuple[Any, bytes, bytes, bool]] = []
    with ThreadPoolExecutor(threads) as pool:
        for epoch in range(epochs):
            messages = [
                decode_message(raw) for raw in split_leaves((directory / epoch_dir_name(epoch) / "leaves").read_bytes())
            ]
            work = [(m, verifiers[m.body.device], i) for i, m in enumerate(messages)]
            chunks = [work[i : i + 2_000] for i in range(0, len(work), 2_000)]
            started = time.perf_counter()
            failures += sum(len(f) for f in pool.map(verify_chunk, chunks))
            timed += time.perf_counter() - started
            count += len(work)
            for m in messages[: max(0, bare_sample - len(bare_work))]:
                key = verifiers[m.body.device]._key
                bare_work.append((key, m.signed_bytes, m.signature, m.alg == "ed25519"))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    ecdsa = ec.ECDSA(hashes.SHA256())
    started = time.perf_counter()
    for key, data, signature, is_ed25519 in bare_work:
        if is_ed25519:
            key.verify(signature, data)
        else:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, ecdsa)
    bare = len(bare_work) / (time.perf_counter() - started)
    audit = count / timed
    return {
        "audit_sig_per_s": round(audit),
        "bare_sig_per_s": round(bare),
        "sig_ratio": round(audit / bare, 3),
        "sig_failures": failures,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--epoch-leaves", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--bundles", type=int, default=5_000, help="bundles verified offline")
    parser.add_argument("--chain-bundles", type=int, default=300, help="bundles verified against anvil")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=8032)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tariff = load_tariff()
    fleet = Fleet(args.devices, args.seed)
    node = start_anvil()
    try:
        client = ChainClient(node.web3(), account=ANVIL_DEV_KEY)
        deployment = client.deploy()
        client = ChainClient(node.web3(), account=ANVIL_DEV_KEY, deployment=deployment)
        reader = ChainReader(node.web3(), deployment=deployment)
        fleet.start_ms = reader.block_timestamp(reader.block_number()) * 1000
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
            export = Path(tmp)
            built = time.perf_counter()
            log, metas, raws = build(
                export, chain=client, fleet=fleet, leaves=args.leaves, epoch_leaves=args.epoch_leaves, tariff=tariff
            )
            build_s = time.perf_counter() - built
            encoded = bundles(log, metas, raws, fleet, count=args.bundles, seed=args.seed)
            del log, raws
            offline_1 = offline_rate(encoded)
            offline = offline_rate(encoded, threads=args.threads)
            onchain = chain_rate(encoded[: args.chain_bundles], reader)
            leaves_per_s, roots_equal = leaves_rate(export, len(metas))
            sigs = signature_rates(export, len(metas), fleet, threads=args.threads, bare_sample=50_000)
            report = audit_epochs(
                DirectorySource(export), chain=reader, first=0, last=len(metas) - 1, threads=args.threads
            )
    finally:
        node.stop()
    result = {
        "leaves": args.leaves,
        "epochs": len(metas),
        "devices": args.devices,
        "bundles_per_s_offline": round(offline),
        "bundles_per_s_offline_1_thread": round(offline_1),
        "bundles_per_s_chain": round(onchain, 1),
        "audit_leaves_per_s": round(leaves_per_s),
        "roots_equal": roots_equal,
        **sigs,
        "audit_end_to_end": {
            "ok": report.ok,
            "findings": len(report.findings),
            "leaves_per_s": round(report.leaves / report.seconds),
            "seconds": round(report.seconds, 1),
        },
        "rss_mb": _rss_mb(),
        "build_s": round(build_s, 1),
        "targets_met": {
            "bundles_per_s_offline": offline >= 5_000,
            "audit_leaves_per_s": leaves_per_s >= 200_000,
            "audit_sig_per_s": sigs["sig_ratio"] >= 0.8,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not args.json:
        print(f"bench.verify: {args.leaves} leaves in {len(metas)} epochs, {args.devices} devices")
    print(json.dumps(result))
    return 0 if all(result["targets_met"].values()) and report.ok and roots_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
