"""Where an audit reads an epoch export from: a folder written by ``assetproof export`` or the
operator's API (the same relative paths under ``/v1/export/``). Both are untrusted."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final, Protocol

from protocol.errors import AssetproofError
from protocol.export import epoch_dir_name

__all__ = ["DEFAULT_MAX_BYTES", "DirectorySource", "ExportSource", "HttpSource", "SourceError", "open_source"]

DEFAULT_MAX_BYTES: Final = 1 << 30
"""The most an audit reads of one export file over HTTP (1 GiB): an epoch of a million leaves of
at most 1 KiB each. The API is the operator's: it must not be able to exhaust the auditor's memory."""
_CHUNK: Final = 1 << 20


class SourceError(AssetproofError):
    """The export cannot be read (missing file, unreachable API): the audit cannot run."""


class ExportSource(Protocol):
    def describe(self) -> str: ...

    def read(self, epoch: int, name: str) -> bytes:
        """The bytes of one export file of ``epoch`` (``SourceError`` when it cannot be read)."""
        ...


def read_json(source: ExportSource, epoch: int, name: str) -> Any:
    data = source.read(epoch, name)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"{source.describe()}: {epoch_dir_name(epoch)}/{name} is not JSON: {exc}") from None


class DirectorySource:
    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise SourceError(f"{path} is not a directory")
        self._path = path

    def describe(self) -> str:
        return str(self._path)

    def read(self, epoch: int, name: str) -> bytes:
        path = self._path / epoch_dir_name(epoch) / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None


class HttpSource:
    """The operator's API as an export: each file read whole, up to ``max_bytes`` (a larger one,
    announced or streamed, is a :class:`SourceError`)."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._base = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes

    def describe(self) -> str:
        return self._base

    def read(self, epoch: int, name: str) -> bytes:
        url = f"{self._base}/v1/export/{epoch_dir_name(epoch)}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout_s) as response:  # noqa: S310 - http(s) only
                return self._bounded(url, response)
        except urllib.error.HTTPError as exc:
            raise SourceError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None

    def _bounded(self, url: str, response: Any) -> bytes:
        """The body, read in chunks and refused as soon as it passes the bound (a lying or
        missing Content-Length changes nothing)."""
        limit = self._max_bytes
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise SourceError(f"GET {url}: the response is {int(announced)} bytes, more than the limit of {limit}")
        parts: list[bytes] = []
        size = 0
        while chunk := response.read(min(_CHUNK, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                raise SourceError(f"GET {url}: the response is larger than the limit of {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


def open_source(value: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ExportSource:
    """``value`` as a source: an ``http(s)://`` API URL or a folder."""
    if value.startswith(("http://", "https://")):
        return HttpSource(value, max_bytes=max_bytes)
    return DirectorySource(Path(value))
