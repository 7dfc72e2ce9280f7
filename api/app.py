"""The FastAPI application: ``create_app(settings)``, from the one ``config.Settings``.

Routes are synchronous: they run on the server's thread pool with SQLAlchemy's blocking
drivers, as the rest of assetproof does. Reads use a reader engine (on SQLite a deferred
transaction, so the API never holds the write lock the gateway and attestor need); only admin
writes use the writer.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from api.anchors import AnchorTarget
from api.context import ApiContext
from api.errors import install_handlers
from api.http_edges import HeadAndOptions, SecurityHeaders, content_security_policy
from api.metrics import MetricsMiddleware
from api.models import INVALID_REQUEST
from api.routes import (
    admin,
    cashflow,
    chain_info,
    devices,
    epochs,
    export,
    fleet,
    quarantine,
    readings,
    system,
    tokens,
)
from attestor.tokens import TokenBook
from config import Settings, load_settings
from config.clock import wall_ms
from store.db import make_engine

STATIC_DIR: Final = Path(__file__).with_name("static")
"""The dashboard's files."""

DESCRIPTION: Final = """\
Read and admin API of assetproof: devices and assets, readings, attested and pending cash flow,
epochs and checkpoints, proof bundles in exactly the format `assetproof verify` takes, consistency
proofs, the auditors' per-epoch export, quarantine and fleet health.

Times are integer milliseconds since the Unix epoch (UTC) unless named in seconds; byte strings
are lowercase hex (Ethereum values `0x`-prefixed); money is integer minor units. Errors are JSON
with a `detail` sentence and a `reason` word; bad parameters answer 422, unknown ids 404.
Nothing the API serves is to be trusted by an auditor until checked against the chain.
"""


class AssetproofApp(FastAPI):
    """FastAPI with the HTTP edges (``api.http_edges``) outside even Starlette's error
    middleware, so that a 500 carries the security headers too."""

    def build_middleware_stack(self) -> ASGIApp:
        ctx: ApiContext = self.state.ctx
        paths: dict[str, list[str]] = {path: list(ops) for path, ops in self.openapi()["paths"].items()}
        if self.openapi_url:
            paths[self.openapi_url] = ["get"]
        # The dashboard's mount at "/" answers GET and HEAD for any other path (404 when no file).
        fallback = ["GET", "HEAD"] if ctx.static_dir.is_dir() else None
        inner = HeadAndOptions(super().build_middleware_stack(), paths=paths, fallback=fallback)
        return SecurityHeaders(inner, csp=content_security_policy(public_rpc_url=ctx.settings.public_rpc_url))


def create_app(
    settings: Settings | None = None,
    *,
    static_dir: Path = STATIC_DIR,
    clock_ms: Callable[[], int] | None = None,
    token_book: TokenBook | None = None,
) -> FastAPI:
    """The app for ``settings`` (default: ``ASSETPROOF_*`` and the settings file). Raises
    SettingsError, before touching the database, when production mode has no admin token."""
    settings = settings or load_settings()
    admin_token = settings.require_admin_token()
    reader = make_engine(settings.database_url, writer=False)
    writer = make_engine(settings.database_url, pool_size=2)
    ctx = ApiContext(
        settings=settings,
        admin_token=admin_token,
        static_dir=static_dir,
        reader=reader,
        writer=writer,
        anchors=AnchorTarget(settings.deployment),
        tokens=token_book or TokenBook.over_rpc(settings.rpc, deployment_path=settings.deployment),
        clock_ms=clock_ms or wall_ms,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Everything alive now (modules, table metadata, pydantic schemas) lives as long as the
        # server: out of the collector's reach, a full collection stops costing a pause of tens
        # of milliseconds in the middle of some request.
        gc.collect()
        gc.freeze()
        yield
        reader.dispose()
        writer.dispose()

    app = AssetproofApp(
        title="assetproof",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=INVALID_REQUEST,
        # FastAPI's /docs and /redoc pages run inline scripts from a CDN: blank offline, and refused
        # by the CSP. /docs is served below from the vendored Swagger UI instead; the schema itself
        # stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "devices and assets"},
            {"name": "readings and proofs"},
            {"name": "cash flow", "description": "Attested (anchored on chain) and pending, per hour or day."},
            {"name": "epochs and checkpoints"},
            {"name": "export (auditors)"},
            {"name": "quarantine"},
            {"name": "fleet"},
            {"name": "tokens", "description": "Share and hashrate tokens, read from the chain: a convenience copy."},
            {"name": "admin", "description": "Needs `Authorization: Bearer <ASSETPROOF_ADMIN_TOKEN>`."},
            {"name": "system"},
        ],
    )
    app.state.ctx = ctx
    install_handlers(app)
    app.add_middleware(MetricsMiddleware)
    for module in (devices, readings, cashflow, epochs, chain_info, export, quarantine, fleet, tokens, admin, system):
        app.include_router(module.router)
    _offline_docs(app, static_dir)
    # The dashboard's files, when someone has put them there; last, so every route wins.
    if static_dir.is_dir():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="static")
    return app


def _offline_docs(app: FastAPI, static_dir: Path) -> None:
    """``/docs``: Swagger UI from the copy vendored in ``static/vendor/swagger-ui`` (no CDN, so it
    renders offline, under the same CSP as the dashboard). ``/redoc`` leads there: ReDoc injects
    inline styles, which the policy refuses."""
    page = static_dir / "docs.html"
    if not page.is_file():
        return

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(page, media_type="text/html")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=307)
