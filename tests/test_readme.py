"""The README's demo command, run as a newcomer would (with --seconds so it ends by itself):
readings accepted, at least one epoch anchored, nothing lost."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.processes import REPO


def _readme_command(prefix: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    found = [line for line in lines if line.startswith(prefix)]
    assert found, f"the README shows no `{prefix}` command"
    return found[0].split("#")[0].split()


def test_the_readme_demo_command_runs_the_pipeline(tmp_path: Path) -> None:
    command = _readme_command("scripts/demo")
    home = tmp_path / "demo"
    out = subprocess.run(
        ["bash", *command, "--seconds", "20", "--port", "0", "--home", str(home)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((home / "summary.json").read_text())
    assert summary["ok"] is True
    assert summary["accepted"] > 0
    assert summary["accepted"] + summary["chained"] == summary["signed"]  # chained: genuine but rejected
    assert summary["lost"] == 0
    assert summary["epochs_anchored"] >= 1
    assert summary["first_anchor_s"] is not None
    assert "OK" in out.stdout
    assert "mqtts://localhost:" in out.stdout  # devices and the gateway over TLS to Mosquitto


def test_the_readme_test_command_is_what_ci_runs() -> None:
    assert _readme_command("scripts/test") == ["scripts/test"]
    assert "scripts/test" in (REPO / ".ci" / "run").read_text()
