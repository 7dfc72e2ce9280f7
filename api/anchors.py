"""Where the API's bundles say checkpoints are anchored: the deployment file
(``ASSETPROOF_DEPLOYMENT``). Only its ``chainId`` and ``contracts.AnchorRegistry.address`` are
read, to fill the bundles' anchor section; the API does not talk to the chain (``api`` may not
import ``chain``)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from attestor.bundles import ChainContext
from protocol.errors import AssetproofError

__all__ = ["AnchorTarget", "DeploymentFileError"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class DeploymentFileError(AssetproofError):
    """The deployment file exists but cannot be read as one."""


class AnchorTarget:
    """The chain and AnchorRegistry named in the deployment file, re-read when the file changes
    (``assetproof chain deploy`` may run after the API started). ``None`` while there is no
    file: bundles then carry no anchor section and still verify offline."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._context: ChainContext | None = None

    def get(self) -> ChainContext | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key != self._seen:
                self._context = _read_deployment(self._path)
                self._seen = key
            return self._context


def _read_deployment(path: Path) -> ChainContext:
    try:
        data = json.loads(path.read_text())
        chain_id = data["chainId"]
        address = data["contracts"]["AnchorRegistry"]["address"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeploymentFileError(f"deployment file {path} is unreadable: {exc.__class__.__name__}: {exc}") from None
    if type(chain_id) is not int or chain_id <= 0:
        raise DeploymentFileError(f"deployment file {path}: chainId must be a positive integer")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise DeploymentFileError(f"deployment file {path}: contracts.AnchorRegistry.address is not an address")
    return ChainContext(chain_id=chain_id, anchor_registry=address)
