"""The clock-sensitive tests pass at any wall-clock time: they run again in pytest subprocesses
whose wall clock is moved (``--fake-now``, tests/conftest.py) to the start and the end of an
hour, to just before midnight UTC and to just before midnight in Hong Kong (UTC+8).

In: the modules whose results hang on the hour or the date (hour and day buckets of cash flow,
epoch windows, the simulator's clock and models, fault timestamps, the gateway's skew checks, the
API's dataset and ranges, the simulator's --start). Out, because the processes they start keep the
real clock, so a faked test process would only test a disagreement between two clocks that no
deployment has: the dashboard (uvicorn, gateway and simulate processes), gateway service and
amqtt tests, the demo. Their time-dependent inputs are fixed instead (sunny_start, --start).
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_TIMES = (
    "2026-06-15T10:00:00.500Z",  # just after the start of an hour
    "2026-06-15T10:59:59Z",  # at the end of an hour
    "2026-06-15T23:59:50Z",  # ten seconds before midnight UTC
    "2026-06-15T15:59:50Z",  # ten seconds before midnight in Hong Kong
)
CLOCK_SENSITIVE = (
    "tests/test_any_hour.py::test_fake_now_moves_the_wall_clock",
    "tests/api/test_cashflow.py",
    "tests/api/test_read.py",
    "tests/store/test_cashflow.py",
    "tests/attestor/test_epochs.py",
    "tests/device_sim/test_models.py",
    "tests/device_sim/test_fleet.py",
    "tests/device_sim/test_faults.py",
    "tests/gateway/test_batch.py",
    "tests/cli/test_simulate_start.py",
)


def _epoch_s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_fake_now_moves_the_wall_clock(pytestconfig: pytest.Config) -> None:
    """In a faked run, proof that the clock was moved; in a normal run, that it was not."""
    fake = pytestconfig.getoption("--fake-now")
    target = time.time() if fake is None else _epoch_s(fake)
    # A generous bound: the session may have run for minutes before this test.
    assert 0 <= time.time() - target < 600


def _run(fake: str, basetemp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *CLOCK_SENSITIVE,
            f"--fake-now={fake}",
            f"--basetemp={basetemp}",
            "-p",
            "no:cacheprovider",
            "-rfEs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_clock_sensitive_tests_pass_at_awkward_times(tmp_path: Path) -> None:
    # Two at a time: the machine has two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(
            zip(FAKE_TIMES, pool.map(lambda f: _run(f, tmp_path / f.replace(":", "")), FAKE_TIMES), strict=True)
        )
    for fake, run in runs.items():
        tail = run.stdout[-4000:] + run.stderr[-2000:]
        assert run.returncode == 0, f"at {fake}:\n{tail}"
        assert f"fake wall clock from {fake}" in run.stdout, tail
        summary = run.stdout.strip().splitlines()[-1]
        assert " passed" in summary, summary
        for word in ("failed", "skipped", "error", "xfail", "deselected"):
            assert word not in summary, f"at {fake}: {summary}"
