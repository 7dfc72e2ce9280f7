"""The amqtt broker process itself (imported only in the child :mod:`devstack.amqtt_broker` starts):
authentication and access plugins that enforce Mosquitto's dynamic-security config, and the QoS 1
delivery fix for amqtt 0.12.1."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import OUTGOING, OutgoingApplicationMessage, Session

from devstack.dynsec import Action as PolicyAction
from devstack.dynsec import DynsecError, DynsecPolicy, load_policy

log = logging.getLogger("assetproof.amqtt")

_PUBACK_CHECK_S = 5.0


class _PolicyFile:
    """The dynamic-security config, read again whenever the file changes (an offline
    ``devices revoke`` or provision edits it; Mosquitto would need a restart, this broker needs
    none). A file that does not parse keeps the last good policy and is logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._policy = load_policy(path)  # a broken file at start is fatal: the broker says why
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> DynsecPolicy:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            try:
                self._policy = load_policy(self.path)
                log.info("reloaded %s", self.path)
            except DynsecError as exc:
                log.error("keeping the previous access rules: %s", exc)
            self._stamp = stamp
        return self._policy


_files: dict[str, _PolicyFile] = {}


def _policy_file(path: str) -> _PolicyFile:
    if path not in _files:
        _files[path] = _PolicyFile(Path(path))
    return _files[path]


class DynsecAuth(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Refuses a client whose user name and password are not a client of the dynamic-security
    config (as Mosquitto's plugin decides: :mod:`devstack.dynsec`); with no file, accepts every
    client. Never marks a session anonymous: amqtt queues nothing for anonymous sessions, and the
    gateway's persistent session must be kept."""

    @dataclass
    class Config:
        dynsec_file: str | None = None

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        path = self.context.config.dynsec_file
        self._file = None if path is None else _policy_file(path)

    async def authenticate(self, *, session: Session) -> bool:
        if self._file is None:
            return True
        return self._file.current().authenticate(session.username, session.password)


_ACTIONS: dict[Action, PolicyAction] = {
    Action.PUBLISH: "publish",
    Action.SUBSCRIBE: "subscribe",
    Action.RECEIVE: "receive",
}


class DynsecTopics(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Publish, subscribe and receive as the dynamic-security config allows: a refused SUBSCRIBE
    gets SUBACK 0x80, a refused publish is acknowledged and dropped (MQTT 3.1.1 cannot say no to
    a publisher; Mosquitto does the same for 3.1.1 clients), a refused delivery is not sent. The
    rules are looked up at each action, so a login removed from the file loses its rights at
    once, even on a connection it already holds."""

    @dataclass
    class Config:
        dynsec_file: str | None = None

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        path = self.context.config.dynsec_file
        self._file = None if path is None else _policy_file(path)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if self._file is None:
            return True
        if topic is None or session is None or action not in _ACTIONS:
            return False
        allowed = self._file.current().allows(session.username, _ACTIONS[action], topic)
        if not allowed:
            log.info("access: %s may not %s %s", session.username, action, topic)
        return allowed


async def _qos1_flow(self: Any, app_message: Any, _original: Any = ProtocolHandler._handle_qos1_message_flow) -> None:
    """amqtt's QoS 1 flow, except for messages the broker sends: the message leaves the session
    only when its PUBACK arrives. amqtt 0.12.1 drops it after 5 s without PUBACK or when the
    connection closes, so a gateway that is slow to commit, or restarts, would lose messages.
    Here a message whose connection closed first stays in ``session.inflight_out`` and is sent
    again (DUP) when the client reconnects (MQTT 3.1.1 section 4.4)."""
    if app_message.direction != OUTGOING:
        await _original(self, app_message)
        return
    session = self.session
    packet_id = app_message.packet_id
    if packet_id is None or session is None:
        raise ValueError("QoS 1 message without a packet id or session")
    if isinstance(app_message, OutgoingApplicationMessage):
        session.inflight_out.setdefault(packet_id, app_message)
    packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
    waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    self._puback_waiters[packet_id] = waiter  # before sending: the PUBACK may come back at once
    try:
        await self._send_packet(packet)
        app_message.publish_packet = packet
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=_PUBACK_CHECK_S)
            if waiter.done():
                break
            if self._reader_stopped.is_set() or getattr(self.writer, "is_closed", False):
                return  # the connection is gone: redelivered after the reconnect
            if self._puback_waiters.get(packet_id) is not waiter:
                return  # another flow took this packet id over: it waits for the PUBACK
        if waiter.cancelled():
            return  # the handler stopped: redelivered after the reconnect
        app_message.puback_packet = waiter.result()
    finally:
        if self._puback_waiters.get(packet_id) is waiter:
            del self._puback_waiters[packet_id]
    session.inflight_out.pop(packet_id, None)


async def _retry_deliveries(self: Any) -> None:
    """Send the session's unacknowledged messages again after a reconnect, without amqtt's 10 s
    limit (after which they would be forgotten) and without holding up the connection's start."""
    session = self.session
    if session is None:
        return
    # Not the messages already sent on this connection (the broker may deliver to a session
    # between its CONNACK and this call): sending those twice would also answer one PUBACK twice.
    pending = [
        *session.inflight_in.values(),
        *(m for m in session.inflight_out.values() if m.packet_id not in self._puback_waiters),
    ]
    if pending:
        log.info("%s: resending %d unacknowledged message(s)", session.client_id, len(pending))
    tasks = {asyncio.ensure_future(self._handle_message_flow(m)) for m in pending}
    self._assetproof_retries = tasks  # keep references until they finish
    for task in tasks:
        task.add_done_callback(tasks.discard)


PATCHED_VERSION = "0.12.1"
"""The amqtt release whose private ``ProtocolHandler`` methods the two replacements above were
written against; another release may have changed them, so the broker refuses to start."""


def patch_amqtt(installed: str | None = None) -> None:
    """Replace the two QoS 1 methods, after checking the installed amqtt is the one they fit."""
    installed = installed if installed is not None else importlib.metadata.version("amqtt")
    if installed != PATCHED_VERSION:
        raise RuntimeError(
            f"amqtt {installed} is installed; the embedded broker's QoS 1 patch fits amqtt {PATCHED_VERSION} only"
            " (pip install 'assetproof[local]' with constraints.txt)"
        )
    ProtocolHandler._handle_qos1_message_flow = _qos1_flow
    ProtocolHandler._retry_deliveries = _retry_deliveries


def broker_config(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{int(config['port'])}"}},
        "session_expiry_interval": int(config.get("session_expiry_s", 86_400)),
        "plugins": {
            f"{__name__}.DynsecAuth": {"dynsec_file": config.get("dynsec_file")},
            f"{__name__}.DynsecTopics": {"dynsec_file": config.get("dynsec_file")},
        },
    }


def serve(config: dict[str, Any], *, ready_line: str) -> int:
    """Run the broker until SIGTERM or SIGINT; print ``ready_line`` once it listens."""
    log_file = config.get("log_file")
    logging.basicConfig(
        filename=log_file,
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)
    try:
        patch_amqtt()
    except RuntimeError as exc:
        print(f"amqtt failed to start: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        broker = Broker(broker_config(config), loop=loop)
        loop.run_until_complete(broker.start())
    except Exception as exc:
        why: list[str] = []
        cause: BaseException | None = exc
        while cause is not None:
            why.append(str(cause))
            cause = cause.__cause__
        print(f"amqtt failed to start: {': '.join(why)}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("amqtt listening on 127.0.0.1:%s", config["port"])
    print(ready_line, flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # nobody reads the pipe from now on
    os.close(devnull)
    try:
        loop.run_until_complete(stop.wait())
        loop.run_until_complete(broker.shutdown())
    finally:
        loop.close()
    return 0
