"""Prometheus metrics of the API (the gateway and the attestor use the same library).

Requests are labelled by route *template* (``/v1/devices/{device_id}``), never by the raw path,
so the number of series stays fixed however many devices and readings there are.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("assetproof_api_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "assetproof_api_request_seconds",
    "Time to answer an HTTP request (to the first byte of a streamed body)",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
UNMATCHED = "unmatched"


class MetricsMiddleware:
    """Pure ASGI (no per-request task or body buffering, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = _route_of(scope)
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status)).inc()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                observe()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            observe()


def _route_of(scope: Scope) -> str:
    # The router records the matched route in the (shared) scope.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return path or "static"  # the dashboard's files are mounted at "/": one label for all
