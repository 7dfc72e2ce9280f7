"""Fleet runner: valid chains, determinism, exact resume after a restart, fault injection, and
the whole path to a real broker."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from device_sim.faults import CHAINED, EXPECTED_REASON
from device_sim.fleet import FleetDevice, FleetError, FleetRunner, SimClock, pregenerate
from device_sim.keystore import Keystore
from device_sim.outbox import Outbox
from device_sim.provision import provision
from device_sim.publisher import Publisher
from devstack.broker_auth import Login, write_broker_auth
from devstack.mosquitto import Mosquitto
from protocol.envelope import GENESIS_PREV, DeviceKind, Message, chain_hash, decode_and_verify, decode_message
from protocol.errors import VerificationError
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic
from tests.device_sim.conftest import Subscriber

DAY_MS = 86_400_000
START_MS = 1_767_196_800_000  # 2026-01-01 00:00 Hong Kong time
FAST = 3_600.0 * 24  # a simulated day per wall second


def fleet(n: int = 6) -> list[FleetDevice]:
    kinds = list(DeviceKind)
    out = []
    for i in range(n):
        kind = kinds[i % 3]
        key = DeviceKey.from_private_bytes("ed25519" if i % 2 else "es256", bytes([i + 1]) * 32)
        out.append(FleetDevice(f"{kind.value}-t-{i:04d}", kind, key))
    return out


def chains(box: Outbox, devices: list[FleetDevice], *, grid: bool = True) -> dict[str, list[Message]]:
    """Every queued genuine reading, verified, per device (fault messages are left out). The chain
    is followed through chained faults (signed and linked, so they take a link), which are left
    out of the list too: they are off the window grid."""
    keys = {d.id: d.key for d in devices}
    out: dict[str, list[Message]] = defaultdict(list)
    heads: dict[str, Message] = {}
    for _, topic, raw in box.peek(1_000_000):
        try:
            message = decode_message(raw)
            key = keys[message.body.device]
            decode_and_verify(raw, alg=key.alg, public_key=key.public_key)
        except (VerificationError, KeyError):
            continue
        head = heads.get(message.body.device)
        expected_seq = head.body.seq + 1 if head else 1
        if message.body.seq != expected_seq or topic != telemetry_topic(message.body.device):
            continue  # a properly signed fault (replay, gap, fork, ...)
        if message.body.prev != (head.chain_hash if head else GENESIS_PREV):
            continue
        heads[message.body.device] = message
        chain = out[message.body.device]
        if grid and chain and message.body.ts_ms != chain[-1].body.ts_ms + 60_000:
            continue  # chained but off the window grid: clock_skew, or implausible (the last time again)
        chain.append(message)
    return dict(out)


def run(
    box: Outbox, devices: list[FleetDevice], *, readings: int, seed: int = 1, **kw: object
) -> tuple[FleetRunner, object]:
    runner = FleetRunner(
        devices,
        box,
        clock=SimClock.resuming(box, start_ms=START_MS, acceleration=FAST),
        seed=seed,
        max_backlog_windows=10**6,
        **kw,  # type: ignore[arg-type]
    )
    stats = runner.run(threading.Event(), max_readings=readings, seconds=20)
    return runner, stats


def test_sim_clock() -> None:
    clock = SimClock(1_000, acceleration=1000)
    time.sleep(0.05)
    assert 1_000 + 40_000 <= clock.now_ms() <= 1_000 + 500_000
    assert clock.wall_s_until(0) == 0.0
    assert 0.5 < clock.wall_s_until(clock.now_ms() + 1_000_000) <= 1.0
    with pytest.raises(FleetError):
        SimClock(0, acceleration=0)


def test_readings_form_valid_chains_on_the_window_grid(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    devices = fleet()
    runner, stats = run(box, devices, readings=60)
    assert stats.readings == 60  # type: ignore[attr-defined]
    got = chains(box, devices)
    assert box.pending() == 60
    assert {d: len(c) for d, c in got.items()} == {d.id: 10 for d in devices}
    for device_id, chain in got.items():
        ends = [m.body.ts_ms for m in chain]
        assert all(t % 60_000 == 0 for t in ends)
        assert [b - a for a, b in itertools.pairwise(ends)] == [60_000] * 9
        assert all(m.body.window_s == 60 for m in chain)
        state = box.device_state(device_id)
        assert state is not None
        assert (state.seq, state.prev) == (10, chain[-1].chain_hash)
        assert runner.heads()[device_id] == (10, chain[-1].chain_hash)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    devices = fleet()
    boxes = [Outbox(tmp_path / f"{i}.sqlite") for i in range(3)]
    run(boxes[0], devices, readings=30, seed=1)
    run(boxes[1], devices, readings=30, seed=1)
    run(boxes[2], devices, readings=30, seed=2)
    payloads = [[p for _, _, p in box.peek(100)] for box in boxes]
    assert payloads[0] == payloads[1]
    assert payloads[0] != payloads[2]


def test_resume_continues_each_chain_exactly(tmp_path: Path) -> None:
    devices = fleet()
    straight = Outbox(tmp_path / "straight.sqlite")
    run(straight, devices, readings=48)

    box = Outbox(tmp_path / "restarted.sqlite")
    run(box, devices, readings=18)
    box.close()  # the simulator process dies; a new one opens the same file
    reopened = Outbox(tmp_path / "restarted.sqlite")
    run(reopened, devices, readings=30)
    # Byte for byte what an uninterrupted run produced: same seqs, prevs, windows and metrics.
    assert [p for _, _, p in reopened.peek(100)] == [p for _, _, p in straight.peek(100)]
    got = chains(reopened, devices)
    assert {d: len(c) for d, c in got.items()} == {d.id: 8 for d in devices}
    with pytest.raises(FleetError, match="does not fit"):
        FleetRunner(devices, reopened, clock=SimClock(START_MS), seed=99)


def test_fault_injection_leaves_genuine_chains_intact(tmp_path: Path) -> None:
    devices = fleet()
    box = Outbox(tmp_path / "o.sqlite")
    _, stats = run(box, devices, readings=120, fault_rate=0.25)
    faults = stats.faults  # type: ignore[attr-defined]
    assert 10 <= sum(faults.values()) <= 60
    assert set(faults) <= set(EXPECTED_REASON)
    assert box.pending() == 120 + sum(faults.values())
    assert {d: len(c) for d, c in chains(box, devices).items()} == {d.id: 20 for d in devices}
    # Chained faults took links: each device's head is past its genuine readings by that many.
    chained = sum(faults[name] for name in CHAINED)
    assert chained == stats.chained > 0  # type: ignore[attr-defined]
    assert sum(state.seq for state in box.device_states().values()) == 120 + chained
    # Same seed, same faults in the same places; the bytes too, except from a clock_skew fault on
    # (it is stamped an hour after the *wall* clock, and the device's later readings link to it).
    again = Outbox(tmp_path / "again.sqlite")
    _, stats2 = run(again, devices, readings=120, fault_rate=0.25)
    assert stats2.faults == faults  # type: ignore[attr-defined]
    skewed_at = START_MS + DAY_MS  # any clock_skew fault is dated after this; no genuine reading is
    unaffected = 0
    for device in devices:
        first = [e.payload for e in box.entries(device_id=device.id, limit=1000)]
        second = [e.payload for e in again.entries(device_id=device.id, limit=1000)]
        differing = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
        if differing:
            assert decode_message(first[differing[0]]).body.ts_ms > skewed_at
        else:
            unaffected += 1
    assert unaffected > 0

    only = Outbox(tmp_path / "only.sqlite")
    _, stats3 = run(only, devices, readings=30, fault_rate=1.0, faults=["wrong_prev"])
    assert dict(stats3.faults) == {"wrong_prev": 30}  # type: ignore[attr-defined]
    with pytest.raises(FleetError):
        FleetRunner(devices, only, clock=SimClock(START_MS), faults=["nope"])


def test_a_runner_far_behind_skips_windows_not_seqs(tmp_path: Path) -> None:
    devices = fleet(3)
    box = Outbox(tmp_path / "o.sqlite")
    run(box, devices, readings=3)
    later = FleetRunner(
        devices, box, clock=SimClock(START_MS + 10 * DAY_MS, acceleration=FAST), seed=1, max_backlog_windows=5
    )
    stats = later.run(threading.Event(), max_readings=3)
    assert stats.skipped_windows > 3 * 1000
    for chain in chains(box, devices, grid=False).values():
        assert [m.body.seq for m in chain] == [1, 2]
        assert chain[1].body.ts_ms >= START_MS + 10 * DAY_MS - 6 * 60_000


def test_pregenerate_signs_valid_chains() -> None:
    devices = fleet(4)
    started = time.perf_counter()
    messages = pregenerate(devices, 50, start_ms=START_MS)
    rate = len(messages) / (time.perf_counter() - started)
    print(f"pregenerate: {rate:,.0f} signed readings/s")
    assert len(messages) == 200
    by_device: dict[str, list[bytes]] = defaultdict(list)
    for topic, raw in messages:
        by_device[topic].append(raw)
    for device in devices:
        raws = by_device[telemetry_topic(device.id)]
        prev = GENESIS_PREV
        for seq, raw in enumerate(raws, 1):
            m = decode_and_verify(raw, alg=device.key.alg, public_key=device.key.public_key)
            assert (m.body.seq, m.body.prev) == (seq, prev)
            prev = chain_hash(raw)


def test_fleet_through_a_real_broker(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    devices = fleet()
    box = Outbox(tmp_path / "o.sqlite")
    publisher = Publisher(tmp_path / "o.sqlite", port=broker.port, connections=2)
    publisher.start()
    runner = FleetRunner(
        devices,
        box,
        clock=SimClock(START_MS, acceleration=FAST),
        window_s=60,
        seed=4,
        publisher=publisher,
        max_backlog_windows=10**6,
    )
    try:
        stats = runner.run(threading.Event(), max_readings=300, seconds=20)
        assert publisher.wait_until_drained(10)
        assert subscriber.wait_for(300, 10)
    finally:
        publisher.stop()
    assert stats.readings == 300
    seen: dict[str, list[int]] = defaultdict(list)
    for topic, raw in subscriber.messages:
        body = decode_message(raw).body
        assert topic == telemetry_topic(body.device)
        seen[body.device].append(body.seq)
    assert dict(seen) == {d.id: list(range(1, 51)) for d in devices}


def test_a_failed_commit_leaves_the_runner_on_the_stored_chains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = fleet(3)
    box = Outbox(tmp_path / "o.sqlite")
    runner, _ = run(box, devices, readings=6)
    real = box.enqueue_many

    def failing(messages: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(box, "enqueue_many", failing)
    with pytest.raises(OSError, match="disk full"):
        runner.run(threading.Event(), max_readings=3)
    stored = {d.id: box.device_state(d.id) for d in devices}
    assert runner.heads() == {d: (s.seq, s.prev) for d, s in stored.items() if s is not None}
    monkeypatch.setattr(box, "enqueue_many", real)
    runner.run(threading.Event(), max_readings=3)
    assert {d: len(c) for d, c in chains(box, devices).items()} == {d.id: 3 for d in devices}


def test_provisioned_fleet_through_a_secured_broker(tmp_path: Path) -> None:
    """Provision, write the broker's files, run the fleet with one connection per device using
    the keystore's passwords: the gateway user receives every reading, in order."""
    keystore = Keystore(tmp_path / "keys")
    provisioned = provision(keystore, kind="solar", count=2, asset="roof", alg="ed25519") + provision(
        keystore, kind="miner", count=2, asset="pod", alg="es256"
    )
    dynsec = tmp_path / "dynsec.json"
    write_broker_auth(
        path=dynsec,
        devices={d.id: d.mqtt_password for d in provisioned},
        gateway=Login("gateway", "gateway-secret"),
        admin=Login("admin", "admin-secret"),
    )
    devices = [FleetDevice.from_credentials(keystore.load(i)) for i in keystore.ids()]
    box = Outbox(tmp_path / "o.sqlite")
    with Mosquitto(tmp_path / "broker", dynsec_file=dynsec) as broker:
        gateway = Subscriber(broker.port, username="gateway", password="gateway-secret")
        assert gateway.subscribed.wait(5)
        publisher = Publisher(
            tmp_path / "o.sqlite", port=broker.port, passwords=lambda d: keystore.load(d).mqtt_password
        )
        publisher.start()
        runner = FleetRunner(
            devices,
            box,
            clock=SimClock(START_MS, acceleration=FAST),
            publisher=publisher,
            fault_rate=0.1,
            faults=["unknown_device"],  # refused by the broker's ACL: counted, not delivered
            max_backlog_windows=10**6,
        )
        try:
            stats = runner.run(threading.Event(), max_readings=80, seconds=20)
            assert publisher.wait_until_drained(10)
            assert gateway.wait_for(80, 10)
            gateway.settle(0.2, 2)
            publisher_stats = publisher.stats()
        finally:
            publisher.stop()
            gateway.close()
    assert publisher_stats.connections == 4
    assert publisher_stats.rejected == stats.faults["unknown_device"] > 0
    assert publisher_stats.published == 80
    seen: dict[str, list[int]] = defaultdict(list)
    for _, raw in gateway.messages:
        body = decode_message(raw).body
        seen[body.device].append(body.seq)
    assert dict(seen) == {d.id: list(range(1, 21)) for d in devices}


def test_an_accelerated_clock_never_passes_the_wall_clock() -> None:
    """A resumed fleet starts where the last run stopped, about now: replaying at 600x from there
    would date readings in the gateway's future (quarantined as clock_skew)."""
    clock = SimClock(time.time_ns() // 1_000_000 - 1_000, acceleration=600)
    time.sleep(0.05)  # 30 simulated seconds: past the wall clock if uncapped
    assert clock.now_ms() <= time.time_ns() // 1_000_000
    assert clock.wall_s_until(clock.now_ms() + 2_000) > 1.0  # real time from here on
