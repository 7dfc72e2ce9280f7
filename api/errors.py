"""Errors the routes raise, and how every error reaches the client: JSON with a ``detail``
sentence (and a ``reason`` word where a client may branch on it), the one shape the OpenAPI
schema publishes for every error (``api.models.Problem``). Starlette's own errors (an unknown
path, a method a route does not take) are given the same shape here, so no client meets two."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.anchors import DeploymentFileError
from protocol.errors import AssetproofError

__all__ = ["ApiError", "install_handlers"]


class ApiError(AssetproofError):
    def __init__(
        self, status: int, detail: str, *, reason: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", reason="not_found")


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "request"
    source, *path = loc
    name = ".".join(str(p) for p in path)
    return {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body field"}.get(
        str(source), str(source)
    ) + (f" {name!r}" if name else "")


def _validation_message(exc: RequestValidationError) -> str:
    return "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors())


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body: dict[str, Any] = {"detail": exc.detail}
    if exc.reason is not None:
        body["reason"] = exc.reason
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse(
        {"detail": _validation_message(exc), "reason": "invalid_parameter", "errors": errors}, status_code=422
    )


_HTTP_REASONS = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 400:
        # FastAPI's only 400: a body it cannot even decode (not UTF-8). Malformed JSON is already
        # a 422, and so is every other bad input: one status for "your request is wrong".
        return JSONResponse({"detail": f"body: {detail}", "reason": "invalid_parameter"}, status_code=422)
    body = {"detail": detail, "reason": _HTTP_REASONS.get(exc.status_code, "http_error")}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _deployment_unreadable(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "reason": "deployment_unreadable"}, status_code=503)


async def _internal_error(_request: Request, _exc: Exception) -> JSONResponse:
    # The exception itself goes to the server's log (Starlette re-raises it); the client gets
    # the one error shape and no traceback.
    return JSONResponse({"detail": "internal error", "reason": "internal_error"}, status_code=500)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DeploymentFileError, _deployment_unreadable)
    app.add_exception_handler(Exception, _internal_error)
