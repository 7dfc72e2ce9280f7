"""Where an audit reads an epoch export from: a folder written by ``assetproof export`` or the
operator's API (the same relative paths under ``/v1/export/``). Both are untrusted."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from protocol.errors import AssetproofError
from protocol.export import epoch_dir_name

__all__ = ["DirectorySource", "ExportSource", "HttpSource", "SourceError", "open_source"]


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
    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout_s = timeout_s

    def describe(self) -> str:
        return self._base

    def read(self, epoch: int, name: str) -> bytes:
        url = f"{self._base}/v1/export/{epoch_dir_name(epoch)}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout_s) as response:  # noqa: S310 - http(s) only
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise SourceError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None


def open_source(value: str) -> ExportSource:
    """``value`` as a source: an ``http(s)://`` API URL or a folder."""
    if value.startswith(("http://", "https://")):
        return HttpSource(value)
    return DirectorySource(Path(value))
