"""``assetproof api``: serve the HTTP API (and the dashboard, when built) with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DEFAULT_DATABASE, DatabaseOption


def api(
    host: Annotated[str, typer.Option(envvar="ASSETPROOF_API_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="ASSETPROOF_API_PORT", min=1, max=65535)] = 8000,
    database: DatabaseOption = DEFAULT_DATABASE,
    deployment: Annotated[
        Path,
        typer.Option(
            "--deployment",
            envvar="ASSETPROOF_DEPLOYMENT",
            help="Deployment file: names the chain and AnchorRegistry in proof bundles (read only).",
        ),
    ] = Path("var/deployment.json"),
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the read and admin API on HTTP (one process: its /metrics then covers every request).
    Admin endpoints need ASSETPROOF_ADMIN_TOKEN set (a random secret of 16+ characters); without
    it they answer 503."""
    import os

    import uvicorn

    from api.settings import Settings, SettingsError
    from store.db import make_engine, migrate

    # uvicorn builds the app through its factory, which reads the environment: pass the options
    # that way, so the command line and ASSETPROOF_* variables mean the same thing.
    os.environ["ASSETPROOF_DATABASE_URL"] = database
    os.environ["ASSETPROOF_DEPLOYMENT"] = str(deployment)
    try:
        Settings.from_env()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(database)
    migrate(engine)
    engine.dispose()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
    )
