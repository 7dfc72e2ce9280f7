"""The README's demo line, open-ended, as a newcomer runs it, watched in Chromium: within 60 s of
the dashboard coming up, the investor view shows non-zero attested (anchored) figures for every
asset that earns in the replayed hour, the fleet view a non-zero arrival rate. The replay starts
on a Hong Kong morning whatever the wall-clock hour (demo/options.py, and
test_replay_window.py for every hour of the day), so the rooftops earn at once at any hour.

Then Ctrl-C: the demo drains and prints its summary, a blank line after the live panel, with the
faults the broker refused named; its log starts afresh (an earlier run's lines are gone).

Screenshots of the investor, fleet and auditor views at minute one go to
test-artifacts/first-minute/, and to docs/screenshots/ with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING
from tests.support.processes import REPO, wait_for

MINUTE_S = 60.0
ARTIFACTS = REPO / "test-artifacts" / "first-minute"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
SETTLE_S = 10.0
"""Two epochs (5 s each) and their anchors: how long an asset that starts earning waits for its
first attested figure."""
SHOT_EPOCHS = 10
"""Screenshots once this many epochs are anchored: about the end of minute one (5 s epochs)."""
SUNNY_ASSET = "hk-rooftops"
"""Earns in every replayed first hour (a morning); the others earn when their devices do."""


def _readme_command(prefix: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    found = [line for line in lines if line.startswith(prefix)]
    assert found, f"the README shows no `{prefix}` command"
    return found[0].split("#")[0].split()


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _attested_revenue(page: Page) -> dict[str, int]:
    """Each asset card's attested revenue, as the minor-unit integer the page shows on hover."""
    found: dict[str, int] = page.evaluate(
        """() => {
            const out = {};
            for (const card of document.querySelectorAll("[data-asset]")) {
                const fig = [...card.querySelectorAll(".fig")]
                    .find((f) => f.querySelector("label")?.textContent === "Revenue");
                const title = fig?.querySelector(".money")?.getAttribute("title") || "";
                const m = title.match(/^(-?[\\d,]+) minor units/);
                if (m) out[card.dataset.asset] = Number(m[1].replace(/,/g, ""));
            }
            return out;
        }"""
    )
    return found


def _earning(base: str, now_ms: int) -> set[str]:
    """Assets whose readings in the default range (48 hours) carry revenue, anchored or not."""
    assets = [a["name"] for a in _json(f"{base}/v1/assets")["items"]]
    earning = set()
    for name in assets:
        flow = _json(f"{base}/v1/assets/{name}/cashflow?granularity=hour&from_ms={now_ms - 48 * 3_600_000}")
        if flow["totals"]["revenue"] > 0:
            earning.add(name)
    return earning


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (DOCS_SCREENSHOTS / f"{name}.png").write_bytes(path.read_bytes())
    return path


def test_the_first_minute_of_the_readme_demo(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), CHROMIUM_MISSING
    command = _readme_command("scripts/demo")
    home = tmp_path / "demo"
    log = tmp_path / "demo.log"
    log.write_text("an earlier run's line\n" * 1000)
    output = tmp_path / "output.txt"
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", *command, "--port", "0", "--home", str(home)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
        env={**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"},
    )
    text = lambda: output.read_text(errors="replace")  # noqa: E731
    try:

        def dashboard() -> str | None:
            assert process.poll() is None, f"the demo exited early:\n{text()[-3000:]}"
            match = re.search(r"dashboard: (http://\S+/)", text())
            return match.group(1) if match else None

        wait_for(lambda: dashboard() is not None, timeout_s=180, what="the demo's dashboard URL")
        base = (dashboard() or "").rstrip("/")
        ready = time.monotonic()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{base}/?poll=1000#investor")
                seen: dict[str, Any] = {}

                samples: list[tuple[float, set[str]]] = []

                def investor_shows_money() -> bool:
                    # An asset that began to earn in the last few seconds has had no epoch closed
                    # and anchored yet: it is owed attested figures once an epoch (5 s) has passed.
                    now = time.monotonic()
                    samples.append((now, _earning(base, int(time.time() * 1000))))
                    owed = {SUNNY_ASSET}.union(*(e for t, e in samples if t <= now - SETTLE_S))
                    shown = _attested_revenue(page)
                    seen.update(earning=sorted(samples[-1][1]), owed=sorted(owed), shown=shown)
                    settled = samples[0][0] <= now - SETTLE_S  # an earning asset had time to be anchored
                    return settled and all(shown.get(a, 0) > 0 for a in owed)

                wait_for(
                    investor_shows_money,
                    timeout_s=max(1.0, ready + MINUTE_S - time.monotonic()),
                    what=f"attested revenue for every earning asset on the investor view ({seen})",
                )
                investor_s = time.monotonic() - ready
                page.goto(f"{base}/?poll=1000#fleet")
                rate = page.locator('[data-testid="arrival-rate"] strong')

                def fleet_shows_a_rate() -> bool:
                    return rate.count() == 1 and float(rate.inner_text().replace(",", "")) > 0

                wait_for(
                    fleet_shows_a_rate,
                    timeout_s=max(1.0, ready + MINUTE_S - time.monotonic()),
                    what="a non-zero arrival rate on the fleet view",
                )
                fleet_s = time.monotonic() - ready

                # The screenshots at the end of minute one: a simulated hour in, ten epochs anchored.
                def anchored() -> int:
                    return len(_json(f"{base}/v1/epochs?status=anchored&limit=100")["items"])

                wait_for(lambda: anchored() >= SHOT_EPOCHS, timeout_s=120, what=f"{SHOT_EPOCHS} epochs anchored")
                shots_s = time.monotonic() - ready
                page.goto(f"{base}/?poll=1000#investor")
                page.wait_for_selector(f'[data-asset="{SUNNY_ASSET}"] svg[data-chart="cashflow"] rect.bar')
                page.wait_for_function(
                    "(n) => Number(document.querySelector('[data-testid=latest-checkpoint]').dataset.epoch) >= n",
                    arg=SHOT_EPOCHS - 1,
                )
                _shot(page, "investor")
                page.goto(f"{base}/?poll=1000#fleet")
                page.wait_for_selector('svg[data-chart="columns"] rect.bar')
                _shot(page, "fleet")

                page.goto(f"{base}/?poll=1000#auditor")
                page.wait_for_selector(".checkpoints-table tbody tr")
                page.wait_for_function(
                    "(n) => document.querySelectorAll('.consistency-cell .check-chip.pass').length >= n",
                    arg=SHOT_EPOCHS,
                )
                _shot(page, "auditor")
                assert errors == [], errors
            finally:
                browser.close()
        print(
            f"\n  first minute: services up {ready - started:.1f} s after start; attested money for"
            f" {seen['owed']} {investor_s:.1f} s and a fleet rate {fleet_s:.1f} s after that;"
            f" screenshots at {shots_s:.1f} s"
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: drain, summary, exit 0
        code = process.wait(timeout=180)
    out = text()
    assert code == 0, out[-3000:]
    summary = json.loads((home / "summary.json").read_text())
    assert summary["ok"] is True
    # The live panel's last frame, a blank line, then the summary's title: never on adjacent lines.
    lines = out.splitlines()
    title = next(i for i, line in enumerate(lines) if "assetproof demo: summary" in line)
    assert lines[title - 1].strip() == "", lines[title - 3 : title + 1]
    # and nothing runs on from the panel's bottom border (without a terminal rich does not end it)
    borders = [line for line in lines if "╰" in line]
    assert borders, out[-3000:]
    assert all(line.rstrip().endswith("╯") for line in borders), borders
    quarantined = sum(summary["quarantined"].values())
    row = next(line for line in lines[title:] if "quarantined" in line)
    assert f"{quarantined} ({summary['faults_injected']} faulty injected" in row, row
    refused = summary["refused_by_broker"]
    assert (f"; {refused} refused by the broker)" in row) == (refused > 0), row
    assert "an earlier run's line" not in log.read_text()
