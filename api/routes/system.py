"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from api import queries
from api.context import Ctx
from api.errors import ApiError
from api.models import Health, Problem

router = APIRouter(tags=["system"])


@router.get(
    "/healthz", summary="Liveness and database reachability", response_model=Health, responses={503: {"model": Problem}}
)
def healthz(ctx: Ctx) -> Health:
    try:
        with ctx.reader.connect() as conn:
            size = queries.log_size(conn=conn)
    except SQLAlchemyError as exc:
        raise ApiError(503, f"database unreachable: {exc.__class__.__name__}", reason="database_unavailable") from None
    return Health(status="ok", database=ctx.reader.dialect.name, log_size=size)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
