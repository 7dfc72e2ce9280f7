"""``assetproof bundle`` and ``assetproof export`` (operator side: from the database) and
``assetproof audit`` (auditor side: an export plus the chain, nothing else)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from auditor.sources import DEFAULT_MAX_BYTES
from cli.common import DatabaseOption, DeploymentOption, RpcOption
from cli.verify_cmd import EXIT_INVALID, EXIT_UNUSABLE

if TYPE_CHECKING:
    from auditor.sources import ExportSource
    from chain.reader import ChainReader

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
    body = result.decoded_message().body
    anchored = "anchored" if result.anchor is not None else "not anchored yet: verify needs the anchor"
    what = (
        f"the proof bundle of {body.device} seq {body.seq}: leaf {result.leaf_index} of epoch"
        f" {result.checkpoint.epoch}'s checkpoint (tree size {result.tree_size}, {anchored})"
    )
    if out is None:
        typer.echo(text, nl=False)
        typer.echo(f"wrote {what} to stdout", err=True)
    else:
        out.write_text(text)
        typer.echo(f"wrote {what} to {out}; check it with `assetproof verify {out}`")


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


def _epochs(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}..{last}"


def _them(first: int, last: int) -> str:
    return "it" if first == last else "them"


def _are(first: int, last: int) -> str:
    return _epochs(first, last) + (" is" if first == last else " are")


def export(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the epochs' folders.")],
    epochs: EpochsOption,
    database: DatabaseOption,
    deployment: DeploymentOption,
) -> None:
    """Export epochs for an auditor: leaves, metadata, checkpoints, quarantine digests. A range
    that runs past the last closed epoch exports what is closed and says what to run later."""
    from attestor.export import ExportError, closed_epochs, export_epochs
    from store.db import make_engine

    first, last = parse_epochs(epochs)
    engine = make_engine(database, writer=False)
    try:
        closed = closed_epochs(engine, first=first, last=last)
        if closed.closed is None:
            latest = "no epoch is closed yet" if closed.last_closed is None else f"the last is {closed.last_closed}"
            typer.echo(
                f"error: none of epochs {_span(first, last)} is closed yet ({latest}): nothing exported;"
                " run the attestor, then export again",
                err=True,
            )
            raise typer.Exit(EXIT_UNUSABLE)
        done_first, done_last = closed.closed
        summary = export_epochs(
            engine, first=done_first, last=done_last, directory=directory, chain=_chain_context(deployment)
        )
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    finally:
        engine.dispose()
    lines = [f"exported {_epochs(done_first, done_last)} ({summary.leaves} leaves) to {directory}"]
    if done_last < last:
        lines.append(
            f"{_are(done_last + 1, last)} not closed yet (the last closed epoch is {closed.last_closed}):"
            f" once they are, run `assetproof export {directory} --epochs {_span(done_last + 1, last)}`"
        )
    if closed.not_anchored:
        lines.append(
            f"{_are(closed.not_anchored[0], closed.not_anchored[-1])} closed but not anchored yet:"
            " an audit checks them once the attestor has anchored them (export them again then)"
        )
    typer.echo("\n".join(lines))


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
    from cli.verify_cmd import fail, rpc_hint

    first, last = parse_epochs(epochs)
    try:
        reader = connect_reader(rpc, deployment=deployment)
        source_ = open_source(source, max_bytes=max_bytes)
        audited, notes = _auditable(source_, reader, first=first, last=last)
        report = audit_epochs(source_, chain=reader, first=first, last=audited, verify_signatures=signatures)
    except _NothingToAuditError as exc:
        fail(EXIT_UNUSABLE, str(exc), as_json=as_json)
    except SourceError as exc:
        fail(EXIT_UNUSABLE, f"cannot read the export: {exc}", as_json=as_json)
    except ChainError as exc:
        fail(EXIT_UNUSABLE, f"cannot check against the chain: {rpc_hint(exc, rpc)}", as_json=as_json)
    if as_json:
        document = report.to_json()
        document["requested"] = _span(first, last)
        document["notes"] = notes
        typer.echo(json.dumps(document))
    else:
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(report.render(examples=None if show_all else 5))
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


class _NothingToAuditError(Exception):
    """No epoch of the range is both anchored and exported: the message says what to run."""


def _exported(source: ExportSource, epoch: int) -> bool:
    from auditor.sources import SourceError

    try:
        source.read(epoch, "checkpoint.json")
    except SourceError:
        return False
    return True


def _auditable(source: ExportSource, reader: ChainReader, *, first: int, last: int) -> tuple[int, list[str]]:
    """The last epoch of ``first..last`` worth auditing, and what was left out and why.

    Epochs past the last anchored one cannot be checked (the chain is the only judge), and
    epochs past the last exported one were simply not exported yet: both are left out with a
    note saying what to run next. An epoch missing in the middle of the export is still audited
    (and found missing): only the tail is trimmed."""
    anchored = reader.epoch_count()
    if anchored <= first:
        latest = "no epoch is anchored yet" if anchored == 0 else f"the last anchored epoch is {anchored - 1}"
        raise _NothingToAuditError(
            f"none of {_epochs(first, last)} is anchored on chain yet ({latest}): nothing to audit;"
            " audit again once the attestor has anchored them"
        )
    end = min(last, anchored - 1)
    exported_end = next((e for e in range(end, first - 1, -1) if _exported(source, e)), None)
    if exported_end is None:
        raise _NothingToAuditError(
            f"{source.describe()} holds none of {_epochs(first, end)}: export {_them(first, end)} first"
            f" (`assetproof export DIR --epochs {_span(first, end)}`), then audit DIR"
        )
    notes = []
    if end < last:
        notes.append(
            f"{_are(end + 1, last)} not anchored on chain yet (the last anchored epoch is"
            f" {anchored - 1}): audited {_span(first, exported_end)}; audit --epochs {_span(end + 1, last)}"
            " once they are anchored (and exported)"
        )
    if exported_end < end:
        notes.append(
            f"{_are(exported_end + 1, end)} anchored on chain but not in {source.describe()}:"
            f" audited {_span(first, exported_end)}; export {_them(exported_end + 1, end)}"
            f" (`assetproof export DIR --epochs {_span(exported_end + 1, end)}`)"
            f" and audit --epochs {_span(exported_end + 1, end)} from DIR"
        )
    return exported_end, notes
