"""What every request needs (engines, settings, the admin token, the anchor target, the clock),
kept on the app and handed to routes as a dependency."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.anchors import AnchorTarget
from api.errors import ApiError
from api.pagination import MAX_LIMIT
from api.params import StoreInt
from attestor.tokens import TokenBook
from config import Settings
from config.clock import wall_ms

__all__ = ["Admin", "ApiContext", "Ctx", "FromMs", "Limit", "ToMs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    settings: Settings
    admin_token: str | None
    """``settings``' token, resolved once at startup; ``None``: the admin endpoints are off."""
    static_dir: Path
    """Served at ``/`` when it exists (the dashboard)."""
    reader: Engine
    """Reads: on SQLite a deferred transaction that never takes the write lock."""
    writer: Engine
    """Admin writes only."""
    anchors: AnchorTarget
    tokens: TokenBook
    """The tokens of the deployment file, read from the chain (``attestor.tokens``)."""
    clock_ms: Callable[[], int] = wall_ms


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(_context)]

_bearer: Final = HTTPBearer(auto_error=False, description="The admin token (ASSETPROOF_ADMIN_TOKEN).")


def _require_admin(ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    token = ctx.admin_token
    if token is None:
        raise ApiError(503, "admin API disabled: no ASSETPROOF_ADMIN_TOKEN is configured", reason="admin_disabled")
    given = b"" if credentials is None else credentials.credentials.encode()
    # compare_digest: the time taken says nothing about how much of a guess was right.
    if not hmac.compare_digest(given, token.encode()):
        raise ApiError(
            401,
            "admin endpoints need the header 'Authorization: Bearer <ASSETPROOF_ADMIN_TOKEN>'"
            if credentials is None
            else "wrong admin token",
            reason="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )


Admin = Depends(_require_admin)

FromMs = Annotated[
    StoreInt | None,
    Query(alias="from", ge=0, description="Start of the time range, inclusive (ms since the Unix epoch, UTC)."),
]
ToMs = Annotated[
    StoreInt | None,
    Query(alias="to", ge=0, description="End of the time range, exclusive (ms since the Unix epoch, UTC)."),
]
Limit = Annotated[StoreInt, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (at most {MAX_LIMIT}).")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]


def check_range(from_ms: int | None, to_ms: int | None) -> None:
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise ApiError(422, f"'to' ({to_ms}) must be after 'from' ({from_ms})", reason="invalid_parameter")
