"""The append-only RFC 6962 log over a pluggable node store, compact ranges, and the proofs
built from stored nodes (RFC 9162 section 2.1.3 inclusion, 2.1.4 consistency).

Nodes are named by ``(level, index)``: the perfect subtree of ``2**level`` leaves starting at leaf
``index << level``. A log of ``size`` leaves only ever stores complete (perfect) subtrees; the
right edge of a tree whose size is not a power of two is made of *ephemeral* nodes, recomputed
from the complete subtrees below them. That is what lets a proof cost O(log n) node reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Protocol

from protocol.errors import InvalidProofError, RangeError
from protocol.merkle.hashing import EMPTY_ROOT, MAX_TREE_SIZE, NodeId, require_hash, require_size

__all__ = [
    "CompactRange",
    "MemoryNodeStore",
    "MerkleLog",
    "NodeStore",
    "consistency_proof",
    "inclusion_proof",
    "tree_root",
]

_sha256 = hashlib.sha256


# --- proof shapes -------------------------------------------------------------------------------


class _ProofPlan:
    """Which stored nodes make up a proof, and where the one ephemeral node (if any) goes.

    ``ids`` are complete nodes in proof order except that the ephemeral node, when present,
    belongs at position ``ephemeral_at`` and is the fold of ``ephemeral_ids`` (right to left).
    """

    __slots__ = ("ephemeral_at", "ephemeral_ids", "ids")

    def __init__(self, ids: list[NodeId], ephemeral_at: int, ephemeral_ids: list[NodeId]) -> None:
        self.ids = ids
        self.ephemeral_at = ephemeral_at
        self.ephemeral_ids = ephemeral_ids


def _decomposition(size: int, below_level: int) -> list[NodeId]:
    """The complete subtrees that make up the last ``size mod 2**below_level`` leaves of a
    tree of ``size`` leaves, left to right (largest first)."""
    return [(level, (size >> level) - 1) for level in range(below_level - 1, -1, -1) if (size >> level) & 1]


def _path_plan(index: int, level: int, size: int) -> _ProofPlan:
    """Proof nodes for the complete node ``(level, index)`` inside a tree of ``size`` leaves.

    The path from the node to the root first climbs through complete siblings, then meets the
    ``fork``: the lowest ancestor whose right sibling is cut by the tree's right edge. That
    sibling is ephemeral (it may also be absent when the fork ends exactly at ``size``). Above
    the fork only left siblings remain, all complete.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    ids = [(level + i, (index >> i) ^ 1) for i in range(inner)]
    fork_level = level + inner
    fork_index = index >> inner
    ephemeral_at = -1
    ephemeral_ids: list[NodeId] = []
    if ((fork_index + 1) << fork_level) < size:
        ephemeral_at = len(ids)
        ephemeral_ids = _decomposition(size, fork_level)
    node, node_level = fork_index, fork_level
    while node:
        if node & 1:
            ids.append((node_level, node - 1))
        node >>= 1
        node_level += 1
    return _ProofPlan(ids, ephemeral_at, ephemeral_ids)


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """The root over consecutive complete subtrees given largest first (RFC 6962 splits a range
    at its largest power of two, so the fold runs from the right)."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = _sha256(b"\x01" + left + result).digest()
    return result


# --- the node store and the log -----------------------------------------------------------------


class NodeStore(Protocol):
    """Where a :class:`MerkleLog` keeps its complete-subtree nodes.

    Level ``L`` holds nodes ``0 .. (size >> L) - 1``, always appended in index order, so a store
    only ever appends to the end of each level.
    """

    def size(self) -> int:
        """How many leaves the stored nodes cover."""
        ...

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The hashes of the given complete nodes, in the order asked. Every id exists."""
        ...

    def add_nodes(self, *, size: int, levels: Sequence[bytes]) -> None:
        """Append ``levels[L]`` to level ``L`` for every ``L`` and record the new ``size``.

        ``levels[L]`` is the concatenation of exactly the nodes ``(old_size >> L) ..
        (size >> L) - 1`` of level ``L``, 32 bytes each. A store must apply the whole call or
        none of it.
        """
        ...


class MemoryNodeStore:
    """A :class:`NodeStore` in memory: one flat ``bytearray`` per level (32 bytes a node), so a
    million leaves cost about 64 MB rather than two million Python objects."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []
        self._size = 0

    def size(self) -> int:
        return self._size

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        levels = self._levels
        return [bytes(levels[level][index * 32 : index * 32 + 32]) for level, index in ids]

    def add_nodes(self, *, size: int, levels: Sequence[bytes]) -> None:
        while len(self._levels) < len(levels):
            self._levels.append(bytearray())
        for store_level, new in zip(self._levels, levels, strict=False):
            store_level += new
        self._size = size


_CHUNK = 8192
"""Leaves hashed per step: small enough to stay in cache, large enough to amortise the loop."""


class _Batch:
    """Nodes computed by one ``extend`` call, not yet written: per level, the new node hashes
    concatenated, and the frontier as it will be once they are."""

    __slots__ = ("frontier", "levels", "size")

    def __init__(self, size: int, frontier: dict[int, bytes]) -> None:
        self.size = size
        self.frontier = dict(frontier)
        self.levels: list[bytearray] = []

    def add(self, leaf_hashes: list[bytes]) -> None:
        self.size = _fold(self.frontier, self.size, leaf_hashes, levels=self.levels)


def _fold(frontier: dict[int, bytes], size: int, leaf_hashes: list[bytes], *, levels: list[bytearray] | None) -> int:
    """Append ``leaf_hashes`` to a log of ``size`` leaves whose right frontier is ``frontier``
    (updated in place); return the new size. With ``levels``, every new node is also appended
    there, level by level (what a :class:`NodeStore` keeps)."""
    sha = _sha256
    new_size = size + len(leaf_hashes)
    current = leaf_hashes
    level = 0
    while current:
        if levels is not None:
            if len(levels) == level:
                levels.append(bytearray())
            levels[level] += b"".join(current)
        seq = [frontier[level], *current] if (size >> level) & 1 else current
        if (new_size >> level) & 1:
            frontier[level] = current[-1]
        else:
            frontier.pop(level, None)
        pairs = iter(seq)
        current = [sha(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        level += 1
    return new_size


class MerkleLog:
    """An append-only RFC 6962 log over a pluggable :class:`NodeStore`.

    The log keeps the right frontier (the last node of every level with an odd count) in memory,
    so appending costs O(1) amortised hashes and the current root O(log n); roots and proofs for
    any earlier size cost O(log n) node reads, in one ``get_nodes`` call.
    """

    def __init__(self, store: NodeStore | None = None) -> None:
        self._store: NodeStore = store if store is not None else MemoryNodeStore()
        self._size = self._store.size()
        frontier_ids = _decomposition(self._size, self._size.bit_length())
        self._frontier: dict[int, bytes] = dict(
            zip((level for level, _ in frontier_ids), self._store.get_nodes(frontier_ids), strict=True)
        )

    @property
    def size(self) -> int:
        """Number of leaves in the log."""
        return self._size

    @property
    def store(self) -> NodeStore:
        return self._store

    def append(self, data: bytes) -> int:
        """Append one leaf (its data, hashed here); return its index."""
        self.extend((data,))
        return self._size - 1

    def extend(self, entries: Iterable[bytes]) -> None:
        """Append leaves given as data, hashed here, in one store write."""
        sha = _sha256
        batch = _Batch(self._size, self._frontier)
        source = iter(entries)
        while chunk := list(islice(source, _CHUNK)):
            batch.add([sha(b"\x00" + data).digest() for data in chunk])
        self._commit(batch)

    def extend_hashes(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaves given as leaf hashes (32 bytes each), in one store write."""
        batch = _Batch(self._size, self._frontier)
        source = iter(leaf_hashes)
        while chunk := list(islice(source, _CHUNK)):
            for h in chunk:
                require_hash("leaf hash", h, error=RangeError)
            batch.add(chunk)
        self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        if batch.size == self._size:
            return
        if batch.size >= MAX_TREE_SIZE:
            raise RangeError("the log cannot grow past 2**64 leaves")
        self._store.add_nodes(size=batch.size, levels=[bytes(level) for level in batch.levels])
        self._frontier = batch.frontier
        self._size = batch.size

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise RangeError(f"size {size} is outside the log (0..{self._size})")

    def root(self, size: int | None = None) -> bytes:
        """The tree head for the first ``size`` leaves (default: all of them)."""
        if size is None:
            size = self._size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        ids = _decomposition(size, size.bit_length())
        hashes = [self._frontier[level] for level, _ in ids] if size == self._size else self._store.get_nodes(ids)
        return _fold_right(hashes)

    def compact_range(self, size: int) -> list[bytes]:
        """The roots of the complete subtrees that make up the first ``size`` leaves, largest
        first: what a :class:`CompactRange` needs to continue the log from ``size``."""
        self._check_size(size)
        return self._store.get_nodes(_decomposition(size, size.bit_length()))

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """The stored leaf hashes ``start .. end-1``."""
        if not 0 <= start <= end <= self._size:
            raise RangeError(f"leaf range {start}..{end} is outside the log (0..{self._size})")
        return self._store.get_nodes([(0, i) for i in range(start, end)])

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        self._check_size(size)
        if not 0 <= index < size:
            raise RangeError(f"index {index} is outside a tree of size {size}")
        return self._materialise(_path_plan(index, 0, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of ``size1`` leaves to ``size2``."""
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise RangeError(f"size1 {size1} must lie in 0..size2 ({size2})")
        if size1 == 0 or size1 == size2:
            return []
        level = (size1 & -size1).bit_length() - 1
        index = (size1 - 1) >> level
        plan = _path_plan(index, level, size2)
        if index != 0:
            # size1 is not a power of two: its last complete subtree seeds the proof.
            plan.ids.insert(0, (level, index))
            if plan.ephemeral_at >= 0:
                plan.ephemeral_at += 1
        return self._materialise(plan)

    def _materialise(self, plan: _ProofPlan) -> list[bytes]:
        n = len(plan.ids)
        nodes = self._store.get_nodes(plan.ids + plan.ephemeral_ids)
        proof = nodes[:n]
        if plan.ephemeral_at >= 0:
            proof.insert(plan.ephemeral_at, _fold_right(nodes[n:]))
        return proof


class CompactRange:
    """A log reduced to its right frontier: the roots of the complete subtrees covering leaves
    ``0 .. size-1``, largest first (one per set bit of ``size``).

    It appends leaves and gives the root in O(log n) memory, so an auditor can recompute the
    checkpoints of a window of epochs from the window's leaves alone, seeded with the frontier
    of the first epoch's start. An untrusted seed is harmless: a root computed from it only
    matches an anchored root if the seed is the true frontier (SHA-256 second preimages).
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self, *, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        size = require_size("size", size)
        ids = _decomposition(size, size.bit_length())
        if len(hashes) != len(ids):
            raise InvalidProofError(f"a compact range of size {size} has {len(ids)} hashes, got {len(hashes)}")
        for h in hashes:
            require_hash("compact range hash", h)
        self._size = size
        self._frontier: dict[int, bytes] = {level: bytes(h) for (level, _), h in zip(ids, hashes, strict=True)}

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The frontier, largest subtree first."""
        return [self._frontier[level] for level in sorted(self._frontier, reverse=True)]

    def extend(self, entries: Iterable[bytes]) -> None:
        """Append leaves given as data (hashed here with the 0x00 prefix)."""
        sha = _sha256
        source = iter(entries)
        while chunk := list(islice(source, _CHUNK)):
            self._add([sha(b"\x00" + data).digest() for data in chunk])

    def extend_hashes(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaves given as 32-byte leaf hashes."""
        source = iter(leaf_hashes)
        while chunk := list(islice(source, _CHUNK)):
            for h in chunk:
                require_hash("leaf hash", h, error=RangeError)
            self._add(chunk)

    def _add(self, leaf_hashes: list[bytes]) -> None:
        if self._size + len(leaf_hashes) >= MAX_TREE_SIZE:
            raise RangeError("the log cannot grow past 2**64 leaves")
        self._size = _fold(self._frontier, self._size, leaf_hashes, levels=None)

    def root(self) -> bytes:
        """The tree head of the leaves so far."""
        if self._size == 0:
            return EMPTY_ROOT
        return _fold_right(self.hashes)


# --- whole-list helpers -------------------------------------------------------------------------


def _log_of(leaf_hashes: Sequence[bytes], size: int) -> MerkleLog:
    if not 0 <= size <= len(leaf_hashes):
        raise RangeError(f"size {size} is outside the {len(leaf_hashes)} leaves given")
    log = MerkleLog()
    log.extend_hashes(leaf_hashes[:size])
    return log


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 root over all the given leaf hashes."""
    return _log_of(leaf_hashes, len(leaf_hashes)).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], *, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree over the first ``size`` leaf hashes."""
    return _log_of(leaf_hashes, size).inclusion_proof(index, size)


def consistency_proof(leaf_hashes: Sequence[bytes], *, size1: int, size2: int) -> list[bytes]:
    """The consistency proof between the trees over the first ``size1`` and ``size2`` leaves."""
    return _log_of(leaf_hashes, size2).consistency_proof(size1, size2)
