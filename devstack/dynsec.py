"""Mosquitto's dynamic-security config, read and decided as the plugin decides: the embedded amqtt
broker (:mod:`devstack.amqtt_broker`) enforces the same file as Mosquitto, so the demo's fallback
broker refuses a device's SUBSCRIBE and a foreign publish just as Mosquitto does.

Pure functions over the file's JSON (written by ``devstack.broker_auth``, which the gateway may
not import). What is decided, as Mosquitto 2.0's plugin does:

- a login: the client exists, is not ``disabled``, and PBKDF2-HMAC-SHA512(password, salt,
  iterations) equals its ``password``;
- an action: the client's roles by descending priority, then its groups' roles, each role's ACLs
  of the action's types by descending priority; the first ACL whose topic matches decides
  (``allow``); none matching, ``defaultACLAccess`` decides. Publishing is ``publishClientSend``,
  receiving ``publishClientReceive``, subscribing ``subscribeLiteral`` (the exact filter,
  ``$share/...`` included) then ``subscribePattern``.

One deliberate difference: a ``subscribePattern`` here covers a requested filter only if every
wildcard of the request is a wildcard of the pattern (Mosquitto 2.0.11 would let a ``+`` pattern
level cover a requested ``#``). assetproof's files grant no subscribePattern to devices or
gateways, so the two brokers decide the same for every login provisioning writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from protocol.errors import AssetproofError

__all__ = [
    "Action",
    "DynsecError",
    "DynsecPolicy",
    "filter_covers",
    "load_policy",
    "parse_policy",
    "password_digest",
    "password_matches",
    "topic_matches",
]

Action = Literal["publish", "receive", "subscribe", "unsubscribe"]
_TYPES: Mapping[str, tuple[str, ...]] = {
    "publish": ("publishClientSend",),
    "receive": ("publishClientReceive",),
    "subscribe": ("subscribeLiteral", "subscribePattern"),
    "unsubscribe": ("unsubscribeLiteral", "unsubscribePattern"),
}
_DEFAULT_KEY: Mapping[str, str] = {
    "publish": "publishClientSend",
    "receive": "publishClientReceive",
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
}
# Mosquitto's own defaults for a key the file leaves out.
_DEFAULTS: Mapping[str, bool] = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


class DynsecError(AssetproofError):
    """The file is not a dynamic-security config this module can decide on."""


@dataclass(frozen=True, slots=True)
class _Acl:
    acltype: str
    topic: str
    allow: bool
    priority: int


@dataclass(frozen=True, slots=True)
class _Client:
    password: bytes
    salt: bytes
    iterations: int
    disabled: bool
    roles: tuple[str, ...]  # in decision order
    groups: tuple[str, ...]


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether filter ``pattern`` matches the concrete ``topic`` (MQTT rules: a wildcard in the
    first level never matches a ``$`` topic)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    want = topic.split("/")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(want) or (level != "+" and level != want[i]):
            return False
    return len(want) == len(levels)


def filter_covers(pattern: str, requested: str) -> bool:
    """Whether ``pattern`` covers the subscription filter ``requested``: a wildcard in the
    request only where the pattern has a wildcard too."""
    want = requested.split("/")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(want) or want[i] == "#" or (level != "+" and level != want[i]):
            return False
    return len(want) == len(levels)


def password_digest(password: str, *, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA512 of ``password``: what the plugin stores, base64-encoded, as a client's
    ``password``. The one place it is computed, for writing a config and for checking a login."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


def password_matches(password: str, *, expected: bytes, salt: bytes, iterations: int) -> bool:
    """Whether ``password`` hashes to ``expected`` (compared in constant time)."""
    return hmac.compare_digest(password_digest(password, salt=salt, iterations=iterations), expected)


@dataclass(frozen=True, slots=True)
class DynsecPolicy:
    clients: Mapping[str, _Client]
    roles: Mapping[str, tuple[_Acl, ...]]
    groups: Mapping[str, tuple[str, ...]]
    default: Mapping[str, bool]

    def authenticate(self, username: str | None, password: str | None) -> bool:
        client = self.clients.get(username or "")
        if client is None or client.disabled or password is None:
            return False
        return password_matches(password, expected=client.password, salt=client.salt, iterations=client.iterations)

    def allows(self, username: str | None, action: Action, topic: str) -> bool:
        """Whether ``username`` may ``action`` ``topic`` (a topic, or a filter for (un)subscribe)."""
        client = self.clients.get(username or "")
        if client is None:
            return False  # anonymous or deleted: nothing (the brokers refuse anonymous logins anyway)
        roles = list(client.roles) + [r for g in client.groups for r in self.groups.get(g, ())]
        for role in roles:
            for acl in self.roles.get(role, ()):
                if acl.acltype not in _TYPES[action]:
                    continue
                if acl.acltype.endswith("Literal"):
                    hit = acl.topic == topic
                elif action in ("subscribe", "unsubscribe"):
                    hit = filter_covers(acl.topic, topic)
                else:
                    hit = topic_matches(acl.topic, topic)
                if hit:
                    return acl.allow
        return self.default[_DEFAULT_KEY[action]]


def _by_priority(entries: list[Any], name: str) -> tuple[str, ...]:
    ordered = sorted(entries, key=lambda e: -int(e.get("priority", -1)))
    return tuple(str(e[name]) for e in ordered)


def _entries(data: Any, key: str) -> list[dict[str, Any]]:
    entries = data.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DynsecError(f"not a dynamic-security config: {key!r} is not a list of objects")
    return entries


def parse_policy(text: str) -> DynsecPolicy:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise DynsecError("not a dynamic-security config: not a JSON object")
        clients = {}
        for entry in _entries(data, "clients"):
            if "password" not in entry:
                continue  # a client without a password cannot log in
            clients[str(entry["username"])] = _Client(
                password=base64.b64decode(entry["password"], validate=True),
                salt=base64.b64decode(entry["salt"], validate=True),
                iterations=int(entry["iterations"]),
                disabled=bool(entry.get("disabled", False)),
                roles=_by_priority(entry.get("roles", []), "rolename"),
                groups=_by_priority(entry.get("groups", []), "groupname"),
            )
        roles = {}
        for role in _entries(data, "roles"):
            acls = [
                _Acl(str(a["acltype"]), str(a["topic"]), bool(a.get("allow", False)), int(a.get("priority", 0)))
                for a in role.get("acls", [])
            ]
            unknown = {a.acltype for a in acls} - {t for types in _TYPES.values() for t in types}
            if unknown:
                raise DynsecError(f"role {role['rolename']!r}: unknown ACL type(s) {sorted(unknown)}")
            roles[str(role["rolename"])] = tuple(sorted(acls, key=lambda a: -a.priority))
        groups = {str(g["groupname"]): _by_priority(g.get("roles", []), "rolename") for g in _entries(data, "groups")}
        default = {**_DEFAULTS, **{k: bool(v) for k, v in data.get("defaultACLAccess", {}).items()}}
    except DynsecError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DynsecError(f"not a dynamic-security config: {exc.__class__.__name__}: {exc}") from None
    return DynsecPolicy(clients=clients, roles=roles, groups=groups, default=default)


def load_policy(path: Path) -> DynsecPolicy:
    try:
        return parse_policy(Path(path).read_text())
    except OSError as exc:
        raise DynsecError(f"cannot read {path}: {exc}") from None
    except DynsecError as exc:
        raise DynsecError(f"{path}: {exc}") from None
