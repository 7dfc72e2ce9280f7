"""The demo counts the simulator's genuine-but-rejected readings (chained faults) as quarantined,
never as lost: with many faults injected, every signed reading is accepted or quarantined
chained, and the run is OK."""

from __future__ import annotations

import time
from pathlib import Path

from demo.options import DemoOptions
from demo.stack import DemoStack
from device_sim.faults import CHAINED, EXPECTED_REASON

SECONDS = 10.0


def test_chained_faults_are_quarantined_not_lost(tmp_path: Path) -> None:
    stack = DemoStack(
        DemoOptions(seconds=SECONDS, home=tmp_path / "demo", api_port=0, epoch_seconds=3.0, fault_rate=0.3),
        say=lambda _line: None,
    )
    try:
        stack.start()
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            assert stack.failed() is None
            time.sleep(0.5)
        summary = stack.finish()
    finally:
        stack.close()
    assert stack.failed() is None
    assert summary.chained > 0
    chained_reasons = {EXPECTED_REASON[name] for name in CHAINED}
    assert summary.chained <= sum(summary.quarantined.get(reason, 0) for reason in chained_reasons)
    assert summary.accepted + summary.chained == summary.signed
    assert summary.lost == 0
    assert summary.ok, summary
