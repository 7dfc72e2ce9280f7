"""Options and helpers shared by the CLI commands.

Every option that is also a setting takes its default from the one ``config.Settings`` object
(environment, then the optional settings file, then the built-in default), which the root
command loads before any subcommand parses its options.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from config import PREFIX, Settings, SettingsError, load_settings
from config.settings import split_host_port

_loaded: Settings | None = None


def use_settings(file: Path | None) -> Settings:
    """Load the settings for this invocation (the root command's callback calls it)."""
    global _loaded
    try:
        _loaded = load_settings(file=file)
    except SettingsError as exc:
        raise fail(str(exc)) from None
    return _loaded


def settings() -> Settings:
    return _loaded if _loaded is not None else use_settings(None)


def fail(message: str, code: int = 2) -> typer.Exit:
    """A one-line reason on stderr and the exit code (2: unusable input or settings)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def setting(name: str, *flags: str, help: str | None = None, **extra: Any) -> Any:
    """A typer option whose default is setting ``name`` (``ASSETPROOF_NAME``)."""
    field = Settings.model_fields[name]
    builtin = field.default
    shown = f"${PREFIX}{name.upper()}" + ("" if builtin is None else f", else {builtin}")

    def default() -> Any:
        value = getattr(settings(), name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    return typer.Option(*flags, default_factory=default, show_default=shown, help=help or field.description, **extra)


def secret(resolve: str) -> Any:
    """Resolve a secret that has no default in production (``require_chain_key`` and friends)."""
    try:
        return getattr(settings(), resolve)()
    except SettingsError as exc:
        raise fail(str(exc)) from None


DatabaseOption = Annotated[str, setting("database_url", "--database")]
BrokerOption = Annotated[str, setting("broker", "--broker")]
RpcOption = Annotated[str, setting("rpc", "--rpc")]
DeploymentOption = Annotated[Path, setting("deployment", "--deployment")]
KeystoreOption = Annotated[Path, setting("keystore", "--keystore")]


def parse_broker(value: str) -> tuple[str, int]:
    """``--broker`` read as ``ASSETPROOF_BROKER`` is (the flag bypasses the settings' check)."""
    try:
        return split_host_port(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--broker") from None


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so services drain and exit cleanly."""
    stop = threading.Event()

    def _handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
