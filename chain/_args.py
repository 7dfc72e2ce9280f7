"""Checks and conversions of the values passed to and read from contract functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chain.types import Checkpoint

__all__ = ["as_bytes", "checkpoint_args", "require_hashes"]


def as_bytes(value: Any) -> bytes:
    return bytes(value)


def require_hashes(*, root: bytes, meta_hash: bytes, proof: Sequence[bytes]) -> None:
    for name, value in (("root", root), ("meta_hash", meta_hash), *(("proof element", p) for p in proof)):
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes")


def checkpoint_args(checkpoint: Checkpoint) -> tuple[int, int, bytes, bytes, int, int]:
    c = checkpoint
    require_hashes(root=c.root, meta_hash=c.meta_hash, proof=())
    return (c.epoch, c.tree_size, c.root, c.meta_hash, c.block_number, c.timestamp)
