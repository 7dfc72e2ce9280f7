"""Epoch metadata: what an epoch's checkpoint commits to besides the Merkle root.

Each anchored checkpoint carries ``metaHash = SHA-256(RFC 8785(metadata))``. The metadata holds
the epoch number, its time window, the range of leaves it added to the log, the tariff used, the
per-asset cash-flow totals (every asset the attestor knows, zero when it had no reading), their
``assets_root`` (:mod:`protocol.asset_totals`: the root a contract checks an asset's totals
against, also anchored on chain) and the count and Merkle root of the messages quarantined during
the epoch. With the metadata and the epoch's leaves an auditor recomputes every figure.

Wire form::

    {"format": "assetproof.epoch", "version": 2, "epoch": 3,
     "window": {"start_ms": ..., "end_ms": ...}, "leaves": {"from": 100, "to": 250},
     "tariff": {...}, "assets": {"solar-rooftop": {"readings": 90, "energy_wh": ...,
     "revenue": ..., "cost": ..., "net": ...}}, "assets_root": "<hex>",
     "quarantine": {"count": 2, "root": "<hex>"}}

Version 2 added ``assets_root``. Parsing keeps the ``assets_root`` the document states (the claim
an auditor compares with the one recomputed from the leaves); building computes it.

``leaves`` is the half-open range of log indexes: the checkpoint's tree size is ``leaves.to``.
``quarantine.root`` is the RFC 6962 root over the SHA-256 digests of the messages quarantined in
the epoch (each digest is one leaf), in the order they were quarantined: digests, not the
payloads, because an oversized payload is kept only in part. :func:`quarantine_root` computes it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from protocol._strict import MAX_INT, require_int, require_object
from protocol.asset_totals import assets_root as compute_assets_root
from protocol.cashflow import Tariff
from protocol.envelope import canonical_json, parse_json
from protocol.errors import MalformedError, MetadataError
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import tree_root

__all__ = ["ASSET_NAME", "AssetTotals", "EpochMetadata", "quarantine_root", "validate_asset_name"]

FORMAT: Final = "assetproof.epoch"
VERSION: Final = 2
ASSET_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEX32 = re.compile(r"[0-9a-f]{64}")


def quarantine_root(payload_digests: list[bytes]) -> bytes:
    """The ``quarantine.root`` of an epoch whose quarantined payloads have these SHA-256s."""
    return tree_root([leaf_hash(d) for d in payload_digests])


def validate_asset_name(value: object) -> str:
    """``value`` if it is a valid asset name (the same alphabet as device ids)."""
    if not isinstance(value, str) or not ASSET_NAME.fullmatch(value):
        raise MetadataError(f"asset name must match {ASSET_NAME.pattern}, got {value!r}")
    return value


def _error(message: str, _path: str) -> MetadataError:
    return MetadataError(message)


def _int(obj: dict[str, Any], name: str, path: str, *, minimum: int = 0) -> int:
    return require_int(obj, name, path, error=_error, minimum=minimum)


def _obj(value: object, keys: set[str], path: str) -> dict[str, Any]:
    return require_object(value, keys, path, error=_error)


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetTotals:
    """One asset's figures over an epoch; ``net`` is ``revenue - cost`` and may be negative."""

    readings: int = 0
    energy_wh: int = 0
    revenue: int = 0
    cost: int = 0

    @property
    def net(self) -> int:
        return self.revenue - self.cost

    def plus(self, *, readings: int, energy_wh: int, revenue: int, cost: int) -> AssetTotals:
        return AssetTotals(
            readings=self.readings + readings,
            energy_wh=self.energy_wh + energy_wh,
            revenue=self.revenue + revenue,
            cost=self.cost + cost,
        )

    def to_json(self) -> dict[str, int]:
        return {
            "readings": self.readings,
            "energy_wh": self.energy_wh,
            "revenue": self.revenue,
            "cost": self.cost,
            "net": self.net,
        }

    @classmethod
    def from_json(cls, obj: object, path: str) -> AssetTotals:
        fields = _obj(obj, {"readings", "energy_wh", "revenue", "cost", "net"}, path)
        totals = cls(
            readings=_int(fields, "readings", path),
            energy_wh=_int(fields, "energy_wh", path),
            revenue=_int(fields, "revenue", path),
            cost=_int(fields, "cost", path),
        )
        if _int(fields, "net", path, minimum=-MAX_INT) != totals.net:
            raise MetadataError(f"{path}.net is not revenue - cost")
        return totals


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochMetadata:
    epoch: int
    start_ms: int
    end_ms: int
    leaves_from: int
    leaves_to: int
    tariff: Tariff
    assets: Mapping[str, AssetTotals]
    quarantine_count: int
    quarantine_root: bytes
    assets_root: bytes = b""
    """Left empty when building: computed from ``assets`` (:meth:`computed_assets_root`)."""

    def __post_init__(self) -> None:
        if self.assets_root == b"":
            object.__setattr__(self, "assets_root", self.computed_assets_root())
        EpochMetadata.from_json(self.to_json())  # one validation path for building and parsing
        object.__setattr__(self, "assets", MappingProxyType(dict(sorted(self.assets.items()))))

    def computed_assets_root(self) -> bytes:
        """The assets root of this metadata's own totals: equal to :attr:`assets_root` unless the
        document that was parsed states another."""
        return compute_assets_root(epoch=self.epoch, currency=self.tariff.currency, totals=self.assets)

    @property
    def tree_size(self) -> int:
        """The size of the log at this epoch's checkpoint."""
        return self.leaves_to

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "epoch": self.epoch,
            "window": {"start_ms": self.start_ms, "end_ms": self.end_ms},
            "leaves": {"from": self.leaves_from, "to": self.leaves_to},
            "tariff": self.tariff.to_json(),
            "assets": {name: totals.to_json() for name, totals in self.assets.items()},
            "assets_root": self.assets_root.hex(),
            "quarantine": {"count": self.quarantine_count, "root": self.quarantine_root.hex()},
        }

    def canonical_bytes(self) -> bytes:
        """The RFC 8785 encoding that ``meta_hash`` covers. The schema admits only ASCII names and
        integers, so the envelope's fast encoder is byte-identical to RFC 8785 here (a test checks
        it against the ``rfc8785`` package); auditors hash metadata once per bundle."""
        return canonical_json(self.to_json())

    @property
    def meta_hash(self) -> bytes:
        return hashlib.sha256(self.canonical_bytes()).digest()

    @classmethod
    def from_json(cls, obj: object) -> EpochMetadata:
        top = _obj(
            obj,
            {"format", "version", "epoch", "window", "leaves", "tariff", "assets", "assets_root", "quarantine"},
            "metadata",
        )
        if top["format"] != FORMAT or top["version"] != VERSION or type(top["version"]) is not int:
            raise MetadataError(f"not {FORMAT} version {VERSION} metadata")
        window = _obj(top["window"], {"start_ms", "end_ms"}, "window")
        leaves = _obj(top["leaves"], {"from", "to"}, "leaves")
        quarantine = _obj(top["quarantine"], {"count", "root"}, "quarantine")
        start_ms, end_ms = _int(window, "start_ms", "window"), _int(window, "end_ms", "window")
        if end_ms < start_ms:
            raise MetadataError("window.end_ms is before window.start_ms")
        leaves_from, leaves_to = _int(leaves, "from", "leaves"), _int(leaves, "to", "leaves")
        if leaves_to < leaves_from:
            raise MetadataError("leaves.to is below leaves.from")
        root = quarantine["root"]
        if not isinstance(root, str) or not _HEX32.fullmatch(root):
            raise MetadataError("quarantine.root must be 64 lowercase hex characters")
        stated_assets_root = top["assets_root"]
        if not isinstance(stated_assets_root, str) or not _HEX32.fullmatch(stated_assets_root):
            raise MetadataError("assets_root must be 64 lowercase hex characters")
        assets_obj = top["assets"]
        if not isinstance(assets_obj, dict):
            raise MetadataError("assets must be a JSON object")
        assets = {
            validate_asset_name(name): AssetTotals.from_json(totals, f"assets.{name}")
            for name, totals in assets_obj.items()
        }
        if sum(t.readings for t in assets.values()) != leaves_to - leaves_from:
            raise MetadataError("the assets' reading counts do not add up to the epoch's leaves")
        result = object.__new__(cls)
        for name, value in (
            ("epoch", _int(top, "epoch", "metadata")),
            ("start_ms", start_ms),
            ("end_ms", end_ms),
            ("leaves_from", leaves_from),
            ("leaves_to", leaves_to),
            ("tariff", Tariff.from_json(top["tariff"])),
            ("assets", MappingProxyType(dict(sorted(assets.items())))),
            ("quarantine_count", _int(quarantine, "count", "quarantine")),
            ("quarantine_root", bytes.fromhex(root)),
            ("assets_root", bytes.fromhex(stated_assets_root)),
        ):
            object.__setattr__(result, name, value)
        return result

    @classmethod
    def parse(cls, data: bytes) -> EpochMetadata:
        """Metadata from JSON bytes (any whitespace; hashing always re-canonicalises)."""
        try:
            return cls.from_json(parse_json(data, what="metadata"))
        except MalformedError as exc:
            raise MetadataError(str(exc)) from None
