"""The dashboard as an investor and an engineer first see it, in Chromium against a real uvicorn
serving the realistic SQLite store (tests/api/dataset.py) with the API's and the page's clocks
fixed to the dataset's: a 420 px screen without overflow, plain names and units for metrics, axis
ticks that differ on an all-zero series, range pickers on the investor and fleet views, each
reject reason linked to its quarantined messages, and coverage that reads the same in the
terminal (the demo's snapshot), the API and the page, with its definition on hover."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from api.app import create_app
from config import Settings
from demo.snapshot import take_snapshot
from protocol.envelope import METRICS
from store.db import make_engine
from tests.api.dataset import API_NOW_MS, Dataset
from tests.support.dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING
from tests.support.processes import wait_for

pytestmark = pytest.mark.parametrize("dataset", ["sqlite"], indirect=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(dataset: Dataset) -> Iterator[str]:
    settings = Settings(database_url=dataset.url, deployment=dataset.deployment_path)
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings, clock_ms=lambda: API_NOW_MS), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, timeout_s=20, what="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), CHROMIUM_MISSING
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


def _page(browser: Browser, width: int = 1400) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(30_000)
    # The page ranges its charts from the browser's "now": put it at the dataset's.
    page.clock.set_fixed_time(datetime.fromtimestamp(API_NOW_MS / 1000, tz=UTC))
    return page


def test_a_narrow_screen_has_no_overflow(server: str, browser: Browser) -> None:
    page = _page(browser, width=420)
    for view, ready in (
        ("investor", '[data-asset="hk-rooftops"] svg[data-chart="cashflow"]'),
        ("fleet", ".devices tbody tr"),
        ("auditor", ".checkpoints-table tbody tr"),
    ):
        page.goto(f"{server}/#{view}")
        page.wait_for_selector(ready)
        sizes = page.evaluate(
            """() => {
                const top = document.querySelector("header.top");
                const tabs = [...document.querySelectorAll("[data-tab]")].map((a) => a.getBoundingClientRect());
                return {
                    page: document.documentElement.scrollWidth,
                    header: top.scrollWidth,
                    headerBox: top.clientWidth,
                    tabsRight: Math.max(...tabs.map((r) => r.right)),
                    statusRight: document.querySelector(".status").getBoundingClientRect().right,
                };
            }"""
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"narrow-{view}.png"))
        assert sizes["page"] <= 420, (view, sizes)
        assert sizes["header"] <= sizes["headerBox"], (view, sizes)
        assert sizes["tabsRight"] <= 420, (view, sizes)
        assert sizes["statusRight"] <= 420, (view, sizes)


def test_metrics_have_plain_names_and_units(server: str, browser: Browser) -> None:
    page = _page(browser)
    page.goto(f"{server}/#investor")
    out = page.evaluate(
        """async () => {
            const f = await import("/js/format.js");
            return {
                names: Object.keys(f.METRIC_LABELS),
                temp: `${f.metricLabel("temp_dc")} ${f.metricValue("temp_dc", 482)}`,
                cold: f.metricValue("temp_dc", -35),
                hashes: `${f.metricLabel("hashes_gh")} ${f.metricValue("hashes_gh", 17280000)}`,
                rate: f.metricValue("hashrate_ghs", 288000),
                energy: f.metricValue("energy_wh", 1234),
                small: f.metricValue("energy_wh", 12),
                html: f.metricHTML("irradiance_wm2", 812),
            };
        }"""
    )
    # every metric protocol/ defines, and no other: the table cannot drift from the envelope
    assert set(out["names"]) == {name for metrics in METRICS.values() for name in metrics}
    assert out["temp"] == "Temperature 48.2 °C"
    assert out["cold"] == "-3.5 °C"
    assert out["hashes"] == "Hashes 17.28 PH"
    assert out["rate"] == "288 TH/s"
    assert out["energy"] == "1.23 kWh"
    assert out["small"] == "12 Wh"
    assert "Irradiance</span> 812 W/m²" in out["html"]
    assert 'title="irradiance_wm2 = 812 (as signed)"' in out["html"]


def test_an_all_zero_series_has_ticks_that_differ(server: str, browser: Browser) -> None:
    page = _page(browser)
    page.goto(f"{server}/#investor")
    ticks = page.evaluate(
        """async () => {
            const c = await import("/js/charts.js");
            const zero = (t) => ({start_ms: t, readings: 60, revenue: 0, cost: 0, net: 0, coverage: 1, uptime: 1,
                attested: {revenue: 0, cost: 0, net: 0}, pending: {revenue: 0, cost: 0, net: 0, readings: 0}});
            const flat = (t) => ({...zero(t), revenue: 1234, net: 1234, attested: {revenue: 1234, cost: 0, net: 1234}});
            const labels = (series) => {
                const box = document.createElement("div");
                box.innerHTML = c.cashflowChart(series, {currency: "HKD", granularity: "hour"});
                return [...box.querySelectorAll('text.tick[text-anchor="end"]')].map((t) => t.textContent);
            };
            const hours = [0, 1, 2, 3].map((k) => 1_780_275_600_000 + k * 3_600_000);
            return {zero: labels(hours.map(zero)), flat: labels(hours.map(flat))};
        }"""
    )
    for name, labels in ticks.items():
        assert len(labels) >= 2, (name, labels)
        assert len(set(labels)) == len(labels), (name, labels)
    assert ticks["zero"][0] == "HK$0.00"
    assert ticks["zero"][-1] == "HK$1.00"


def test_the_fleet_range_picker_and_reason_links(server: str, browser: Browser, dataset: Dataset) -> None:
    page = _page(browser)
    page.goto(f"{server}/#fleet")
    page.wait_for_selector(".devices tbody tr")
    assert "by arrival time" in page.locator('[data-testid="arrival-rate"]').inner_text()
    with page.expect_request(lambda r: "/v1/fleet/health" in r.url and "minutes=60" in r.url):
        page.click('[data-testid="fleet-range"] button[data-minutes="60"]')
    page.wait_for_function("() => document.querySelector('.fleet-kpis').textContent.includes('last 1 hour')")
    # every reason in the chart links to its quarantined messages
    links = page.eval_on_selector_all('svg[data-chart="hbars"] a.hlink', "as => as.map((a) => a.getAttribute('href'))")
    assert sorted(links) == sorted(f"#fleet/quarantine/{r}" for r in dataset.quarantined)
    page.click('svg[data-chart="hbars"] a[href="#fleet/quarantine/revoked_device"]')
    card = page.locator('[data-testid="quarantined"][data-reason="revoked_device"]')
    card.wait_for()
    rows = card.locator("tbody tr")
    assert rows.count() == dataset.quarantined["revoked_device"]
    first = rows.first.locator("a").get_attribute("href") or ""
    assert first.startswith("/v1/quarantine/")
    detail = page.request.get(server + first).json()
    assert detail["reason"] == "revoked_device"
    page.click('[data-testid="quarantined"] a[href="#fleet"]')
    page.wait_for_selector('[data-testid="quarantined"]', state="detached")


def test_the_investor_range_picker(server: str, browser: Browser) -> None:
    page = _page(browser)
    page.goto(f"{server}/#investor")
    page.wait_for_selector('[data-asset="hk-rooftops"] svg[data-chart="cashflow"]')
    labels = page.locator("#view-investor [data-range]").all_inner_texts()
    assert labels == ["24 hours", "48 hours, hourly", "7 days", "30 days, daily"]
    assert "on" in (page.locator('#view-investor [data-range="48h"]').get_attribute("class") or "")
    with page.expect_request(lambda r: "/cashflow" in r.url and "granularity=day" in r.url):
        page.click('#view-investor [data-range="7d"]')


def test_coverage_reads_the_same_in_terminal_api_and_page(server: str, browser: Browser, dataset: Dataset) -> None:
    engine = make_engine(dataset.url, writer=False)
    try:
        terminal = take_snapshot(engine, elapsed_s=0, wall_started_s=0).coverage
    finally:
        engine.dispose()
    page = _page(browser)
    page.goto(f"{server}/#investor")
    page.wait_for_selector('[data-asset="hk-rooftops"] svg[data-chart="cashflow"]')
    for asset, value in terminal.items():
        flow = page.request.get(f"{server}/v1/assets/{asset}/cashflow?granularity=hour").json()
        assert flow["totals"]["coverage"] == pytest.approx(value, abs=5e-5), asset  # the API rounds to 4 places
        fig = page.locator(f'[data-asset="{asset}"] .fig', has_text="Coverage")
        assert fig.locator("span").first.inner_text() == f"{value * 100:.0f}%", asset
        tip = fig.locator("label").get_attribute("title") or ""
        assert tip.startswith("Coverage = min(1, readings received ÷ readings expected)")
