"""The dashboard works under its Content-Security-Policy in a real Chromium: a real uvicorn
serving the API and the dashboard over the realistic SQLite store, every CSP violation the page
reports collected (``securitypolicyviolation`` events and console errors). The test also injects
an inline script, which must be refused and reported: proof that the policy is in force and the
listener hears it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from api.app import create_app
from config import Settings
from tests.api.dataset import API_NOW_MS, Dataset
from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING
from tests.support.processes import wait_for

RPC_PORT = 9  # nothing listens (and Chromium refuses the port): the request's start is what counts
RPC = f"http://127.0.0.1:{RPC_PORT}"

_LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.effectiveDirective));
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(dataset: Dataset) -> Iterator[str]:
    settings = Settings(database_url=dataset.url, deployment=dataset.deployment_path, public_rpc_url=RPC)
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


@pytest.mark.parametrize("dataset", ["sqlite"], indirect=True)
def test_the_dashboard_runs_under_its_csp(server: str) -> None:
    assert CHROMIUM.exists(), CHROMIUM_MISSING
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            console: list[str] = []
            page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: console.append(str(exc)))
            page.add_init_script(_LISTEN)
            # The page ranges its charts from the browser's "now": put it at the dataset's.
            page.clock.set_fixed_time(datetime.fromtimestamp(API_NOW_MS / 1000, tz=UTC))
            # The auditor view calls the public RPC from the browser: connect-src lets it leave
            # (a request the CSP blocks never starts).
            with page.expect_request(lambda request: request.url.startswith(RPC)):
                response = page.goto(f"{server}/#investor")
                assert response is not None
                assert "script-src 'self'" in response.headers["content-security-policy"]
                assert f"connect-src 'self' {RPC}" in response.headers["content-security-policy"]
                # The modules ran and fetched the API: the assets and their charts are drawn.
                page.wait_for_selector('[data-asset="hk-rooftops"] svg[data-chart="cashflow"]')
                page.click('a[data-tab="fleet"]')
                page.wait_for_selector("#view-fleet:not([hidden])")
                page.click('a[data-tab="auditor"]')
                page.wait_for_selector("#view-auditor:not([hidden])")
            assert page.evaluate("window.__csp") == [], console
            # Colours set without inline styles (which the policy refuses) still reach the page.
            dot = page.eval_on_selector('[data-asset="hk-rooftops"] .dot', "e => getComputedStyle(e).backgroundColor")
            assert dot not in ("", "rgba(0, 0, 0, 0)")
            assert "'unsafe-inline'" not in response.headers["content-security-policy"]
            # Nothing else went wrong on the page (the RPC itself is unreachable by design).
            assert [m for m in console if "ERR_UNSAFE_PORT" not in m] == []

            # An inline script is refused, and the refusal is heard.
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.__ran = true'; document.body.appendChild(s); }"
            )
            page.wait_for_function("() => window.__csp.length > 0")
            assert page.evaluate("window.__csp") == ["script-src-elem"]
            assert page.evaluate("window.__ran === undefined")
        finally:
            browser.close()
