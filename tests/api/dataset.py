"""A realistic store for the API tests, built through the real pipeline: devices of three
kinds in three assets registered like ``devices provision`` does, readings from the simulator's
physics models signed with the devices' keys (Ed25519 and P-256), ingested by the gateway's
batch processor, appended and closed into epochs by the Attestor and anchored on an in-process
eth-tester chain by its Anchorer; then more readings that stay pending, and quarantined
messages of several reasons.

Timeline (device time, minutes from ``T0``, a fixed hour boundary):

- 0..119: every device reports each minute; the Attestor closes epochs of 300 leaves (0, 1)
  and anchors them;
- 120..149: more readings; epoch 2 closes but is *not* anchored;
- ``rig-hydro-pod-0002`` is revoked; 150..179: the rest report on (its messages are
  quarantined as ``revoked_device``) and nothing more is appended: those readings are pending.
- ``sol-hk-rooftops-0003`` falls silent after minute 149 (offline); ``sol-hk-rooftops-0004``
  never reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from attestor.bundles import ChainContext
from attestor.epochs import EpochPolicy
from attestor.service import Attestor
from chain.deployment import write_deployment
from chain.devchain import dev_fund, eth_tester_web3
from chain.reader import ChainReader
from chain.types import Roles
from chain.writer import ChainClient
from device_sim.models import DeviceModel, build_model
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from gateway.tariff import record_tariff
from protocol.cashflow import HOUR_MS
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, Message, sign_body
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from store.db import make_engine
from store.devices import NewDevice, ensure_asset, register_devices, revoke_device
from tests.support.devices import TARIFF

MINUTE_MS = 60_000
T0 = 1_780_275_600_000
"""2026-06-01 01:00 UTC, 09:00 in Hong Kong: fixed, so the rooftops' output (and every figure
built on it) is the same at whatever hour the tests run; it lies in the past, as readings must."""
API_NOW_MS = T0 + 180 * MINUTE_MS + 30_000
"""The API's clock in these tests: half a minute after the last readings."""
EPOCH_LEAVES = 300
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SILENT = "sol-hk-rooftops-0003"
NEVER_SEEN = "sol-hk-rooftops-0004"
REVOKED = "rig-hydro-pod-0002"

FLEET = (
    ("hk-rooftops", DeviceKind.SOLAR, "ed25519", "sol", 4),
    ("kowloon-hub", DeviceKind.CHARGER, "es256", "evc", 2),
    ("hydro-pod", DeviceKind.MINER, "ed25519", "rig", 2),
)


@dataclass
class Sim:
    id: str
    asset: str
    kind: DeviceKind
    key: DeviceKey
    model: DeviceModel
    seq: int = 0
    prev: bytes = GENESIS_PREV
    sent: list[Message] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return telemetry_topic(self.id)

    def reading(self, minute: int) -> Message:
        start = T0 + minute * MINUTE_MS
        body = Body(
            device=self.id,
            seq=self.seq + 1,
            ts_ms=start + MINUTE_MS,  # the end of the window it covers
            kind=self.kind,
            window_s=60,
            metrics=self.model.step(start_ms=start, window_s=60),
            prev=self.prev,
        )
        message = sign_body(body, self.key)
        self.seq, self.prev = body.seq, message.chain_hash
        self.sent.append(message)
        return message


@dataclass
class Dataset:
    url: str
    engine: Engine
    devices: dict[str, Sim]
    deployment_path: Path
    chain: ChainContext
    anchored_epochs: list[int]
    closed_epochs: list[int]
    quarantined: dict[str, int]
    attestor_anchored_delta: float
    gas_delta: float
    reader: ChainReader
    """The chain the dataset anchored to (eth-tester), for checks a verifier makes against it."""


def _incoming(messages: list[tuple[str, bytes, int]]) -> list[Incoming]:
    return [Incoming(topic, raw, received) for topic, raw, received in messages]


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def build(url: str, workdir: Path) -> Dataset:
    engine = make_engine(url)
    reader = make_engine(url, writer=False)
    record_tariff(engine, TARIFF)

    devices: dict[str, Sim] = {}
    for asset, kind, alg, prefix, count in FLEET:
        ensure_asset(engine, name=asset, kind=kind.value, now_ms=T0 - HOUR_MS, description=f"{kind.value} pool")
        sims = []
        for n in range(1, count + 1):
            model = build_model(kind, seed=n)
            sims.append(Sim(f"{prefix}-{asset}-{n:04d}", asset, kind, DeviceKey.generate(alg), model))
        register_devices(
            engine,
            asset=asset,
            devices=[
                NewDevice(
                    id=s.id,
                    kind=kind.value,
                    alg=alg,
                    public_key=s.key.public_key,
                    rating=s.model.rating_json(),
                    window_s=60,
                )
                for s in sims
            ],
            now_ms=T0 - HOUR_MS,
        )
        devices.update((s.id, s) for s in sims)

    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: API_NOW_MS)

    def ingest(minutes: range, *, skip: frozenset[str] = frozenset()) -> None:
        for minute in minutes:
            batch = []
            for sim in devices.values():
                if sim.id == NEVER_SEEN or sim.id in skip:
                    continue
                message = sim.reading(minute)
                batch.append((sim.topic, message.raw, message.body.ts_ms + 2_000))
            processor.process(_incoming(batch))

    w3 = eth_tester_web3()
    attestor_account, admin_account = Account.create(), Account.create()
    for account in (attestor_account, admin_account):
        dev_fund(w3, account.address)
    deployer = Account.create()
    dev_fund(w3, deployer.address)
    deployment = ChainClient(w3, account=deployer).deploy(
        roles=Roles(
            governor=deployer.address,
            attestor=attestor_account.address,
            registrar=admin_account.address,
            pricing_authority=deployer.address,
        )
    )
    deployment_path = workdir / "deployment.json"
    write_deployment(deployment_path, deployment)
    # The attestor prices epochs with the tariff the pricing authority published on chain.
    ChainClient(w3, account=deployer, deployment=deployment).publish_tariff(TARIFF, effective_from=0)
    client = ChainClient(w3, account=attestor_account, deployment=deployment)
    # Epochs close by size only here; their windows are wall-clock time, as in production.
    attestor = Attestor(engine, client, policy=EpochPolicy(window_ms=10 * 24 * HOUR_MS, max_leaves=EPOCH_LEAVES))

    anchored_before, gas_before = (
        _metric("assetproof_attestor_epochs_anchored_total"),
        _metric("assetproof_attestor_gas_used_total"),
    )
    ingest(range(0, 120))
    attestor.step()
    attestor.anchor_all()
    anchored_delta = _metric("assetproof_attestor_epochs_anchored_total") - anchored_before
    gas_delta = _metric("assetproof_attestor_gas_used_total") - gas_before

    ingest(range(120, 150))
    # Messages the gateway refuses, received during the epoch that closes next.
    rooftop = devices["sol-hk-rooftops-0001"]
    stranger = DeviceKey.generate("ed25519")
    received = T0 + 150 * MINUTE_MS
    forged = sign_body(
        Body(
            device=rooftop.id,
            seq=rooftop.seq + 1,
            ts_ms=T0 + 150 * MINUTE_MS,
            kind=DeviceKind.SOLAR,
            window_s=60,
            metrics=rooftop.sent[-1].body.metrics,
            prev=rooftop.prev,
        ),
        stranger,
    )
    processor.process(
        _incoming(
            [
                (rooftop.topic, b"not json at all", received),
                (rooftop.topic, forged.raw, received + 1),
                (
                    telemetry_topic("sol-unknown-0001"),
                    forged.raw.replace(b"hk-rooftops-0001", b"unknown-0001"),
                    received + 2,
                ),
            ]
        )
    )
    attestor.step()  # closes epoch 2, not anchored

    revoke_device(engine, device_id=REVOKED, now_ms=T0 + 150 * MINUTE_MS)
    ingest(range(150, 180), skip=frozenset({SILENT}))

    processor.close()
    reader.dispose()
    quarantined: dict[str, int] = {"malformed": 1, "bad_signature": 1, "unknown_device": 1, "revoked_device": 30}
    return Dataset(
        url=url,
        engine=engine,
        devices=devices,
        deployment_path=deployment_path,
        chain=ChainContext(chain_id=deployment.chain_id, anchor_registry=deployment.anchor_registry.address),
        anchored_epochs=[0, 1],
        closed_epochs=[2],
        quarantined=quarantined,
        attestor_anchored_delta=anchored_delta,
        gas_delta=gas_delta,
        reader=ChainReader(w3, deployment=deployment),
    )


def pages(client: object, path: str, **params: object) -> Iterator[dict[str, object]]:
    """Every item of a paginated list, following next_cursor."""
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)  # type: ignore[attr-defined]
        assert response.status_code == 200, response.text
        body = response.json()
        yield from body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return
