"""``assetproof cashflow``: an asset's or device's cash flow per hour or day."""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from cli.common import DatabaseOption


def cashflow(
    database: DatabaseOption,
    asset: Annotated[str | None, typer.Option(help="One asset (default: all).")] = None,
    device: Annotated[str | None, typer.Option(help="One device.")] = None,
    by: Annotated[str, typer.Option(help="hour or day")] = "day",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Revenue, cost, net, energy, coverage and uptime per hour or day (device time, UTC)."""
    from store.cashflow import cashflow as query
    from store.coverage import selection_coverage
    from store.db import make_engine

    if by not in ("hour", "day"):
        typer.echo("error: --by takes hour or day", err=True)
        raise typer.Exit(2)
    granularity: Literal["hour", "day"] = "hour" if by == "hour" else "day"
    engine = make_engine(database, writer=False)
    buckets = query(engine, asset=asset, device=device, granularity=granularity)
    # The whole selection's coverage: the same figure as the API's totals and the demo's view.
    total = selection_coverage(engine, asset=asset, device=device)
    engine.dispose()
    if as_json:
        buckets_json = [
            {
                "start_ms": b.start_ms,
                "readings": b.readings,
                "energy_wh": b.energy_wh,
                "revenue": b.revenue,
                "cost": b.cost,
                "net": b.net,
                "coverage": round(b.coverage, 4),
                "uptime": round(b.uptime, 4),
            }
            for b in buckets
        ]
        totals = {
            "readings": total.readings,
            "expected_readings": round(total.expected_readings, 3),
            "coverage": round(total.value, 4),
        }
        typer.echo(json.dumps({"buckets": buckets_json, "totals": totals}))
        return
    table = Table("start (UTC)", "readings", "energy kWh", "revenue", "cost", "net", "coverage", "uptime")
    fmt = "%Y-%m-%d %H:00" if granularity == "hour" else "%Y-%m-%d"
    for b in buckets:
        table.add_row(
            time.strftime(fmt, time.gmtime(b.start_ms / 1000)),
            str(b.readings),
            f"{b.energy_wh / 1000:,.1f}",
            f"{b.revenue / 100:,.2f}",
            f"{b.cost / 100:,.2f}",
            f"{b.net / 100:,.2f}",
            f"{b.coverage:.1%}",
            f"{b.uptime:.1%}",
        )
    table.add_section()
    table.add_row("total", str(total.readings), "", "", "", "", f"{total.value:.1%}", "")
    Console().print(table)
