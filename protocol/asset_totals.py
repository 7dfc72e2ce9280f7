"""Per-asset epoch totals in a fixed binary form a contract can hash, and the tree over them.

Each anchored checkpoint commits (inside the AnchorRegistry's commitment) to ``assetsRoot``, the
RFC 6962 root over the epoch's per-asset totals, so a contract can check "asset A's net in epoch
e is X" with a short inclusion proof, without parsing JSON metadata. One leaf, 83 bytes,
big-endian::

    assetKey  32  SHA-256 of the UTF-8 asset name (protocol has no keccak; a contract derives
                  the key off chain or is given it)
    epoch      8  uint64
    readings   8  uint64
    energy_wh  8  uint64
    revenue    8  uint64
    cost       8  uint64
    net        8  int64, two's complement (revenue - cost; negative for a loss)
    currency   3  the tariff's ISO 4217 code, ASCII

The tree's leaves are ``SHA-256(0x00 || encoding)`` ordered by ``assetKey``; nodes
``SHA-256(0x01 || left || right)`` (:mod:`protocol.merkle`). Every asset the attestor knows at the
epoch's close is a leaf, with zero totals when it had no reading in the epoch: a consumer can then
demand every epoch of an asset in order, and a loss-making epoch cannot be hidden by leaving the
asset out. Ordering by key, not by name, lets a contract check that two leaves are adjacent.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from protocol.errors import InvalidProofError, MalformedError
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import inclusion_proof, tree_root
from protocol.merkle.verify import root_from_inclusion_proof

__all__ = [
    "ENCODED_LENGTH",
    "AssetLeaf",
    "AssetTotalsProof",
    "asset_key",
    "asset_leaves",
    "assets_root",
    "totals_proof",
    "verify_totals_proof",
]

ENCODED_LENGTH: Final = 83
_LAYOUT: Final = struct.Struct(">32sQQQQQq3s")
assert _LAYOUT.size == ENCODED_LENGTH
_CURRENCY = re.compile(rb"[A-Z]{3}")
_UINT64_MAX: Final = 2**64 - 1
_INT64: Final = range(-(2**63), 2**63)


def asset_key(name: str) -> bytes:
    """The 32-byte key of an asset: SHA-256 of its UTF-8 name."""
    return hashlib.sha256(name.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetLeaf:
    """One asset's totals for one epoch, as the assets tree commits to them. ``net`` is stored,
    not derived, because the encoding carries it (a contract reads it without arithmetic):
    :meth:`decode` refuses a leaf whose net is not ``revenue - cost``."""

    asset_key: bytes
    epoch: int
    readings: int
    energy_wh: int
    revenue: int
    cost: int
    net: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.asset_key, bytes) or len(self.asset_key) != 32:
            raise MalformedError("asset_key must be 32 bytes")
        for name in ("epoch", "readings", "energy_wh", "revenue", "cost"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= _UINT64_MAX:
                raise MalformedError(f"{name} must be an integer in 0..2**64-1, got {value!r}")
        if type(self.net) is not int or self.net not in _INT64:
            raise MalformedError(f"net must be an integer in -2**63..2**63-1, got {self.net!r}")
        if self.net != self.revenue - self.cost:
            raise MalformedError(f"net {self.net} is not revenue - cost ({self.revenue} - {self.cost})")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency.encode("ascii", "replace")):
            raise MalformedError(f"currency must be three ASCII capitals, got {self.currency!r}")

    @classmethod
    def of(
        cls, *, asset: str, epoch: int, readings: int, energy_wh: int, revenue: int, cost: int, currency: str
    ) -> AssetLeaf:
        """The leaf of the named asset (net computed)."""
        return cls(
            asset_key=asset_key(asset),
            epoch=epoch,
            readings=readings,
            energy_wh=energy_wh,
            revenue=revenue,
            cost=cost,
            net=revenue - cost,
            currency=currency,
        )

    def encode(self) -> bytes:
        """The 83-byte big-endian encoding (module docstring)."""
        return _LAYOUT.pack(
            self.asset_key,
            self.epoch,
            self.readings,
            self.energy_wh,
            self.revenue,
            self.cost,
            self.net,
            self.currency.encode("ascii"),
        )

    @classmethod
    def decode(cls, data: bytes) -> AssetLeaf:
        """The leaf encoded in ``data``; :class:`MalformedError` for any other length or an
        inconsistent leaf (net not revenue - cost, a currency not three capitals)."""
        if not isinstance(data, bytes) or len(data) != ENCODED_LENGTH:
            length = len(data) if isinstance(data, (bytes, bytearray)) else None
            raise MalformedError(f"asset totals must be {ENCODED_LENGTH} bytes, got {length}")
        key, epoch, readings, energy, revenue, cost, net, currency = _LAYOUT.unpack(data)
        if not _CURRENCY.fullmatch(currency):
            raise MalformedError(f"currency must be three ASCII capitals, got {currency!r}")
        return cls(
            asset_key=key,
            epoch=epoch,
            readings=readings,
            energy_wh=energy,
            revenue=revenue,
            cost=cost,
            net=net,
            currency=currency.decode("ascii"),
        )

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())


class _Totals(Protocol):
    """What :func:`asset_leaves` reads of each asset's totals (``protocol.epoch.AssetTotals``)."""

    @property
    def readings(self) -> int: ...
    @property
    def energy_wh(self) -> int: ...
    @property
    def revenue(self) -> int: ...
    @property
    def cost(self) -> int: ...


def asset_leaves(*, epoch: int, currency: str, totals: Mapping[str, _Totals]) -> list[tuple[str, AssetLeaf]]:
    """The epoch's leaves, (name, leaf), in tree order (by asset key)."""
    leaves = [
        (
            name,
            AssetLeaf.of(
                asset=name,
                epoch=epoch,
                readings=t.readings,
                energy_wh=t.energy_wh,
                revenue=t.revenue,
                cost=t.cost,
                currency=currency,
            ),
        )
        for name, t in totals.items()
    ]
    leaves.sort(key=lambda item: item[1].asset_key)
    return leaves


def assets_root(*, epoch: int, currency: str, totals: Mapping[str, _Totals]) -> bytes:
    """The RFC 6962 root over the epoch's asset leaves (SHA-256 of the empty string for none)."""
    return tree_root([leaf.leaf_hash for _, leaf in asset_leaves(epoch=epoch, currency=currency, totals=totals)])


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetTotalsProof:
    """An asset's leaf and where it sits in the epoch's assets tree: what
    ``AnchorRegistry.verifyAssetTotals`` takes (``totals``, ``index``, ``count``, ``proof``)."""

    leaf: AssetLeaf
    index: int
    count: int
    proof: tuple[bytes, ...]

    @property
    def encoded(self) -> bytes:
        return self.leaf.encode()


def totals_proof(*, asset: str, epoch: int, currency: str, totals: Mapping[str, _Totals]) -> AssetTotalsProof:
    """The inclusion proof of ``asset``'s leaf; ``KeyError`` if the epoch has no such asset."""
    leaves = asset_leaves(epoch=epoch, currency=currency, totals=totals)
    for index, (name, leaf) in enumerate(leaves):
        if name == asset:
            hashes = [lf.leaf_hash for _, lf in leaves]
            path = inclusion_proof(hashes, index=index, size=len(hashes))
            return AssetTotalsProof(leaf=leaf, index=index, count=len(hashes), proof=tuple(path))
    raise KeyError(asset)


def verify_totals_proof(proof: AssetTotalsProof, *, root: bytes) -> AssetLeaf:
    """The proof's leaf if it is included in the assets tree with ``root``;
    :class:`InvalidProofError` (or a subclass) otherwise."""
    got = root_from_inclusion_proof(
        leaf_hash=proof.leaf.leaf_hash, index=proof.index, size=proof.count, proof=list(proof.proof)
    )
    if got != root:
        raise InvalidProofError("the asset totals are not included under the assets root")
    return proof.leaf
