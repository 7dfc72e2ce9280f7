"""``assetproof device check FILE|-``: a vendor's captured messages judged as the gateway judges
them, each ``accepted``, ``duplicate``, ``held`` or refused with its exact quarantine reason.

The verdicts come from the gateway's own batch processor, run on a throwaway SQLite database in
which the devices are registered (from ``--devices``, or copied from the configured database),
one message per batch in the order given, with the clock fixed (``--now-ms``). So they are
exactly what a gateway with a fresh chain head for each device would decide. Input formats:
docs/device-protocol.md, section 9.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import DatabaseOption

app = typer.Typer(help="Check a device implementation's messages.", no_args_is_help=True)

EXIT_ACCEPTED, EXIT_REFUSED, EXIT_UNUSABLE = 0, 1, 2
_WRAPPER_KEYS = frozenset({"topic", "message", "message_hex"})


class _InputError(Exception):
    """The input or the registrations cannot be used (exit 2, one line)."""


@dataclass(frozen=True, slots=True)
class _Item:
    payload: bytes
    topic: str | None
    name: str | None


def _wrapped(obj: dict[str, Any], where: str) -> _Item:
    import rfc8785

    if "message_hex" in obj:
        try:
            payload = bytes.fromhex(str(obj["message_hex"]))
        except ValueError:
            raise _InputError(f"{where}: message_hex is not hex") from None
    elif isinstance(obj.get("message"), str):
        payload = obj["message"].encode()
    elif isinstance(obj.get("message"), dict):
        payload = bytes(rfc8785.dumps(obj["message"]))
    else:
        raise _InputError(f"{where}: give message (the exact text, or an object) or message_hex")
    topic = obj.get("topic")
    name = obj.get("name")
    return _Item(payload, str(topic) if topic is not None else None, str(name) if name is not None else None)


def parse_input(data: bytes) -> list[_Item]:
    """Messages from a capture: one per line (the exact bytes), or a JSON array whose elements are
    strings (the exact text) or message objects (encoded with RFC 8785); a line or element may
    also be ``{"topic", "message" | "message_hex", "name"?}`` to say where it was published."""
    import rfc8785

    if data.lstrip().startswith(b"["):
        try:
            elements = json.loads(data)
        except ValueError as exc:
            raise _InputError(f"the input starts like a JSON array but is not one: {exc}") from None
        items = []
        for i, element in enumerate(elements, 1):
            if isinstance(element, str):
                items.append(_Item(element.encode(), None, None))
            elif isinstance(element, dict) and _WRAPPER_KEYS & element.keys():
                items.append(_wrapped(element, f"element {i}"))
            elif isinstance(element, dict):
                items.append(_Item(bytes(rfc8785.dumps(element)), None, None))
            else:
                raise _InputError(f"element {i} is neither a message object nor a string")
        return items
    items = []
    for i, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and _WRAPPER_KEYS & obj.keys() and "body" not in obj:
            items.append(_wrapped(obj, f"line {i}"))
        else:
            items.append(_Item(line, None, None))
    return items


def _registrations_from_file(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    devices = doc["devices"] if isinstance(doc, dict) and "devices" in doc else doc
    if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
        raise _InputError(f"{path}: expected a list of devices (or {{'devices': [...]}})")
    return devices


def _registrations_from_store(database: str) -> list[dict[str, Any]]:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import make_engine
    from store.tables import DEVICE

    engine = make_engine(database, writer=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(DEVICE)).all()
    except SQLAlchemyError as exc:
        raise _InputError(f"cannot read the devices from {database}: {exc.__class__.__name__}") from None
    finally:
        engine.dispose()
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "alg": r.alg,
            "public_key": bytes(r.public_key).hex(),
            "rating": r.rating,
            "window_s": r.window_s,
            "asset": r.asset,
        }
        for r in rows
    ]


def _topic_for(item: _Item, devices: list[dict[str, Any]]) -> str:
    """Where the message was published: as given, else its body's device's own topic."""
    from protocol.errors import VerificationError
    from protocol.topics import telemetry_topic

    if item.topic is not None:
        return item.topic
    try:
        device = json.loads(item.payload)["body"]["device"]
        return telemetry_topic(device)
    except (ValueError, KeyError, TypeError, VerificationError):
        pass
    # Unreadable bytes name no device: with one registered device, it is that device's capture.
    return telemetry_topic(devices[0]["id"] if len(devices) == 1 else "unknown-publisher")


@dataclass(frozen=True, slots=True)
class Verdict:
    index: int
    name: str | None
    device: str | None
    seq: int | None
    verdict: str
    detail: str

    @property
    def refused(self) -> bool:
        return self.verdict not in ("accepted", "duplicate")

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "device": self.device,
            "seq": self.seq,
            "verdict": self.verdict,
            "detail": self.detail,
        }


def judge(items: list[_Item], devices: list[dict[str, Any]], *, now_ms: int) -> list[Verdict]:
    """Each message's verdict from the gateway's batch processor, in order, on a throwaway
    database holding ``devices`` (each chain at its start)."""
    from sqlalchemy import select

    from gateway.batch import BatchProcessor
    from gateway.records import Incoming
    from gateway.tariff import load_tariff, record_tariff
    from protocol.errors import AssetproofError
    from store.db import make_engine, migrate
    from store.devices import NewDevice, ensure_asset, register_devices
    from store.tables import QUARANTINE

    with tempfile.TemporaryDirectory(prefix="assetproof-check-") as tmp:
        engine = make_engine(f"sqlite:///{tmp}/check.db")
        reader = make_engine(f"sqlite:///{tmp}/check.db", writer=False)
        try:
            migrate(engine)
            tariff = load_tariff()
            record_tariff(engine, tariff)
            try:
                for d in devices:
                    asset = str(d.get("asset") or f"check-{d['kind']}")
                    ensure_asset(engine, name=asset, kind=str(d["kind"]), now_ms=now_ms)
                    register_devices(
                        engine,
                        asset=asset,
                        devices=[
                            NewDevice(
                                id=str(d["id"]),
                                kind=str(d["kind"]),
                                alg=str(d["alg"]),
                                public_key=bytes.fromhex(str(d["public_key"])),
                                rating=dict(d.get("rating") or {}),
                                window_s=int(d.get("window_s") or 60),
                            )
                        ],
                        now_ms=now_ms,
                    )
            except (KeyError, ValueError, TypeError, AssetproofError) as exc:
                raise _InputError(f"unusable device registration: {exc.__class__.__name__}: {exc}") from None
            processor = BatchProcessor(
                engine=engine, reader=reader, tariff=tariff, clock_ms=lambda: now_ms, verify_threads=1
            )
            verdicts = []
            try:
                for index, item in enumerate(items, 1):
                    result = processor.process([Incoming(_topic_for(item, devices), item.payload, now_ms)])
                    device, seq = _names(item.payload)
                    if result.accepted or result.released:
                        verdict, detail = "accepted", ""
                    elif result.duplicates:
                        verdict, detail = "duplicate", "a copy of a message already stored: counted, not stored again"
                    elif result.held:
                        verdict, detail = "held", "ahead of its predecessor: waits for it, then gap"
                    else:
                        with engine.connect() as conn:
                            row = conn.execute(
                                select(QUARANTINE.c.reason, QUARANTINE.c.detail).order_by(QUARANTINE.c.id.desc())
                            ).first()
                        verdict, detail = (row.reason, row.detail) if row is not None else ("dropped", "")
                    verdicts.append(Verdict(index, item.name, device, seq, verdict, detail))
            finally:
                processor.close()
        finally:
            reader.dispose()
            engine.dispose()
    return verdicts


def _names(payload: bytes) -> tuple[str | None, int | None]:
    try:
        body = json.loads(payload)["body"]
        return str(body["device"]), int(body["seq"])
    except (ValueError, KeyError, TypeError):
        return None, None


@app.command()
def check(
    source: Annotated[str, typer.Argument(metavar="FILE|-", help="Captured messages (- for stdin).")],
    database: DatabaseOption,
    devices_file: Annotated[
        Path | None,
        typer.Option(
            "--devices",
            help="The registrations (JSON, the conformance vectors' devices.json format); default: the"
            " devices registered in --database.",
        ),
    ] = None,
    now_ms: Annotated[
        int | None, typer.Option("--now-ms", min=0, help="The gateway clock, for clock_skew (default: now).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Judge captured messages as the gateway would: per message accepted, duplicate, held, or
    the exact quarantine reason and detail. Exit 0 if every one is accepted (or a duplicate), 1
    if any is refused or held, 2 for unusable input."""
    import time

    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {source}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    try:
        items = parse_input(data)
        if not items:
            raise _InputError(f"{source} holds no message")
        devices = _registrations_from_file(devices_file) if devices_file else _registrations_from_store(database)
        if not devices:
            raise _InputError("no device is registered: give --devices FILE")
        verdicts = judge(items, devices, now_ms=now_ms if now_ms is not None else time.time_ns() // 1_000_000)
    except _InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    counts = Counter(v.verdict for v in verdicts)
    refused = sum(1 for v in verdicts if v.refused)
    if as_json:
        typer.echo(
            json.dumps({"messages": [v.to_json() for v in verdicts], "counts": dict(counts), "refused": refused})
        )
    else:
        for v in verdicts:
            who = v.name or (f"{v.device}#{v.seq}" if v.device is not None else "(unreadable)")
            typer.echo(f"{v.index:>4}  {who}: {v.verdict}" + (f": {v.detail}" if v.refused and v.detail else ""))
        typer.echo(
            f"{len(verdicts)} message(s): "
            + ", ".join(f"{verdict} {n}" for verdict, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        )
    if refused:
        raise typer.Exit(EXIT_REFUSED)
