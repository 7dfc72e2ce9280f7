"""Ctrl-C on ``assetproof demo``, as a terminal sends it: SIGINT to the demo's whole process group.
The broker and anvil run in their own sessions, so only the demo sees it; it drains (every
signed reading stored, every epoch anchored), stops them itself and ends ``result OK``, exit 0,
with none of its child processes left, whether the signal came during set-up, just after the
first anchor or mid-run. A second Ctrl-C forces the stop and says so."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.anvil import find_anvil
from devstack.mosquitto import find_mosquitto
from tests.support.processes import REPO, wait_for


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` with their command lines (from /proc)."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid) and not fields.get("State", "").startswith("Z"):
            out[int(entry.name)] = cmdline
    return out


def _alive(pid: int, cmdline: str) -> bool:
    try:
        now = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return now == cmdline and state != "Z"


def _query(database: Path, sql: str) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0  # not migrated yet


class Demo:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.output = home.parent / "demo-output.txt"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "demo",
                "--devices",
                "3",
                "--port",
                "0",
                "--home",
                str(home),
                "--epoch-seconds",
                "1",
                "--broker",
                "mosquitto",
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self.output.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
            env={**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"},
        )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"the demo exited early:\n{self.text()[-3000:]}"
            return condition()

        wait_for(ready, timeout_s=90, what=what)

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def anchored(self) -> int:
        return _query(self.home / "assetproof.db", "select count(*) from epoch where status = 'anchored'")

    def readings(self) -> int:
        return _query(self.home / "assetproof.db", "select count(*) from reading")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("moment", ["set-up", "first anchor", "mid-run"])
def test_ctrl_c_drains_and_stops_cleanly(moment: str, tmp_path: Path) -> None:
    assert find_mosquitto() is not None, "Mosquitto is required (scripts/services installs it)"
    assert find_anvil() is not None, "anvil is required (scripts/bootstrap installs it)"
    demo = Demo(tmp_path / "demo")
    try:
        if moment == "set-up":
            demo.wait_until(lambda: "contracts deployed" in demo.text(), "the contracts deployed")
        elif moment == "first anchor":
            demo.wait_until(lambda: demo.anchored() >= 1, "the first anchor")
        else:
            demo.wait_until(lambda: demo.anchored() >= 2 and demo.readings() >= 30, "two anchors and 30 readings")
        children = _children(demo.process.pid)
        if moment != "set-up":
            assert any("mosquitto" in c for c in children.values()), children
            assert any("anvil" in c for c in children.values()), children
        demo.ctrl_c()
        assert demo.process.wait(timeout=120) == 0, demo.text()[-3000:]
    finally:
        _kill_group(demo.process)
    text = demo.text()
    assert "stopping (Ctrl-C)" in text
    result = [line for line in text.splitlines() if "result" in line]
    assert result, text[-3000:]
    assert "OK" in result[-1], text[-3000:]
    summary = json.loads((demo.home / "summary.json").read_text())
    assert summary["ok"] is True
    assert summary["lost"] == 0, summary
    assert summary["unanchored_readings"] == 0, summary
    children.update(_children(demo.process.pid))
    left = {pid: cmd for pid, cmd in children.items() if _alive(pid, cmd)}
    assert left == {}, f"child processes left behind: {left}"


def test_a_second_ctrl_c_forces_the_stop(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "demo")
    try:
        demo.wait_until(lambda: demo.readings() >= 10, "10 readings stored")
        children = _children(demo.process.pid)
        demo.ctrl_c()
        demo.wait_until(lambda: "stopping (Ctrl-C)" in demo.text(), "the demo to start draining")
        demo.ctrl_c()
        code = demo.process.wait(timeout=60)
    finally:
        _kill_group(demo.process)
    # Sent right after the first: the drain waits for at least one epoch window (1 s), so it is cut short.
    assert code == 130, demo.text()[-3000:]
    assert "forced stop (second Ctrl-C)" in demo.text()
    left = {pid: cmd for pid, cmd in children.items() if _alive(pid, cmd)}
    assert left == {}, f"child processes left behind: {left}"
