"""Change a deployment's broker logins: through the running broker's ``$CONTROL`` topic when it
answers, in its config file when it does not.

Why two ways: Mosquitto's dynamic-security plugin owns its config file while the broker runs. It
rewrites the file after every change made through ``$CONTROL/dynamic-security/v1`` and never
rereads it, so an edit made to the file under a running broker is silently overwritten by the
next change, and lost at the next restart. A running broker is therefore changed only through
``$CONTROL`` (the plugin applies it at once, persists it and, for ``deleteClient``, disconnects
the client); a stopped one only through the file, which it reads when it starts.

"The broker answers" means: a broker at the address accepted the admin login and replied on
``$CONTROL/dynamic-security/v1/response``. Nothing listening, or a broker that refuses the admin
login (not this deployment's broker: Debian's own service on 1883, say) or never replies (the
embedded amqtt broker, which has no ``$CONTROL``, rereads the file on its next check instead),
means the file is the place; the returned :class:`BrokerChange` says which happened and why.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.mqtt_tls import TLSFiles, client_context
from devstack.broker_auth import (
    ADMIN_USER,
    CONTROL_TOPIC,
    BrokerAuthDir,
    Login,
    add_devices,
    device_acls,
    device_role,
    known_users,
    remove_device,
)
from devstack.broker_tls import BrokerTLSDir
from protocol.errors import AssetproofError

__all__ = [
    "BrokerChange",
    "BrokerControlError",
    "BrokerNotAnsweringError",
    "DynsecControl",
    "add_device_logins",
    "parse_address",
    "remove_device_login",
]

RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
_FILE_NOTE = "Mosquitto reads the file when it starts, the embedded amqtt broker at its next check"
_BATCH = 100  # devices per $CONTROL message (3 commands each)


class BrokerControlError(AssetproofError):
    """The broker answered but refused or failed a change."""


class BrokerNotAnsweringError(BrokerControlError):
    """No broker at the address answered on ``$CONTROL`` as this deployment's admin."""


@dataclass(frozen=True, slots=True)
class BrokerChange:
    via: Literal["control", "file"]
    detail: str


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BrokerControlError(f"broker address must be HOST:PORT, got {address!r}")
    return host, int(port)


class DynsecControl:
    """One admin connection to a running broker's dynamic-security plugin."""

    def __init__(
        self, *, host: str, port: int, admin: Login, timeout_s: float = 3.0, tls: TLSFiles | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self._connack: Any = None
        self._suback: list[Any] | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"assetproof-admin-{secrets.token_hex(4)}", protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(admin.username, admin.password)
        if tls is not None:
            self._client.tls_set_context(client_context(tls))
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._closed = False
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as exc:  # refused, unreachable, unknown host
            why = f"{exc.__class__.__name__}: {exc}"
            raise BrokerNotAnsweringError(f"nothing answered at {host}:{port} ({why})") from None
        self._client.loop_start()
        try:
            self._wait(lambda: self._connack is not None or self._closed, f"no CONNACK from {host}:{port}")
            if self._connack is None:
                raise BrokerNotAnsweringError(f"{host}:{port} closed the connection before CONNACK (no MQTT v5)")
            connack: Any = self._connack
            if connack.is_failure:
                raise BrokerNotAnsweringError(f"the broker at {host}:{port} refused the admin login ({connack})")
            self._client.subscribe(RESPONSE_TOPIC, qos=1)
            self._wait(lambda: self._suback is not None, f"no SUBACK from {host}:{port}")
            assert self._suback is not None
            if any(r.is_failure for r in self._suback):
                why = f"the broker at {host}:{port} has no $CONTROL for the admin ({self._suback})"
                raise BrokerNotAnsweringError(why)
            # A broker that lets anyone in (Debian's default service) accepts the login and the
            # SUBSCRIBE but has no plugin behind $CONTROL: only a reply proves it is ours.
            try:
                self.run([{"command": "getDefaultACLAccess"}])
            except BrokerControlError:
                why = f"no $CONTROL response from {host}:{port} (not a dynsec broker)"
                raise BrokerNotAnsweringError(why) from None
        except BaseException:
            self.close()
            raise

    def _wait(self, condition: Any, what: str, error: type[BrokerControlError] = BrokerNotAnsweringError) -> None:
        with self._lock:
            if not self._lock.wait_for(condition, self.timeout_s):
                raise error(what)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        with self._lock:
            self._connack = reason
            self._lock.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _m: int, reasons: list[Any], _p: object) -> None:
        with self._lock:
            self._suback = list(reasons)
            self._lock.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            for response in responses:
                if isinstance(response, dict) and isinstance(response.get("correlationData"), str):
                    self._responses[response["correlationData"]] = response
            self._lock.notify_all()

    def run(self, commands: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message; their responses in order (each may hold ``error``).
        :class:`BrokerControlError` when the plugin does not reply in time."""
        tag = secrets.token_hex(6)
        tagged = [{**command, "correlationData": f"{tag}-{i}"} for i, command in enumerate(commands)]
        self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
        keys = [c["correlationData"] for c in tagged]
        self._wait(
            lambda: all(k in self._responses for k in keys),
            f"no $CONTROL response within {self.timeout_s} s: the change may be partly applied",
            BrokerControlError,
        )
        with self._lock:
            return [self._responses.pop(k) for k in keys]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> DynsecControl:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _errors(responses: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{r.get('command')}: {r['error']}" for r in responses if "error" in r]


def _connect(auth: BrokerAuthDir, broker: str | None, tls_ca: Path | None) -> DynsecControl:
    if broker is None:
        raise BrokerNotAnsweringError("no broker address given")
    host, port = parse_address(broker)
    # Over TLS the admin presents the client certificate provisioning issued to its login.
    tls = None if tls_ca is None else replace(BrokerTLSDir(auth.directory / "tls").client(ADMIN_USER), ca=tls_ca)
    return DynsecControl(host=host, port=port, admin=auth.admin_login(), tls=tls)


def add_device_logins(
    auth: BrokerAuthDir, *, devices: Mapping[str, str], broker: str | None, tls_ca: Path | None = None
) -> BrokerChange:
    """Give new ``devices`` (id -> password) their logins, through ``$CONTROL`` when the broker at
    ``broker`` (HOST:PORT, None for "not running") answers, else in the config file."""
    clash = sorted(known_users(auth.config) & set(devices))  # the file is the broker's last saved state
    if clash:
        raise BrokerControlError(f"broker users already exist: {clash[:5]}")
    try:
        control = _connect(auth, broker, tls_ca)
    except BrokerNotAnsweringError as why:
        add_devices(path=auth.config, devices=devices)
        return BrokerChange("file", f"added to {auth.config} ({why}; {_FILE_NOTE})")
    with control:
        items = list(devices.items())
        for start in range(0, len(items), _BATCH):
            commands: list[dict[str, Any]] = []
            for device, password in items[start : start + _BATCH]:
                role = device_role(device)
                commands.append({"command": "createRole", "rolename": role})
                commands += [{"command": "addRoleACL", "rolename": role, **acl} for acl in device_acls(device)]
                commands.append(
                    {"command": "createClient", "username": device, "password": password, "roles": [{"rolename": role}]}
                )
            errors = _errors(control.run(commands))
            if errors:
                raise BrokerControlError(f"the broker refused part of the change: {errors[:5]}")
    return BrokerChange("control", f"added to the running broker at {broker} through $CONTROL (it saved {auth.config})")


def remove_device_login(
    auth: BrokerAuthDir, *, device_id: str, broker: str | None, tls_ca: Path | None = None
) -> BrokerChange:
    """Remove a device's login: through ``$CONTROL`` when the broker answers (the plugin also
    disconnects the device at once), else from the config file. Without a config file there is no
    broker login to remove (a deployment whose broker access is managed elsewhere)."""
    if not auth.config.exists():
        return BrokerChange("file", f"no broker access config at {auth.config}: no login to remove")
    try:
        control = _connect(auth, broker, tls_ca)
    except BrokerNotAnsweringError as why:
        removed = remove_device(path=auth.config, device_id=device_id)
        what = "removed from" if removed else "no login to remove in"
        return BrokerChange("file", f"{what} {auth.config} ({why}; {_FILE_NOTE})")
    with control:
        responses = control.run(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ]
        )
    client_error = responses[0].get("error")
    if client_error not in (None, "Client not found"):
        raise BrokerControlError(f"the broker refused to delete {device_id!r}: {client_error}")
    if client_error:
        return BrokerChange("control", f"the running broker at {broker} had no login for {device_id}")
    return BrokerChange("control", f"deleted from the running broker at {broker} through $CONTROL and disconnected")
