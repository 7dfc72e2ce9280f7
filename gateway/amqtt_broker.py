"""Start the embedded amqtt broker: the demo's fallback when Mosquitto is not installed.

amqtt (pure Python, asyncio) speaks **MQTT 3.1.1 only**: no shared subscriptions, no v5
properties or reason codes. Clients must connect in 3.1.1 mode (``GatewayConfig(protocol="3.1.1")``,
``Publisher(protocol="3.1.1")``), with exactly one gateway worker. It moves a few thousand
messages a second: enough for the demo, not for load (use Mosquitto, EMQX or HiveMQ for that).

The broker runs in a child process (``python -m gateway.amqtt_broker CONFIG``), so its event
loop and the GIL it holds do not slow the demo's threads, and listens on 127.0.0.1 only.

Authentication and access control are Mosquitto's own files, as :mod:`device_sim.broker_auth`
writes them, enforced by two small amqtt plugins (in :mod:`gateway._amqtt`):

- ``password_file``: ``user:$7$...`` lines (PBKDF2-SHA512, the format ``mosquitto_passwd`` 2.0
  writes); a client whose user name and password do not match is refused (CONNACK 5).
- ``acl_file``: ``user NAME`` blocks of ``topic [read|write|readwrite] FILTER`` lines; a client may
  publish only where it has write access, subscribe to and receive only what it may read. MQTT
  3.1.1 has no way to tell a publisher its message was refused: the broker acknowledges it and
  drops it (Mosquitto does the same for 3.1.1 clients).

Without a password file any client may connect (acceptable because the listener is loopback
only, and the gateway verifies every reading's signature anyway); sessions stay persistent either
way, because amqtt keeps nothing for sessions it considers anonymous.

amqtt 0.12.1 drops a QoS 1 message sent to a subscriber when the PUBACK takes longer than 5 s or
the connection closes before it, and never redelivers it. :mod:`gateway._amqtt` replaces that
one step in the child process so the broker behaves as MQTT 3.1.1 requires and Mosquitto does: a
message stays in the session until its PUBACK and is sent again after a reconnect. The broker
keeps its state in memory only: a broker restart loses queued messages and sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.mosquitto import BrokerError, LocalBroker

__all__ = ["AclRules", "AmqttBroker", "acl_allows", "amqtt_available", "check_password", "parse_acl", "read_passwords"]

Access = Literal["read", "write"]
AclRules = Mapping[str, list[tuple[str, str]]]
"""user -> [(access, topic filter)], access being ``read``, ``write`` or ``readwrite``."""

READY_LINE = "amqtt-ready"
SESSION_EXPIRY_S = 24 * 3600
"""Persistent sessions of disconnected clients are kept this long (Mosquitto's
``persistent_client_expiration 1d`` in :mod:`gateway.mosquitto`)."""


def amqtt_available() -> bool:
    return importlib.util.find_spec("amqtt") is not None


# --- Mosquitto's password and ACL files, as pure functions ---------------------------------------


def read_passwords(path: Path) -> dict[str, str]:
    """``user -> $7$ hash`` from a Mosquitto password file."""
    users: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed.startswith("$7$"):
            raise BrokerError(f"{path}:{number}: not a 'user:$7$...' line")
        users[user] = hashed
    return users


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash, as Mosquitto 2.0 decides (the same check as
    ``device_sim.broker_auth.check_password``, which the gateway may not import)."""
    try:
        _, seven, iterations, salt, digest = hashed.split("$")
        if seven != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def parse_acl(text: str) -> dict[str, list[tuple[str, str]]]:
    """The ``user`` / ``topic`` lines of a Mosquitto ACL file. Anything else (patterns, rules
    before the first ``user`` line) is refused rather than half understood."""
    rules: dict[str, list[tuple[str, str]]] = {}
    user: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user" and len(words) == 2:
            user = words[1]
            rules.setdefault(user, [])
        elif words[0] == "topic" and user is not None and len(words) in (2, 3):
            access = words[1] if len(words) == 3 else "readwrite"
            if access not in ("read", "write", "readwrite"):
                raise BrokerError(f"ACL line {number}: unsupported access {access!r}")
            rules[user].append((access, words[-1]))
        else:
            raise BrokerError(f"ACL line {number}: unsupported rule {line[:80]!r}")
    return rules


def _covers(pattern: str, requested: str) -> bool:
    """Whether ACL filter ``pattern`` covers ``requested`` (a topic, or a subscription filter
    whose wildcards must be wildcards in the pattern too)."""
    want = requested.split("/")
    for i, level in enumerate(pattern.split("/")):
        if level == "#":
            return True
        if i >= len(want) or want[i] == "#" or (level != "+" and level != want[i]):
            return False
    return len(want) == len(pattern.split("/"))


def acl_allows(rules: AclRules, user: str | None, topic: str, access: Access) -> bool:
    """Whether ``user`` may ``read`` (subscribe to, receive) or ``write`` (publish) ``topic``."""
    if user is None:
        return False
    return any(access in granted and _covers(pattern, topic) for granted, pattern in rules.get(user, ()))


# --- the launcher ---------------------------------------------------------------------------------


@dataclass
class AmqttBroker(LocalBroker):
    """An amqtt broker process on 127.0.0.1:``port`` with its config and log in ``directory``;
    the same shape as :class:`gateway.mosquitto.Mosquitto`, except that a restart loses sessions
    and queued messages (amqtt keeps no state on disk).

    With ``password_file`` (and ``acl_file``) set, clients must log in and may only do what the
    ACL grants; without, any client on this machine may connect (see the module docstring).
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
            "password_file": None if self.password_file is None else str(self.password_file),
            "acl_file": None if self.acl_file is None else str(self.acl_file),
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
                [sys.executable, "-m", "gateway.amqtt_broker", str(self.config_path)],
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
    """The child process: ``python -m gateway.amqtt_broker CONFIG.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gateway.amqtt_broker CONFIG.json", file=sys.stderr)
        return 2
    from gateway._amqtt import serve

    return serve(json.loads(Path(args[0]).read_text()), ready_line=READY_LINE)


if __name__ == "__main__":
    sys.exit(main())
