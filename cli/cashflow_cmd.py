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
    from store.db import make_engine

    if by not in ("hour", "day"):
        typer.echo("error: --by takes hour or day", err=True)
        raise typer.Exit(2)
    granularity: Literal["hour", "day"] = "hour" if by == "hour" else "day"
    engine = make_engine(database, writer=False)
    buckets = query(engine, asset=asset, device=device, granularity=granularity)
    engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                [
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
            )
        )
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
    Console().print(table)
