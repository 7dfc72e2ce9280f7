"""Start the embedded amqtt broker: the demo's fallback when Mosquitto is not installed.

amqtt (pure Python, asyncio) speaks **MQTT 3.1.1 only**: no shared subscriptions, no v5
properties or reason codes. Clients must connect in 3.1.1 mode (``GatewayConfig(protocol="3.1.1")``,
``Publisher(protocol="3.1.1")``), with exactly one gateway worker. It moves a few thousand
messages a second: enough for the demo, not for load (use Mosquitto, EMQX or HiveMQ for that).

The broker runs in a child process (``python -m devstack.amqtt_broker CONFIG``), so its event
loop and the GIL it holds do not slow the demo's threads, and listens on 127.0.0.1 only.

Authentication and access control come from the same file Mosquitto uses: the
dynamic-security config that :mod:`devstack.broker_auth` writes (``dynsec_file``), decided as
Mosquitto's plugin decides (:mod:`devstack.dynsec`) by two small amqtt plugins (in
:mod:`devstack._amqtt`):

- a client whose user name and password are not in the file is refused (CONNACK 5);
- a SUBSCRIBE the file does not grant is refused (SUBACK 0x80): a device can never subscribe;
- a publish the file does not grant is acknowledged and dropped (MQTT 3.1.1 has no way to tell a
  publisher no; Mosquitto does the same for 3.1.1 clients), a delivery it does not grant is not
  sent.

amqtt has no ``$CONTROL`` topic: instead it reads the file again whenever it changes, so a login
that ``devices revoke`` removes from the file can no longer connect, publish or receive, without a
restart (a connection it holds stays open until it closes).

Without a file any client may connect (acceptable because the listener is loopback
only, and the gateway verifies every reading's signature anyway); sessions stay persistent either
way, because amqtt keeps nothing for sessions it considers anonymous.

amqtt 0.12.1 drops a QoS 1 message sent to a subscriber when the PUBACK takes longer than 5 s or
the connection closes before it, and never redelivers it. :mod:`devstack._amqtt` replaces that
one step in the child process so the broker behaves as MQTT 3.1.1 requires and Mosquitto does: a
message stays in the session until its PUBACK and is sent again after a reconnect. The broker
keeps its state in memory only: a broker restart loses queued messages and sessions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.mosquitto import BrokerError, LocalBroker

__all__ = ["AmqttBroker", "amqtt_available"]

READY_LINE = "amqtt-ready"
SESSION_EXPIRY_S = 24 * 3600
"""Persistent sessions of disconnected clients are kept this long (Mosquitto's
``persistent_client_expiration 1d`` in :mod:`devstack.mosquitto`)."""


def amqtt_available() -> bool:
    return importlib.util.find_spec("amqtt") is not None


# --- the launcher ---------------------------------------------------------------------------------


@dataclass
class AmqttBroker(LocalBroker):
    """An amqtt broker process on 127.0.0.1:``port`` with its config and log in ``directory``;
    the same shape as :class:`devstack.mosquitto.Mosquitto`, except that a restart loses sessions
    and queued messages (amqtt keeps no state on disk).

    With ``dynsec_file`` set, clients must log in and may only do what their roles in it grant;
    without, any client on this machine may connect (see the module docstring).
    """

    @property
    def config_path(self) -> Path:
        return self.directory / "amqtt.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "amqtt.log"

    def write_config(self) -> Path:
        config = {
            "port": self.port,
            "dynsec_file": None if self.dynsec_file is None else str(self.dynsec_file),
            "log_file": str(self.log_path),
            "session_expiry_s": SESSION_EXPIRY_S,
        }
        self.config_path.write_text(json.dumps(config, indent=1) + "\n")
        return self.config_path

    def start(self, *, timeout_s: float = 15.0) -> None:
        if not amqtt_available():
            raise BrokerError("amqtt is not installed (pip install amqtt)")
        self.write_config()
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        # stderr goes to the log file: a pipe nobody reads would block the broker once full.
        with self.log_path.open("ab") as stderr:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "devstack.amqtt_broker", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                start_new_session=True,  # Ctrl-C reaches only our process, which drains, then stops it
            )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.process.stdout], [], [], min(left, 0.2))
            if ready:
                line = self.process.stdout.readline().decode(errors="replace").strip()
                if line == READY_LINE:
                    return
                if not line and self.process.poll() is not None:
                    break
            elif self.process.poll() is not None:
                break
        if self.process.poll() is not None:
            code = self.process.returncode
            self._reap()
            err = self.log_path.read_text(errors="replace").strip()[-500:]
            raise BrokerError(f"amqtt exited with {code}: {err}")
        self.kill()
        raise BrokerError(f"amqtt did not listen on port {self.port} within {timeout_s} s")


def main(argv: list[str] | None = None) -> int:
    """The child process: ``python -m devstack.amqtt_broker CONFIG.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m devstack.amqtt_broker CONFIG.json", file=sys.stderr)
        return 2
    from devstack._amqtt import serve

    return serve(json.loads(Path(args[0]).read_text()), ready_line=READY_LINE)


if __name__ == "__main__":
    sys.exit(main())
