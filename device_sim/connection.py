"""The publisher's connections: one paho client per (re)connect, its login and TLS, and the one
selector every client's socket is driven from (paho's external-loop API).

A connection that drops is never reconnected by paho: the publisher builds a fresh client each
time (see :class:`Connector`), so paho never re-sends on its own and the order stays ours.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.mqtt import MqttVersion
from config.mqtt_tls import TLSFiles, client_context
from device_sim.outbox import Entry

__all__ = ["Conn", "Connector", "SocketLoop", "State", "TLSLookup"]

TLSLookup = Callable[[str | None], TLSFiles]


class State(Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"


@dataclass(eq=False)
class Conn:
    """One broker connection and what it has taken from the outbox."""

    client_id: str
    username: str | None
    password: str | None
    state: State = State.DOWN
    client: mqtt.Client | None = None
    sock: Any = None
    pending: deque[Entry] = field(default_factory=deque)
    inflight: dict[int, Entry] = field(default_factory=dict)
    window: int = 1
    max_packet: int = 268_435_455
    # Messages of this connection with id >= resume_from may be in the outbox but not in memory.
    resume_from: int | None = None
    failures: int = 0
    retry_at: float = 0.0
    undelivered: int = 0  # consecutive "no matching subscribers" answers
    connecting_since: float = 0.0
    ever_up: bool = False

    def current(self, client: mqtt.Client) -> bool:
        """Whether ``client`` is this connection's live client (callbacks of old ones are ignored)."""
        return self.client is client


class Connector:
    """Builds and connects paho clients for one broker: protocol version, login, TLS."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        protocol: MqttVersion,
        keepalive: int,
        connect_timeout_s: float,
        tls: TLSLookup | None,
    ) -> None:
        self.host, self.port = host, port
        self.protocol = protocol
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout_s
        self._tls = tls
        self._tls_contexts: dict[str | None, ssl.SSLContext] = {}

    def new_client(self, conn: Conn) -> mqtt.Client:
        """A fresh client for ``conn`` (its userdata), logged in as ``conn``'s user, not yet connected."""
        if self.protocol == MqttVersion.V5:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=conn.client_id, protocol=mqtt.MQTTv5, userdata=conn
            )
        else:  # a clean session, as clean_start=True below does for v5: order is ours, not the session's
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=conn.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=True,
                userdata=conn,
            )
        if conn.username is not None:
            client.username_pw_set(conn.username, conn.password)
        if self._tls is not None:
            # One context per login, built once: loading a key and CA per reconnect costs ms.
            if conn.username not in self._tls_contexts:
                self._tls_contexts[conn.username] = client_context(self._tls(conn.username))
            client.tls_set_context(self._tls_contexts[conn.username])
        client.max_inflight_messages_set(0)  # the window is ours; paho must not queue behind it
        client.connect_timeout = self._connect_timeout
        return client

    def connect(self, client: mqtt.Client) -> None:
        """Open the socket and send CONNECT; OSError if the broker cannot be reached."""
        if self.protocol == MqttVersion.V5:
            client.connect(self.host, self.port, keepalive=self._keepalive, clean_start=True)
        else:
            client.connect(self.host, self.port, keepalive=self._keepalive)


class SocketLoop:
    """One selector for every client's socket plus a wake-up socket pair, so a thousand device
    connections cost a thousand sockets, not a thousand threads."""

    def __init__(self) -> None:
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def open(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        wake_r, wake_w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, None, None
        for sock in (wake_r, wake_w):
            if sock is not None:
                sock.close()

    def wake(self) -> None:
        """Interrupt :meth:`poll` (from any thread)."""
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is already pending
                wake.send(b"\0")

    def attach(self, client: mqtt.Client) -> None:
        """Let ``client``'s socket callbacks (un)register it with this loop."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def poll(self, timeout: float) -> bool:
        """Run the clients whose sockets are ready, waiting up to ``timeout`` s; True if woken."""
        assert self._selector is not None
        woken = False
        for key, mask in self._selector.select(timeout):
            conn = key.data
            if conn is None:
                woken = True
                with contextlib.suppress(BlockingIOError):
                    key.fileobj.recv(4096)  # type: ignore[union-attr]
                continue
            client = conn.client
            if client is None:
                continue
            if mask & selectors.EVENT_READ:
                client.loop_read()
                # TLS: records already decrypted into the SSL object never wake the selector again.
                sock = client.socket()
                while conn.client is client and isinstance(sock, ssl.SSLSocket) and sock.pending():
                    if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                        break
            if mask & selectors.EVENT_WRITE and conn.client is client:
                client.loop_write()
        return woken

    def abandon(self, conn: Conn, *, say_goodbye: bool = False) -> None:
        """Forget a connection's client (its callbacks are ignored from now on) and close its
        socket, after an MQTT DISCONNECT if ``say_goodbye``."""
        client, conn.client = conn.client, None
        if client is None:
            return
        if say_goodbye:
            client.disconnect()
            client.loop_write()
        sock = client.socket()
        if sock is not None:
            self._unregister(sock)
            with contextlib.suppress(OSError):
                sock.close()
        conn.sock = None

    # --- paho's socket callbacks (on the publisher thread) ---------------------------------------

    def _on_socket_open(self, client: mqtt.Client, conn: Conn, sock: Any) -> None:
        if conn.current(client) and self._selector is not None:
            conn.sock = sock
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _on_socket_close(self, client: mqtt.Client, conn: Conn, sock: Any) -> None:
        self._unregister(sock)

    def _on_register_write(self, client: mqtt.Client, conn: Conn, sock: Any) -> None:
        if conn.current(client) and self._selector is not None:
            self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def _on_unregister_write(self, client: mqtt.Client, conn: Conn, sock: Any) -> None:
        if conn.current(client) and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):  # already unregistered: the socket is closing
                self._selector.modify(sock, selectors.EVENT_READ, conn)

    def _unregister(self, sock: Any) -> None:
        if self._selector is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
