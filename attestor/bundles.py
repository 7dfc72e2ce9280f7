"""Proof bundles for stored readings, built from the database's Merkle log.

A bundle is what the operator hands out; nothing in it is trusted by an auditor until it has been
checked against the chain (``assetproof verify``). The API serves these, and ``assetproof
bundle`` writes them to files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from attestor.epochs import metadata_of
from attestor.log_store import DbNodeStore
from protocol.bundle import Anchor, Checkpoint, ProofBundle
from protocol.errors import AssetproofError
from protocol.merkle.log import MerkleLog
from protocol.signing import parse_algorithm
from store.status import EpochStatus
from store.tables import DEVICE_KEY, EPOCH, READING

__all__ = ["BundleUnavailableError", "ChainContext", "anchor_of", "build_bundle"]


class BundleUnavailableError(AssetproofError):
    """No bundle can be built (yet) for the reading asked for; ``reason`` says why:
    ``not_found`` (no such reading) or ``pending`` (not yet in a closed epoch)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainContext:
    """Which chain and AnchorRegistry the bundles' anchors name (from the deployment file)."""

    chain_id: int
    anchor_registry: str


def build_bundle(
    engine: Engine,
    *,
    log_index: int | None = None,
    device_id: str | None = None,
    seq: int | None = None,
    chain: ChainContext | None = None,
) -> ProofBundle:
    """The bundle of one reading, named by its log index or by (device, seq).

    The proof is for the checkpoint of the reading's epoch. The anchor section is filled once
    the epoch is anchored and ``chain`` says where; before that the bundle still checks offline.
    """
    if (log_index is None) == (device_id is None or seq is None):
        raise ValueError("name the reading by log_index, or by device_id and seq")
    with engine.connect() as conn:
        reading = _reading(conn, log_index=log_index, device_id=device_id, seq=seq)
        if reading.log_index is None or reading.epoch is None:
            raise BundleUnavailableError(
                f"reading {reading.device_id}#{reading.seq} is not in a closed epoch yet", reason="pending"
            )
        epoch = conn.execute(select(EPOCH).where(EPOCH.c.number == reading.epoch)).one()
        with DbNodeStore(engine).bound(conn) as store:
            proof = MerkleLog(store).inclusion_proof(reading.log_index, epoch.leaves_to)
        key = _key_for(conn, device_id=reading.device_id, stored_ms=reading.stored_ms)
    return ProofBundle(
        message=bytes(reading.raw),
        device_id=reading.device_id,
        alg=parse_algorithm(key.alg),
        public_key=bytes(key.public_key),
        leaf_index=reading.log_index,
        tree_size=epoch.leaves_to,
        inclusion_proof=tuple(proof),
        checkpoint=Checkpoint(
            epoch=epoch.number, tree_size=epoch.leaves_to, root=bytes(epoch.root), meta_hash=bytes(epoch.meta_hash)
        ),
        metadata=metadata_of(epoch),
        anchor=anchor_of(epoch, chain),
    )


def _reading(conn: Connection, *, log_index: int | None, device_id: str | None, seq: int | None) -> Any:
    query = select(
        READING.c.device_id,
        READING.c.seq,
        READING.c.raw,
        READING.c.log_index,
        READING.c.epoch,
        READING.c.stored_ms,
    )
    if log_index is not None:
        query = query.where(READING.c.log_index == log_index)
        what = f"log index {log_index}"
    else:
        query = query.where(READING.c.device_id == device_id, READING.c.seq == seq)
        what = f"{device_id}#{seq}"
    row = conn.execute(query).first()
    if row is None:
        raise BundleUnavailableError(f"no stored reading {what}", reason="not_found")
    return row


def _key_for(conn: Connection, *, device_id: str, stored_ms: int) -> Any:
    """The key the database says the device had when the reading was accepted (a hint only:
    the auditor takes the key from the chain)."""
    keys = conn.execute(
        select(DEVICE_KEY.c.alg, DEVICE_KEY.c.public_key, DEVICE_KEY.c.valid_from_ms, DEVICE_KEY.c.valid_until_ms)
        .where(DEVICE_KEY.c.device_id == device_id)
        .order_by(DEVICE_KEY.c.id)
    ).all()
    for key in reversed(keys):
        if key.valid_from_ms <= stored_ms and (key.valid_until_ms is None or stored_ms < key.valid_until_ms):
            return key
    if not keys:
        raise BundleUnavailableError(f"device {device_id} has no key on record", reason="not_found")
    return keys[-1]


def anchor_of(epoch: Any, chain: ChainContext | None) -> Anchor | None:
    if chain is None or epoch.status != EpochStatus.ANCHORED or epoch.tx_hash is None or epoch.block_timestamp is None:
        return None
    return Anchor(
        chain_id=chain.chain_id,
        contract=chain.anchor_registry,
        tx_hash="0x" + bytes(epoch.tx_hash).hex(),
        block_number=epoch.block_number,
        block_timestamp=epoch.block_timestamp,
    )
