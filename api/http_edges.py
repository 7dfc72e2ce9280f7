"""HTTP at the edges of every response: HEAD and OPTIONS for every route, and the security headers.

Both are pure ASGI middleware (no body buffering), installed outside everything else
(``AssetproofApp.build_middleware_stack``) so that errors, the dashboard's files and even an
unhandled exception's 500 carry the same headers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAndOptions", "SecurityHeaders", "content_security_policy"]

_METHOD_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _compile(paths: Mapping[str, Iterable[str]]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    table = []
    for template, methods in paths.items():
        regex, _, _ = compile_path(template)
        allowed = {m.upper() for m in methods}
        if "GET" in allowed:
            allowed.add("HEAD")
        table.append((regex, frozenset(allowed | {"OPTIONS"})))
    return table


def _allow_header(methods: frozenset[str]) -> bytes:
    return ", ".join(m for m in _METHOD_ORDER if m in methods).encode()


class HeadAndOptions:
    """HEAD is GET without the body (same status and headers, ``content-length`` included);
    OPTIONS answers 204 with the ``Allow`` the path really has, and a method the path does not
    take is a 405 naming the same set.

    FastAPI's routes take only the methods they declare, so without this a HEAD fell through to
    the dashboard's mount and answered 404 while a 405's ``Allow`` left HEAD out."""

    def __init__(
        self, app: ASGIApp, *, paths: Mapping[str, Iterable[str]], fallback: Iterable[str] | None = None
    ) -> None:
        """``paths``: each path template with the methods its operations take (the OpenAPI
        schema's, so what OPTIONS says and what the schema publishes cannot differ);
        ``fallback``: the methods of any other path (the dashboard's files), or None for 404."""
        self.app = app
        self.table = _compile(paths)
        self.fallback = None if fallback is None else frozenset(m.upper() for m in [*fallback, "OPTIONS"])

    def _allowed(self, path: str) -> tuple[frozenset[str] | None, bool]:
        """The methods this path takes, and whether it is one of the API's (not the dashboard's)."""
        for regex, methods in self.table:
            if regex.match(path):
                return methods, True
        return self.fallback, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        allowed, api_path = self._allowed(scope["path"])
        if method == "OPTIONS" and allowed is not None:
            await _answer(send, 204, allowed, b"")
            return
        if api_path and allowed is not None and method not in allowed:
            # Decided here, not by the router: with the dashboard mounted at "/", the mount would
            # take the request and answer 404 for a path the API has.
            await _answer(send, 405, allowed, _METHOD_NOT_ALLOWED)
            return
        head = method == "HEAD"

        async def send_wrapper(message: Message) -> None:
            if head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"} if head else scope, receive, send_wrapper)


_METHOD_NOT_ALLOWED: Final = json.dumps({"detail": "Method Not Allowed", "reason": "method_not_allowed"}).encode()


async def _answer(send: Send, status: int, allowed: frozenset[str], body: bytes) -> None:
    headers = [(b"allow", _allow_header(allowed))]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


LOOPBACK_RPC: Final = ("http://127.0.0.1:*", "http://localhost:*")
"""Where a user's own chain node answers: always allowed to the dashboard's ``eth_call``. (CSP has
no syntax for an IPv6 literal such as [::1]: Chromium ignores it and reports the policy.)"""


def content_security_policy(*, public_rpc_url: str | None) -> str:
    """The dashboard's policy: its own ES modules and stylesheet, fetches to the API (same origin)
    and ``eth_call`` to the public RPC URL it is configured with, or to a node on the user's own
    machine (loopback, any port); no inline script, no framing.

    A user who does not trust the operator pins their own RPC URL in the page; the policy is the
    operator's, so it cannot name that node in advance. Loopback is what lets a pinned node work
    without opening ``connect-src`` to the whole web (which would let any injected script send
    what the page shows anywhere): the user's own node (anvil, a light client, an SSH tunnel to
    one) answers on 127.0.0.1, and a remote node the policy refuses is named as such by the page.

    No inline style either: the dashboard sets its colours and widths through the CSSOM."""
    connect = ["'self'"]
    if public_rpc_url:
        parts = urlsplit(public_rpc_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            connect.append(f"{parts.scheme}://{parts.netloc}")
    connect += [origin for origin in LOOPBACK_RPC if origin not in connect]
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        )
    )


class SecurityHeaders:
    """Adds the security headers to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self.app = app
        self.headers: Final = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_wrapper)
