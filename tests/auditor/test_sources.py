"""The auditor reads the operator's API with a size bound: a huge response is refused with a
clear SourceError, whether its length is announced or not, and the audit says so (exit 2)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from auditor.sources import HttpSource, SourceError, open_source

HUGE = 64 * 1024 * 1024  # streamed, never held: the auditor must stop reading long before


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        announce = "/announced/" in self.path
        small = "/small/" in self.path
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if small:
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")
            return
        if announce:
            self.send_header("Content-Length", str(HUGE))
        else:
            self.send_header("Connection", "close")  # no length: read until the server closes
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(HUGE // len(chunk)):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the auditor stopped reading: what it should do

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def huge_http_source() -> Iterator[str]:
    """A local HTTP server whose paths answer with a huge body (``/small/...``: five bytes)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[str]:
    with huge_http_source() as url:
        yield url


def test_a_body_within_the_bound_is_read(server: str) -> None:
    assert HttpSource(server + "/small", max_bytes=5).read(0, "leaves") == b"hello"


def test_an_announced_huge_body_is_refused_before_reading(server: str) -> None:
    with pytest.raises(SourceError, match=f"the response is {HUGE} bytes, more than the limit of 1000000"):
        HttpSource(server + "/announced", max_bytes=1_000_000).read(0, "leaves")


def test_a_streamed_huge_body_is_refused_once_it_passes_the_bound(server: str) -> None:
    with pytest.raises(SourceError, match="larger than the limit of 1000000 bytes"):
        open_source(server + "/streamed", max_bytes=1_000_000).read(0, "leaves")
