"""The simulator against protocol.plausibility, the rule the gateway quarantines by: normal
output always passes it, the ``implausible`` fault never does."""

from __future__ import annotations

import random

import pytest

from device_sim.faults import DeviceSnapshot, make_fault
from device_sim.models import build_model
from protocol.envelope import GENESIS_PREV, DeviceKind, decode_message
from protocol.plausibility import ImplausibleError, check_metrics, check_plausible
from protocol.signing import DeviceKey

T0 = 1_782_864_000_000  # 2026-07-01 08:00 in Hong Kong: the sun is up, chargers get busy


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_simulator_output_is_plausible_and_its_implausible_fault_never_is(kind: DeviceKind) -> None:
    key = DeviceKey.generate("ed25519")
    for seed in range(40):
        model = build_model(kind, seed=seed)
        rating = model.rating_json()
        window_s = (1, 60, 300, 3600)[seed % 4]
        metrics: dict[str, int] = {}
        for step in range(24):
            metrics = model.step(start_ms=T0 + step * window_s * 1000, window_s=window_s)
            check_metrics(kind, metrics, rating, window_s=window_s)
        snap = DeviceSnapshot(
            device_id=f"sim-{seed}",
            kind=kind,
            key=key,
            seq=24,
            prev=GENESIS_PREV,
            ts_ms=T0 + 24 * window_s * 1000,
            window_s=window_s,
            metrics=metrics,
            rating=rating,
        )
        fault = make_fault("implausible", snap, random.Random(seed))
        with pytest.raises(ImplausibleError, match="energy_wh"):
            check_plausible(decode_message(fault.payload).body, rating)
