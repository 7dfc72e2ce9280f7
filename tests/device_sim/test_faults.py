"""Every fault is rejected the way it is meant to be: by the protocol decoder and verifier where
that can tell, and by the gateway's batch classifier (real SQLite) for the expected reason, with
the device's genuine chain still intact afterwards (through the chained faults, which take a
link of it)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from device_sim.faults import (
    BROKER_REFUSED,
    CHAINED,
    EXPECTED_REASON,
    FAULTS,
    DeviceSnapshot,
    FaultError,
    FaultMessage,
    make_fault,
)
from device_sim.models import build_model
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from protocol.envelope import (
    GENESIS_PREV,
    MAX_MESSAGE_BYTES,
    Body,
    DeviceKind,
    Message,
    chain_hash,
    decode_and_verify,
    decode_message,
    sign_body,
)
from protocol.errors import (
    BadSignatureError,
    MalformedError,
    NonCanonicalError,
    OversizedError,
    UnsupportedAlgorithmError,
)
from protocol.plausibility import ImplausibleError, check_plausible
from protocol.signing import DeviceKey
from protocol.topics import device_from_topic, telemetry_topic
from store.db import make_engine, migrate
from store.devices import NewDevice, ensure_asset, register_devices
from store.tables import DeviceState, Quarantine
from tests.support.devices import TARIFF

NOW_MS = int(time.time() * 1000)
START_MS = NOW_MS - 3_600_000 - NOW_MS % 60_000


class Device:
    """A device with a genuine chain of readings from its model."""

    def __init__(self, kind: DeviceKind, alg: str, device_id: str = "sol-test-0001") -> None:
        self.id = device_id
        self.kind = kind
        self.key = DeviceKey.generate(alg)
        self.model = build_model(kind, seed=3)
        self.seq = 0
        self.prev = GENESIS_PREV
        self.end_ms = START_MS
        self.metrics: dict[str, int] = {}

    def next(self) -> Message:
        metrics = self.model.step(start_ms=self.end_ms, window_s=60)
        self.end_ms += 60_000
        body = Body(
            device=self.id,
            seq=self.seq + 1,
            ts_ms=self.end_ms,
            kind=self.kind,
            window_s=60,
            metrics=metrics,
            prev=self.prev,
        )
        message = sign_body(body, self.key)
        self.seq, self.prev, self.metrics = body.seq, message.chain_hash, metrics
        return message

    def follow(self, fault: FaultMessage) -> None:
        """A chained fault took the next link: the device's chain goes on from it."""
        if fault.seq is not None:
            self.seq, self.prev = fault.seq, chain_hash(fault.payload)

    def snapshot(self) -> DeviceSnapshot:
        return DeviceSnapshot(
            device_id=self.id,
            kind=self.kind,
            key=self.key,
            seq=self.seq,
            prev=self.prev,
            ts_ms=self.end_ms,
            window_s=60,
            metrics=self.metrics,
            rating=self.model.rating_json(),
            now_ms=NOW_MS,
        )


def test_every_fault_has_an_expected_reason() -> None:
    assert set(FAULTS) == set(EXPECTED_REASON)
    assert set(FAULTS) >= BROKER_REFUSED | CHAINED
    assert not BROKER_REFUSED & CHAINED
    with pytest.raises(FaultError):
        make_fault("no_such_fault", Device(DeviceKind.SOLAR, "ed25519").snapshot(), random.Random(0))
    fresh = Device(DeviceKind.SOLAR, "ed25519")
    with pytest.raises(FaultError):
        make_fault("replayed_seq", fresh.snapshot(), random.Random(0))


@pytest.mark.parametrize("alg", ["ed25519", "es256"])
@pytest.mark.parametrize("kind", list(DeviceKind))
def test_faults_fail_protocol_checks_as_intended(kind: DeviceKind, alg: str) -> None:
    device = Device(kind, alg)
    for _ in range(3):
        device.next()
    snap = device.snapshot()
    rng = random.Random(1)

    def verified(raw: bytes) -> Message:
        return decode_and_verify(raw, alg=alg, public_key=device.key.public_key)

    def fault(name: str) -> FaultMessage:
        made = make_fault(name, snap, rng)
        assert made.fault == name
        return made

    for name in ("tampered_metric", "bad_signature"):
        made = fault(name)
        assert made.topic == telemetry_topic(device.id)
        with pytest.raises(BadSignatureError):
            verified(made.payload)

    replay = verified(fault("replayed_seq").payload)
    assert replay.body.seq == device.seq

    skipped = verified(fault("skipped_seq").payload)
    assert (skipped.body.seq, skipped.body.prev) == (device.seq + 2, device.prev)

    forked = verified(fault("wrong_prev").payload)
    assert forked.body.seq == device.seq + 1
    assert forked.body.prev != device.prev

    ghost = fault("unknown_device")
    ghost_message = decode_message(ghost.payload)
    assert ghost_message.body.device != device.id
    assert device_from_topic(ghost.topic) == ghost_message.body.device
    assert (ghost_message.body.seq, ghost_message.body.prev) == (1, GENESIS_PREV)

    mismatch = fault("topic_mismatch")
    assert device_from_topic(mismatch.topic) != verified(mismatch.payload).body.device

    spaced = fault("non_canonical")
    with pytest.raises(NonCanonicalError):
        decode_message(spaced.payload)
    # Signatures are deterministic, so the fault is exactly the snapshot's next message, re-spaced.
    expected = Body(
        device=device.id,
        seq=device.seq + 1,
        ts_ms=snap.ts_ms,
        kind=kind,
        window_s=60,
        metrics=snap.metrics,
        prev=device.prev,
    )
    expected_raw = sign_body(expected, device.key).raw
    assert json.loads(spaced.payload) == json.loads(expected_raw)
    assert spaced.payload != expected_raw
    genuine_next = device.next()

    with pytest.raises(MalformedError):
        decode_message(fault("malformed_json").payload)

    big = fault("oversized").payload
    assert MAX_MESSAGE_BYTES < len(big) < 60_000
    json.loads(big)  # valid-looking JSON
    with pytest.raises(OversizedError):
        decode_message(big)

    with pytest.raises(UnsupportedAlgorithmError):
        decode_message(fault("unsupported_alg").payload)

    # Genuine but rejected: signed, linked to the chain's head, and marked as taking that link.
    snap = device.snapshot()
    for name in sorted(CHAINED):
        made = fault(name)
        assert made.seq == device.seq + 1
        assert made.advances
        linked = verified(made.payload)
        assert (linked.body.seq, linked.body.prev) == (device.seq + 1, device.prev)
    assert verified(fault("clock_skew").payload).body.ts_ms >= NOW_MS + 3_600_000
    assert verified(fault("clock_skew_past").payload).body.ts_ms < genuine_next.body.ts_ms
    heavy = verified(fault("implausible").payload)
    with pytest.raises(ImplausibleError, match="energy_wh"):
        check_plausible(heavy.body, device.model.rating_json())
    check_plausible(genuine_next.body, device.model.rating_json())
    assert verified(fault("wrong_window").payload).body.window_s == 120
    soon = verified(fault("too_soon").payload).body
    assert snap.ts_ms <= soon.ts_ms < snap.ts_ms + 60_000
    assert not any(fault(name).advances for name in sorted(set(FAULTS) - CHAINED))


def test_faults_are_deterministic_for_a_seed() -> None:
    device = Device(DeviceKind.MINER, "ed25519")
    device.next()
    snap = device.snapshot()
    for name in FAULTS:
        assert make_fault(name, snap, random.Random(5)) == make_fault(name, snap, random.Random(5))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_gateway_quarantines_each_fault_for_the_expected_reason(
    engine: Engine, tmp_path: Path, kind: DeviceKind
) -> None:
    device = Device(kind, "ed25519", device_id=f"{kind.value}-test-0001")
    ensure_asset(engine, name="pool", kind=kind.value, now_ms=NOW_MS)
    register_devices(
        engine,
        asset="pool",
        devices=[
            NewDevice(
                id=device.id,
                kind=kind.value,
                alg="ed25519",
                public_key=device.key.public_key,
                rating=device.model.rating_json(),
                window_s=60,
            )
        ],
        now_ms=NOW_MS,
    )
    reader = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}", writer=False)
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: NOW_MS)
    rng = random.Random(9)
    try:
        for name in FAULTS:
            genuine = device.next()
            first = processor.process([Incoming(telemetry_topic(device.id), genuine.raw, NOW_MS)])
            assert first.accepted == 1, name
            made = make_fault(name, device.snapshot(), rng)
            result = processor.process([Incoming(made.topic, made.payload, NOW_MS)])
            assert dict(result.quarantined) == {EXPECTED_REASON[name]: 1}, name
            assert result.chained == (name in CHAINED), name
            device.follow(made)
        # After every fault the genuine chain still continues.
        assert processor.process([Incoming(telemetry_topic(device.id), device.next().raw, NOW_MS)]).accepted == 1
    finally:
        reader.dispose()
    with engine.connect() as conn:
        query = select(Quarantine.reason).order_by(Quarantine.id)  # type: ignore[call-overload]
        reasons = list(conn.execute(query).scalars())
    assert reasons == [EXPECTED_REASON[name] for name in FAULTS]
    with engine.connect() as conn:
        state = conn.execute(select(DeviceState)).one()
    assert (state.last_seq, state.rejected) == (len(FAULTS) + 1 + len(CHAINED), len(CHAINED))
