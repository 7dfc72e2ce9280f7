"""``assetproof healthcheck SERVICE``: exit 0 when a running service on this host is healthy.

For container healthchecks (docker-compose) and anything else that wants one yes/no: the gateway
is healthy while it holds its broker connection, the attestor while its metrics answer (a standby
attestor waiting for the leader lock is healthy too), the API while ``/healthz`` reaches the
database. Ports come from the same settings the service itself read.
"""

from __future__ import annotations

import enum
import urllib.error
import urllib.request
from typing import Annotated

import typer

from cli.common import fail, settings


class Service(enum.StrEnum):
    gateway = "gateway"
    attestor = "attestor"
    api = "api"


def _get(url: str, timeout_s: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (our own http:// URL)
            return str(response.read().decode())  # urlopen is typed Any
    except (urllib.error.URLError, OSError) as exc:
        raise fail(f"{url}: {getattr(exc, 'reason', exc)}", code=1) from None


def healthcheck(
    service: Annotated[Service, typer.Argument(help="gateway, attestor or api")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 3.0,
) -> None:
    """Exit 0 when SERVICE (running here, with these settings) is healthy, 1 with the reason if not."""
    config = settings()
    if service is Service.api:
        host = "127.0.0.1" if config.api_host in ("0.0.0.0", "::") else config.api_host  # noqa: S104 (a comparison)
        _get(f"http://{host}:{config.api_port}/healthz", timeout)
        return
    port = config.gateway_metrics_port if service is Service.gateway else config.attestor_metrics_port
    if port is None:
        variable = f"ASSETPROOF_{service.value.upper()}_METRICS_PORT"
        raise fail(f"{variable} is not set: the {service.value} has no metrics endpoint to check")
    text = _get(f"http://127.0.0.1:{port}/metrics", timeout)
    if service is Service.gateway and "assetproof_gateway_broker_connected 1.0" not in text:
        raise fail("the gateway is not connected to the broker", code=1)
    if service is Service.attestor and "assetproof_attestor_leading" not in text:
        raise fail(f"port {port} does not serve the attestor's metrics", code=1)
