"""Start a local Mosquitto with the settings assetproof needs (tests, benchmarks, the demo).

Mosquitto's defaults drop messages for a slow or absent subscriber: 1,000 queued messages per
client, 20 in flight. A gateway that restarts with a persistent session must find everything
that was published meanwhile, so the queue limit is raised far above any test run and the
in-flight window matches the gateway's receive maximum. Persistence is on, so a broker restart
keeps queued messages and sessions.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from protocol.errors import AssetproofError

if TYPE_CHECKING:  # only its paths are read: the broker launcher needs no crypto
    from devstack.broker_tls import BrokerTLSDir

MAX_QUEUED_MESSAGES = 2_000_000
MAX_INFLIGHT = 1_000
MAX_PACKET_SIZE = 65_536
"""Messages above this never reach the gateway: Mosquitto disconnects the sender. Between the
protocol's 4 KiB limit and this, the gateway quarantines them as ``oversized``."""


class BrokerError(AssetproofError):
    """The broker could not be found, configured or started."""


def tls_listener_lines(tls: BrokerTLSDir, *, port: int, bind: str | None = None) -> list[str]:
    """A listener that speaks only TLS 1.2 or later and admits only clients whose certificate
    the provisioning CA signed (a stolen password alone no longer connects)."""
    return [
        f"listener {port}" + (f" {bind}" if bind else ""),
        f"cafile {tls.ca_cert}",
        f"certfile {tls.server_cert}",
        f"keyfile {tls.server_key}",
        "require_certificate true",
        "tls_version tlsv1.2",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DYNSEC_PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",  # Debian/Ubuntu amd64 (package mosquitto)
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",  # the eclipse-mosquitto image
    "/usr/local/lib/mosquitto_dynamic_security.so",  # built from source
)


def find_dynsec_plugin() -> str | None:
    """Mosquitto's dynamic-security plugin (shipped with Mosquitto 2.0), if installed."""
    return next((p for p in DYNSEC_PLUGIN_PATHS if Path(p).exists()), None)


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


@dataclass
class LocalBroker:
    """What every broker process the project starts on 127.0.0.1 shares: where it keeps its
    config and log, its port (0: a free one), the dynamic-security config that holds its logins
    and access rules (:mod:`devstack.broker_auth` writes it), and stopping. Subclasses write
    their config and start the process."""

    directory: Path
    port: int = 0
    dynsec_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()

    def start(self, *, timeout_s: float = 10.0) -> None:
        raise NotImplementedError

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop cleanly (SIGTERM: the broker saves what it persists and closes its connections)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self._reap()

    def _reap(self) -> None:
        if self.process is not None:
            for pipe in (self.process.stdout, self.process.stderr):
                if pipe is not None:
                    pipe.close()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class Mosquitto(LocalBroker):
    """A Mosquitto process on 127.0.0.1:``port`` keeping its state and log in ``directory``.

    With ``dynsec_file`` set, anonymous clients are refused and each login may only do what its
    roles in that file grant, enforced by Mosquitto's dynamic-security plugin, which also checks
    SUBSCRIBE (a refused subscription never joins a shared group). The plugin rewrites the file
    when its ``$CONTROL`` topic changes a login, so its directory must be writable.

    With ``tls`` set (a :class:`devstack.broker_tls.BrokerTLSDir`), a second listener on
    ``tls_port`` speaks TLS 1.2+ only and requires a client certificate signed by the CA;
    the plaintext listener stays on loopback for tests and local tools.
    """

    tls: BrokerTLSDir | None = None
    tls_port: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tls is not None and not self.tls_port:
            self.tls_port = free_port()

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def write_config(self) -> Path:
        lines = [
            # Started as root, Mosquitto would switch to the 'mosquitto' user and lose access to
            # its state directory; as anyone else this line is ignored.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.directory}/",
            "autosave_interval 5",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            "max_queued_bytes 0",
            f"max_inflight_messages {MAX_INFLIGHT}",
            f"max_packet_size {MAX_PACKET_SIZE}",
            "persistent_client_expiration 1d",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if self.tls is not None:
            lines += tls_listener_lines(self.tls, port=self.tls_port, bind="127.0.0.1")
        if self.dynsec_file is not None:
            plugin = find_dynsec_plugin()
            if plugin is None:
                raise BrokerError(
                    "Mosquitto's dynamic-security plugin is not installed (Debian: apt-get install mosquitto)"
                )
            lines += ["allow_anonymous false", f"plugin {plugin}", f"plugin_opt_config_file {self.dynsec_file}"]
        else:
            lines.append("allow_anonymous true")
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def start(self, *, timeout_s: float = 10.0) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.write_config()
        # Its own session: a terminal's Ctrl-C reaches only our process, which drains, then stops it.
        self.process = subprocess.Popen(  # noqa: S603 (our own binary and config)
            [binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise BrokerError(f"mosquitto exited with {self.process.returncode}: {err.strip()[:500]}")
            try:
                for port in (self.port, self.tls_port) if self.tls is not None else (self.port,):
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        pass
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout_s} s")
