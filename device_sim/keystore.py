"""A directory of device credentials: one JSON file per device, readable by its owner only.

A file holds the device's signing key, its MQTT password and optional metadata (kind, rating,
window) that lets a restarted simulator rebuild the device without the gateway's database::

    {"device_id": "sol-roof-0001", "alg": "ed25519", "private_key": "<hex>",
     "public_key": "<hex>", "mqtt_password": "...", "metadata": {...}}

Files are written whole or not at all (temporary file, fsync, rename, fsync of the directory),
so a crash never leaves a device with a half-written key. Secrets never appear in a ``repr``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from protocol.envelope import validate_device_id
from protocol.errors import AssetproofError, VerificationError
from protocol.signing import DeviceKey

__all__ = ["DeviceCredentials", "Keystore", "KeystoreError", "write_private_file"]

_SUFFIX = ".json"


class KeystoreError(AssetproofError):
    """A credential file is missing, already exists, unreadable or inconsistent."""


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What a device holds: its id, signing key and broker password."""

    device_id: str
    key: DeviceKey
    mqtt_password: str = field(repr=False)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alg(self) -> str:
        return self.key.alg

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "alg": self.key.alg,
            "private_key": self.key.private_bytes.hex(),
            "public_key": self.key.public_key.hex(),
            "mqtt_password": self.mqtt_password,
            "metadata": dict(self.metadata),
        }


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600.

    The temporary file is created 0600 from the start (never briefly world-readable). With
    ``overwrite=False`` the final step is ``link``, which fails if ``path`` exists, so two
    writers can never both believe they created it.
    """
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeystoreError(f"{path} already exists; refusing to overwrite it") from None
            finally:
                tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class Keystore:
    """Credentials of many devices in one directory (mode 0700, files 0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask and ignored for an existing directory.
        os.chmod(self.directory, 0o700)

    def path(self, device_id: str) -> Path:
        return self.directory / (validate_device_id(device_id, field_name="device_id") + _SUFFIX)

    def create(self, device_id: str, alg: str, *, metadata: Mapping[str, Any] | None = None) -> DeviceCredentials:
        """A fresh key and MQTT password for ``device_id``; refuses an id that already exists."""
        path = self.path(device_id)
        credentials = DeviceCredentials(
            device_id=device_id,
            key=DeviceKey.generate(alg),
            mqtt_password=secrets.token_urlsafe(24),
            metadata=MappingProxyType(dict(metadata or {})),
        )
        write_private_file(path, _encode(credentials), overwrite=False)
        return credentials

    def load(self, device_id: str) -> DeviceCredentials:
        path = self.path(device_id)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeystoreError(f"no credentials for device {device_id!r} in {self.directory}") from None
        if stat.S_IMODE(mode) & 0o077:
            # Like ssh: a key others can read may already be someone else's key.
            raise KeystoreError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        return _decode(path.read_bytes(), expected_id=device_id, source=path)

    def tls_paths(self, device_id: str) -> tuple[Path, Path, Path]:
        """Where the device's broker TLS files live (CA certificate, client certificate, client
        key), beside its signing key: :mod:`devstack.broker_tls` writes them at provisioning."""
        base = self.path(device_id)
        return self.directory / "broker-ca.crt", base.with_suffix(".crt"), base.with_suffix(".key")

    def ids(self) -> list[str]:
        """The device ids with current credentials, sorted."""
        return sorted(p.name[: -len(_SUFFIX)] for p in self.directory.glob("*" + _SUFFIX) if not p.name.startswith("."))

    def rotate(self, device_id: str) -> DeviceCredentials:
        """A new signing key for ``device_id`` (same MQTT password and metadata). The previous
        file is kept as ``{device_id}.json.rotated-{n}``: readings signed before the rotation
        stay verifiable by whoever holds the old public key."""
        old = self.load(device_id)
        path = self.path(device_id)
        rotated = re.compile(re.escape(path.name) + r"\.rotated-(\d+)")
        taken = [int(m.group(1)) for p in self.directory.iterdir() if (m := rotated.fullmatch(p.name))]
        archived = path.with_name(f"{path.name}.rotated-{max(taken, default=0) + 1}")
        new = DeviceCredentials(
            device_id=device_id,
            key=DeviceKey.generate(old.alg),
            mqtt_password=old.mqtt_password,
            metadata=old.metadata,
        )
        # Link first, then replace: at every instant the current file holds a whole key.
        os.link(path, archived)
        write_private_file(path, _encode(new), overwrite=True)
        return new


def _encode(credentials: DeviceCredentials) -> bytes:
    return json.dumps(credentials.to_json(), indent=2, sort_keys=True).encode() + b"\n"


def _decode(data: bytes, *, expected_id: str, source: Path) -> DeviceCredentials:
    try:
        obj = json.loads(data)
        device_id = obj["device_id"]
        key = DeviceKey.from_private_bytes(obj["alg"], bytes.fromhex(obj["private_key"]))
        public_key = bytes.fromhex(obj["public_key"])
        password = obj["mqtt_password"]
        metadata = obj.get("metadata", {})
    except (ValueError, KeyError, TypeError, VerificationError) as exc:
        # The exception text never includes the key material, only what was wrong with it.
        raise KeystoreError(f"{source} is not a valid credential file ({type(exc).__name__})") from None
    if device_id != expected_id:
        raise KeystoreError(f"{source} holds credentials of {device_id!r}, not {expected_id!r}")
    if key.public_key != public_key:
        raise KeystoreError(f"{source}: the stored public key does not belong to the private key")
    if not isinstance(password, str) or not password or not isinstance(metadata, dict):
        raise KeystoreError(f"{source}: mqtt_password or metadata is invalid")
    return DeviceCredentials(device_id, key, password, MappingProxyType(metadata))
