"""Exports built by hand from real signed readings, anchored on a real anvil.

A :class:`Fleet` is a fresh deployment with devices registered under real keys; tests sign
readings and chained rejections exactly as devices do, choose which land in the log and which in
the quarantine (and tamper with them), then :meth:`Fleet.export` writes the epoch folders in the
export format and anchors every epoch's checkpoint, as the attestor would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import rfc8785

from chain.reader import ChainReader
from chain.types import DeviceRegistration
from chain.writer import ChainClient
from devstack.anvil import AnvilNode
from protocol.cashflow import reading_cash_flow
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, Message, sign_body
from protocol.epoch import AssetTotals, EpochMetadata, quarantine_root
from protocol.export import EpochCheckpoint, QuarantineExport, QuarantineMessage, epoch_dir_name
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from tests.support.chain import funded_account
from tests.support.devices import TARIFF

ASSET = "hk-rooftops"


@dataclass
class Quarantined:
    """One quarantine entry: the payload as stored and what the operator says of it."""

    raw: bytes
    reason: str
    chained: bool
    device: str | None
    seq: int | None
    publisher: str | None = None
    digest: bytes | None = None
    """Defaults to the payload's SHA-256 (set it to list a digest the payload does not have)."""

    def entry(self) -> QuarantineMessage:
        return QuarantineMessage(
            digest=self.digest if self.digest is not None else hashlib.sha256(self.raw).digest(),
            reason=self.reason,
            chained=self.chained,
            publisher=self.publisher if self.publisher is not None else self.device,
            device=self.device,
            seq=self.seq,
            raw_size=len(self.raw),
            raw=self.raw,
        )


@dataclass
class Epoch:
    leaves: list[Message] = field(default_factory=list)
    quarantine: list[Quarantined] = field(default_factory=list)


@dataclass
class Fleet:
    node: AnvilNode
    client: ChainClient
    keys: dict[str, DeviceKey]
    heads: dict[str, tuple[int, bytes]]
    start_ms: int

    @classmethod
    def deploy(cls, node: AnvilNode, devices: list[str]) -> Fleet:
        w3 = node.web3()
        client = ChainClient(w3, account=funded_account(w3))
        client.deploy()
        client.publish_tariff(TARIFF, effective_from=0)
        keys = {name: DeviceKey.generate("ed25519") for name in devices}
        client.register_devices(
            DeviceRegistration(
                device_id=name,
                asset=ASSET,
                alg="ed25519",
                public_key=key.public_key,
                kind=DeviceKind.SOLAR,
                window_s=60,
                rated_power_w=10_000,
                rated_hashrate_ghs=0,
                cert_hash=b"",
            )
            for name, key in keys.items()
        )
        start_ms = client.block_timestamp(client.block_number()) * 1000 - 3_600_000
        return cls(node, client, keys, dict.fromkeys(devices, (0, GENESIS_PREV)), start_ms)

    def reader(self) -> ChainReader:
        return ChainReader(self.node.web3(), deployment=self.client.deployment)

    def sign(self, device: str, *, energy_wh: int = 120, prev: bytes | None = None, seq: int | None = None) -> Message:
        """The device's next reading (seq and prev continue its chain unless given)."""
        last_seq, last_hash = self.heads[device]
        body = Body(
            device=device,
            seq=last_seq + 1 if seq is None else seq,
            ts_ms=self.start_ms + (last_seq + 1) * 60_000,
            kind=DeviceKind.SOLAR,
            window_s=60,
            metrics={"energy_wh": energy_wh, "power_w": energy_wh * 60, "irradiance_wm2": 500, "temp_dc": 300},
            prev=last_hash if prev is None else prev,
        )
        message = sign_body(body, self.keys[device])
        self.heads[device] = (body.seq, message.chain_hash)
        return message

    def rotate(self, device: str) -> None:
        """A resynchronisation's new key, on chain from the next block. The readings signed so far
        are dated an hour back, so they stay under the old key; the new key's are dated after the
        rotation. (The anvil is shared: its clock is not moved.)"""
        self.keys[device] = DeviceKey.generate("ed25519")
        self.client.rotate(device_id=device, public_key=self.keys[device].public_key)
        self.start_ms = self.client.block_timestamp(self.client.block_number()) * 1000 + 1_000

    def export(
        self, directory: Path, epochs: list[Epoch], *, after_anchor: Callable[[int], None] | None = None
    ) -> Path:
        """Write ``epochs`` as export folders under ``directory`` and anchor each (then call
        ``after_anchor`` with its number, to act on chain between epochs)."""
        log = MerkleLog()
        previous = 0
        for number, epoch in enumerate(epochs):
            log.extend(m.raw for m in epoch.leaves)
            totals = {ASSET: AssetTotals()}
            for m in epoch.leaves:
                flow = reading_cash_flow(m.body, TARIFF)
                totals[ASSET] = totals[ASSET].plus(
                    readings=1, energy_wh=m.body.metrics["energy_wh"], revenue=flow.revenue, cost=flow.cost
                )
            quarantine = QuarantineExport(
                digests=tuple(q.entry().digest for q in epoch.quarantine),
                messages=tuple(q.entry() for q in epoch.quarantine),
            )
            stamps = [m.body.ts_ms for m in epoch.leaves] or [self.start_ms]
            meta = EpochMetadata(
                epoch=number,
                start_ms=min(stamps),
                end_ms=max(stamps) + 60_000,
                leaves_from=previous,
                leaves_to=log.size,
                tariff=TARIFF,
                assets=totals,
                quarantine_count=len(quarantine.digests),
                quarantine_root=quarantine_root(list(quarantine.digests)),
            )
            proof = log.consistency_proof(previous, log.size)
            checkpoint = EpochCheckpoint(
                epoch=number,
                tree_size=log.size,
                root=log.root(),
                meta_hash=meta.meta_hash,
                frontier_size=previous,
                frontier=tuple(log.compact_range(previous)),
                consistency_proof=tuple(proof),
                anchor=None,
            )
            folder = directory / epoch_dir_name(number)
            folder.mkdir(parents=True)
            (folder / "checkpoint.json").write_text(json.dumps(checkpoint.to_json()))
            (folder / "metadata.json").write_bytes(meta.canonical_bytes())
            (folder / "leaves").write_bytes(b"".join(m.raw + b"\n" for m in epoch.leaves))
            (folder / "quarantine.json").write_text(json.dumps(quarantine.to_json()))
            self.client.anchor(
                epoch=number,
                tree_size=log.size,
                root=log.root(),
                meta_hash=meta.meta_hash,
                assets_root=meta.assets_root,
                proof=proof,
            )
            if after_anchor is not None:
                after_anchor(number)
            previous = log.size
        return directory


def rejected(message: Message, reason: str) -> Quarantined:
    """A chained rejection of ``message`` as the gateway quarantines it."""
    return Quarantined(raw=message.raw, reason=reason, chained=True, device=message.body.device, seq=message.body.seq)


def edited(message: Message, *, energy_wh: int) -> bytes:
    """``message``'s bytes with one metric changed and the signature left as it was."""
    obj = json.loads(message.raw)
    obj["body"]["metrics"]["energy_wh"] = energy_wh
    return bytes(rfc8785.dumps(obj))


__all__ = ["ASSET", "Epoch", "Fleet", "Quarantined", "edited", "rejected"]
