"""Mosquitto 2.0 ``password_file`` and ``acl_file`` for a fleet.

Password lines use the ``$7$`` format ``mosquitto_passwd`` 2.0 writes:
``user:$7$101$<base64 salt>$<base64 hash>``, the hash being PBKDF2-HMAC-SHA512 over the
password with a 12-byte random salt and 101 iterations. 101 iterations is weak against guessing,
which is why device passwords are 192-bit random tokens (``secrets.token_urlsafe(24)``): there
is nothing to guess.

The ACL lets each device publish only on its own telemetry topic (a stolen device key cannot
speak for another device at the broker, not only at the gateway), lets the gateway user read
every device's telemetry (plain or through ``$share/<group>/...``, which Mosquitto 2.0.11 checks
against the topic after the share prefix) and, optionally, lets one load-test user publish for
every device. Mosquitto rereads both files on SIGHUP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from device_sim.keystore import write_private_file
from protocol.errors import AssetproofError
from protocol.topics import SUBSCRIPTION, telemetry_topic

__all__ = [
    "BrokerAuthError",
    "add_devices",
    "check_password",
    "hash_password",
    "write_broker_auth",
]

ITERATIONS = 101
SALT_BYTES = 12
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ACL_USER = re.compile(r"^user (\S+)$", re.MULTILINE)


class BrokerAuthError(AssetproofError):
    """A user name or password cannot be written, or a user already exists."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``$7$...`` hash ``mosquitto_passwd`` 2.0 would write for ``password``."""
    _check_password(password)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (as Mosquitto would decide)."""
    try:
        _, seven, iterations, salt, digest = hashed.split("$")
        if seven != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        raw_salt = base64.b64decode(salt, validate=True)
        actual = hashlib.pbkdf2_hmac("sha512", password.encode(), raw_salt, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _check_user(user: str) -> str:
    # Mosquitto splits password lines at ':' and ACL lines at whitespace.
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise BrokerAuthError(f"invalid broker user name {user!r}")
    return user


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password or any(c in password for c in "\r\n\0"):
        raise BrokerAuthError("a broker password must be a non-empty single-line string")


def _password_lines(users: Mapping[str, str]) -> str:
    return "".join(f"{_check_user(user)}:{hash_password(password)}\n" for user, password in users.items())


def _device_acl(device_ids: Iterable[str]) -> str:
    return "".join(f"user {_check_user(d)}\ntopic write {telemetry_topic(d)}\n\n" for d in device_ids)


def _gateway_acl(gateway_user: str) -> str:
    return f"user {_check_user(gateway_user)}\ntopic read {SUBSCRIPTION}\n\n"


def _writer_acl(user: str) -> str:
    return f"user {_check_user(user)}\ntopic write {SUBSCRIPTION}\n\n"


def write_broker_auth(
    *,
    password_file: Path,
    acl_file: Path,
    devices: Mapping[str, str],
    gateway_user: str,
    gateway_password: str,
    load_user: str | None = None,
    load_password: str | None = None,
) -> None:
    """Rewrite both files (atomically, mode 0600) for ``devices`` (id -> password), the gateway
    user and, if given, a load-test user that may publish on every device's topic (for the
    publisher's multiplexed benchmark mode; never give it to a device)."""
    users = dict(devices)
    if gateway_user in users:
        raise BrokerAuthError(f"gateway user {gateway_user!r} is also a device id")
    users[gateway_user] = gateway_password
    acl = _gateway_acl(gateway_user) + _device_acl(devices)
    if load_user is not None:
        if load_user in users or load_password is None:
            raise BrokerAuthError("the load user needs a password and a name no other user has")
        users[load_user] = load_password
        acl += _writer_acl(load_user)
    # Build both texts before writing either, so a bad name leaves both files untouched.
    passwords = _password_lines(users)
    write_private_file(Path(password_file), passwords.encode())
    write_private_file(Path(acl_file), acl.encode())


def add_devices(*, password_file: Path, acl_file: Path, devices: Mapping[str, str]) -> None:
    """Add ``devices`` to existing files; refuses a user either file already knows."""
    old_passwords = Path(password_file).read_text()
    old_acl = Path(acl_file).read_text()
    known = {line.split(":", 1)[0] for line in old_passwords.splitlines() if line.strip()}
    known |= set(_ACL_USER.findall(old_acl))
    clash = sorted(known & set(devices))
    if clash:
        raise BrokerAuthError(f"broker users already exist: {clash[:5]}")
    passwords = old_passwords + ("" if not old_passwords or old_passwords.endswith("\n") else "\n")
    acl = old_acl + ("\n" if old_acl and not old_acl.endswith("\n\n") else "")
    passwords += _password_lines(devices)
    acl += _device_acl(devices)
    write_private_file(Path(password_file), passwords.encode())
    write_private_file(Path(acl_file), acl.encode())
