"""docs/device-protocol.md cannot drift from protocol/: its tables are regenerated here from the
code (scripts/gen_device_protocol.py) and must equal the committed page."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from protocol.envelope import MAX_MESSAGE_BYTES, METRICS
from protocol.plausibility import MARGIN_PERCENT
from protocol.quarantine import QuarantineReason

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_device_protocol.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_device_protocol", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_what_protocol_generates() -> None:
    page = (REPO / "docs" / "device-protocol.md").read_text()
    assert _generator().render(page) == page, "docs/device-protocol.md is stale: run scripts/gen_device_protocol.py"


def test_the_check_mode_agrees() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_every_metric_reason_and_limit_is_on_the_page() -> None:
    page = (REPO / "docs" / "device-protocol.md").read_text()
    for kind, metrics in METRICS.items():
        assert f"**{kind.value}**" in page
        for name, spec in metrics.items():
            assert f"| `{name}` | {spec.unit} |" in page
    for reason in QuarantineReason:
        assert f"| `{reason.value}` |" in page
    assert f"{MAX_MESSAGE_BYTES:,} bytes" in page
    assert f"(`MARGIN_PERCENT` = {MARGIN_PERCENT})" in page


def test_a_stale_page_is_rewritten() -> None:
    page = (REPO / "docs" / "device-protocol.md").read_text()
    stale = page.replace("| `energy_wh` | Wh |", "| `energy_kwh` | kWh |", 1)
    assert _generator().render(stale) == page
