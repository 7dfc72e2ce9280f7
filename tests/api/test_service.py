"""Settings, the dashboard mount, Prometheus metrics (API and attestor), and ``assetproof api``
serving over real HTTP with uvicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from config import SettingsError, load_settings
from tests.api.conftest import make_client
from tests.api.dataset import Dataset

REPO = Path(__file__).resolve().parents[2]


def test_settings_from_environment() -> None:
    # The API reads its part of the one config.Settings, as every service does.
    defaults = load_settings(environ={})
    assert (defaults.database_url, defaults.require_admin_token(), defaults.deployment) == (
        "sqlite:///var/assetproof.db",
        None,
        Path("var/deployment.json"),
    )
    custom = load_settings(
        environ={
            "ASSETPROOF_DATABASE_URL": "postgresql://db/x",
            "ASSETPROOF_ADMIN_TOKEN": "k" * 32,
            "ASSETPROOF_DEPLOYMENT": "/etc/d.json",
        }
    )
    assert (custom.database_url, custom.require_admin_token(), custom.deployment) == (
        "postgresql://db/x",
        "k" * 32,
        Path("/etc/d.json"),
    )


@pytest.mark.parametrize("token", ["short", "changethis", "x" * 15])
def test_weak_admin_tokens_are_refused(token: str) -> None:
    with pytest.raises(SettingsError, match="ASSETPROOF_ADMIN_TOKEN: must be a random secret"):
        load_settings(environ={"ASSETPROOF_ADMIN_TOKEN": token})


def test_dashboard_files_are_served_when_present(dataset: Dataset, tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>dashboard</h1>")
    (static / "app.js").write_text("console.log(1)")
    with make_client(dataset.url, deployment=dataset.deployment_path, static=static) as client:
        assert client.get("/").text == "<h1>dashboard</h1>"
        assert client.get("/app.js").status_code == 200
        assert client.get("/v1/assets").status_code == 200  # the API still wins
        assert client.get("/healthz").status_code == 200


def test_without_dashboard_files_nothing_is_mounted(client: TestClient) -> None:
    assert client.get("/").status_code == 404


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/v1/devices/sol-nowhere-0001")
    client.get("/v1/devices/sol-hk-rooftops-0001")
    body = client.get("/metrics").text
    assert 'assetproof_api_requests_total{method="GET",route="/v1/devices/{device_id}",status="404"}' in body
    assert 'assetproof_api_requests_total{method="GET",route="/v1/devices/{device_id}",status="200"}' in body
    assert 'assetproof_api_request_seconds_bucket{le="0.1",method="GET",route="/v1/devices/{device_id}"}' in body
    assert "sol-nowhere" not in body


def test_attestor_metrics_use_the_same_library(client: TestClient, dataset: Dataset) -> None:
    assert dataset.attestor_anchored_delta == len(dataset.anchored_epochs)
    assert dataset.gas_delta > 0
    body = client.get("/metrics").text
    for name in (
        "assetproof_attestor_epochs_anchored_total",
        "assetproof_attestor_gas_used_total",
        "assetproof_attestor_chain_errors_total",
        "assetproof_attestor_anchor_seconds_bucket",
        "assetproof_attestor_epochs_pending",
    ):
        assert name in body, name
    assert (REGISTRY.get_sample_value("assetproof_attestor_epochs_pending") or 0) >= 1  # epoch 2 waits


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_api_command_serves_over_http(dataset: Dataset) -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "import typer; from cli.api_cmd import api; typer.run(api)",
        "--port",
        str(port),
        "--database",
        dataset.url,
        "--deployment",
        str(dataset.deployment_path),
        "--log-level",
        "warning",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETPROOF_")}
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    pytest.fail(f"assetproof api did not come up: {output[-2000:]}")
                time.sleep(0.1)
        assert health.json()["log_size"] == 1050
        bundle = httpx.get(f"http://127.0.0.1:{port}/v1/readings/3/bundle", timeout=5)
        assert bundle.json()["anchor"]["chain_id"] == dataset.chain.chain_id
        admin = httpx.post(f"http://127.0.0.1:{port}/v1/admin/devices", json={}, timeout=5)
        assert admin.status_code == 503  # no token in this environment
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_api_command_refuses_a_weak_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import typer; from cli.api_cmd import api; typer.run(api)",
            "--database",
            f"sqlite:///{tmp_path}/x.db",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ASSETPROOF_ADMIN_TOKEN": "secret"},
        check=False,
    )
    assert done.returncode == 2
    assert "ASSETPROOF_ADMIN_TOKEN: must be a random secret" in done.stderr
