"""The epoch export: what an operator hands an auditor to recompute whole epochs.

One folder per epoch, named by :func:`epoch_dir_name` (the API serves the same relative paths
under ``/v1/export/``)::

    epoch-000003/checkpoint.json   an :class:`EpochCheckpoint` (JSON)
    epoch-000003/metadata.json     the epoch metadata's exact RFC 8785 bytes
    epoch-000003/leaves            the epoch's messages in log order, one per line
    epoch-000003/quarantine.json   {"digests": [hex SHA-256 of each quarantined payload]}

A canonical (RFC 8785) message never contains a raw newline byte (JSON escapes control
characters in strings), so a line of ``leaves`` is exactly one leaf's bytes.

Nothing here is trusted by an auditor: the checkpoint's ``frontier`` (the roots of the complete
subtrees covering the log before the epoch) seeds the root computation, and only a root equal to
the anchored one shows the leaves are the log's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from protocol._strict import require_int, require_object
from protocol.errors import VerificationError

__all__ = [
    "EXPORT_FILES",
    "EpochCheckpoint",
    "ExportFormatError",
    "epoch_dir_name",
    "quarantine_digests",
    "split_leaves",
]

FORMAT: Final = "assetproof.export.checkpoint"
VERSION: Final = 1
EXPORT_FILES: Final = ("checkpoint.json", "metadata.json", "leaves", "quarantine.json")
_HEX32 = re.compile(r"[0-9a-f]{64}")


class ExportFormatError(VerificationError):
    """An export file is not in the export format."""

    reason = "bad_export"


def epoch_dir_name(epoch: int) -> str:
    """The folder (and API path segment) of one epoch's files."""
    return f"epoch-{epoch:06d}"


def _error(message: str, _path: str) -> ExportFormatError:
    return ExportFormatError(message)


def _hashes(value: object, path: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) and _HEX32.fullmatch(h) for h in value):
        raise ExportFormatError(f"{path} must be a list of 64-character lowercase hex hashes")
    return tuple(bytes.fromhex(h) for h in value)


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochCheckpoint:
    """``checkpoint.json``: the operator's account of one epoch's checkpoint."""

    epoch: int
    tree_size: int
    root: bytes
    meta_hash: bytes
    frontier_size: int
    frontier: tuple[bytes, ...]
    consistency_proof: tuple[bytes, ...]
    """From the previous epoch's checkpoint (empty for epoch 0)."""
    anchor: dict[str, Any] | None
    """As in a proof bundle (:class:`protocol.bundle.Anchor` JSON), or None before anchoring."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "epoch": self.epoch,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "meta_hash": self.meta_hash.hex(),
            "frontier": {"size": self.frontier_size, "hashes": [h.hex() for h in self.frontier]},
            "consistency_proof": [h.hex() for h in self.consistency_proof],
            "anchor": self.anchor,
        }

    @classmethod
    def from_json(cls, obj: object) -> EpochCheckpoint:
        keys = {
            "format",
            "version",
            "epoch",
            "tree_size",
            "root",
            "meta_hash",
            "frontier",
            "consistency_proof",
            "anchor",
        }
        top = require_object(obj, keys, "checkpoint", error=_error)
        if top["format"] != FORMAT or type(top["version"]) is not int or top["version"] != VERSION:
            raise ExportFormatError(f"not a {FORMAT} version {VERSION} document")
        frontier = require_object(top["frontier"], {"size", "hashes"}, "frontier", error=_error)
        for name in ("root", "meta_hash"):
            if not isinstance(top[name], str) or not _HEX32.fullmatch(top[name]):
                raise ExportFormatError(f"checkpoint.{name} must be 64 lowercase hex characters")
        if top["anchor"] is not None and not isinstance(top["anchor"], dict):
            raise ExportFormatError("checkpoint.anchor must be an object or null")
        return cls(
            epoch=require_int(top, "epoch", "checkpoint", error=_error),
            tree_size=require_int(top, "tree_size", "checkpoint", error=_error),
            root=bytes.fromhex(top["root"]),
            meta_hash=bytes.fromhex(top["meta_hash"]),
            frontier_size=require_int(frontier, "size", "frontier", error=_error),
            frontier=_hashes(frontier["hashes"], "frontier.hashes"),
            consistency_proof=_hashes(top["consistency_proof"], "consistency_proof"),
            anchor=top["anchor"],
        )


def split_leaves(data: bytes) -> list[bytes]:
    """The leaves of a ``leaves`` file (newline-terminated lines)."""
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise ExportFormatError("the leaves file does not end with a newline (truncated?)")
    return data[:-1].split(b"\n")


def quarantine_digests(obj: object) -> list[bytes]:
    """The digests listed in ``quarantine.json``."""
    top = require_object(obj, {"digests"}, "quarantine", error=_error)
    return list(_hashes(top["digests"], "quarantine.digests"))
