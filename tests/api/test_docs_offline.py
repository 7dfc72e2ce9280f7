"""The API reference at /docs renders in Chromium with no network: Swagger UI comes from the copy
vendored under api/static/vendor/swagger-ui, the schema from the API itself. Every request the
page makes outside the API is refused (and recorded), as on a machine without internet, and the
page must still list every operation the schema has, under the API's own CSP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Route, sync_playwright

from api.app import STATIC_DIR, create_app
from config import Settings
from store.db import make_engine, migrate
from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING
from tests.support.processes import wait_for

SWAGGER_UI_VERSION = "5.36.0"
_LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.effectiveDirective));
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'assetproof.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    port = _free_port()
    uv = uvicorn.Server(
        uvicorn.Config(create_app(Settings(database_url=url)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, timeout_s=20, what="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def test_the_vendored_copy_is_the_one_documented() -> None:
    vendor = STATIC_DIR / "vendor" / "swagger-ui"
    assert f"Swagger UI {SWAGGER_UI_VERSION}" in (vendor / "README.md").read_text()
    assert "SwaggerUI" in (vendor / "swagger-ui-bundle.js").read_text()[-2000:]
    assert "Apache License" in (vendor / "LICENSE").read_text()


def test_docs_render_the_operations_with_no_network(server: str) -> None:
    assert CHROMIUM.exists(), CHROMIUM_MISSING
    schema_ops = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            outside: list[str] = []
            errors: list[str] = []

            def only_the_api(route: Route) -> None:
                if route.request.url.startswith(server + "/"):
                    route.continue_()
                else:  # no network: anything that is not the API fails, and is recorded
                    outside.append(route.request.url)
                    route.abort("internetdisconnected")

            page.route("**/*", only_the_api)
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.add_init_script(_LISTEN)

            schema = page.request.get(f"{server}/openapi.json").json()
            schema_ops = sum(
                1
                for item in schema["paths"].values()
                for method in item
                if method in {"get", "post", "put", "patch", "delete", "head", "options"}
            )
            response = page.goto(f"{server}/docs")
            assert response is not None
            assert response.ok
            assert "script-src 'self'" in response.headers["content-security-policy"]
            page.wait_for_selector("#swagger-ui .opblock")
            page.wait_for_function(
                "(n) => document.querySelectorAll('#swagger-ui .opblock').length >= n", arg=schema_ops
            )
            rendered = page.locator("#swagger-ui .opblock").count()
            title = page.locator("#swagger-ui .info .title").inner_text()
            fleet = page.locator('#swagger-ui .opblock-summary-path[data-path="/v1/fleet/health"]').count()
            assert page.evaluate("window.__csp") == []
            # /redoc leads to the same page rather than to a CDN
            page.goto(f"{server}/redoc")
            assert page.url == f"{server}/docs"
        finally:
            browser.close()
    assert outside == [], f"the docs page reached outside the API: {outside}"
    assert errors == [], errors
    assert schema_ops > 20
    assert rendered == schema_ops, f"{rendered} operations drawn, {schema_ops} in the schema"
    assert title.startswith("assetproof")
    assert fleet == 1
