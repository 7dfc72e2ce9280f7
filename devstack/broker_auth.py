"""The broker's access rules for a fleet: Mosquitto's dynamic-security config (``dynsec.json``).

Why not ``password_file`` + ``acl_file``: Mosquitto 2.0's ACL file has no subscribe rule. It
grants every SUBSCRIBE, even to the gateways' shared subscription, and then refuses delivery on
the rogue member's turn, after the publisher already had its PUBACK: the message is gone. The
dynamic-security plugin checks the SUBSCRIBE itself (the full ``$share/<group>/...`` filter), so a
device's subscription is refused (SUBACK 0x87) and never joins the group.

What the file grants (everything else is refused by ``defaultACLAccess``):

- each device (role ``assetproof-device-<id>``): publish on its own telemetry topic, nothing else;
- the gateway login (role ``assetproof-gateway``): SUBSCRIBE to exactly
  ``$share/<group>/assetproof/v1/devices/+/telemetry`` and the plain filter (MQTT 3.1.1 mode has
  no shared subscriptions), receive telemetry; it may not publish;
- the admin login (role ``assetproof-admin``): ``$CONTROL/dynamic-security/#`` only, the plugin's
  control topic, through which a running broker's logins are added and removed
  (:mod:`devstack.broker_control`);
- optionally a load-test writer (role ``assetproof-load-writer``): publish on every device's
  topic (the publisher's multiplexed benchmark mode; never give it to a device).

Passwords are stored as the plugin stores them: ``password`` = base64(PBKDF2-HMAC-SHA512(password,
salt, iterations)), ``salt`` = base64 of 12 random bytes. 101 iterations (``mosquitto_ctrl``'s
default) is weak against guessing, which is why every password here is a 192-bit random token.

The broker owns this file while it runs: the plugin rewrites it after every ``$CONTROL`` change
and never rereads it (not even on SIGHUP). Edit it here only while the broker is stopped.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.mqtt_tls import GATEWAY_LOGIN
from device_sim.keystore import write_private_file
from devstack.dynsec import password_digest, password_matches
from protocol.errors import AssetproofError
from protocol.topics import SUBSCRIPTION, shared_subscription, telemetry_topic

__all__ = [
    "ADMIN_ROLE",
    "ADMIN_USER",
    "CONTROL_TOPIC",
    "DEFAULT_SHARE_GROUP",
    "GATEWAY_ROLE",
    "GATEWAY_USER",
    "LOAD_ROLE",
    "BrokerAuthDir",
    "BrokerAuthError",
    "Login",
    "add_devices",
    "check_password",
    "device_acls",
    "device_role",
    "hash_password",
    "remove_device",
    "write_broker_auth",
]

ITERATIONS = 101
SALT_BYTES = 12
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
ADMIN_USER = "assetproof-admin"
GATEWAY_USER = GATEWAY_LOGIN
ADMIN_ROLE = "assetproof-admin"
GATEWAY_ROLE = "assetproof-gateway"
LOAD_ROLE = "assetproof-load-writer"
DEVICE_ROLE_PREFIX = "assetproof-device-"
DEFAULT_SHARE_GROUP = "assetproof-gateway"
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

DEFAULT_ACL_ACCESS: Mapping[str, bool] = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    # Dropping a subscription it holds disturbs nobody else.
    "unsubscribe": True,
}


class BrokerAuthError(AssetproofError):
    """A user name or password cannot be written, a user already exists, or the file is not a
    dynamic-security config this module wrote."""


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class BrokerAuthDir:
    """Where provisioning keeps the broker's access: the plugin's config and the two service
    logins (JSON ``{"username", "password"}``, mode 0600) that are not devices."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "dynsec.json"

    @property
    def gateway_login_file(self) -> Path:
        return self.directory / "gateway.json"

    @property
    def admin_login_file(self) -> Path:
        return self.directory / "admin.json"

    def gateway_login(self) -> Login:
        return _read_login(self.gateway_login_file)

    def admin_login(self) -> Login:
        return _read_login(self.admin_login_file)

    def write_login(self, path: Path, login: Login) -> None:
        write_private_file(path, json.dumps({"username": login.username, "password": login.password}).encode())


def _read_login(path: Path) -> Login:
    try:
        data = json.loads(path.read_text())
        return Login(str(data["username"]), str(data["password"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BrokerAuthError(f"{path} is not a broker login: {exc}") from None


# --- passwords -------------------------------------------------------------------------------------


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> dict[str, Any]:
    """The ``password``, ``salt`` and ``iterations`` fields the plugin stores for ``password``."""
    _check_password(password)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise BrokerAuthError(f"the plugin only reads {SALT_BYTES}-byte salts")
    digest = password_digest(password, salt=salt, iterations=iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def check_password(password: str, client: Mapping[str, Any]) -> bool:
    """Whether ``password`` matches a client entry of the config (as the plugin decides)."""
    try:
        expected = base64.b64decode(client["password"], validate=True)
        salt = base64.b64decode(client["salt"], validate=True)
        iterations = int(client["iterations"])
    except (KeyError, TypeError, ValueError):
        return False
    return password_matches(password, expected=expected, salt=salt, iterations=iterations)


def _check_user(user: str) -> str:
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise BrokerAuthError(f"invalid broker user name {user!r}")
    return user


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password or any(c in password for c in "\r\n\0"):
        raise BrokerAuthError("a broker password must be a non-empty single-line string")


# --- roles -----------------------------------------------------------------------------------------


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + _check_user(device_id)


def device_acls(device_id: str) -> list[dict[str, Any]]:
    """A device's only right: publishing on its own topic."""
    return [_acl("publishClientSend", telemetry_topic(device_id))]


def gateway_acls(share_group: str) -> list[dict[str, Any]]:
    # subscribeLiteral: the plugin compares the whole filter, $share prefix included, so only this
    # exact shared subscription (and the plain filter) is granted; no wider or other-group filter.
    return [
        _acl("subscribeLiteral", shared_subscription(share_group)),
        _acl("subscribeLiteral", SUBSCRIPTION),
        _acl("publishClientReceive", SUBSCRIPTION),
    ]


def admin_acls() -> list[dict[str, Any]]:
    control = "$CONTROL/dynamic-security/#"
    return [
        _acl("publishClientSend", control),
        _acl("publishClientReceive", control),
        _acl("subscribePattern", control),
    ]


def writer_acls() -> list[dict[str, Any]]:
    return [_acl("publishClientSend", SUBSCRIPTION)]


def _client(user: str, password: str, role: str) -> dict[str, Any]:
    return {"username": _check_user(user), **hash_password(password), "roles": [{"rolename": role, "priority": 0}]}


def _device_entries(devices: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    clients = [_client(d, password, device_role(d)) for d, password in devices.items()]
    roles = [{"rolename": device_role(d), "acls": device_acls(d)} for d in devices]
    return clients, roles


# --- the file --------------------------------------------------------------------------------------


def write_broker_auth(
    *,
    path: Path,
    devices: Mapping[str, str],
    gateway: Login,
    admin: Login,
    share_group: str = DEFAULT_SHARE_GROUP,
    load_writer: Login | None = None,
) -> None:
    """Write a fresh config (atomically, mode 0600) for ``devices`` (id -> password), the gateway
    and admin logins and, if given, the load-test writer."""
    services = [(gateway, GATEWAY_ROLE), (admin, ADMIN_ROLE)] + ([(load_writer, LOAD_ROLE)] if load_writer else [])
    names = [login.username for login, _ in services]
    if len(set(names)) != len(names) or set(names) & set(devices):
        raise BrokerAuthError(f"the service logins {names} must differ from each other and from every device id")
    clients, roles = _device_entries(devices)
    clients += [_client(login.username, login.password, role) for login, role in services]
    roles += [
        {"rolename": GATEWAY_ROLE, "acls": gateway_acls(share_group)},
        {"rolename": ADMIN_ROLE, "acls": admin_acls()},
    ]
    if load_writer is not None:
        roles.append({"rolename": LOAD_ROLE, "acls": writer_acls()})
    _write(path, {"defaultACLAccess": dict(DEFAULT_ACL_ACCESS), "clients": clients, "groups": [], "roles": roles})


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BrokerAuthError(f"cannot read the broker's access config {path}: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("clients"), list):
        raise BrokerAuthError(f"{path} is not a dynamic-security config (no clients list)")
    config.setdefault("roles", [])
    return config


def _write(path: Path, config: Mapping[str, Any]) -> None:
    write_private_file(Path(path), (json.dumps(config, indent=1) + "\n").encode())


def known_users(path: Path) -> set[str]:
    return {c.get("username") for c in read_config(path)["clients"]}


def add_devices(*, path: Path, devices: Mapping[str, str]) -> None:
    """Add ``devices`` to an existing config (the broker stopped: it would overwrite the edit);
    refuses a user or role the file already has, leaving it untouched."""
    config = read_config(path)
    clients, roles = _device_entries(devices)
    clash = sorted({c.get("username") for c in config["clients"]} & set(devices))
    clash += sorted({r.get("rolename") for r in config["roles"]} & {r["rolename"] for r in roles})
    if clash:
        raise BrokerAuthError(f"broker users already exist: {clash[:5]}")
    config["clients"] += clients
    config["roles"] += roles
    _write(path, config)


def remove_device(*, path: Path, device_id: str) -> bool:
    """Remove a device's login and role from the config (the broker stopped); whether it was there."""
    config = read_config(path)
    role = device_role(device_id)
    clients = [c for c in config["clients"] if c.get("username") != device_id]
    roles = [r for r in config["roles"] if r.get("rolename") != role]
    if len(clients) == len(config["clients"]) and len(roles) == len(config["roles"]):
        return False
    config["clients"], config["roles"] = clients, roles
    _write(path, config)
    return True
