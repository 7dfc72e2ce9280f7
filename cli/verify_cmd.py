"""``assetproof verify BUNDLE.json``: an auditor's verdict on one reading, from the chain alone.

Exit 0 valid, 1 invalid (naming the check that failed), 2 unusable input (unreadable file, bad
bundle, unreachable RPC, unknown contracts), always one line of reason and never a traceback.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from cli.common import DeploymentOption, RpcOption, setting
from protocol.bundle import ProofBundle, verify_bundle_offline
from protocol.errors import BundleError, VerificationError

EXIT_VALID, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


def fail(code: int, message: str, *, as_json: bool, reason: str | None = None) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"valid": False, "reason": reason or "unusable_input", "error": message}))
    else:
        typer.echo(message, err=True)
    raise typer.Exit(code)


def rpc_hint(exc: Exception, rpc: str, *, offline: str | None = None) -> str:
    """One line for a chain error: for a node that does not answer, where we tried and what to
    do, instead of the HTTP library's text (``offline``: the command's offline alternative)."""
    from chain.errors import ChainUnavailableError

    if not isinstance(exc, ChainUnavailableError):
        return str(exc)
    line = f"the chain node at {rpc} is unreachable (set --rpc or ASSETPROOF_RPC)"
    return line + (f"; or check without the chain: {offline}" if offline else "")


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def verify(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE.json", help="A proof bundle.")],
    rpc: RpcOption,
    deployment: DeploymentOption,
    confirmations: Annotated[
        int,
        setting(
            "confirmations",
            min=0,
            help="Blocks the anchoring block must have on top of it (0 = mined), as the attestor counts them.",
        ),
    ],
    onchain: Annotated[
        bool, typer.Option("--onchain", help="Also have the ReadingVerifier contract check it, in one eth_call.")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check only what needs no chain (signature, leaf, inclusion).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Verify one reading's proof bundle against the chain: a key registered for the device that
    counts at the block time of the first checkpoint including the reading, the registered kind,
    window and rating, inclusion in the anchored checkpoint, the tariff the pricing authority
    published, confirmations. The deployment (addresses, chain id, roles) is the auditor's own
    file, checked against the chain; nothing the operator's API says replaces it."""
    try:
        data = bundle_path.read_bytes()
    except OSError as exc:
        fail(EXIT_UNUSABLE, f"cannot read {bundle_path}: {exc.strerror or exc}", as_json=as_json)
    try:
        bundle = ProofBundle.parse(data)
    except BundleError as exc:
        fail(EXIT_UNUSABLE, f"not a usable bundle: {exc}", as_json=as_json)
    if offline:
        _offline(bundle, as_json=as_json)
        return

    from auditor.verify import verify_bundle
    from chain.errors import ChainError
    from chain.rpc import connect_reader

    try:
        reader = connect_reader(rpc, deployment=deployment)
        # verify_bundle counts the anchoring block itself; the setting counts the blocks on top.
        verdict = verify_bundle(bundle, chain=reader, min_confirmations=confirmations + 1)
    except VerificationError as exc:
        fail(EXIT_INVALID, f"INVALID ({exc.reason}): {exc}", as_json=as_json, reason=exc.reason)
    except ChainError as exc:
        hint = rpc_hint(exc, rpc, offline=f"assetproof verify {bundle_path} --offline")
        fail(EXIT_UNUSABLE, f"cannot check against the chain: {hint}", as_json=as_json)
    result = verdict.to_json()
    if onchain:
        result["onchain"] = _onchain(reader, bundle, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(result))
        return
    body = verdict.message.body
    cp = verdict.checkpoint
    lines = [
        f"VALID: {body.device} seq {body.seq} ({body.kind}, {_time(body.ts_ms / 1000)}, {body.window_s} s window)",
        f"  signature: {verdict.key.alg} key #{verdict.key.index} registered on chain, counted at the block time of"
        " the first checkpoint that included the reading"
        + ("" if verdict.bundle_key_matches else " (the bundle named another key: ignored)"),
        f"  device: {body.kind} with a {body.window_s} s window and plausible figures, as registered on chain",
        f"  inclusion: leaf {verdict.leaf_index} of epoch {cp.epoch}'s checkpoint (tree size {cp.tree_size},"
        f" root {cp.root.hex()[:16]}…)",
        f"  anchored: block {cp.block_number} at {_time(cp.timestamp)}, {verdict.confirmations - 1} block(s) on top",
        "  metrics: " + ", ".join(f"{k}={v}" for k, v in body.metrics.items()),
    ]
    if verdict.cash_flow is not None:
        flow = verdict.cash_flow
        lines.append(
            f"  cash flow ({verdict.currency} minor units, tariff {verdict.tariff_id}"
            + (
                f", published on chain as #{verdict.tariff_on_chain.index}"
                if verdict.tariff_on_chain is not None
                else ""
            )
            + f"): revenue {flow.revenue}, cost {flow.cost}, net {flow.net}"
        )
    if onchain:
        lines.append(f"  on chain: {result['onchain']['message']}")
    lines.append(f"  deployment: {deployment} (chain id, contract code and role holders checked on chain)")
    typer.echo("\n".join(lines))


def _onchain(reader: Any, bundle: ProofBundle, *, as_json: bool) -> dict[str, Any]:
    from auditor.verify import onchain_check
    from chain.errors import ChainError

    try:
        outcome = onchain_check(reader, bundle)
    except VerificationError as exc:
        fail(EXIT_INVALID, f"INVALID on chain ({exc.reason}): {exc}", as_json=as_json, reason=exc.reason)
    except ChainError as exc:
        fail(EXIT_UNUSABLE, f"cannot verify on chain: {exc}", as_json=as_json)
    return outcome


def _offline(bundle: ProofBundle, *, as_json: bool) -> None:
    try:
        verify_bundle_offline(bundle)
    except VerificationError as exc:
        fail(EXIT_INVALID, f"INVALID ({exc.reason}): {exc}", as_json=as_json, reason=exc.reason)
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
