"""``assetproof gateway``: run one gateway worker."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from prometheus_client import start_http_server

if TYPE_CHECKING:
    from config.mqtt_tls import TLSFiles

from cli.common import (
    BrokerOption,
    DatabaseOption,
    configure_logging,
    fail,
    parse_broker,
    setting,
    settings,
    stop_on_signals,
)

if TYPE_CHECKING:
    from gateway.quarantine import QuarantineBudget


def gateway(
    database: DatabaseOption,
    broker: BrokerOption,
    username: Annotated[str | None, setting("broker_username", "--username")],
    password: Annotated[str | None, setting("broker_password", "--password")],
    client_id: Annotated[str | None, setting("gateway_client_id", "--client-id")],
    share_group: Annotated[str, setting("gateway_group", "--share-group")],
    tariff: Annotated[Path | None, setting("tariff", "--tariff")],
    metrics_port: Annotated[int | None, setting("gateway_metrics_port", "--metrics-port")],
    tls_ca: Annotated[Path | None, setting("broker_tls_ca", "--tls-ca")],
    tls_cert: Annotated[Path | None, setting("broker_tls_cert", "--tls-cert")],
    tls_key: Annotated[Path | None, setting("broker_tls_key", "--tls-key")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    hold_seconds: Annotated[float, typer.Option(help="How long a reading waits for its predecessor.")] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a gateway worker: verify, sequence and store telemetry; quarantine the rest."""
    from gateway.service import Gateway, GatewayConfig
    from gateway.tariff import load_tariff

    configure_logging(verbose)
    host, port = parse_broker(broker)
    if username is None:
        username, password = _provisioned_login(password)
    config = GatewayConfig(
        database_url=database,
        tariff=load_tariff(tariff),
        broker_host=host,
        broker_port=port,
        username=username,
        password=password,
        client_id=client_id or f"assetproof-gateway-{socket.gethostname()}",
        share_group=share_group,
        batch_size=batch_size,
        hold_ms=int(hold_seconds * 1000),
        tls=_tls_files(tls_ca, tls_cert, tls_key),
        quarantine_budget=_quarantine_budget(),
    )
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    stop = stop_on_signals()
    Gateway(config).run(stop)


def _tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> TLSFiles | None:
    """TLS when a CA is given; the client certificate defaults to the gateway login's that
    ``devices provision`` wrote (``$ASSETPROOF_BROKER_AUTH/tls/clients/``), like the login."""
    from config.mqtt_tls import GATEWAY_LOGIN, TLSFiles, provisioned_client

    if ca is None:
        return None
    provisioned = provisioned_client(settings().broker_auth / "tls", GATEWAY_LOGIN)
    files = TLSFiles(ca=ca, cert=cert or provisioned.cert, key=key or provisioned.key)
    for path in (files.ca, files.cert, files.key):
        if not path.is_file():
            raise fail(f"TLS file {path} does not exist (set --tls-ca, --tls-cert and --tls-key)")
    return files


def _provisioned_login(password: str | None) -> tuple[str | None, str | None]:
    """The gateway's broker login that ``devices provision`` wrote beside the broker's password
    file (``$ASSETPROOF_BROKER_AUTH/gateway.json``), when none is given: a gateway sharing the
    provisioner's volume (docker-compose) needs no secret passed around. Anonymous otherwise."""
    import json

    path = settings().broker_auth / "gateway.json"
    if not path.exists():
        return None, password
    try:
        login = json.loads(path.read_text())
        return str(login["username"]), str(login["password"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"{path} is not a gateway login: {exc}") from None


def _quarantine_budget() -> QuarantineBudget:
    from gateway.quarantine import QuarantineBudget

    s = settings()
    return QuarantineBudget(
        messages=s.quarantine_budget_messages, bytes=s.quarantine_budget_bytes, window_s=s.quarantine_budget_window_s
    )
