"""Drain the outbox to the broker: MQTT v5 (or 3.1.1), QoS 1, in order, never faster than the broker acks.

One thread drives every connection through paho's external-loop API (``loop_read``,
``loop_write``, ``loop_misc`` on a ``selectors`` selector), so a thousand device connections cost
a thousand sockets, not a thousand threads. Two ways to connect:

- **per device** (the default, what real devices do): one connection per device, user name =
  device id, password from the keystore; the broker's ACL then holds each device to its topic.
- **multiplexed** (load tests): ``connections`` connections share all devices, each device always
  on the same connection (a hash of its id), so per-device order still holds.

Rules that make delivery at least once and ordered:

- A message leaves the outbox only after its PUBACK. A PUBACK with a failure reason code (the
  broker refused it, e.g. "not authorized") is final: the message is counted as rejected, logged
  and removed, never retried.
- A PUBACK saying "no matching subscribers" (0x10) means the broker delivered the message to
  nobody: no gateway holds the shared subscription yet, or the broker restarted (Mosquitto 2.0
  does not restore shared subscriptions from persistence, so until a gateway re-subscribes,
  messages would vanish). The message stays in the outbox; the connection starts over from it
  after a growing pause, exactly as after a lost connection, until a gateway is there.
- At most ``max_inflight`` unacknowledged messages per connection (never more than the broker's
  Receive Maximum), so the publisher cannot outrun the broker.
- Each connection publishes its messages in outbox (id) order. When a connection drops, its
  unacknowledged and buffered messages are forgotten in memory and read again from the outbox
  after the reconnect (a fresh paho client each time, so paho never re-sends on its own and
  order stays ours). Some may arrive twice: the gateway counts those as duplicates.
- Reconnects back off exponentially with jitter while the broker is unreachable; readings keep
  accumulating in the outbox meanwhile.

MQTT 3.1.1 (``protocol="3.1.1"``, for brokers without v5 such as the embedded amqtt broker)
keeps every rule above that 3.1.1 can express. What it cannot: a 3.1.1 PUBACK carries no reason
code, so a message the broker refuses (ACL) or delivers to nobody looks delivered. Refusals then
show only at the gateway (or not at all), and a gateway must hold its persistent subscription
before the fleet publishes (the demo waits for it). The window is ``max_inflight`` alone (no
Receive Maximum), and there is no Maximum Packet Size to check against.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from config.mqtt import MqttVersion
from config.mqtt_tls import TLSFiles, client_context
from device_sim.outbox import Entry, Outbox
from protocol.errors import AssetproofError

__all__ = ["Publisher", "PublisherError", "PublisherStats"]

log = logging.getLogger(__name__)

_READ_CHUNK = 5_000
_ACK_FLUSH_COUNT = 1_000
_ACK_FLUSH_S = 0.02
_POLL_S = 0.05
_MISC_S = 1.0
_PUBLISH_OVERHEAD = 16  # fixed header, topic length, packet id and properties, bounded from above

PasswordLookup = Callable[[str], str | None]
TLSLookup = Callable[[str | None], TLSFiles]


class PublisherError(AssetproofError, ValueError):
    """The publisher is misconfigured or used out of order."""


class _State(Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"


@dataclass(frozen=True, slots=True)
class PublisherStats:
    published: int
    """Messages the broker acknowledged with success."""
    rejected: int
    """Messages the broker (or the packet-size limit) refused; removed from the outbox."""
    reconnects: int
    """Successful connections after a lost or failed one."""
    undelivered: int
    """"No matching subscribers" answers: kept in the outbox and sent again."""
    inflight: int
    connections_up: int
    connections: int


_NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(eq=False)
class _Conn:
    client_id: str
    username: str | None
    password: str | None
    state: _State = _State.DOWN
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


class Publisher:
    """Publishes everything the outbox holds; see the module docstring for the guarantees.

    Per-device mode: ``passwords`` maps a device id to its MQTT password (a mapping or a
    function; None or a missing id connects with the user name only, for anonymous brokers).
    Multiplexed mode: ``connections=N`` with an optional shared ``username``/``password``.
    ``protocol`` is the MQTT version of every connection (``"5"`` or ``"3.1.1"``).
    ``tls``: connect with TLS, verifying the broker; called with a connection's user name (the
    device id, or the multiplexed login) it returns that login's CA and client certificate.
    """

    def __init__(
        self,
        outbox: Outbox | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        passwords: Mapping[str, str] | PasswordLookup | None = None,
        connections: int | None = None,
        username: str | None = None,
        password: str | None = None,
        max_inflight: int = 100,
        read_ahead: int = 20_000,
        keepalive: int = 30,
        backoff_s: tuple[float, float] = (0.1, 5.0),
        connect_timeout_s: float = 5.0,
        client_id_prefix: str = "assetproof-sim",
        protocol: MqttVersion = MqttVersion.V5,
        tls: TLSLookup | None = None,
    ) -> None:
        try:
            protocol = MqttVersion.parse(protocol)
        except ValueError as exc:
            raise PublisherError(str(exc)) from None
        if connections is not None and connections < 1:
            raise PublisherError("connections must be at least 1")
        if max_inflight < 1 or max_inflight > 65_535:
            raise PublisherError("max_inflight must be in 1..65535")
        # The publisher's own connection may skip fsync on removals: see outbox's docstring.
        self._outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox, synchronous="NORMAL")
        self._host, self._port = host, port
        self._protocol = protocol
        self._tls = tls
        self._tls_contexts: dict[str | None, ssl.SSLContext] = {}
        if passwords is None:
            self._lookup: PasswordLookup = lambda _device: None
        elif callable(passwords):
            self._lookup = passwords
        else:
            mapping = passwords
            self._lookup = mapping.get
        self._multiplexed = connections is not None
        self._max_inflight = max_inflight
        self._read_ahead = read_ahead
        self._keepalive = keepalive
        self._backoff = backoff_s
        self._connect_timeout = connect_timeout_s
        self._rng = random.Random()  # noqa: S311 - jitter, not a secret
        self._conns: dict[str, _Conn] = {}
        self._mux: list[_Conn] = [
            _Conn(f"{client_id_prefix}-mux-{i}", username, password) for i in range(connections or 0)
        ]
        for conn in self._mux:
            self._conns[conn.client_id] = conn
        self._cursor = 0  # highest outbox id read into memory (or skipped for a connection)
        self._buffered = 0
        self._behind = False  # more rows may be waiting on disk
        self._blocked_on: _Conn | None = None  # the full connection the last read stopped at
        self._woken = False
        self._busy: set[_Conn] = set()  # connections with buffered messages or messages left on disk
        self._down: set[_Conn] = set()  # connections waiting to (re)connect
        self._acked: list[int] = []
        self._acked_since = 0.0
        self._published = 0
        self._rejected = 0
        self._undelivered = 0
        self._stalled: set[_Conn] = set()  # got "no matching subscribers": start over after a pause
        self._reconnects = 0
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # --- public surface ------------------------------------------------------------------------

    @property
    def published(self) -> int:
        return self._published

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def reconnects(self) -> int:
        return self._reconnects

    def pending(self) -> int:
        """Messages still in the outbox (acknowledged ones leave it within milliseconds)."""
        return self._outbox.pending()

    def stats(self) -> PublisherStats:
        conns = list(self._conns.values())
        return PublisherStats(
            published=self._published,
            rejected=self._rejected,
            undelivered=self._undelivered,
            reconnects=self._reconnects,
            inflight=sum(len(c.inflight) for c in conns),
            connections_up=sum(c.state is _State.UP for c in conns),
            connections=len(conns),
        )

    def wake(self) -> None:
        """Tell the publisher new messages are in the outbox (otherwise it polls every 50 ms)."""
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is already pending
                wake.send(b"\0")

    def start(self) -> None:
        """Run in a background thread until :meth:`stop`."""
        if self._thread is not None:
            raise PublisherError("publisher already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._thread_main, name="assetproof-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def wait_until_drained(self, timeout: float) -> bool:
        """Block until the outbox is empty and nothing is in flight, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            if self.pending() == 0 and not any(c.inflight for c in list(self._conns.values())):
                return True
            time.sleep(0.02)
        return False

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set (in the calling thread)."""
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        next_misc = time.monotonic() + _MISC_S
        next_read = 0.0
        try:
            while not stop.is_set() and not self._stop.is_set():
                now = time.monotonic()
                if self._woken or now >= next_read or self._may_read_more():
                    self._woken = False
                    self._read_outbox()
                    next_read = now + _POLL_S
                self._connect_due(now)
                ready = self._publish_ready()
                self._flush_acks(now)
                if now >= next_misc:
                    self._misc(now)
                    next_misc = now + _MISC_S
                deadline = min(next_read, next_misc, self._next_retry())
                if self._acked:
                    deadline = min(deadline, self._acked_since + _ACK_FLUSH_S)
                self._poll(0.0 if ready else max(0.0, deadline - now))
                self._restart_stalled()
        finally:
            self._shutdown()

    # --- the loop's steps ----------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:  # surfaced by stop() / wait_until_drained()
            log.exception("publisher stopped by an error")
            self._error = exc

    def _route(self, device_id: str) -> _Conn:
        if self._multiplexed:
            return self._mux[zlib.crc32(device_id.encode()) % len(self._mux)]
        conn = self._conns.get(device_id)
        if conn is None:
            conn = _Conn(device_id, device_id, self._lookup(device_id))
            self._conns[device_id] = conn
        return conn

    def _buffer_cap(self, conn: _Conn) -> int:
        return 2 * conn.window + 64

    def _may_read_more(self) -> bool:
        blocked = self._blocked_on
        if blocked is not None and len(blocked.pending) >= self._buffer_cap(blocked) // 2:
            return False
        return self._behind and self._buffered < self._read_ahead // 2

    def _read_outbox(self) -> None:
        """Move new outbox rows into their connections' buffers, in id order.

        A row for a connection that is not up stays on disk (the connection reads it back once
        up), so a dead connection never holds up the others. A live connection whose buffer is
        full stops the read there: it is draining, and reading past it would only mean reading
        its rows twice.
        """
        room = self._read_ahead - self._buffered
        self._blocked_on = None
        self._behind = room <= 0
        if room <= 0:
            return
        entries = self._outbox.entries(after_id=self._cursor, limit=min(room, _READ_CHUNK))
        self._behind = len(entries) == min(room, _READ_CHUNK)
        for entry in entries:
            conn = self._route(entry.device_id)
            if conn.resume_from is None:
                if conn.state is not _State.UP:
                    conn.resume_from = entry.id
                    self._busy.add(conn)
                    if conn.state is _State.DOWN:
                        self._down.add(conn)
                elif len(conn.pending) >= self._buffer_cap(conn):
                    self._behind = True
                    self._blocked_on = conn
                    return
                else:
                    conn.pending.append(entry)
                    self._buffered += 1
                    self._busy.add(conn)
            self._cursor = entry.id

    def _catch_up(self, conn: _Conn) -> None:
        """Refill a connection whose messages were left on disk, in id order, up to the cursor."""
        assert conn.resume_from is not None
        self._flush_acks(time.monotonic(), force=True)  # never read back what is already acked
        want = self._buffer_cap(conn) - len(conn.pending)
        after = conn.resume_from - 1
        while want > 0 and after < self._cursor:
            if self._multiplexed:
                rows = self._outbox.entries(after_id=after, limit=_READ_CHUNK, up_to=self._cursor)
            else:
                rows = self._outbox.entries(after_id=after, limit=want, up_to=self._cursor, device_id=conn.client_id)
            if not rows:
                break
            for entry in rows:
                after = entry.id
                if self._route(entry.device_id) is conn:
                    conn.pending.append(entry)
                    self._buffered += 1
                    want -= 1
                    if want == 0:
                        break
        conn.resume_from = None if after >= self._cursor or want > 0 else after + 1

    def _publish_ready(self) -> bool:
        """Publish from every live connection's buffer up to its window; True if more could go
        right away (so the loop should not sleep)."""
        more = False
        for conn in list(self._busy):
            if conn.state is not _State.UP or conn.client is None:
                continue
            if conn.resume_from is not None and len(conn.pending) < self._buffer_cap(conn) // 2:
                self._catch_up(conn)
            client = conn.client
            while conn.pending and len(conn.inflight) < conn.window:
                entry = conn.pending.popleft()
                if len(entry.payload) + len(entry.topic) + _PUBLISH_OVERHEAD > conn.max_packet:
                    self._buffered -= 1
                    self._reject(entry, f"larger than the broker's maximum packet size {conn.max_packet}")
                    continue
                try:
                    info = client.publish(entry.topic, entry.payload, qos=1)
                except ValueError as exc:  # a topic MQTT cannot carry (wildcards, empty)
                    self._buffered -= 1
                    self._reject(entry, str(exc))
                    continue
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    conn.pending.appendleft(entry)
                    break
                conn.inflight[info.mid] = entry
            if conn.pending and len(conn.inflight) < conn.window:
                more = True
            if not conn.pending and conn.resume_from is None:
                self._busy.discard(conn)
        return more

    def _reject(self, entry: Entry, why: str) -> None:
        self._rejected += 1
        log.warning("dropping message %d of %s on %s: %s", entry.id, entry.device_id, entry.topic, why)
        self._ack(entry.id)

    def _ack(self, entry_id: int) -> None:
        if not self._acked:
            self._acked_since = time.monotonic()
        self._acked.append(entry_id)

    def _flush_acks(self, now: float, *, force: bool = False) -> None:
        if self._acked and (force or len(self._acked) >= _ACK_FLUSH_COUNT or now - self._acked_since >= _ACK_FLUSH_S):
            self._outbox.remove(self._acked)
            self._acked = []

    def _poll(self, timeout: float) -> None:
        assert self._selector is not None
        for key, mask in self._selector.select(timeout):
            conn = key.data
            if conn is None:
                self._woken = True
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

    def _misc(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.client is None:
                continue
            if conn.state is _State.CONNECTING and now - conn.connecting_since > self._connect_timeout:
                log.warning("%s: no CONNACK within %.0f s", conn.client_id, self._connect_timeout)
                self._abandon(conn)
                self._lost(conn)
            elif conn.state is _State.UP:
                conn.client.loop_misc()

    def _restart_stalled(self) -> None:
        while self._stalled:
            conn = self._stalled.pop()
            if conn.client is None:
                continue
            self._abandon(conn, say_goodbye=True)
            self._lost(conn)
            conn.retry_at = max(conn.retry_at, time.monotonic() + min(5.0, 0.1 * 2 ** min(conn.undelivered, 5)))

    def _next_retry(self) -> float:
        return min((c.retry_at for c in self._down), default=float("inf"))

    # --- connections ----------------------------------------------------------------------------

    def _connect_due(self, now: float) -> None:
        for conn in [c for c in self._down if now >= c.retry_at]:
            self._down.discard(conn)
            self._connect(conn, now)

    def _connect(self, conn: _Conn, now: float) -> None:
        if self._protocol == MqttVersion.V5:
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
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        conn.client = client
        conn.state = _State.CONNECTING
        conn.connecting_since = now
        try:
            if self._protocol == MqttVersion.V5:
                client.connect(self._host, self._port, keepalive=self._keepalive, clean_start=True)
            else:
                client.connect(self._host, self._port, keepalive=self._keepalive)
        except OSError as exc:
            if conn.failures == 0:
                log.warning("%s: cannot reach %s:%d (%s); retrying", conn.client_id, self._host, self._port, exc)
            self._abandon(conn)
            self._lost(conn)

    def _abandon(self, conn: _Conn, *, say_goodbye: bool = False) -> None:
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

    def _lost(self, conn: _Conn) -> None:
        """The connection is gone: forget what it had in memory and schedule a reconnect."""
        forgotten = [e.id for e in conn.inflight.values()] + [e.id for e in conn.pending]
        if forgotten:
            first = min(forgotten)
            conn.resume_from = first if conn.resume_from is None else min(first, conn.resume_from)
        elif conn.resume_from is None:
            conn.resume_from = self._cursor + 1  # nothing to resend; reconnect when there is work
        self._buffered -= len(conn.pending) + len(conn.inflight)
        conn.pending.clear()
        conn.inflight.clear()
        conn.state = _State.DOWN
        conn.client = None
        self._down.add(conn)
        self._busy.add(conn)
        low, high = self._backoff
        delay = min(high, low * 2 ** min(conn.failures, 30)) * self._rng.uniform(0.5, 1.0)
        conn.failures += 1
        conn.retry_at = time.monotonic() + delay

    def _shutdown(self) -> None:
        self._flush_acks(time.monotonic(), force=True)
        for conn in self._conns.values():
            self._abandon(conn, say_goodbye=conn.state is _State.UP)
            conn.pending.clear()
            conn.inflight.clear()
            conn.state = _State.DOWN
            conn.resume_from = None
        self._busy.clear()
        self._down.clear()
        self._buffered = 0
        self._cursor = 0  # everything unacknowledged is read again on the next run
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        wake_r, wake_w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, None, None
        for sock in (wake_r, wake_w):
            if sock is not None:
                sock.close()
        self._outbox.release()  # this thread's connection; reopened if the publisher runs again

    # --- paho callbacks (all on the publisher thread) ------------------------------------------

    @staticmethod
    def _current(client: mqtt.Client, conn: _Conn) -> bool:
        return conn.client is client

    def _on_connect(
        self, client: mqtt.Client, conn: _Conn, _flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if not self._current(client, conn):
            return
        if reason.is_failure:
            # The broker closes the socket next and on_disconnect schedules the retry.
            # Wrong credentials do not fix themselves: say so once, then retry quietly.
            level = logging.WARNING if conn.failures == 0 else logging.DEBUG
            log.log(level, "%s: broker refused the connection: %s", conn.client_id, reason)
            return
        receive_max = getattr(props, "ReceiveMaximum", 65_535)  # 3.1.1: no properties, our window alone
        conn.window = max(1, min(self._max_inflight, receive_max))
        conn.max_packet = getattr(props, "MaximumPacketSize", conn.max_packet)
        conn.state = _State.UP
        if conn.ever_up or conn.failures:
            self._reconnects += 1
            log.info("%s: reconnected after %d failed attempt(s)", conn.client_id, conn.failures)
        conn.ever_up = True
        conn.failures = 0

    def _on_disconnect(self, client: mqtt.Client, conn: _Conn, _flags: Any, reason: Any, _props: Any) -> None:
        if not self._current(client, conn):
            return
        if conn.state is _State.UP:
            log.warning("%s: connection lost (%s)", conn.client_id, reason)
        conn.sock = None
        self._lost(conn)

    def _on_publish(self, client: mqtt.Client, conn: _Conn, mid: int, reason: ReasonCode, _props: Any) -> None:
        if not self._current(client, conn):
            return
        entry = conn.inflight.pop(mid, None)
        if entry is None:
            return
        self._buffered -= 1
        if reason.is_failure:
            self._reject(entry, f"broker answered {reason}")
        elif reason.value == _NO_MATCHING_SUBSCRIBERS:
            self._undelivered += 1
            if not conn.undelivered:
                log.warning("%s: no gateway is subscribed; holding readings in the outbox until one is", conn.client_id)
            conn.undelivered += 1
            conn.inflight[mid] = entry  # still ours: _lost resumes from it
            self._buffered += 1
            self._stalled.add(conn)  # restarted by the loop: paho's locks are held in here
        else:
            conn.undelivered = 0
            self._published += 1
            self._ack(entry.id)

    def _on_socket_open(self, client: mqtt.Client, conn: _Conn, sock: Any) -> None:
        if self._current(client, conn) and self._selector is not None:
            conn.sock = sock
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _on_socket_close(self, client: mqtt.Client, conn: _Conn, sock: Any) -> None:
        self._unregister(sock)

    def _on_register_write(self, client: mqtt.Client, conn: _Conn, sock: Any) -> None:
        if self._current(client, conn) and self._selector is not None:
            self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def _on_unregister_write(self, client: mqtt.Client, conn: _Conn, sock: Any) -> None:
        if self._current(client, conn) and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):  # already unregistered: the socket is closing
                self._selector.modify(sock, selectors.EVENT_READ, conn)

    def _unregister(self, sock: Any) -> None:
        if self._selector is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
