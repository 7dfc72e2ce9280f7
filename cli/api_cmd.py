"""``assetproof api``: serve the HTTP API and the dashboard with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DatabaseOption, fail, setting, settings


def api(
    host: Annotated[str, setting("api_host", "--host")],
    port: Annotated[int, setting("api_port", "--port", min=1, max=65535)],
    database: DatabaseOption,
    deployment: Annotated[
        Path,
        setting(
            "deployment",
            "--deployment",
            help="Deployment file: names the chain and AnchorRegistry in proof bundles (read only).",
        ),
    ],
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the read and admin API on HTTP (one process: its /metrics then covers every request).
    Admin endpoints need ASSETPROOF_ADMIN_TOKEN (a random secret of 16+ characters); without it
    they answer 503, and in production mode the API refuses to start."""
    import uvicorn

    from api.app import create_app
    from config import SettingsError
    from store.db import make_engine, migrate

    config = settings().model_copy(update={"database_url": database, "deployment": deployment})
    try:
        app = create_app(config)  # refuses a production start without a token before any I/O
    except SettingsError as exc:
        raise fail(str(exc)) from None
    engine = make_engine(database)
    migrate(engine)
    engine.dispose()
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
