"""``assetproof healthcheck``: the yes/no the compose healthchecks ask (the passing case runs in
tests/deploy/test_compose.py against live services)."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app
from devstack.mosquitto import free_port


def test_no_metrics_port_is_a_settings_error() -> None:
    result = CliRunner().invoke(app, ["healthcheck", "gateway"], env={})
    assert result.exit_code == 2
    assert "ASSETPROOF_GATEWAY_METRICS_PORT is not set" in result.output


def test_nothing_listening_is_unhealthy() -> None:
    port = str(free_port())
    for service, variable in (("api", "ASSETPROOF_API_PORT"), ("attestor", "ASSETPROOF_ATTESTOR_METRICS_PORT")):
        result = CliRunner().invoke(app, ["healthcheck", service, "--timeout", "1"], env={variable: port})
        assert result.exit_code == 1, result.output
        assert f"127.0.0.1:{port}" in result.output


def test_unknown_service_is_refused() -> None:
    result = CliRunner().invoke(app, ["healthcheck", "broker"])
    assert result.exit_code == 2
