"""The simulator obeys the reporting-window rules (protocol.timing) the gateway and the auditor
judge by: a fleet's genuine readings all pass ``protocol.plausibility.check_reading`` in chain
order, its chained faults all fail it with their expected reason, and a fleet refuses devices
registered with another window."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from config.clock import wall_ms
from device_sim.faults import CHAINED, EXPECTED_REASON
from device_sim.fleet import FleetDevice, FleetError, FleetRunner, SimClock, pregenerate
from device_sim.keystore import Keystore
from device_sim.outbox import Outbox
from device_sim.provision import provision
from protocol.envelope import GENESIS_PREV, DeviceKind, chain_hash, decode_and_verify, decode_message
from protocol.errors import VerificationError
from protocol.plausibility import check_reading
from protocol.topics import telemetry_topic

START_MS = 1_767_196_800_000  # 2026-01-01 00:00 Hong Kong time
FAST = 3_600.0 * 24 * 7  # a simulated week per wall second
SKEW_MS = 300_000  # the gateway's default allowed skew into its future
WINDOW_S = 300


def provisioned(tmp_path: Path, *, window_s: int = WINDOW_S) -> list[FleetDevice]:
    store = Keystore(tmp_path / "keys")
    for kind, alg in ((DeviceKind.SOLAR, "ed25519"), (DeviceKind.CHARGER, "es256"), (DeviceKind.MINER, "ed25519")):
        provision(store, kind=kind, count=2, asset=f"pool-{kind.value}", alg=alg, window_s=window_s)
    return [FleetDevice.from_credentials(store.load(i)) for i in store.ids()]


def judge_outbox(box: Outbox, devices: list[FleetDevice], *, now_ms: int) -> tuple[int, Counter[str]]:
    """Follow each device's chain through the outbox as the gateway does: a link (next seq,
    right prev, good signature) counts if check_reading passes against the device as registered
    and its last counted reading. Returns (links counted, reasons of links refused)."""
    by_id = {d.id: d for d in devices}
    heads: dict[str, tuple[int, bytes, int | None]] = {}
    counted, refused = 0, Counter[str]()
    for _, topic, raw in box.peek(1_000_000):
        try:
            body = decode_message(raw).body
            device = by_id[body.device]
            decode_and_verify(raw, alg=device.key.alg, public_key=device.key.public_key)
        except (VerificationError, KeyError):
            continue  # junk faults never take a link
        seq, prev, last_ts = heads.get(body.device, (0, GENESIS_PREV, None))
        if body.seq != seq + 1 or body.prev != prev or topic != telemetry_topic(body.device):
            continue
        assert device.window_s is not None
        try:
            check_reading(
                body,
                kind=device.kind,
                rating=device.rating,
                registered_window_s=device.window_s,
                previous_ts_ms=last_ts,
                not_after_ms=now_ms + SKEW_MS,
            )
        except VerificationError as exc:
            refused[exc.reason] += 1
            heads[body.device] = (body.seq, chain_hash(raw), last_ts)
            continue
        counted += 1
        heads[body.device] = (body.seq, chain_hash(raw), body.ts_ms)
    return counted, refused


def test_fleet_readings_pass_the_rules_and_its_chained_faults_fail_them(tmp_path: Path) -> None:
    devices = provisioned(tmp_path)
    assert {d.window_s for d in devices} == {WINDOW_S}
    box = Outbox(tmp_path / "o.sqlite")
    runner = FleetRunner(
        devices,
        box,
        clock=SimClock(START_MS, acceleration=FAST),
        seed=3,
        fault_rate=0.3,
        max_backlog_windows=10**6,
    )
    assert runner.window_s == WINDOW_S  # taken from the devices' registration
    stats = runner.run(threading.Event(), max_readings=240, seconds=30)
    assert stats.readings == 240
    counted, refused = judge_outbox(box, devices, now_ms=wall_ms())
    assert counted == stats.readings
    expected = Counter[str]()
    for name in CHAINED:
        expected[EXPECTED_REASON[name]] += stats.faults[name]
    assert stats.chained > 0
    assert refused == +expected


def test_pregenerated_readings_pass_the_rules(tmp_path: Path) -> None:
    devices = provisioned(tmp_path, window_s=60)
    messages = pregenerate(devices, 30, start_ms=START_MS)
    by_id = {d.id: d for d in devices}
    last: dict[str, int] = {}
    for _, raw in messages:
        body = decode_message(raw).body
        device = by_id[body.device]
        assert device.window_s == 60
        check_reading(
            body,
            kind=device.kind,
            rating=device.rating,
            registered_window_s=device.window_s,
            previous_ts_ms=last.get(body.device),
        )
        last[body.device] = body.ts_ms


def test_a_fleet_refuses_devices_registered_with_another_window(tmp_path: Path) -> None:
    devices = provisioned(tmp_path)
    box = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(FleetError, match="another reporting window than the fleet's 60 s"):
        FleetRunner(devices, box, clock=SimClock(START_MS), window_s=60)
    other = provisioned(tmp_path / "other", window_s=60)
    with pytest.raises(FleetError, match=r"different windows \[60, 300\]"):
        FleetRunner([*devices, *other], box, clock=SimClock(START_MS))
    with pytest.raises(FleetError, match="another reporting window"):
        pregenerate(devices, 1, start_ms=START_MS, window_s=60)
    # Devices that carry no window (built by hand) run at the fleet's, 60 s by default.
    bare = [FleetDevice(d.id, d.kind, d.key, d.rating) for d in devices]
    assert FleetRunner(bare, box, clock=SimClock(START_MS)).window_s == 60
