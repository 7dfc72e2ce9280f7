"""``assetproof``: one command in front of every part of the system.

Exit codes are part of the interface: 0 valid / done, 1 invalid (a check failed), 2 unusable
input (unreadable file, bad arguments), always with a one-line reason and never a traceback.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from cli import (
    api_cmd,
    attestor_cmd,
    audit_cmd,
    cashflow_cmd,
    chain_cmd,
    demo_cmd,
    device_cmd,
    devices_cmd,
    gateway_cmd,
    health_cmd,
    simulate_cmd,
    token_cmd,
    verify_cmd,
)
from cli.common import use_settings

_value_type = typer.core.TyperOption.display_type_rich


def _no_placeholder_on_flags(self: typer.core.TyperOption, ctx: Any) -> str | None:
    # typer 0.29 shows "<bool>" beside every flag, as if it took a value: a flag takes none.
    return None if self.is_flag else _value_type(self, ctx)


typer.core.TyperOption.display_type_rich = _no_placeholder_on_flags  # type: ignore[method-assign]

app = typer.Typer(
    name="assetproof",
    help="Verifiable cash flow of physical assets: signed telemetry, an anchored Merkle log, proofs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command(name="gateway")(gateway_cmd.gateway)
app.add_typer(devices_cmd.app, name="devices")
app.add_typer(device_cmd.app, name="device")
app.command(name="simulate")(simulate_cmd.simulate)
app.command(name="cashflow")(cashflow_cmd.cashflow)
app.add_typer(chain_cmd.app, name="chain")
app.command(name="attestor")(attestor_cmd.attestor)
app.command(name="verify")(verify_cmd.verify)
app.command(name="bundle")(audit_cmd.bundle)
app.command(name="export")(audit_cmd.export)
app.command(name="audit")(audit_cmd.audit)
app.add_typer(token_cmd.app, name="token")
app.command(name="distribute")(token_cmd.distribute)
app.command(name="claim")(token_cmd.claim)
app.command(name="demo")(demo_cmd.demo)
app.command(name="api")(api_cmd.api)
app.command(name="healthcheck")(health_cmd.healthcheck)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"assetproof {version('assetproof')}")
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help="A settings file of ASSETPROOF_NAME=value lines (default: $ASSETPROOF_SETTINGS_FILE);"
            " environment variables override it, flags override both.",
        ),
    ] = None,
) -> None:
    """assetproof command line."""
    use_settings(settings_file)
