"""HEAD, OPTIONS and the security headers, on every route of the published schema, on errors
(a 500 included) and on the dashboard's files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import compile_path

from api.app import create_app
from api.http_edges import LOOPBACK_RPC
from config import Settings
from tests.api.dataset import ADMIN_TOKEN, REVOKED, Dataset

SOLAR = "sol-hk-rooftops-0001"
# One URL for each GET operation (the test below checks that none is missing).
GET_URLS = [
    "/v1/devices",
    f"/v1/devices/{REVOKED}",
    "/v1/assets",
    "/v1/assets/hk-rooftops",
    "/v1/readings?limit=3",
    f"/v1/devices/{SOLAR}/readings/1",
    "/v1/readings/0/bundle",
    f"/v1/devices/{SOLAR}/readings/1/bundle",
    "/v1/assets/hk-rooftops/cashflow",
    f"/v1/devices/{SOLAR}/cashflow",
    "/v1/epochs",
    "/v1/epochs/0",
    "/v1/assets/hk-rooftops/epochs/0/totals-proof",
    "/v1/checkpoints",
    "/v1/consistency?from=0&to=1",
    "/v1/chain",
    "/v1/export/epoch-000000/checkpoint.json",
    "/v1/export/epoch-000000/leaves",
    "/v1/quarantine",
    "/v1/quarantine/reasons",
    "/v1/quarantine/1",
    "/v1/fleet/health",
    "/v1/tokens",
    "/v1/tokens/hydro-pod",
    "/v1/tokens/hydro-pod/holders",
    "/v1/tokens/hydro-pod/distributions",
    "/v1/investors/0x70997970C51812dc3A010C7d01b50e0d17dc79C8/holdings",
    "/v1/assets/hk-rooftops/credit",
    "/healthz",
    "/metrics",
    "/openapi.json",
    # and errors: HEAD answers what GET answers
    "/v1/epochs/999999",
    "/v1/readings?limit=0",
]
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
RPC = "https://rpc.example.org:8545/some/path"


def _spec_paths(client: TestClient) -> dict[str, list[str]]:
    return {p: list(ops) for p, ops in client.get("/openapi.json").json()["paths"].items()}


def _matches(template: str, url: str) -> bool:
    regex, _, _ = compile_path(template)
    return regex.match(url.split("?")[0]) is not None


def test_every_get_operation_is_covered(client: TestClient) -> None:
    for template, methods in _spec_paths(client).items():
        if "get" in methods:
            assert any(_matches(template, url) for url in GET_URLS), template


@pytest.mark.parametrize("url", GET_URLS)
def test_head_is_get_without_the_body(client: TestClient, url: str) -> None:
    got, head = client.get(url), client.head(url)
    assert head.status_code == got.status_code, url
    assert head.content == b""
    volatile = {"date", "content-length"} if url == "/metrics" else {"date"}
    assert {k: v for k, v in head.headers.items() if k not in volatile} == {
        k: v for k, v in got.headers.items() if k not in volatile
    }
    if "content-length" not in volatile and "content-length" in got.headers:
        assert int(head.headers["content-length"]) == len(got.content)


def test_options_names_what_each_path_takes(client: TestClient) -> None:
    for template, methods in _spec_paths(client).items():
        url = re.sub(r"\{[^}]+\}", "x1", template)
        response = client.options(url)
        expected = {m.upper() for m in methods} | {"OPTIONS"} | ({"HEAD"} if "get" in methods else set())
        assert response.status_code == 204, url
        assert set(response.headers["allow"].split(", ")) == expected, url
        assert response.content == b""
    assert client.options("/openapi.json").headers["allow"] == "GET, HEAD, OPTIONS"
    # No dashboard mounted in this client: an unknown path is unknown to OPTIONS too.
    assert client.options("/nowhere").status_code == 404


def test_a_405_names_the_same_methods_as_options(client: TestClient) -> None:
    refused = client.delete("/v1/devices")
    assert refused.status_code == 405
    assert refused.headers["allow"] == client.options("/v1/devices").headers["allow"] == "GET, HEAD, OPTIONS"
    post_only = client.get("/v1/admin/devices")
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST, OPTIONS"


def _assert_secured(response: object, *, rpc_origin: str | None = None) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in SECURITY.items():
        assert headers[name] == value, name
    csp = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'"
    # The user's own node on loopback, for an RPC URL pinned in the page (api.http_edges).
    loopback = " ".join(LOOPBACK_RPC)
    assert csp["connect-src"] == (f"'self' {loopback}" if rpc_origin is None else f"'self' {rpc_origin} {loopback}")


def test_security_headers_on_every_kind_of_response(client: TestClient) -> None:
    for response in (
        client.get("/v1/devices"),
        client.head("/v1/devices"),
        client.options("/v1/devices"),
        client.get("/v1/epochs/999999"),  # 404
        client.get("/v1/readings?limit=0"),  # 422
        client.get("/v1/readings/1000/bundle"),  # 409
        client.delete("/v1/devices"),  # 405
        client.post("/v1/admin/devices", json={}),  # 401
        client.get("/no/such/path"),
        client.get("/metrics"),
        client.get("/openapi.json"),
        client.get("/v1/export/epoch-000000/leaves"),  # streamed
    ):
        _assert_secured(response)


@pytest.fixture
def dashboard(dataset: Dataset) -> Iterator[TestClient]:
    settings = Settings(
        database_url=dataset.url,
        admin_token=ADMIN_TOKEN,
        deployment=dataset.deployment_path,
        public_rpc_url=RPC,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_dashboard_files_carry_the_policy_with_the_rpc_origin(dashboard: TestClient) -> None:
    for url in ("/", "/index.html", "/js/main.js", "/css/app.css", "/v1/chain", "/missing.js"):
        _assert_secured(dashboard.get(url), rpc_origin="https://rpc.example.org:8545")
    assert dashboard.get("/v1/chain").json()["rpc_url"] == RPC  # the URL the page will call
    index = dashboard.get("/").text
    # Every script is an external ES module from the same origin: nothing inline to allow.
    assert re.findall(r"<script[^>]*>", index) == ['<script type="module" src="/js/main.js">']
    assert dashboard.head("/js/main.js").status_code == 200
    # The dashboard's mount at "/" does not swallow a method an API path does not take.
    refused = dashboard.get("/v1/admin/devices")
    assert (refused.status_code, refused.headers["allow"]) == (405, "POST, OPTIONS")
    assert refused.json() == {"detail": "Method Not Allowed", "reason": "method_not_allowed"}
    _assert_secured(refused, rpc_origin="https://rpc.example.org:8545")
    assert dashboard.options("/js/main.js").headers["allow"] == "GET, HEAD, OPTIONS"


def test_a_500_carries_the_headers_and_the_error_shape(tmp_path: Path) -> None:
    # A real database the migrations never ran on: the query fails inside the route.
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", deployment=tmp_path / "none.json")
    with TestClient(create_app(settings), raise_server_exceptions=False) as broken:
        response = broken.get("/v1/devices")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "reason": "internal_error"}
    _assert_secured(response)
