"""RFC 9162 inclusion and consistency proof verification (sections 2.1.3.2 and 2.1.4.2).

Every precondition is checked before hashing, and only :class:`VerificationError` subclasses
are raised, whatever the input: a verifier is fed untrusted bundles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from protocol.errors import InvalidProofError, RootMismatchError
from protocol.merkle.hashing import EMPTY_ROOT, require_hash, require_size

__all__ = ["root_from_inclusion_proof", "verify_consistency", "verify_inclusion"]

_sha256 = hashlib.sha256


def _require_proof(proof: object, expected_length: int) -> list[bytes]:
    if not isinstance(proof, (list, tuple)):
        raise InvalidProofError(f"proof must be a list of hashes, got {type(proof).__name__}")
    if len(proof) != expected_length:
        raise InvalidProofError(f"wrong proof length {len(proof)}, expected {expected_length}")
    for position, element in enumerate(proof):
        require_hash(f"proof element {position}", element)
    return list(proof)


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """(inner, border): proof elements below the fork with the right edge, and left siblings
    above it."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = _sha256(b"\x01" + h + seed).digest() if index >> i & 1 else _sha256(b"\x01" + seed + h).digest()
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like :func:`_chain_inner` but only with siblings left of the path: the hash of the same
    subtree in the earlier, smaller tree."""
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = _sha256(b"\x01" + h + seed).digest()
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = _sha256(b"\x01" + h + seed).digest()
    return seed


def root_from_inclusion_proof(*, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``index`` in a tree of ``size``."""
    index = require_size("index", index)
    size = require_size("size", size)
    if index >= size:
        raise InvalidProofError(f"index {index} is not below size {size}")
    require_hash("leaf hash", leaf_hash)
    inner, border = _inclusion_shape(index, size)
    checked = _require_proof(proof, inner + border)
    return _chain_border_right(_chain_inner(leaf_hash, checked[:inner], index), checked[inner:])


def verify_inclusion(*, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise unless ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``size`` with
    ``root``."""
    require_hash("root", root)
    calculated = root_from_inclusion_proof(leaf_hash=leaf_hash, index=index, size=size, proof=proof)
    if calculated != root:
        raise RootMismatchError("inclusion proof", expected=root, calculated=calculated)


def verify_consistency(*, size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise unless ``proof`` shows the tree (``size2``, ``root2``) extends (``size1``,
    ``root1``)."""
    size1 = require_size("size1", size1)
    size2 = require_size("size2", size2)
    require_hash("root1", root1)
    require_hash("root2", root2)
    if size2 < size1:
        raise InvalidProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == size2 or size1 == 0:
        _require_proof(proof, 0)
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise RootMismatchError("empty tree", expected=root1, calculated=EMPTY_ROOT)
        if size1 == size2 and root1 != root2:
            raise RootMismatchError("equal tree sizes", expected=root2, calculated=root1)
        return

    shift = (size1 & -size1).bit_length() - 1
    inner, border = _inclusion_shape(size1 - 1, size2)
    inner -= shift
    seeded = size1 == 1 << shift  # a power of two: root1 itself is the seed
    start = 0 if seeded else 1
    checked = _require_proof(proof, start + inner + border)
    seed = root1 if seeded else checked[0]
    path = checked[start:]
    mask = (size1 - 1) >> shift

    calculated1 = _chain_border_right(_chain_inner_right(seed, path[:inner], mask), path[inner:])
    if calculated1 != root1:
        raise RootMismatchError("consistency proof (first tree)", expected=root1, calculated=calculated1)
    calculated2 = _chain_border_right(_chain_inner(seed, path[:inner], mask), path[inner:])
    if calculated2 != root2:
        raise RootMismatchError("consistency proof (second tree)", expected=root2, calculated=calculated2)
