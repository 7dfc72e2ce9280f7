"""``assetproof simulate --start``: a fixed simulated start, refused when its instant is unclear or
in the future; and the dashboard test's daylight start, at any hour of the day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.dashboard import DAY_MS, HOUR_MS, sunny_start


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("yesterday", "is not an ISO 8601 time"),
        ("2026-06-01T02:00:00", "has no UTC offset"),
        ("2999-01-01T00:00:00Z", "is in the future"),
    ],
)
def test_simulate_refuses_a_bad_start(start: str, message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--keystore", str(tmp_path / "keys"), "--outbox", str(tmp_path / "o.sqlite"), "--start", start],
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "o.sqlite").exists()  # refused before touching anything


def test_simulate_accepts_an_offset_start_before_looking_at_devices(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--keystore",
            str(tmp_path / "keys"),
            "--outbox",
            str(tmp_path / "o.sqlite"),
            "--start",
            "2026-06-01T10:00:00+08:00",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "no devices in" in result.output  # the start passed; the empty keystore did not


@pytest.mark.parametrize(
    "now",
    [
        "2026-11-28T10:00:00.500Z",
        "2026-11-28T10:59:59Z",
        "2026-11-28T23:59:50Z",
        "2026-11-28T15:59:50Z",
        "2026-11-28T05:00:00Z",
        "2026-11-28T04:59:59.999Z",
    ],
)
def test_sunny_start_is_ten_in_hong_kong_within_the_dashboards_range(now: str) -> None:
    now_ms = int(datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp() * 1000)
    span = 3 * HOUR_MS
    start = sunny_start(now_ms=now_ms, span_ms=span)
    assert datetime.fromtimestamp(start / 1000, UTC).strftime("%H:%M:%S.%f") == "02:00:00.000000"
    assert start + span <= now_ms
    assert now_ms - start < DAY_MS + span  # inside the investor view's 48 hours
