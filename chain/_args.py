"""Checks and conversions of the values passed to and read from contract functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chain.types import Checkpoint

__all__ = ["as_bytes", "checkpoint_args", "require_hashes"]


def as_bytes(value: Any) -> bytes:
    return bytes(value)


def require_hashes(*, root: bytes, meta_hash: bytes, proof: Sequence[bytes], assets_root: bytes | None = None) -> None:
    named = [("root", root), ("meta_hash", meta_hash)]
    if assets_root is not None:
        named.append(("assets_root", assets_root))
    for name, value in (*named, *(("proof element", p) for p in proof)):
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes")


def checkpoint_args(checkpoint: Checkpoint) -> tuple[int, int, bytes, bytes, bytes, int, int]:
    """The checkpoint's fields in the contracts' order (``Checkpoint`` structs and the flat
    arguments of ``verifyCheckpoint`` / ``verifyInclusion``)."""
    c = checkpoint
    require_hashes(root=c.root, meta_hash=c.meta_hash, assets_root=c.assets_root, proof=())
    return (c.epoch, c.tree_size, c.root, c.meta_hash, c.assets_root, c.block_number, c.timestamp)
