"""The epoch export: what an operator hands an auditor to recompute whole epochs.

One folder per epoch, named by :func:`epoch_dir_name` (the API serves the same relative paths
under ``/v1/export/``)::

    epoch-000003/checkpoint.json   an :class:`EpochCheckpoint` (JSON)
    epoch-000003/metadata.json     the epoch metadata's exact RFC 8785 bytes
    epoch-000003/leaves            the epoch's messages in log order, one per line
    epoch-000003/quarantine.json   a :class:`QuarantineExport`: {"digests": [...], "messages": [...]}

A canonical (RFC 8785) message never contains a raw newline byte (JSON escapes control
characters in strings), so a line of ``leaves`` is exactly one leaf's bytes.

Nothing here is trusted by an auditor: the checkpoint's ``frontier`` (the roots of the complete
subtrees covering the log before the epoch) seeds the root computation, and only a root equal to
the anchored one shows the leaves are the log's.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

from protocol._strict import require_int, require_object
from protocol.envelope import validate_device_id
from protocol.errors import ExportFormatError, VerificationError

__all__ = [
    "EXPORT_FILES",
    "EpochCheckpoint",
    "QuarantineExport",
    "QuarantineMessage",
    "epoch_dir_name",
    "quarantine_digests",
    "split_leaves",
]

FORMAT: Final = "assetproof.export.checkpoint"
VERSION: Final = 1
EXPORT_FILES: Final = ("checkpoint.json", "metadata.json", "leaves", "quarantine.json")
_HEX32 = re.compile(r"[0-9a-f]{64}")


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


_MESSAGE_KEYS: Final = frozenset({"digest", "reason", "chained", "publisher", "device", "seq", "raw_size", "raw"})
_REASON = re.compile(r"[a-z][a-z0-9_]{0,31}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineMessage:
    """One quarantined message of ``quarantine.json``: what the operator says about it. Nothing
    here is checked against anything but its own shape; an auditor checks ``raw`` against
    ``digest`` (when ``complete``) and, for a ``chained`` one, its signature and links."""

    digest: bytes
    """SHA-256 of the whole payload as received (the quarantine root's leaf)."""
    reason: str
    chained: bool
    """Signed by the device's key and linked into its chain, which it advanced."""
    publisher: str | None
    """The device whose topic carried it (the broker login that sent it); None: no device topic."""
    device: str | None
    """The device its body names, when it decoded."""
    seq: int | None
    raw_size: int
    """The payload's whole size."""
    raw: bytes
    """The stored bytes: the whole payload when ``complete``, else its first bytes."""

    @property
    def complete(self) -> bool:
        return len(self.raw) == self.raw_size

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest.hex(),
            "reason": self.reason,
            "chained": self.chained,
            "publisher": self.publisher,
            "device": self.device,
            "seq": self.seq,
            "raw_size": self.raw_size,
            "raw": base64.b64encode(self.raw).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: object, path: str = "message") -> QuarantineMessage:
        top = require_object(obj, _MESSAGE_KEYS, path, error=_error)
        digest = _hashes([top["digest"]], f"{path}.digest")[0]
        if not isinstance(top["reason"], str) or not _REASON.fullmatch(top["reason"]):
            raise ExportFormatError(f"{path}.reason must be a reason name (lowercase, digits, _)")
        if type(top["chained"]) is not bool:
            raise ExportFormatError(f"{path}.chained must be true or false")
        ids: dict[str, str | None] = {}
        for name in ("publisher", "device"):
            value = top[name]
            if value is not None:
                if not isinstance(value, str):
                    raise ExportFormatError(f"{path}.{name} must be a device id or null")
                try:
                    validate_device_id(value, field_name=f"{path}.{name}")
                except VerificationError as exc:
                    raise ExportFormatError(str(exc)) from None
            ids[name] = value
        seq = None if top["seq"] is None else require_int(top, "seq", path, error=_error, minimum=1)
        raw_size = require_int(top, "raw_size", path, error=_error)
        if not isinstance(top["raw"], str) or not _BASE64.fullmatch(top["raw"]):
            raise ExportFormatError(f"{path}.raw must be standard base64")
        try:
            raw = base64.b64decode(top["raw"], validate=True)
        except binascii.Error:
            raise ExportFormatError(f"{path}.raw is not valid base64") from None
        if len(raw) > raw_size:
            raise ExportFormatError(f"{path}.raw holds {len(raw)} bytes, more than raw_size {raw_size}")
        if top["chained"] and (seq is None or ids["device"] is None or ids["publisher"] != ids["device"]):
            raise ExportFormatError(f"{path}: a chained message names its device (as publisher too) and seq")
        return cls(
            digest=digest,
            reason=top["reason"],
            chained=top["chained"],
            publisher=ids["publisher"],
            device=ids["device"],
            seq=seq,
            raw_size=raw_size,
            raw=raw,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineExport:
    """``quarantine.json``: the digests the epoch's quarantine root is computed over, in order,
    and ``messages[i]`` describing ``digests[i]``. An export from before messages were exported
    has none (an empty tuple)."""

    digests: tuple[bytes, ...]
    messages: tuple[QuarantineMessage, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"digests": [d.hex() for d in self.digests], "messages": [m.to_json() for m in self.messages]}

    @classmethod
    def from_json(cls, obj: object) -> QuarantineExport:
        if isinstance(obj, dict) and "messages" not in obj:
            top = require_object(obj, {"digests"}, "quarantine", error=_error)
            return cls(digests=_hashes(top["digests"], "quarantine.digests"))
        top = require_object(obj, {"digests", "messages"}, "quarantine", error=_error)
        digests = _hashes(top["digests"], "quarantine.digests")
        if not isinstance(top["messages"], list):
            raise ExportFormatError("quarantine.messages must be a list")
        messages = tuple(
            QuarantineMessage.from_json(m, f"quarantine.messages[{i}]") for i, m in enumerate(top["messages"])
        )
        if len(messages) != len(digests):
            raise ExportFormatError(f"quarantine lists {len(digests)} digests but {len(messages)} messages")
        for i, (digest, message) in enumerate(zip(digests, messages, strict=True)):
            if message.digest != digest:
                raise ExportFormatError(f"quarantine.messages[{i}].digest differs from digests[{i}]")
        return cls(digests=digests, messages=messages)


def quarantine_digests(obj: object) -> list[bytes]:
    """The digests listed in ``quarantine.json`` (either form: see :class:`QuarantineExport`)."""
    return list(QuarantineExport.from_json(obj).digests)
