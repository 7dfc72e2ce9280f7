"""Merkle log build and proof speed, against a hashlib floor and pymerkle, in one run.

    python -m bench.merkle --leaves 1000000 --json

Each contender runs in its own subprocess over the same seeded random leaves, so each peak RSS
is its own and no contender warms the cache for another:

- ``floor``: hashlib alone computing the same 2N-1 hashes in a plain loop (no storage, nothing
  kept but the current level): the least any RFC 6962 implementation in Python can do.
- ``ours``: ``protocol.merkle.log.MerkleLog.extend`` over all leaves, then ``root()``; then 10,000
  inclusion proofs at size N for random leaves, each generated and verified.
- ``pymerkle``: ``pymerkle.InmemoryTree.append_entries`` then its root (RFC 9162 hashing, so
  the roots must be equal).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import time
from typing import Any

PROOF_SAMPLES = 10_000


def _leaves(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_floor(leaves: list[bytes]) -> dict[str, Any]:
    sha = hashlib.sha256
    start = time.perf_counter()
    level = []
    for data in leaves:
        level.append(sha(b"\x00" + data).digest())
    while len(level) > 1:
        parents = []
        for i in range(0, len(level) - 1, 2):
            parents.append(sha(b"\x01" + level[i] + level[i + 1]).digest())
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    elapsed = time.perf_counter() - start
    return {"build_s": elapsed, "root": level[0].hex()}


def run_ours(leaves: list[bytes], seed: int) -> dict[str, Any]:
    from protocol.merkle.hashing import leaf_hash
    from protocol.merkle.log import MerkleLog
    from protocol.merkle.verify import verify_inclusion

    start = time.perf_counter()
    log = MerkleLog()
    log.extend(leaves)
    root = log.root()
    elapsed = time.perf_counter() - start

    n = len(leaves)
    rng = random.Random(seed + 1)
    indexes = [rng.randrange(n) for _ in range(PROOF_SAMPLES)]
    leaf_hashes = [leaf_hash(leaves[i]) for i in indexes]
    start = time.perf_counter()
    for index, leaf in zip(indexes, leaf_hashes, strict=True):
        proof = log.inclusion_proof(index, n)
        verify_inclusion(leaf_hash=leaf, index=index, size=n, proof=proof, root=root)
    proof_us = (time.perf_counter() - start) / PROOF_SAMPLES * 1e6
    return {"build_s": elapsed, "root": root.hex(), "proof_us": proof_us}


def run_pymerkle(leaves: list[bytes]) -> dict[str, Any]:
    from pymerkle import InmemoryTree

    start = time.perf_counter()
    tree = InmemoryTree(algorithm="sha256")
    tree.append_entries(leaves)
    root = tree.get_root()
    elapsed = time.perf_counter() - start
    return {"build_s": elapsed, "root": root.hex()}


def _child(contender: str, n: int, seed: int) -> dict[str, Any]:
    leaves = _leaves(n, seed)
    if contender == "floor":
        result = run_floor(leaves)
    elif contender == "ours":
        result = run_ours(leaves, seed)
    else:
        result = run_pymerkle(leaves)
    result["rss_mb"] = _peak_rss_mb()
    return result


def _in_subprocess(contender: str, n: int, seed: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.merkle", "--child", contender, "--leaves", str(n), "--seed", str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.merkle", description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=6962)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--child", choices=["floor", "ours", "pymerkle"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.leaves, args.seed)))
        return 0

    floor = _in_subprocess("floor", args.leaves, args.seed)
    ours = _in_subprocess("ours", args.leaves, args.seed)
    theirs = _in_subprocess("pymerkle", args.leaves, args.seed)
    result = {
        "leaves": args.leaves,
        "ours_build_s": round(ours["build_s"], 4),
        "floor_s": round(floor["build_s"], 4),
        "ours_vs_floor": round(ours["build_s"] / floor["build_s"], 3),
        "pymerkle_build_s": round(theirs["build_s"], 4),
        "speedup_vs_pymerkle": round(theirs["build_s"] / ours["build_s"], 2),
        "proof_us": round(ours["proof_us"], 2),
        "roots_equal": ours["root"] == theirs["root"] == floor["root"],
        "rss_mb": round(ours["rss_mb"], 1),
        "pymerkle_rss_mb": round(theirs["rss_mb"], 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}  {value}")
    return 0 if result["roots_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
