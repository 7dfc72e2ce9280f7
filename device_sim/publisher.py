"""Drain the outbox to the broker: MQTT v5 (or 3.1.1), QoS 1, in order, never faster than the broker acks.

One thread drives every connection through paho's external-loop API (``loop_read``,
``loop_write``, ``loop_misc`` on a ``selectors`` selector), so a thousand device connections cost
a thousand sockets, not a thousand threads. This module is the loop and the broker's answers;
:mod:`device_sim.connection` builds and drives the clients, :mod:`device_sim.drain` moves rows
between the outbox and the connections, :mod:`device_sim.backoff` paces the retries. Two ways to
connect:

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
- Reconnects back off exponentially with jitter while the broker is unreachable (one formula,
  :func:`device_sim.backoff.backoff_delay`, for lost connections and for "no matching
  subscribers" alike); readings keep accumulating in the outbox meanwhile.

MQTT 3.1.1 (``protocol="3.1.1"``, for brokers without v5 such as the embedded amqtt broker)
keeps every rule above that 3.1.1 can express. What it cannot: a 3.1.1 PUBACK carries no reason
code, so a message the broker refuses (ACL) or delivers to nobody looks delivered. Refusals then
show only at the gateway (or not at all), and a gateway must hold its persistent subscription
before the fleet publishes (the demo waits for it). The window is ``max_inflight`` alone (no
Receive Maximum), and there is no Maximum Packet Size to check against.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from config.mqtt import MqttVersion
from device_sim.backoff import backoff_delay
from device_sim.connection import Conn, Connector, SocketLoop, State, TLSLookup
from device_sim.drain import ACK_FLUSH_S, OutboxDrain
from device_sim.outbox import Outbox
from protocol.errors import AssetproofError

__all__ = ["Publisher", "PublisherError", "PublisherStats"]

log = logging.getLogger(__name__)

_POLL_S = 0.05
_MISC_S = 1.0
_NO_MATCHING_SUBSCRIBERS = 0x10

PasswordLookup = Callable[[str], str | None]


class PublisherError(AssetproofError, ValueError):
    """The publisher is misconfigured or used out of order."""


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


class Publisher:
    """Publishes everything the outbox holds; see the module docstring for the guarantees.

    Per-device mode: ``passwords`` maps a device id to its MQTT password (a mapping or a
    function; None or a missing id connects with the user name only, for anonymous brokers).
    Multiplexed mode: ``connections=N`` with an optional shared ``username``/``password``.
    ``protocol`` is the MQTT version of every connection (``"5"`` or ``"3.1.1"``).
    ``tls``: connect with TLS, verifying the broker; called with a connection's user name (the
    device id, or the multiplexed login) it returns that login's CA and client certificate.
    ``backoff_s`` is ``(base, cap)`` of every retry's delay (:func:`~device_sim.backoff.backoff_delay`).
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
        rng: random.Random | None = None,
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
        box = outbox if isinstance(outbox, Outbox) else Outbox(outbox, synchronous="NORMAL")
        self._connector = Connector(
            host=host,
            port=port,
            protocol=protocol,
            keepalive=keepalive,
            connect_timeout_s=connect_timeout_s,
            tls=tls,
        )
        self._sockets = SocketLoop()
        if passwords is None:
            self._lookup: PasswordLookup = lambda _device: None
        elif callable(passwords):
            self._lookup = passwords
        else:
            mapping = passwords
            self._lookup = mapping.get
        self._multiplexed = connections is not None
        self._max_inflight = max_inflight
        self._backoff = backoff_s
        self._connect_timeout = connect_timeout_s
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not a secret
        self._conns: dict[str, Conn] = {}
        self._mux: list[Conn] = [
            Conn(f"{client_id_prefix}-mux-{i}", username, password) for i in range(connections or 0)
        ]
        for conn in self._mux:
            self._conns[conn.client_id] = conn
        self._down: set[Conn] = set()  # connections waiting to (re)connect
        self._drain = OutboxDrain(
            box, route=self._route, read_ahead=read_ahead, multiplexed=self._multiplexed, on_parked=self._down.add
        )
        self._woken = False
        self._published = 0
        self._undelivered = 0
        self._stalled: set[Conn] = set()  # got "no matching subscribers": start over after a pause
        self._reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # --- public surface ------------------------------------------------------------------------

    @property
    def published(self) -> int:
        return self._published

    @property
    def rejected(self) -> int:
        return self._drain.rejected

    @property
    def reconnects(self) -> int:
        return self._reconnects

    def pending(self) -> int:
        """Messages still in the outbox (acknowledged ones leave it within milliseconds)."""
        return self._drain.outbox.pending()

    def stats(self) -> PublisherStats:
        conns = list(self._conns.values())
        return PublisherStats(
            published=self._published,
            rejected=self._drain.rejected,
            undelivered=self._undelivered,
            reconnects=self._reconnects,
            inflight=sum(len(c.inflight) for c in conns),
            connections_up=sum(c.state is State.UP for c in conns),
            connections=len(conns),
        )

    def wake(self) -> None:
        """Tell the publisher new messages are in the outbox (otherwise it polls every 50 ms)."""
        self._sockets.wake()

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
        drain = self._drain
        self._sockets.open()
        next_misc = time.monotonic() + _MISC_S
        next_read = 0.0
        try:
            while not stop.is_set() and not self._stop.is_set():
                now = time.monotonic()
                if self._woken or now >= next_read or drain.may_read_more():
                    self._woken = False
                    drain.read()
                    next_read = now + _POLL_S
                self._connect_due(now)
                ready = drain.publish_ready()
                drain.flush_acks(now)
                if now >= next_misc:
                    self._misc(now)
                    next_misc = now + _MISC_S
                deadline = min(next_read, next_misc, self._next_retry())
                if drain.has_acks:
                    deadline = min(deadline, drain.acked_since + ACK_FLUSH_S)
                if self._sockets.poll(0.0 if ready else max(0.0, deadline - now)):
                    self._woken = True
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

    def _route(self, device_id: str) -> Conn:
        if self._multiplexed:
            return self._mux[zlib.crc32(device_id.encode()) % len(self._mux)]
        conn = self._conns.get(device_id)
        if conn is None:
            conn = Conn(device_id, device_id, self._lookup(device_id))
            self._conns[device_id] = conn
        return conn

    def _misc(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.client is None:
                continue
            if conn.state is State.CONNECTING and now - conn.connecting_since > self._connect_timeout:
                log.warning("%s: no CONNACK within %.0f s", conn.client_id, self._connect_timeout)
                self._sockets.abandon(conn)
                self._lost(conn)
            elif conn.state is State.UP:
                conn.client.loop_misc()

    def _restart_stalled(self) -> None:
        while self._stalled:
            conn = self._stalled.pop()
            if conn.client is None:
                continue
            self._sockets.abandon(conn, say_goodbye=True)
            self._lost(conn)
            # Paced by how long no gateway has listened, not by connection failures (there were none).
            pause = backoff_delay(conn.undelivered, backoff_s=self._backoff, rng=self._rng)
            conn.retry_at = max(conn.retry_at, time.monotonic() + pause)

    def _next_retry(self) -> float:
        return min((c.retry_at for c in self._down), default=float("inf"))

    def _connect_due(self, now: float) -> None:
        for conn in [c for c in self._down if now >= c.retry_at]:
            self._down.discard(conn)
            self._connect(conn, now)

    def _connect(self, conn: Conn, now: float) -> None:
        client = self._connector.new_client(conn)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._sockets.attach(client)
        conn.client = client
        conn.state = State.CONNECTING
        conn.connecting_since = now
        try:
            self._connector.connect(client)
        except OSError as exc:
            if conn.failures == 0:
                connector = self._connector
                log.warning(
                    "%s: cannot reach %s:%d (%s); retrying", conn.client_id, connector.host, connector.port, exc
                )
            self._sockets.abandon(conn)
            self._lost(conn)

    def _lost(self, conn: Conn) -> None:
        """The connection is gone: forget what it had in memory and schedule a reconnect."""
        self._drain.forget(conn)
        conn.state = State.DOWN
        conn.client = None
        self._down.add(conn)
        delay = backoff_delay(conn.failures, backoff_s=self._backoff, rng=self._rng)
        conn.failures += 1
        conn.retry_at = time.monotonic() + delay

    def _shutdown(self) -> None:
        self._drain.flush_acks(time.monotonic(), force=True)
        conns = list(self._conns.values())
        for conn in conns:
            self._sockets.abandon(conn, say_goodbye=conn.state is State.UP)
            conn.state = State.DOWN
        self._drain.reset(conns)
        self._down.clear()
        self._sockets.close()
        self._drain.outbox.release()  # this thread's connection; reopened if the publisher runs again

    # --- paho callbacks (all on the publisher thread) ------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, conn: Conn, _flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if not conn.current(client):
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
        conn.state = State.UP
        if conn.ever_up or conn.failures:
            self._reconnects += 1
            log.info("%s: reconnected after %d failed attempt(s)", conn.client_id, conn.failures)
        conn.ever_up = True
        conn.failures = 0

    def _on_disconnect(self, client: mqtt.Client, conn: Conn, _flags: Any, reason: Any, _props: Any) -> None:
        if not conn.current(client):
            return
        if conn.state is State.UP:
            log.warning("%s: connection lost (%s)", conn.client_id, reason)
        conn.sock = None
        self._lost(conn)

    def _on_publish(self, client: mqtt.Client, conn: Conn, mid: int, reason: ReasonCode, _props: Any) -> None:
        if not conn.current(client):
            return
        entry = conn.inflight.pop(mid, None)
        if entry is None:
            return
        drain = self._drain
        drain.buffered -= 1
        if reason.is_failure:
            drain.reject(entry, f"broker answered {reason}")
        elif reason.value == _NO_MATCHING_SUBSCRIBERS:
            self._undelivered += 1
            if not conn.undelivered:
                log.warning("%s: no gateway is subscribed; holding readings in the outbox until one is", conn.client_id)
            conn.undelivered += 1
            conn.inflight[mid] = entry  # still ours: _lost resumes from it
            drain.buffered += 1
            self._stalled.add(conn)  # restarted by the loop: paho's locks are held in here
        else:
            conn.undelivered = 0
            self._published += 1
            drain.ack(entry.id)
