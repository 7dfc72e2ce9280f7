"""Every setting of every assetproof service, in one object.

Read, most specific first, from: the command line's flags; ``ASSETPROOF_*`` environment
variables; an optional settings file (``assetproof --settings FILE`` or
``ASSETPROOF_SETTINGS_FILE``) holding the same ``ASSETPROOF_NAME=value`` lines (comments with
``#``, as docker-compose's ``env_file``); the defaults below. The README's settings table lists
them; ``tests/config/test_settings.py`` keeps that table and this class the same.

Development mode (the default) runs on a laptop with no preparation: the chain keys default to
anvil's first development account. ``ASSETPROOF_MODE=production`` takes every default secret
away: the attestor's key, the registry admin's key and the API's admin token must be set, and a
service that needs one refuses to start without it. A misspelt ``ASSETPROOF_`` variable is an
error, not a silently ignored setting.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from protocol.errors import AssetproofError

__all__ = [
    "ANVIL_DEV_KEY",
    "ANVIL_DEV_KEYS",
    "ANVIL_MNEMONIC",
    "PREFIX",
    "Settings",
    "SettingsError",
    "load_settings",
    "split_host_port",
]

PREFIX: Final = "ASSETPROOF_"
FILE_VARIABLE: Final = "ASSETPROOF_SETTINGS_FILE"
ANVIL_MNEMONIC: Final = "test test test test test test test test test test test junk"
ANVIL_DEV_KEYS: Final = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
"""The private keys of anvil's (and Hardhat's) ten default accounts, ``m/44'/60'/0'/0/0..9`` of
:data:`ANVIL_MNEMONIC` (a test derives them again). They are published in every tutorial, so a
chain key equal to one of them is anybody's key: production mode refuses them all."""
ANVIL_DEV_KEY: Final = ANVIL_DEV_KEYS[0]
"""anvil's first development account: fine for a local chain, never for a real one."""

# Variables that share the prefix without being settings: the settings file's own name, the
# anvil binary that devstack/anvil.py looks up where it starts a node, and the test suite's knobs.
_NOT_SETTINGS: Final = frozenset({FILE_VARIABLE, "ASSETPROOF_ANVIL"})
_NOT_SETTINGS_PREFIXES: Final = ("ASSETPROOF_TEST_",)
_ANVIL_INDEX: Final = {key: i for i, key in enumerate(ANVIL_DEV_KEYS)}
_HOST_PORT = re.compile(r"[^\s:]+:\d{1,5}")
_KEY = re.compile(r"0x[0-9a-fA-F]{64}")
MIN_TOKEN_LENGTH: Final = 16
# Tokens copied from an example file rather than generated: refused however long the list of
# deployments that would otherwise run with them.
_PLACEHOLDER_TOKENS: Final = frozenset({"changethis", "changeme", "secret", "password", "admin", "token"})


class SettingsError(AssetproofError):
    """A setting is missing, malformed or unknown; the message names the variable."""


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` as its two parts: the one reading of ``ASSETPROOF_BROKER`` and ``--broker``.
    Raises ValueError for anything else."""
    if not _HOST_PORT.fullmatch(value):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host, _, port = value.rpartition(":")
    return host, int(port)


class Settings(BaseModel):
    """One service's view of the deployment. Field ``name`` is variable ``ASSETPROOF_NAME``;
    build it with ``load_settings``, which merges the sources and names what is wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    mode: Literal["development", "production"] = Field(
        default="development", description="`production` removes every default secret (see below)."
    )
    database_url: str = Field(
        default="sqlite:///var/assetproof.db", description="The store: `sqlite:///PATH` or `postgresql://USER@HOST/DB`."
    )
    broker: str = Field(default="127.0.0.1:1883", description="The MQTT broker as HOST:PORT.")
    broker_username: str | None = Field(
        default=None, description="Gateway's (or `simulate --multiplex`'s) broker login."
    )
    broker_password: SecretStr | None = Field(default=None, description="Its password.")
    broker_auth: Path = Field(
        default=Path("var/broker"),
        description="The broker's access config (`dynsec.json`) and the gateway and admin logins.",
    )
    broker_tls_ca: Path | None = Field(
        default=None,
        description="The CA certificate that signed the broker's (provisioning writes `BROKER_AUTH/tls/ca.crt`): "
        "set, clients connect with TLS and verify the broker's certificate and host name.",
    )
    broker_tls_cert: Path | None = Field(
        default=None,
        description="With TLS: the gateway's (or `--multiplex`'s) client certificate; devices use their own.",
    )
    broker_tls_key: Path | None = Field(default=None, description="Its private key.")
    keystore: Path = Field(default=Path("var/keys"), description="The device key directory (provisioning, simulator).")
    outbox: Path = Field(default=Path("var/outbox.sqlite"), description="The simulator's store-and-forward queue.")
    gateway_client_id: str | None = Field(
        default=None, description="Stable per gateway worker: it names the broker session. Default: gateway-HOSTNAME."
    )
    gateway_group: str = Field(default="assetproof-gateway", description="The shared-subscription group gateways join.")
    gateway_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus port of the gateway."
    )
    quarantine_budget_messages: int = Field(
        default=1_000,
        ge=0,
        description="Quarantined messages stored per publishing device and window; past it, counted only.",
    )
    quarantine_budget_bytes: int = Field(
        default=4 * 1024 * 1024, ge=0, description="Quarantined bytes stored per publishing device and window."
    )
    quarantine_budget_window_s: int = Field(
        default=3_600, ge=1, description="The quarantine budget's window in seconds."
    )
    tariff: Path | None = Field(default=None, description="Tariff JSON file (default: the bundled HK tariff).")
    rpc: str = Field(default="http://127.0.0.1:8545", description="The chain's JSON-RPC URL.")
    deployment: Path = Field(
        default=Path("var/deployment.json"), description="The deployment file: chain id and contract addresses."
    )
    chain_key: SecretStr | None = Field(
        default=None,
        description="The deployer's private key (0x hex), and in development the default of every role key. "
        "Development default: anvil's first account; production: required.",
    )
    registrar_key: SecretStr | None = Field(
        default=None,
        description="The registrar's key: registers devices on chain, rotates and revokes their keys. "
        "Development default: ASSETPROOF_CHAIN_KEY; production: required for those commands.",
    )
    pricing_key: SecretStr | None = Field(
        default=None,
        description="The pricing authority's key: publishes tariffs on chain. "
        "Development default: ASSETPROOF_CHAIN_KEY; production: required for that command.",
    )
    governor_key: SecretStr | None = Field(
        default=None,
        description="The governor's key: proposes new role holders, which take over after the on-chain delay. "
        "Development default: ASSETPROOF_CHAIN_KEY; production: required for those commands.",
    )
    issuer_key: SecretStr | None = Field(
        default=None,
        description="The token issuer's key: deploys cash-flow tokens, allowlists, issues, funds distributions. "
        "Development default: ASSETPROOF_CHAIN_KEY; production: required for those commands.",
    )
    manufacturer_roots: Path | None = Field(
        default=None,
        description="PEM file of the device manufacturers' root certificates the registrar accepts. "
        "Development default: the keystore's simulated manufacturer root.",
    )
    attestor_key: SecretStr | None = Field(
        default=None,
        description="The key the attestor anchors with. Development default: ASSETPROOF_CHAIN_KEY; "
        "production: required.",
    )
    confirmations: int = Field(default=0, ge=0, description="Blocks an anchor must be buried under before it counts.")
    epoch_seconds: float = Field(default=60.0, gt=0, description="An epoch's time window.")
    epoch_leaves: int = Field(default=10_000, ge=1, description="An epoch's size limit.")
    attestor_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus port of the attestor."
    )
    api_host: str = Field(default="127.0.0.1", description="The API's listening address.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="The API's port.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin endpoints (16+ random characters). "
        "Development: unset disables them; production: required.",
    )
    public_rpc_url: str | None = Field(
        default=None, description="The chain's RPC URL as investors' browsers reach it (the dashboard's own check)."
    )

    @field_validator("broker")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("chain_key", "attestor_key", "registrar_key", "pricing_key", "governor_key", "issuer_key")
    @classmethod
    def _private_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _KEY.fullmatch(value.get_secret_value()):
            raise ValueError("expected a private key as 0x and 64 hex digits")
        return value

    @field_validator("admin_token")
    @classmethod
    def _random_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Refused at startup rather than guarded by: a weak token is no protection at all.
        token = None if value is None else value.get_secret_value()
        if token is not None and (len(token) < MIN_TOKEN_LENGTH or token.lower() in _PLACEHOLDER_TOKENS):
            raise ValueError(
                f"must be a random secret of at least {MIN_TOKEN_LENGTH} characters"
                " (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'); unset it to disable admin"
            )
        return value

    @model_validator(mode="after")
    def _no_public_keys_in_production(self) -> Settings:
        # Every chain key (any secret setting named *_key, so a role key added later is covered
        # too): in production, one of anvil's published keys would hand the role to anyone.
        if not self.production:
            return self
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not name.endswith("_key") or not isinstance(value, SecretStr):
                continue
            index = _ANVIL_INDEX.get(value.get_secret_value().lower())
            if index is not None:
                raise SettingsError(
                    f"{PREFIX}{name.upper()} is anvil's publicly known development key (account {index} of the "
                    f"mnemonic {ANVIL_MNEMONIC!r}): anyone can sign with it, so production mode refuses it; "
                    "generate a key of your own"
                )
        return self

    @property
    def production(self) -> bool:
        return self.mode == "production"

    def broker_address(self) -> tuple[str, int]:
        return split_host_port(self.broker)

    def require_chain_key(self) -> str:
        """The deployer's / registry admin's key; production has no default."""
        if self.chain_key is not None:
            return self.chain_key.get_secret_value()
        if self.production:
            raise SettingsError("ASSETPROOF_CHAIN_KEY is required in production mode (the deployer's key)")
        return ANVIL_DEV_KEY

    def _role_key(self, name: str, role: str) -> str:
        value = getattr(self, name)
        if value is not None:
            return str(value.get_secret_value())
        if self.production:
            raise SettingsError(f"{PREFIX}{name.upper()} is required in production mode ({role})")
        return self.require_chain_key()

    def require_registrar_key(self) -> str:
        """The registrar's key; production has no default."""
        return self._role_key("registrar_key", "the registrar's key: registers, rotates and revokes devices on chain")

    def require_pricing_key(self) -> str:
        """The pricing authority's key; production has no default."""
        return self._role_key("pricing_key", "the pricing authority's key: publishes tariffs on chain")

    def require_governor_key(self) -> str:
        """The governor's key; production has no default."""
        return self._role_key("governor_key", "the governor's key: proposes new role holders on chain")

    def require_issuer_key(self) -> str:
        """The token issuer's key; production has no default."""
        return self._role_key("issuer_key", "the token issuer's key: deploys tokens and funds distributions")

    def require_attestor_key(self) -> str:
        """The anchoring key; production has no default."""
        if self.attestor_key is not None:
            return self.attestor_key.get_secret_value()
        if self.production:
            raise SettingsError(
                "ASSETPROOF_ATTESTOR_KEY is required in production mode (the key the attestor anchors with)"
            )
        return self.require_chain_key()

    def require_admin_token(self) -> str | None:
        """The admin token; in development, unset means the admin endpoints are off."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        if self.production:
            raise SettingsError(
                "ASSETPROOF_ADMIN_TOKEN is required in production mode"
                " (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return None

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each variable's name and description, in declaration order (the README's table)."""
        return {PREFIX + name.upper(): field.description or "" for name, field in cls.model_fields.items()}


def load_settings(
    *, file: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """The settings from ``environ`` (default: the process environment), over the settings file
    (``file``, else ``$ASSETPROOF_SETTINGS_FILE``), over the defaults; ``overrides`` (from
    command-line flags) over all. Raises SettingsError naming the variable that is wrong."""
    env = dict(os.environ if environ is None else environ)
    if file is None and env.get(FILE_VARIABLE):
        file = Path(env[FILE_VARIABLE])
    values: dict[str, object] = {}
    if file is not None:
        values.update(_read_file(file))
    values.update(_prefixed(env, source="environment"))
    values.update({name: value for name, value in overrides.items() if value is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _read_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist")
    try:
        raw = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} is unreadable: {exc}") from None
    strays = [key for key in raw if not key.upper().startswith(PREFIX)]
    if strays:
        raise SettingsError(f"settings file {path}: {', '.join(strays)} is not an {PREFIX}* setting")
    values = {key: value for key, value in raw.items() if value is not None}
    return _prefixed(values, source=f"settings file {path}")


def _prefixed(values: Mapping[str, str], *, source: str) -> dict[str, str]:
    known = {PREFIX + name.upper() for name in Settings.model_fields}
    found: dict[str, str] = {}
    for key, value in values.items():
        upper = key.upper()
        if not upper.startswith(PREFIX) or upper in _NOT_SETTINGS or upper.startswith(_NOT_SETTINGS_PREFIXES):
            continue
        if upper not in known:
            close = difflib.get_close_matches(upper, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"{key} in the {source} is not a setting{hint}")
        if value != "":
            found[upper.removeprefix(PREFIX).lower()] = value
    return found


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{PREFIX}{field.upper()}: {message}")
    return "; ".join(problems)
