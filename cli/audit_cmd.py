"""``assetproof bundle`` and ``assetproof export`` (operator side: from the database) and
``assetproof audit`` (auditor side: an export plus the chain, nothing else)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from auditor.sources import DEFAULT_MAX_BYTES
from cli.common import DatabaseOption, DeploymentOption, RpcOption
from cli.verify_cmd import EXIT_INVALID, EXIT_UNUSABLE

_RANGE = re.compile(r"(\d+)(?:\.\.(\d+))?")


def parse_epochs(value: str) -> tuple[int, int]:
    """``A..B`` (inclusive) or a single ``A``."""
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        raise typer.BadParameter(f"expected A..B or A, got {value!r}", param_hint="--epochs")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise typer.BadParameter(f"{value!r}: the range ends before it starts", param_hint="--epochs")
    return first, last


EpochsOption = Annotated[str, typer.Option("--epochs", help="Epochs A..B (inclusive), or one epoch A.")]


def _chain_context(deployment: Path):  # type: ignore[no-untyped-def]
    """Where the anchors are, for the operator's bundles and exports (None without a deployment)."""
    from attestor.bundles import ChainContext
    from chain.deployment import read_deployment
    from chain.errors import DeploymentError

    if not deployment.exists():
        return None
    try:
        d = read_deployment(deployment)
    except DeploymentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    return ChainContext(chain_id=d.chain_id, anchor_registry=d.anchor_registry.address)


def bundle(
    database: DatabaseOption,
    deployment: DeploymentOption,
    log_index: Annotated[int | None, typer.Option("--log-index", min=0, help="The reading's log index.")] = None,
    device: Annotated[str | None, typer.Option(help="The reading's device (with --seq).")] = None,
    seq: Annotated[int | None, typer.Option(min=1, help="The reading's seq (with --device).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Write the proof bundle of one stored reading (what `assetproof verify` checks)."""
    from attestor.bundles import BundleUnavailableError, build_bundle
    from store.db import make_engine

    if (log_index is None) == (device is None or seq is None):
        raise typer.BadParameter("give --log-index, or --device and --seq")
    engine = make_engine(database, writer=False)
    try:
        result = build_bundle(engine, log_index=log_index, device_id=device, seq=seq, chain=_chain_context(deployment))
    except BundleUnavailableError as exc:
        typer.echo(f"error ({exc.reason}): {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        engine.dispose()
    text = json.dumps(result.to_json(), indent=1) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def export(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the epochs' folders.")],
    epochs: EpochsOption,
    database: DatabaseOption,
    deployment: DeploymentOption,
) -> None:
    """Export epochs for an auditor: leaves, metadata, checkpoints, quarantine digests."""
    from attestor.export import ExportError, export_epochs
    from store.db import make_engine

    first, last = parse_epochs(epochs)
    engine = make_engine(database, writer=False)
    try:
        summary = export_epochs(engine, first=first, last=last, directory=directory, chain=_chain_context(deployment))
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    finally:
        engine.dispose()
    typer.echo(f"exported epochs {first}..{last} ({summary.leaves} leaves) to {directory}")


def audit(
    epochs: EpochsOption,
    source: Annotated[str, typer.Option("--source", help="An export folder, or the operator's API URL.")],
    rpc: RpcOption,
    deployment: DeploymentOption,
    signatures: Annotated[
        bool, typer.Option("--signatures/--no-signatures", help="Re-verify every reading's signature.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (every finding).")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every finding and rejection, not the first few of each kind.")
    ] = False,
    max_bytes: Annotated[
        int,
        typer.Option(
            "--max-bytes",
            min=1,
            help="Refuse an export file larger than this from an HTTP source (the operator's API).",
        ),
    ] = DEFAULT_MAX_BYTES,
) -> None:
    """Audit epochs against the chain alone: roots, consistency, metaHash, the published tariff,
    per-asset totals, signatures by keys that count at their checkpoint's block time, the
    registered device profiles, every device's chain (accepted readings and chained rejections),
    loss per device, silent devices, and what the registrar and pricing authority did in the
    window. The deployment is the auditor's own file (--deployment), role holders included,
    checked against the chain. Exit 0 passed, 1 findings, 2 unusable input."""
    from auditor.audit import audit_epochs
    from auditor.sources import SourceError, open_source
    from chain.errors import ChainError
    from chain.rpc import connect_reader
    from cli.verify_cmd import fail

    first, last = parse_epochs(epochs)
    try:
        reader = connect_reader(rpc, deployment=deployment)
        report = audit_epochs(
            open_source(source, max_bytes=max_bytes), chain=reader, first=first, last=last, verify_signatures=signatures
        )
    except SourceError as exc:
        fail(EXIT_UNUSABLE, f"cannot read the export: {exc}", as_json=as_json)
    except ChainError as exc:
        fail(EXIT_UNUSABLE, f"cannot check against the chain: {exc}", as_json=as_json)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        typer.echo(report.render(examples=None if show_all else 5))
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)
