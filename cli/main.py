"""``assetproof``: one command in front of every part of the system.

Exit codes are part of the interface: 0 valid / done, 1 invalid (a check failed), 2 unusable
input (unreadable file, bad arguments), always with a one-line reason and never a traceback.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli import attestor_cmd, cashflow_cmd, chain_cmd, devices_cmd, gateway_cmd, simulate_cmd
from protocol.bundle import ProofBundle, verify_bundle_offline
from protocol.errors import BundleError, VerificationError

app = typer.Typer(
    name="assetproof",
    help="Verifiable cash flow of physical assets: signed telemetry, an anchored Merkle log, proofs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_VALID, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2

app.command(name="gateway")(gateway_cmd.gateway)
app.add_typer(devices_cmd.app, name="devices")
app.command(name="simulate")(simulate_cmd.simulate)
app.command(name="cashflow")(cashflow_cmd.cashflow)
app.add_typer(chain_cmd.app, name="chain")
app.command(name="attestor")(attestor_cmd.attestor)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"assetproof {version('assetproof')}")
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """assetproof command line."""


@app.command()
def verify(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE.json", help="A proof bundle.")],
    offline: Annotated[
        bool, typer.Option("--offline", help="Check only what needs no chain (signature, leaf, inclusion).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Verify one reading's proof bundle."""
    if not offline:
        _fail(EXIT_UNUSABLE, "checking against the chain is not available yet: pass --offline", as_json=as_json)
    try:
        data = bundle_path.read_bytes()
    except OSError as exc:
        _fail(EXIT_UNUSABLE, f"cannot read {bundle_path}: {exc.strerror or exc}", as_json=as_json)
    try:
        bundle = ProofBundle.parse(data)
    except BundleError as exc:
        _fail(EXIT_UNUSABLE, f"not a usable bundle: {exc}", as_json=as_json)
    try:
        verify_bundle_offline(bundle)
    except VerificationError as exc:
        _fail(EXIT_INVALID, f"INVALID ({exc.reason}): {exc}", as_json=as_json, reason=exc.reason)
    body = bundle.decoded_message().body
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "valid": True,
                    "checked": ["canonical", "signature", "leaf", "inclusion"]
                    + (["metadata"] if bundle.metadata else []),
                    "device": body.device,
                    "seq": body.seq,
                    "ts_ms": body.ts_ms,
                    "metrics": dict(body.metrics),
                    "epoch": bundle.checkpoint.epoch,
                    "onchain_checked": False,
                }
            )
        )
    else:
        typer.echo(
            f"VALID offline: {body.device} seq {body.seq} is leaf {bundle.leaf_index} of checkpoint "
            f"{bundle.checkpoint.epoch} (tree size {bundle.tree_size}); the chain was not consulted"
        )


def _fail(code: int, message: str, *, as_json: bool, reason: str | None = None) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"valid": False, "reason": reason or "unusable_input", "error": message}))
    else:
        typer.echo(message, err=True)
    raise typer.Exit(code)
