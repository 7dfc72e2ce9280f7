"""The live terminal view of the demo (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from demo.snapshot import Snapshot, Summary

TOKENS_NOTE = "funded = each anchored epoch's attested cap (the investors' share of net), paid in demo HKD"


def hkd(cents: int) -> str:
    """Minor units of the demo HKD (2 decimals) as an amount."""
    sign = "-" if cents < 0 else ""
    return f"{sign}HKD {abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def token_line(asset: str, data: Mapping[str, Any]) -> str:
    """``hydro-pod THS (hashrate, 288): funded HKD 1.00 of HKD 1.00 entitled, claimed HKD 0.50``
    (``data``: :meth:`TokenFigures.to_json`, as the summary keeps it)."""
    return (
        f"{asset} {data['symbol']} ({data['kind']}, {data['supply']:,}): funded {hkd(data['funded'])}"
        f" of {hkd(data['entitled'])} entitled, claimed {hkd(data['claimed'])}"
    )


COVERAGE_NOTE = "coverage = readings received / expected from each device's first hour (as in the API and dashboard)"


class Rates:
    """Per-second rates between two snapshots."""

    def __init__(self) -> None:
        self._last: Snapshot | None = None

    def update(self, snap: Snapshot) -> tuple[float, float]:
        last, self._last = self._last, snap
        if last is None or snap.elapsed_s <= last.elapsed_s:
            return 0.0, 0.0
        dt = snap.elapsed_s - last.elapsed_s
        return (
            (snap.accepted - last.accepted) / dt,
            (sum(snap.quarantined.values()) - sum(last.quarantined.values())) / dt,
        )


def render(snap: Snapshot, rates: tuple[float, float], *, chain: str, broker: str, dashboard: str) -> Panel:
    accepted_s, quarantined_s = rates
    ingest = Table.grid(padding=(0, 2))
    ingest.add_row("readings accepted", f"[bold green]{snap.accepted:,}[/]", f"{accepted_s:,.1f}/s")
    total_q = sum(snap.quarantined.values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(snap.quarantined.items())) or "none"
    ingest.add_row("quarantined", f"[bold yellow]{total_q:,}[/]", f"{quarantined_s:,.1f}/s  ({reasons})")
    ingest.add_row("not yet anchored", f"{snap.unanchored_readings:,}", "")

    chain_table = Table.grid(padding=(0, 2))
    chain_table.add_row("epochs anchored", f"[bold cyan]{snap.epochs_anchored}[/]", f"gas total {snap.gas_total:,}")
    if snap.last_epoch is not None:
        e = snap.last_epoch
        chain_table.add_row(
            f"last: epoch {e['number']}", f"tree size {e['tree_size']:,}", f"block {e['block']}, gas {e['gas']:,}"
        )
    if snap.first_anchor_s is not None:
        chain_table.add_row("first anchor", f"{snap.first_anchor_s:.1f} s after start", "")

    coverage = Table("asset", "coverage", box=None, padding=(0, 2))
    for asset, value in snap.coverage.items():
        coverage.add_row(asset, f"{value:.1%}")

    tokens = Table("token", "supply", "epochs funded", "funded", "claimed", box=None, padding=(0, 2))
    for asset, t in snap.tokens.items():
        unit = " TH/s" if t.kind == "hashrate" else " shares"
        tokens.add_row(
            f"{asset} {t.symbol}", f"{t.supply:,}{unit}", f"{t.epochs_funded}", hkd(t.funded), hkd(t.claimed)
        )

    head = Text.assemble(
        ("assetproof demo", "bold"),
        f"   {snap.elapsed_s:,.0f} s   chain: {chain}   broker: {broker}\n",
        ("dashboard: ", "bold"),
        (dashboard, "underline blue"),
        "   ",
        ("API reference: ", "bold"),
        (f"{dashboard}docs" if dashboard else "", "underline blue"),
        "   (Ctrl-C stops everything)",
    )
    note = Text(COVERAGE_NOTE, style="dim")
    parts: list[RenderableType] = [head, Text(""), ingest, Text(""), chain_table, Text(""), coverage, note]
    if snap.tokens:
        parts += [Text(""), tokens, Text(TOKENS_NOTE, style="dim")]
    else:
        parts += [Text(""), Text("tokens: set up after the first anchor", style="dim")]
    return Panel(Group(*parts), border_style="blue")


def quarantined_line(summary: Summary) -> str:
    """``quarantined 9 (10 faulty injected; 1 refused by the broker)``, without the label: every
    injected fault is either quarantined or was refused by the broker before the gateway."""
    text = f"{sum(summary.quarantined.values()):,} ({summary.faults_injected:,} faulty injected"
    if summary.refused_by_broker:
        text += f"; {summary.refused_by_broker:,} refused by the broker"
    return text + ")"


def summary_table(summary: Summary) -> Table:
    table = Table(title="assetproof demo: summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("devices", f"{summary.devices}"),
        ("readings signed", f"{summary.signed:,}"),
        ("readings accepted", f"{summary.accepted:,}"),
        ("lost", f"[{'green' if summary.lost == 0 else 'red'}]{summary.lost}[/]"),
        ("quarantined", quarantined_line(summary)),
        ("epochs anchored", f"{summary.epochs_anchored} (gas {summary.gas_total:,})"),
        ("epochs not anchored", f"{summary.epochs_not_anchored}"),
        ("readings not anchored", f"{summary.unanchored_readings}"),
        ("coverage", ", ".join(f"{asset} {value:.1%}" for asset, value in summary.coverage.items()) or "none"),
        (
            "tokens",
            "\n".join(token_line(asset, t) for asset, t in summary.tokens.items()) or "none",
        ),
        ("epochs not distributed", f"{summary.epochs_not_distributed}"),
        ("first anchor", "none" if summary.first_anchor_s is None else f"{summary.first_anchor_s} s after start"),
        ("chain", summary.chain),
        ("broker", summary.broker),
        ("result", "[bold green]OK[/]" if summary.ok else "[bold red]FAILED[/]"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
