"""The committed contract artifacts (``chain/artifacts/<Name>.json``), read without a compiler."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chain.errors import DeploymentError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    immutable_ranges: tuple[tuple[int, int], ...]
    """(start, length) of every immutable in the deployed code, filled in at deployment."""
    sha256: bytes
    """SHA-256 of the artifact file as committed."""

    def code_matches(self, code: bytes) -> bool:
        """Whether ``code`` (as read from the chain) is this contract's deployed code, with any
        values in the immutables' places."""
        if len(code) != len(self.deployed_bytecode):
            return False
        masked = bytearray(code)
        for start, length in self.immutable_ranges:
            masked[start : start + length] = bytes(length)
        return bytes(masked) == self.deployed_bytecode


@cache
def load_artifact(name: str) -> Artifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DeploymentError(f"artifact {path} is missing: run `python -m chain.compile`") from exc
    data = json.loads(raw)
    ranges = tuple(
        (int(ref["start"]), int(ref["length"])) for refs in data["immutableReferences"].values() for ref in refs
    )
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
        immutable_ranges=ranges,
        sha256=hashlib.sha256(raw).digest(),
    )
