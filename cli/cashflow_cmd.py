"""``assetproof cashflow``: an asset's or device's cash flow per hour or day, split into attested
(in epochs anchored on chain) and pending, with a totals row; as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from cli.common import DatabaseOption, fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from store.cashflow import CashflowBucket

_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3}
"""ISO 4217 minor-unit exponents that are not 2 (amounts are integers in minor units)."""

_FIELDS = ("readings", "energy_wh", "revenue", "cost", "net")
_CSV_COLUMNS = (
    "start_utc",
    "start_ms",
    "currency",
    *_FIELDS,
    *(f"attested_{f}" for f in _FIELDS),
    *(f"pending_{f}" for f in _FIELDS),
    "coverage",
    "uptime",
)


@dataclass(slots=True)
class _Row:
    """One line of the report: a bucket, or the totals (``start_ms`` None)."""

    start_ms: int | None
    figures: dict[str, int]
    attested: dict[str, int]
    coverage: float
    uptime: float | None

    @property
    def pending(self) -> dict[str, int]:
        return {name: self.figures[name] - self.attested[name] for name in _FIELDS}

    @classmethod
    def of(cls, b: CashflowBucket) -> _Row:
        return cls(
            b.start_ms,
            {"readings": b.readings, "energy_wh": b.energy_wh, "revenue": b.revenue, "cost": b.cost, "net": b.net},
            {
                "readings": b.attested_readings,
                "energy_wh": b.attested_energy_wh,
                "revenue": b.attested_revenue,
                "cost": b.attested_cost,
                "net": b.attested_net,
            },
            b.coverage,
            b.uptime,
        )

    @classmethod
    def total(cls, rows: list[_Row], *, coverage: float) -> _Row:
        return cls(
            None,
            {name: sum(r.figures[name] for r in rows) for name in _FIELDS},
            {name: sum(r.attested[name] for r in rows) for name in _FIELDS},
            coverage,
            None,
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {} if self.start_ms is None else {"start_ms": self.start_ms}
        doc.update(self.figures)
        doc["attested"] = self.attested
        doc["pending"] = self.pending
        doc["coverage"] = round(self.coverage, 4)
        if self.uptime is not None:
            doc["uptime"] = round(self.uptime, 4)
        return doc


def _known(engine: Engine, *, asset: str | None, device: str | None) -> str | None:
    """Why the selection names nothing the store knows (None when it does)."""
    from sqlalchemy import select

    from store.tables import ASSET, DEVICE

    with engine.connect() as conn:
        if asset is not None and conn.execute(select(ASSET.c.name).where(ASSET.c.name == asset)).first() is None:
            names = sorted(conn.execute(select(ASSET.c.name)).scalars())
            return f"unknown asset {asset!r} (known: {', '.join(names) or 'none yet'})"
        if device is not None:
            row = conn.execute(select(DEVICE.c.asset).where(DEVICE.c.id == device)).first()
            if row is None:
                return f"unknown device {device!r} (see `assetproof devices list`)"
            if asset is not None and row.asset != asset:
                return f"device {device!r} belongs to asset {row.asset!r}, not {asset!r}"
    return None


def _currency(engine: Engine, *, asset: str | None, device: str | None) -> str:
    """The currency of the tariffs the selection's readings were priced with (else the newest)."""
    from sqlalchemy import select

    from store.coverage import scoped
    from store.tables import CASHFLOW_HOURLY, TARIFF

    with engine.connect() as conn:
        used = scoped(
            select(CASHFLOW_HOURLY.c.tariff_id).distinct(),
            CASHFLOW_HOURLY,
            asset=asset,
            device=device,
            low=None,
            high=None,
        )
        bodies = list(conn.execute(select(TARIFF.c.body).where(TARIFF.c.id.in_(used))).scalars())
        if not bodies:
            bodies = list(conn.execute(select(TARIFF.c.body).order_by(TARIFF.c.loaded_ms.desc()).limit(1)).scalars())
    currencies = sorted({str(b.get("currency")) for b in bodies})
    return "+".join(currencies) if currencies else "-"


def _money(amount: int, currency: str) -> str:
    digits = _MINOR_DIGITS.get(currency, 2)
    return f"{amount / 10**digits:,.{digits}f}"


def cashflow(
    database: DatabaseOption,
    asset: Annotated[str | None, typer.Option(help="One asset (default: all).")] = None,
    device: Annotated[str | None, typer.Option(help="One device.")] = None,
    by: Annotated[str, typer.Option(help="hour or day")] = "day",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (amounts in minor units).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (amounts in minor units), totals last.")] = False,
) -> None:
    """Revenue, cost, net, energy, coverage and uptime per hour or day (device time, UTC), each
    split into attested (its readings are in epochs anchored on chain) and pending, with a totals
    row. Amounts in the currency of the tariff that priced them. Exit 2 for an unknown asset or
    device."""
    from store.cashflow import cashflow as query
    from store.coverage import selection_coverage
    from store.db import make_engine

    if by not in ("hour", "day"):
        raise fail("--by takes hour or day")
    if as_json and as_csv:
        raise fail("give --json or --csv, not both")
    granularity: Literal["hour", "day"] = "hour" if by == "hour" else "day"
    engine = make_engine(database, writer=False)
    try:
        unknown = _known(engine, asset=asset, device=device)
        if unknown is not None:
            raise fail(unknown)
        buckets = query(engine, asset=asset, device=device, granularity=granularity)
        # The whole selection's coverage: the same figure as the API's totals and the demo's view.
        total_coverage = selection_coverage(engine, asset=asset, device=device)
        currency = _currency(engine, asset=asset, device=device)
    finally:
        engine.dispose()
    rows = [_Row.of(b) for b in buckets]
    total = _Row.total(rows, coverage=total_coverage.value)
    if as_json:
        totals = total.to_json()
        totals["expected_readings"] = round(total_coverage.expected_readings, 3)
        typer.echo(
            json.dumps(
                {"currency": currency, "by": granularity, "buckets": [r.to_json() for r in rows], "totals": totals}
            )
        )
        return
    fmt = "%Y-%m-%d %H:00" if granularity == "hour" else "%Y-%m-%d"
    if as_csv:
        typer.echo(_csv(rows, total, currency=currency, fmt=fmt), nl=False)
        return
    _table(rows, total, currency=currency, fmt=fmt)


def _csv(rows: list[_Row], total: _Row, *, currency: str, fmt: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for r in [*rows, total]:
        start = "total" if r.start_ms is None else time.strftime(fmt, time.gmtime(r.start_ms / 1000))
        writer.writerow(
            [
                start,
                "" if r.start_ms is None else r.start_ms,
                currency,
                *(r.figures[f] for f in _FIELDS),
                *(r.attested[f] for f in _FIELDS),
                *(r.pending[f] for f in _FIELDS),
                f"{r.coverage:.4f}",
                "" if r.uptime is None else f"{r.uptime:.4f}",
            ]
        )
    return out.getvalue()


def _table(rows: list[_Row], total: _Row, *, currency: str, fmt: str) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        typer.echo("no readings yet for this selection")
    table = Table(
        "start (UTC)",
        "currency",
        "readings",
        "energy kWh",
        "revenue",
        "cost",
        "net",
        "attested net",
        "pending net",
        "coverage",
        "uptime",
        caption="attested: in epochs anchored on chain; pending: not yet (net = attested + pending)",
    )
    for r in [*rows, total]:
        if r.start_ms is None:
            table.add_section()
        table.add_row(
            "total" if r.start_ms is None else time.strftime(fmt, time.gmtime(r.start_ms / 1000)),
            currency,
            str(r.figures["readings"]),
            f"{r.figures['energy_wh'] / 1000:,.1f}",
            _money(r.figures["revenue"], currency),
            _money(r.figures["cost"], currency),
            _money(r.figures["net"], currency),
            _money(r.attested["net"], currency),
            _money(r.pending["net"], currency),
            f"{r.coverage:.1%}",
            "" if r.uptime is None else f"{r.uptime:.1%}",
        )
    Console().print(table)
