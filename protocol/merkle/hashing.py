"""The RFC 6962 hashes and sizes, and the checks every Merkle input passes before it is hashed.

Verifiers check every precondition before hashing and raise :class:`VerificationError`
subclasses, and nothing else, whatever they are given: these checks are where that starts.
"""

from __future__ import annotations

import hashlib

from protocol.errors import InvalidProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "NodeId",
    "leaf_hash",
    "node_hash",
    "require_hash",
    "require_size",
]

HASH_SIZE = 32
MAX_TREE_SIZE = 1 << 64
"""Sizes and indexes are uint64, as in the contracts and every other RFC 6962 implementation."""

EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""``(level, index)`` of a complete subtree."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def require_hash(name: str, value: object, *, error: type[Exception] = InvalidProofError) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise error(f"{name} must be {HASH_SIZE} bytes, got {shown}")


def require_size(name: str, value: object) -> int:
    if type(value) is not int or not 0 <= value < MAX_TREE_SIZE:
        raise InvalidProofError(f"{name} must be an integer in 0..2**64-1, got {value!r}")
    return value
