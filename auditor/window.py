"""What the chain says happened in an audit's window, beside what the export shows.

The registrar's and the pricing authority's acts (registrations, rotations, revocations,
tariffs published) are listed for the auditor to read: each changes which keys count or what a
reading is worth. A device registered on chain that sent nothing in the window is a finding:
the export may have left it out.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditor.report import ChainEvent, Finding
from chain.ids import device_id_hash
from chain.reader import ChainReader
from chain.types import Checkpoint as ChainCheckpoint
from chain.types import DeviceRegisteredEvent, KeyRotatedEvent

__all__ = ["chain_events", "silent_devices"]


def _name(device_hash: bytes, names: dict[bytes, str]) -> str:
    return names.get(device_hash, "0x" + device_hash.hex())


def chain_events(
    chain: ChainReader, *, from_block: int, to_block: int, heard: Iterable[str] = ()
) -> tuple[list[ChainEvent], list[ChainEvent]]:
    """The registry's events and the tariffs published in blocks ``from_block..to_block``
    (devices named by id where the export showed them, else by the hash the chain knows)."""
    names = {device_id_hash(d): d for d in heard}
    events: list[ChainEvent] = []
    if from_block <= to_block:
        for e in chain.registry_events(from_block=from_block, to_block=to_block):
            device = _name(e.device_hash, names)
            if isinstance(e, DeviceRegisteredEvent):
                p = e.profile
                rating = f"{p.rated_power_w} W" + (f", {p.rated_hashrate_ghs} GH/s" if p.rated_hashrate_ghs else "")
                detail = f"{p.kind}, {p.window_s} s window, rated {rating}, {e.alg} key" + (
                    f", certificate {e.cert_hash.hex()[:16]}…" if e.cert_hash else ", no certificate"
                )
                kind = "registered"
            elif isinstance(e, KeyRotatedEvent):
                detail = f"key #{e.key_index} in force" + (
                    f", certificate {e.cert_hash.hex()[:16]}…" if e.cert_hash else ", no certificate"
                )
                kind = "rotated"
            else:
                detail = f"all {e.key_count} key(s) end"
                kind = "revoked"
            events.append(
                ChainEvent(kind=kind, subject=device, detail=detail, block_number=e.block_number, timestamp=e.timestamp)
            )
    tariffs: list[ChainEvent] = []
    if from_block <= to_block:
        for t in chain.published_tariffs(from_block=from_block, to_block=to_block):
            name = t.parsed.id if t.parsed is not None else f"unusable ({t.problem})"
            tariffs.append(
                ChainEvent(
                    kind="tariff",
                    subject=f"#{t.index} {name}",
                    detail=f"hash {t.tariff_hash.hex()[:16]}…, in force from {t.effective_from}",
                    block_number=t.block_number,
                    timestamp=t.timestamp,
                )
            )
    return events, tariffs


def silent_devices(
    chain: ChainReader,
    *,
    heard: set[str],
    window: tuple[int, int],
    window_start_block: int,
    last: ChainCheckpoint,
) -> list[Finding]:
    """Every device registered on chain by the window's last checkpoint, not revoked before the
    window, that shows no message at all in it: a finding (named by its id's hash, all the
    chain knows of it)."""
    hashes = {device_id_hash(d) for d in heard}
    found = []
    for registered in chain.registered_devices(to_block=last.block_number):
        if registered.device_hash in hashes:
            continue
        if registered.revoked_block is not None and registered.revoked_block <= window_start_block:
            continue
        found.append(
            Finding(
                check="silent",
                message=f"registered on chain in block {registered.block_number} but sent nothing in epochs"
                f" {window[0]}..{window[1]} (neither a reading nor a quarantined message)",
                device="0x" + registered.device_hash.hex(),
            )
        )
    return found
