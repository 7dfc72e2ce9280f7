"""The gateway worker: MQTT in, batches committed, acknowledgements out.

- MQTT v5, QoS 1, a shared subscription (``$share/GROUP/...``) so any number of workers split
  the stream, and a persistent session (``clean_start=False`` with a session expiry) so messages
  published while a worker is down wait for it at the broker.
- MQTT 3.1.1 (``protocol="3.1.1"``, for brokers without v5 such as the embedded amqtt broker):
  3.1.1 has no shared subscriptions, so the worker subscribes to the telemetry filter itself and
  **exactly one worker** may run (a second would receive every message too: twice the work, and
  each reading counted once more as a duplicate). The session is persistent through
  ``clean_session=False`` and the stable ``client_id``; how long the broker keeps it is the
  broker's setting (3.1.1 has no session expiry property), and so is the number of messages in
  flight to the worker (3.1.1 has no Receive Maximum). QoS 1 and the acknowledgement after the
  commit are the same in both modes.
- paho's manual acknowledgement: a message is acknowledged only after the transaction holding
  its outcome has committed. A worker killed at any point loses nothing: the broker redelivers
  what was not acknowledged, and the store turns redelivered copies into counted duplicates.
- A bounded queue between paho's network thread and the processing thread: when the database
  falls behind, the network thread blocks, TCP pushes back, and the broker holds the rest.
- Acknowledgements carry the connection generation they were received on; after a reconnect
  the broker redelivers instead, so stale packet ids are never acknowledged on a new connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import DBAPIError, OperationalError

from config.clock import wall_ms
from config.mqtt import MqttVersion
from config.mqtt_tls import TLSFiles, client_context
from gateway import metrics
from gateway.batch import BatchProcessor
from gateway.quarantine import QuarantineBudget
from gateway.records import BatchResult, Incoming
from gateway.tariff import record_tariff
from protocol.cashflow import Tariff
from protocol.topics import SUBSCRIPTION, shared_subscription
from store.db import make_engine, migrate

log = logging.getLogger("assetproof.gateway")


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    database_url: str
    tariff: Tariff
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str = "assetproof-gateway-1"
    protocol: MqttVersion = MqttVersion.V5
    """``"5"``: a shared subscription, any number of workers. ``"3.1.1"``: a plain subscription,
    exactly one worker (see the module docstring)."""
    tls: TLSFiles | None = None
    """Connect with TLS: verify the broker against ``tls.ca`` and present the gateway's certificate."""
    share_group: str = "assetproof-gateway"
    """MQTT v5 only."""
    session_expiry_s: int = 7 * 24 * 3600
    """MQTT v5 only; under 3.1.1 the broker's own setting decides."""
    receive_maximum: int = 1000
    """MQTT v5 only; under 3.1.1 the broker's own in-flight limit decides."""
    batch_size: int = 500
    batch_wait_s: float = 0.02
    queue_size: int = 4000
    hold_ms: int = 30_000
    max_future_skew_ms: int = 300_000
    quarantine_budget: QuarantineBudget = field(default_factory=QuarantineBudget)
    sweep_interval_s: float = 1.0
    drain_quiet_s: float = 0.3
    migrate: bool = True

    def __post_init__(self) -> None:
        MqttVersion.parse(self.protocol)
        if not self.client_id:
            raise ValueError("a persistent session needs a client id")

    @property
    def subscription(self) -> str:
        """The topic filter the worker subscribes to."""
        return shared_subscription(self.share_group) if self.protocol == MqttVersion.V5 else SUBSCRIPTION


@dataclass
class GatewayStats:
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    quarantined: int = 0
    dropped: int = 0
    batches: int = 0

    def add(self, result: BatchResult, *, batch: bool = True) -> None:
        self.batches += batch
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.held += result.held
        self.quarantined += result.quarantined_total
        for outcome, n in (("accepted", result.accepted), ("duplicate", result.duplicates), ("held", result.held)):
            if n:
                metrics.MESSAGES.labels(outcome).inc(n)
        for reason, n in result.quarantined.items():
            metrics.MESSAGES.labels("quarantined").inc(n)
            metrics.QUARANTINED.labels(reason).inc(n)
        self.dropped += sum(result.dropped.values())
        for n in result.dropped.values():
            metrics.MESSAGES.labels("dropped").inc(n)  # over the publisher's quarantine budget


class Gateway:
    def __init__(self, config: GatewayConfig, *, clock_ms: Callable[[], int] = wall_ms) -> None:
        self.config = config
        self.stats = GatewayStats()
        self._clock_ms = clock_ms
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=config.queue_size)
        self._accepting = threading.Event()
        self._accepting.set()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.engine = make_engine(config.database_url)
        self.reader = make_engine(config.database_url, writer=False)
        if config.migrate:
            migrate(self.engine)
        record_tariff(self.engine, config.tariff)
        self.processor = BatchProcessor(
            engine=self.engine,
            reader=self.reader,
            tariff=config.tariff,
            clock_ms=clock_ms,
            hold_ms=config.hold_ms,
            max_future_skew_ms=config.max_future_skew_ms,
            budget=config.quarantine_budget,
        )
        self.client = self._make_client()

    # --- MQTT edge ------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        c = self.config
        if c.protocol == MqttVersion.V5:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=c.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=c.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,  # persistent: the broker queues what arrives while we are away
                manual_ack=True,
            )
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls is not None:
            client.tls_set_context(client_context(c.tls))
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, flags: object, reason: object, _props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        if self._generation > 1 and not getattr(flags, "session_present", True):
            log.warning(
                "the broker kept no session for %s (restarted, or the session expired): it queued nothing for us",
                self.config.client_id,
            )
        client.subscribe(self.config.subscription, qos=1)
        self._connected.set()
        metrics.CONNECTED.set(1)
        log.info(
            "connected to %s:%s with MQTT %s (generation %d)",
            self.config.broker_host,
            self.config.broker_port,
            self.config.protocol,
            self._generation,
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: object, _mid: int, reasons: list[ReasonCode], _props: Properties
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscription: %s", reasons)
            return
        self._subscribed.set()
        log.info("subscribed to %s", self.config.subscription)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: object, _flags: object, reason: object, _props: object
    ) -> None:
        self._connected.clear()
        metrics.CONNECTED.set(0)
        log.warning("disconnected from the broker: %s", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if not self._accepting.is_set():
            return  # shutting down: left unacknowledged, the broker redelivers it later
        incoming = Incoming(
            message.topic, bytes(message.payload), self._clock_ms(), (self._generation, message.mid, message.qos)
        )
        self._queue.put(incoming)  # blocks when full: backpressure onto the socket

    def _ack(self, batch: list[Incoming]) -> None:
        for item in batch:
            generation, mid, qos = item.token
            if qos and generation == self._generation:
                self.client.ack(mid, qos)

    # --- processing -----------------------------------------------------------------------------

    def _take_batch(self, timeout_s: float) -> list[Incoming]:
        try:
            first = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.batch_wait_s
        while len(batch) < self.config.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
        return batch

    def _commit(self, batch: list[Incoming], stop: threading.Event) -> None:
        backoff = 0.2
        while True:
            started = time.perf_counter()
            try:
                result = self.processor.process(batch)
            except (OperationalError, DBAPIError) as exc:
                metrics.DB_ERRORS.inc()
                log.error(
                    "batch of %d not committed, retrying in %.1f s: %s", len(batch), backoff, exc.__class__.__name__
                )
                if stop.wait(backoff) and not self._connected.is_set():
                    return  # stopping and nothing can be acknowledged: the broker keeps them
                backoff = min(backoff * 2, 5.0)
                continue
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
            self.stats.add(result)
            self._ack(batch)
            return

    def _sweep(self) -> None:
        try:
            self.stats.add(self.processor.sweep(), batch=False)
        except (OperationalError, DBAPIError) as exc:
            log.error("sweep failed: %s", exc.__class__.__name__)

    def run(self, stop: threading.Event) -> GatewayStats:
        """Consume until ``stop`` is set, then drain what was received, acknowledge it and leave."""
        c = self.config
        if c.protocol == MqttVersion.V5:
            self.client.connect_async(
                c.broker_host, c.broker_port, keepalive=30, clean_start=False, properties=self._connect_properties()
            )
        else:  # 3.1.1: clean_session=False was set on the client; no properties exist
            self.client.connect_async(c.broker_host, c.broker_port, keepalive=30)
        self.client.loop_start()
        last_sweep = time.monotonic()
        try:
            while not stop.is_set():
                batch = self._take_batch(0.1)
                metrics.QUEUE_DEPTH.set(self._queue.qsize())
                if batch:
                    self._commit(batch, stop)
                if time.monotonic() - last_sweep >= c.sweep_interval_s:
                    self._sweep()
                    last_sweep = time.monotonic()
            self._accepting.clear()
            while batch := self._take_batch(c.drain_quiet_s):
                self._commit(batch, stop)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.processor.close()
            self.engine.dispose()
            self.reader.dispose()
        log.info("gateway stopped: %s", self.stats)
        return self.stats

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        return self._subscribed.wait(timeout_s)
