"""A local anvil process on a free loopback port: what the demo, benchmarks and tests start.

anvil comes from npm (``npm ci --prefix chain`` installs ``@foundry-rs/anvil-linux-amd64``); the
binary is run directly, not through npm's node wrapper, so the process we hold is anvil itself
and a signal reaches it. ``--state FILE`` makes anvil write its state on SIGTERM and reload it
on start, which is what :meth:`AnvilNode.restart` relies on (a SIGKILL loses what was not saved).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from chain.errors import NodeError
from chain.rpc import http_web3

if TYPE_CHECKING:
    from web3 import Web3

__all__ = ["ANVIL_ENV", "AnvilNode", "find_anvil", "start_anvil"]

CHAIN_DIR = Path(__file__).resolve().parents[1] / "chain"
ANVIL_ENV = "ASSETPROOF_ANVIL"
"""Environment variable naming an anvil binary to use instead of the npm one."""
_NPM_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64",
}
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
_MISSING = "anvil is not installed: run `npm ci --prefix chain` (it installs the pinned @foundry-rs/anvil binary)"


def find_anvil() -> Path | None:
    """The anvil binary: ``$ASSETPROOF_ANVIL`` if set, else the one npm installed under
    ``chain/node_modules``; None when there is none."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        path = Path(override)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    suffix = _NPM_PLATFORMS.get((platform.system(), platform.machine()))
    if suffix is None:
        return None
    path = CHAIN_DIR / "node_modules" / "@foundry-rs" / f"anvil-{suffix}" / "bin" / "anvil"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rpc(url: str, method: str, params: list[Any] | None = None, *, timeout: float = 1.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL we built
        reply = json.loads(response.read())
    if "error" in reply:
        raise NodeError(f"{method} failed: {reply['error']}")
    return reply["result"]


class AnvilNode:
    """A running anvil. Use :func:`start_anvil`; a context manager that stops it on exit."""

    def __init__(self, *, binary: Path, port: int, state_file: Path | None, extra_args: tuple[str, ...]) -> None:
        self.binary = binary
        self.port = port
        self.state_file = state_file
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def web3(self) -> Web3:
        """A new web3 connected over HTTP."""
        return http_web3(self.url)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One raw JSON-RPC call (``anvil_*``, ``evm_*``...)."""
        return _rpc(self.url, method, params, timeout=10.0)

    def start(self) -> None:
        if self.running:
            return
        argv = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args]
        if self.state_file is not None:
            argv += ["--state", str(self.state_file)]
        self._log = tempfile.TemporaryFile(prefix="anvil-")  # noqa: SIM115 - closed in _reap
        # Its own session: a terminal's Ctrl-C reaches only our process, which anchors, then stops it.
        self._process = subprocess.Popen(  # noqa: S603
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                output = self._output()
                self._reap()
                raise NodeError(f"anvil exited with {self._process.returncode} at start: {output}")
            try:
                _rpc(self.url, "eth_chainId", timeout=0.5)
                return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise NodeError(f"anvil did not answer on {self.url} within {_START_TIMEOUT_S:.0f} s")
            time.sleep(0.02)

    def stop(self, *, timeout: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM and wait: anvil writes ``state_file`` (when set) before it exits."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                self._reap()
                raise NodeError(f"anvil did not stop within {timeout:.0f} s and was killed") from None
        self._reap()

    def kill(self) -> None:
        """SIGKILL: no state is saved."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._reap()

    def restart(self) -> None:
        """Stop (saving the state) and start again on the same port; with ``state_file`` the
        chain comes back as it was."""
        self.stop()
        self.start()

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace").strip()

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"AnvilNode(url={self.url!r}, pid={self.pid}, state_file={self.state_file})"


def start_anvil(
    *,
    port: int = 0,
    state_file: Path | str | None = None,
    binary: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> AnvilNode:
    """Start anvil on 127.0.0.1 (``port`` 0: a free one) and return once it answers JSON-RPC.

    Raises :class:`NodeError` when anvil is missing or does not come up.
    """
    binary = binary or find_anvil()
    if binary is None:
        raise NodeError(_MISSING)
    node = AnvilNode(
        binary=binary,
        port=port or _free_port(),
        state_file=Path(state_file) if state_file is not None else None,
        extra_args=extra_args,
    )
    node.start()
    return node
