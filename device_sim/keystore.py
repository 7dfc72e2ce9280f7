"""A directory of device credentials: one JSON file per device, readable by its owner only.

A file holds the device's signing key, its MQTT password and optional metadata (kind, rating,
window) that lets a restarted simulator rebuild the device without the gateway's database::

    {"device_id": "sol-roof-0001", "alg": "ed25519", "private_key": "<hex>",
     "public_key": "<hex>", "mqtt_password": "...", "metadata": {...}}

A rotated-out key leaves ``{device_id}.json.rotated-{n}`` holding its public half only
(``{"device_id", "alg", "public_key", "retired": true}``); older versions archived the whole
file, and such archives are scrubbed of their private key when the keystore is opened.
(Scrubbing rewrites the file; the old bytes may survive on the disk's free blocks, which only
wiping the disk removes: rotate the device's key on chain too.)

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
        self.scrub_archives()

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

    def certificate_chain_path(self, device_id: str) -> Path:
        """Where the device's manufacturer certificate chain (PEM: device certificate, then the
        intermediate) lives, beside its key: ``{device_id}.chain.pem``. Public material."""
        return self.path(device_id).with_suffix(".chain.pem")

    @property
    def manufacturer_root_path(self) -> Path:
        """The manufacturer root certificate (PEM) the chains lead to: configure the registrar
        with it (:func:`registrar.attestation.verify_device_certificate`'s ``roots``)."""
        return self.directory / "manufacturer-root.pem"

    @property
    def manufacturer_ca_directory(self) -> Path:
        """The simulated manufacturer's CA (keys included: :mod:`device_sim.manufacturer`)."""
        return self.directory / "manufacturer-ca"

    def write_certificate_chain(self, device_id: str, chain_pem: bytes) -> Path:
        path = self.certificate_chain_path(device_id)
        write_private_file(path, chain_pem, overwrite=True)
        return path

    def load_certificate_chain(self, device_id: str) -> bytes | None:
        """The device's certificate chain PEM, or None if it was provisioned without one."""
        try:
            return self.certificate_chain_path(device_id).read_bytes()
        except FileNotFoundError:
            return None

    def ids(self) -> list[str]:
        """The device ids with current credentials, sorted."""
        return sorted(p.name[: -len(_SUFFIX)] for p in self.directory.glob("*" + _SUFFIX) if not p.name.startswith("."))

    def rotate(self, device_id: str) -> DeviceCredentials:
        """A new signing key for ``device_id`` (same MQTT password and metadata). The retired
        key's *public* half is kept as ``{device_id}.json.rotated-{n}`` (see
        :meth:`retired_public_keys`): readings signed before the rotation stay verifiable, and
        nobody who later reads the directory can sign as the device with a key the registry
        has retired. Archives an older version wrote with the private key are scrubbed first."""
        old = self.load(device_id)
        path = self.path(device_id)
        archives = self._archives(device_id)
        for archive in archives.values():
            _scrub_archive(archive, device_id=device_id)
        archived = path.with_name(f"{path.name}{_ROTATED}{max(archives, default=0) + 1}")
        new = DeviceCredentials(
            device_id=device_id,
            key=DeviceKey.generate(old.alg),
            mqtt_password=old.mqtt_password,
            metadata=old.metadata,
        )
        # Archive first, then replace: at every instant the current file holds a whole key, and a
        # crash in between leaves the old key current with its public half archived (a retry
        # archives it again, harmlessly).
        write_private_file(archived, _encode_retired(device_id, old.key), overwrite=False)
        write_private_file(path, _encode(new), overwrite=True)
        # The manufacturer's certificate vouches for the retired key, not the new one: it goes
        # with the retired key's archive (same number).
        chain = self.certificate_chain_path(device_id)
        if chain.exists():
            os.replace(chain, chain.with_name(archived.name.replace(_SUFFIX + _ROTATED, ".chain.pem" + _ROTATED)))
        return new

    def retired_public_keys(self, device_id: str) -> list[tuple[str, bytes]]:
        """``(alg, public key)`` of the device's retired keys, oldest first."""
        out = []
        for _, archive in sorted(self._archives(device_id).items()):
            obj = _read_archive(archive, device_id=device_id)
            out.append((obj["alg"], bytes.fromhex(obj["public_key"])))
        return out

    def scrub_archives(self) -> list[Path]:
        """Drop the private key from every archived (rotated-out) key file in the directory, as
        older versions of :meth:`rotate` kept it. Returns the files rewritten. Runs when a
        keystore is opened, so an old directory is migrated the first time it is used."""
        scrubbed = []
        for archive in sorted(self.directory.glob(f"*{_SUFFIX}{_ROTATED}*")):
            match = _ARCHIVE.fullmatch(archive.name)
            if match is not None and _scrub_archive(archive, device_id=match.group(1)):
                scrubbed.append(archive)
        return scrubbed

    def _archives(self, device_id: str) -> dict[int, Path]:
        path = self.path(device_id)
        rotated = re.compile(re.escape(path.name + _ROTATED) + r"(\d+)")
        return {int(m.group(1)): p for p in self.directory.iterdir() if (m := rotated.fullmatch(p.name))}


_ROTATED = ".rotated-"
_ARCHIVE = re.compile(r"(.+)" + re.escape(_SUFFIX + _ROTATED) + r"\d+")


def _encode_retired(device_id: str, key: DeviceKey) -> bytes:
    obj = {"device_id": device_id, "alg": key.alg, "public_key": key.public_key.hex(), "retired": True}
    return json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"


def _read_archive(archive: Path, *, device_id: str) -> dict[str, Any]:
    try:
        obj = json.loads(archive.read_bytes())
        if not isinstance(obj, dict) or obj.get("device_id") != device_id:
            raise ValueError("another device's file")
        bytes.fromhex(obj["public_key"])
        str(obj["alg"])
    except (ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"{archive} is not a valid archived key file ({type(exc).__name__})") from None
    return obj


def _scrub_archive(archive: Path, *, device_id: str) -> bool:
    """Rewrite ``archive`` without its private key if it holds one; True if it did. The public
    key is taken from the private key (the one thing an old archive is sure to hold right)."""
    obj = _read_archive(archive, device_id=device_id)
    if "private_key" not in obj:
        return False
    try:
        key = DeviceKey.from_private_bytes(obj["alg"], bytes.fromhex(obj["private_key"]))
    except (ValueError, TypeError, VerificationError):
        raise KeystoreError(f"{archive} holds an unreadable private key; remove it by hand") from None
    write_private_file(archive, _encode_retired(device_id, key), overwrite=True)
    return True


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
