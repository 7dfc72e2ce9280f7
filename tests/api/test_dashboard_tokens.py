"""The dashboard's token views in a real Chromium: a real uvicorn serving the API over the data
set's store and its eth-tester chain with two asset tokens funded and claimed
(tests/api/token_market.py). The portfolio shows each asset's distributions beside its attested
net, the yield per token (per TH/s per day beside the hashprice for the hashrate token) and an
investor's holdings for an address the user enters and the page keeps; the credit view shows a
lender the coverage and DSCR. Every figure is checked against the chain or the store, and the
page runs with no console error and no CSP violation."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from api.app import create_app
from attestor.epochs import metadata_of
from chain.tokens import TokenReader
from config import Settings
from store.db import make_engine
from store.tables import EPOCH
from tests.api.dataset import API_NOW_MS, Dataset
from tests.api.token_market import POD, ROOF, Market, open_market
from tests.support.dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING
from tests.support.processes import wait_for

pytestmark = pytest.mark.parametrize("dataset", ["sqlite"], indirect=True)

_LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.effectiveDirective));
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def market(dataset: Dataset) -> Market:
    return open_market(dataset)


@pytest.fixture(scope="module")
def server(dataset: Dataset, market: Market) -> Iterator[str]:
    settings = Settings(database_url=dataset.url, deployment=dataset.deployment_path)
    app = create_app(settings, clock_ms=lambda: API_NOW_MS, token_book=market.book(dataset))
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, timeout_s=20, what="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def minor(page: Page, selector: str) -> int:
    """The minor-unit integer a money figure carries on hover (format.js moneyTitle)."""
    title = page.get_attribute(f"{selector} .money", "title")
    assert title is not None, selector
    return int(title.split(" minor units")[0].replace(",", ""))


def test_the_portfolio_and_credit_views_show_the_chains_figures(server: str, dataset: Dataset, market: Market) -> None:
    assert CHROMIUM.exists(), CHROMIUM_MISSING
    chain = TokenReader(market.w3, deployment=None)
    engine = make_engine(dataset.url)
    with engine.connect() as conn:
        metas = {int(r.number): metadata_of(r) for r in conn.execute(EPOCH.select()).all()}
    engine.dispose()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.add_init_script(_LISTEN)
            page.goto(f"{server}/?poll=500#portfolio")

            # Each asset's distributions beside its attested net, epoch by epoch.
            for asset in (ROOF, POD):
                card = f'[data-token="{asset}"]'
                page.wait_for_selector(f"{card} .distributions-table")
                for d in chain.distributions(market.tokens[asset]):
                    row = f'{card} tr[data-epoch="{d.epoch}"]'
                    assert minor(page, f"{row} [data-field=net]") == metas[d.epoch].assets[asset].net == d.net
                    assert minor(page, f"{row} [data-field=funded]") == d.funded
            pod_row = f'[data-token="{POD}"] tr[data-epoch="0"]'
            assert "per TH/s per day" in page.inner_text(f"{pod_row} [data-field=yield]")
            assert "gross" in page.inner_text(f"{pod_row} [data-field=hashprice]")
            assert "per token" in page.inner_text(f'[data-token="{ROOF}"] tr[data-epoch="0"] [data-field=yield]')

            # An investor's holdings, for the address the user enters; the page keeps it.
            page.fill(".investor-form input[name=address]", "0x1234")
            page.click(".investor-form button[type=submit]")
            page.wait_for_selector("[data-testid=holdings-error]")
            page.fill(".investor-form input[name=address]", market.bob.address)
            page.click(".investor-form button[type=submit]")
            page.wait_for_selector(f'tr[data-holding="{ROOF}"]')
            page.reload()
            page.wait_for_selector(f'tr[data-holding="{POD}"]')
            assert page.input_value(".investor-form input[name=address]") == market.bob.address
            total = 0
            for asset, token in market.tokens.items():
                row = f'tr[data-holding="{asset}"]'
                balance = chain.balance_of(token, market.bob.address)
                assert page.inner_text(f"{row} [data-field=balance]") == f"{balance:,}"
                owed = chain.claimable(token, market.bob.address)
                assert minor(page, f"{row} [data-field=claimable]") == owed
                total += owed
            assert minor(page, "[data-testid=total-claimable]") == total > 0
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "portfolio.png"), full_page=True)

            # The lender's view of the rooftops: coverage and DSCR from the attested nets.
            page.click('a[data-tab="credit"]')
            page.wait_for_selector(f'[data-credit="{ROOF}"]')
            nets = [metas[n].assets[ROOF].net for n in dataset.anchored_epochs]
            funded = sum(market.funded[ROOF])
            assert minor(page, "[data-testid=cumulative-net]") == sum(nets)
            assert page.inner_text("[data-testid=coverage]") == f"{sum(nets) / funded:,.2f}×"
            page.fill(".credit-form input[name=scheduled]", "300")
            page.click(".credit-form button[type=submit]")
            # 300 a period: the mean ratio is not a rounding tie (Python and the page round ties apart).
            page.wait_for_function(
                "expected => document.querySelector('[data-testid=dscr-mean]')?.textContent === expected",
                arg=f"{sum(nets) / len(nets) / 300:,.2f}×",
            )
            page.screenshot(path=str(ARTIFACTS / "credit.png"), full_page=True)
            page.select_option(".credit-form select", "kowloon-hub")
            page.fill(".credit-form input[name=scheduled]", "")
            page.click(".credit-form button[type=submit]")
            page.wait_for_selector('[data-credit="kowloon-hub"]')
            assert page.inner_text("[data-testid=coverage]") == "—"

            assert errors == []
            assert page.evaluate("window.__csp") == []
        finally:
            browser.close()
