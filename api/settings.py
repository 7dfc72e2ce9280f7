"""The API's settings (its part of ``config.Settings``: ``ASSETPROOF_*`` variables and the
optional settings file), and where its bundles say checkpoints are anchored (the deployment file).

- ``ASSETPROOF_DATABASE_URL``: the store (default ``sqlite:///var/assetproof.db``, as the CLI);
- ``ASSETPROOF_ADMIN_TOKEN``: the bearer token of the admin endpoints; unset, they answer 503
  (in production mode unset refuses to start). A short or placeholder token is refused at
  startup rather than guarded by;
- ``ASSETPROOF_DEPLOYMENT``: the deployment file (default ``var/deployment.json``). Only its
  ``chainId`` and ``contracts.AnchorRegistry.address`` are read, to fill the bundles' anchor
  section; the API does not talk to the chain (``api`` may not import ``chain``);
- ``ASSETPROOF_PUBLIC_RPC_URL``: the chain's JSON-RPC URL as a visitor's browser reaches it, for
  the dashboard to check roots on chain itself; unset (or an in-process chain with no HTTP
  endpoint), the dashboard says the roots it shows came through the API.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from attestor.bundles import ChainContext
from config import Settings as ServiceSettings
from config import SettingsError as ConfigError
from config import load_settings
from protocol.errors import AssetproofError

__all__ = ["DEFAULT_DATABASE", "AnchorTarget", "DeploymentFileError", "Settings", "SettingsError"]

DEFAULT_DATABASE: Final[str] = ServiceSettings.model_fields["database_url"].default
DEFAULT_DEPLOYMENT: Final = Path("var/deployment.json")
STATIC_DIR: Final = Path(__file__).with_name("static")
MIN_TOKEN_LENGTH: Final = 16
_PLACEHOLDER_TOKENS: Final = frozenset({"changethis", "changeme", "secret", "password", "admin", "token"})
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class SettingsError(AssetproofError):
    """A setting is unusable (the message names the variable)."""


class DeploymentFileError(AssetproofError):
    """The deployment file exists but cannot be read as one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE
    admin_token: str | None = None
    deployment: Path = DEFAULT_DEPLOYMENT
    static_dir: Path = STATIC_DIR
    """Served at ``/`` when it exists (the dashboard)."""
    public_rpc_url: str | None = None
    """Handed to browsers (``GET /v1/chain``), never used by the API itself."""

    def __post_init__(self) -> None:
        token = self.admin_token
        if token is not None and (len(token) < MIN_TOKEN_LENGTH or token.lower() in _PLACEHOLDER_TOKENS):
            raise SettingsError(
                f"ASSETPROOF_ADMIN_TOKEN must be a random secret of at least {MIN_TOKEN_LENGTH} characters"
                " (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'); unset it to disable admin"
            )

    @classmethod
    def from_config(cls, config: ServiceSettings) -> Settings:
        """The API's part of the one settings object (``config.Settings``)."""
        try:
            token = config.require_admin_token()
        except ConfigError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            database_url=config.database_url,
            admin_token=token,
            deployment=config.deployment,
            public_rpc_url=config.public_rpc_url,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """From ``ASSETPROOF_*`` variables and the optional settings file, as every service."""
        try:
            return cls.from_config(load_settings(environ=environ))
        except ConfigError as exc:
            raise SettingsError(str(exc)) from None


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
