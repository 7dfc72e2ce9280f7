"""Run a fleet of simulated devices: models stepped on a simulated clock, readings signed and
queued in the outbox (which holds each device's chain), a publisher draining it.

Time: each device reports one reading per ``window_s`` of *simulated* time. Windows sit on a grid
of multiples of ``window_s`` (UTC), and a reading's ``ts_ms`` is the end of its window. Readings
are therefore a function of (fleet seed, device id, window start) only, not of when the wall
clock happened to wake the runner: a seeded fleet produces the same bytes every run (injected
``clock_skew`` faults excepted: they must be ahead of the gateway's wall clock; being chained,
so are the later readings of their device, which link to them).

An accelerated clock runs ahead of the wall clock; the gateway refuses readings more than five
minutes in the future (``clock_skew``), so an accelerated run should start in the past
(``SimClock(start_ms=now - span * acceleration, ...)``) and end before it catches up with now.

Restart: the outbox keeps, per device, the last seq, the ``prev`` for the next reading, the
model's state and the end of the last window; a new runner on the same outbox continues each
chain exactly (the next seq, the right ``prev``, the next window).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from config.clock import wall_ms
from device_sim.faults import FAULTS, DeviceSnapshot, make_fault
from device_sim.keystore import DeviceCredentials
from device_sim.models import DeviceModel, build_model
from device_sim.outbox import ChainState, Outbox, OutboxMessage
from device_sim.publisher import Publisher
from protocol.cashflow import Tariff
from protocol.envelope import GENESIS_PREV, Body, DeviceKind, chain_hash, sign_body
from protocol.errors import AssetproofError
from protocol.signing import DeviceKey
from protocol.topics import telemetry_topic

__all__ = ["FleetDevice", "FleetError", "FleetRunner", "FleetStats", "SimClock", "device_seed", "pregenerate"]

log = logging.getLogger(__name__)

_MAX_SLEEP_S: Final = 0.1
_BATCH: Final = 5_000  # readings per outbox transaction
_DEFAULT_WINDOW_S: Final = 60


class FleetError(AssetproofError):
    """The fleet cannot run as configured (bad device data, a state from another seed, ...)."""


@dataclass(frozen=True, slots=True)
class FleetDevice:
    id: str
    kind: DeviceKind
    key: DeviceKey
    rating: Mapping[str, int] = field(default_factory=dict)
    window_s: int | None = None
    """The reporting window the device is registered with (None: not known here). The gateway
    and the auditor refuse readings with any other window (:mod:`protocol.timing`), so a fleet
    runs only devices registered with its own window."""

    @classmethod
    def from_credentials(cls, credentials: DeviceCredentials) -> FleetDevice:
        """A device from keystore credentials written by :func:`device_sim.provision.provision`
        (their metadata holds kind, rating and window)."""
        meta = credentials.metadata
        if "kind" not in meta:
            raise FleetError(f"credentials of {credentials.device_id} carry no kind; provision them with provision()")
        window = meta.get("window_s")
        return cls(
            credentials.device_id,
            DeviceKind(meta["kind"]),
            credentials.key,
            dict(meta.get("rating", {})),
            window if type(window) is int else None,
        )


class SimClock:
    """Simulated time: ``start_ms`` plus the monotonic wall time elapsed since creation, times
    ``acceleration`` (1440: a simulated day per wall minute).

    An accelerated clock replays the past and never passes the wall clock: once it catches up
    (or when a resumed fleet starts where the last run left off, at about now) it runs at wall
    speed, so no reading is dated in the gateway's future.
    """

    def __init__(self, start_ms: int, acceleration: float = 1.0) -> None:
        if acceleration <= 0:
            raise FleetError("acceleration must be positive")
        self.start_ms = int(start_ms)
        self.acceleration = float(acceleration)
        self._t0 = time.monotonic()

    @classmethod
    def resuming(cls, outbox: Outbox, *, start_ms: int, acceleration: float = 1.0) -> SimClock:
        """A clock that starts no earlier than the last window any device in ``outbox`` reported,
        so a restarted fleet neither waits for a clock that was reset nor reports out of order."""
        ends = [int(s.model_state.get("next_ms", 0)) for s in outbox.device_states().values()]
        return cls(max([start_ms, *ends]), acceleration)

    def now_ms(self) -> int:
        simulated = self.start_ms + int((time.monotonic() - self._t0) * 1000 * self.acceleration)
        if self.acceleration > 1:
            return min(simulated, wall_ms())
        return simulated

    def wall_s_until(self, sim_ms: int) -> float:
        """Wall seconds until the simulated clock reaches ``sim_ms`` (0 if it has; at most that
        long: callers check again)."""
        now = self.now_ms()
        if self.acceleration > 1 and now >= wall_ms() - 1:
            return max(0.0, (sim_ms - now) / 1000)  # caught up with the wall: real time
        return max(0.0, (sim_ms - now) / 1000 / self.acceleration)


def _fleet_window(devices: Sequence[FleetDevice], window_s: int | None) -> int:
    """The fleet's one reporting window: ``window_s`` if given, else the devices' registered
    window (60 s if they carry none). Refuses a device registered with another window: every
    reading it produced would be quarantined ``wrong_window``."""
    registered = {d.window_s for d in devices if d.window_s is not None}
    if window_s is None:
        if len(registered) > 1:
            raise FleetError(
                f"the devices are registered with different windows {sorted(registered)}: run one fleet per window"
            )
        return registered.pop() if registered else _DEFAULT_WINDOW_S
    wrong = sorted(d.id for d in devices if d.window_s is not None and d.window_s != window_s)
    if wrong:
        raise FleetError(
            f"{len(wrong)} device(s) ({', '.join(wrong[:3])}{', ...' if len(wrong) > 3 else ''}) are registered with "
            f"another reporting window than the fleet's {window_s} s; their readings would be quarantined wrong_window"
        )
    return window_s


def device_seed(fleet_seed: int, device_id: str) -> int:
    """A device's model seed: fixed by the fleet seed and the id, not by the device's position."""
    return int.from_bytes(hashlib.sha256(f"{fleet_seed}:{device_id}".encode()).digest()[:8], "big")


@dataclass(slots=True)
class FleetStats:
    readings: int = 0
    """Genuine readings signed (chained faults not included)."""
    faults: Counter[str] = field(default_factory=Counter)
    chained: int = 0
    """Of the faults, those that took a link of their device's chain (``faults.CHAINED``)."""
    skipped_windows: int = 0


@dataclass(slots=True)
class _Live:
    device: FleetDevice
    topic: str
    model: DeviceModel
    seq: int
    prev: bytes
    next_start_ms: int
    last_metrics: dict[str, int] | None = None


class FleetRunner:
    """Runs ``devices`` on ``clock``; see the module docstring.

    ``fault_rate`` is the probability, per genuine reading, of also queueing one faulty message
    (of a kind drawn from ``faults``, all by default) right after it; a chained fault
    (``faults.CHAINED``) takes the device's next link, and its chain goes on from it. ``max_backlog_windows``
    bounds catching up: a device further behind than that (a runner stopped for a simulated day)
    skips ahead, leaving a gap in time but never in its seq. ``publisher``, if given, is only
    woken after each batch; starting and stopping it is the caller's business.
    """

    def __init__(
        self,
        devices: Sequence[FleetDevice],
        outbox: Outbox,
        *,
        clock: SimClock,
        window_s: int | None = None,
        seed: int = 0,
        publisher: Publisher | None = None,
        fault_rate: float = 0.0,
        faults: Sequence[str] | None = None,
        tariff: Tariff | None = None,
        max_backlog_windows: int = 60,
    ) -> None:
        window_s = _fleet_window(devices, window_s)
        if not 1 <= window_s <= 86_400:
            raise FleetError("window_s must be in 1..86400")
        if not 0.0 <= fault_rate <= 1.0:
            raise FleetError("fault_rate must be a probability")
        self._faults = list(FAULTS if faults is None else faults)
        unknown = sorted(set(self._faults) - set(FAULTS))
        if unknown or not self._faults:
            raise FleetError(f"unknown or no fault kinds: {unknown}")
        self.outbox = outbox
        self.clock = clock
        self.window_s = window_s
        self.seed = seed
        self.publisher = publisher
        self.fault_rate = fault_rate
        self._backlog_ms = max_backlog_windows * window_s * 1000
        if len({d.id for d in devices}) != len(devices):
            raise FleetError("device ids must be unique")
        self._devices = list(devices)
        self._tariff = tariff
        self._live = self._load_all()

    def _load_all(self) -> list[_Live]:
        states = self.outbox.device_states([d.id for d in self._devices])
        return [self._load(d, states.get(d.id), self._tariff) for d in self._devices]

    def _load(self, device: FleetDevice, state: ChainState | None, tariff: Tariff | None) -> _Live:
        model = build_model(device.kind, seed=device_seed(self.seed, device.id), rating=device.rating, tariff=tariff)
        window_ms = self.window_s * 1000
        if state is None:
            # A new device's first window is the one holding the clock's start (not "now", which
            # would depend on how long setting up the fleet took): its reading comes at its end.
            start = self.clock.start_ms // window_ms * window_ms
            return _Live(device, telemetry_topic(device.id), model, 0, GENESIS_PREV, start)
        try:
            model.restore(state.model_state["model"])
            next_start = int(state.model_state["next_ms"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FleetError(f"stored state of {device.id} does not fit this fleet (seed {self.seed}): {exc}") from None
        return _Live(device, telemetry_topic(device.id), model, state.seq, state.prev, next_start)

    # --- running --------------------------------------------------------------------------------

    def run(
        self, stop_event: threading.Event, *, seconds: float | None = None, max_readings: int | None = None
    ) -> FleetStats:
        """Produce readings until ``stop_event`` is set, ``seconds`` of wall time pass or
        ``max_readings`` genuine readings are queued."""
        stats = FleetStats()
        deadline = None if seconds is None else time.monotonic() + seconds
        window_ms = self.window_s * 1000
        due = [(live.next_start_ms + window_ms, i) for i, live in enumerate(self._live)]
        heapq.heapify(due)
        while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
            if max_readings is not None and stats.readings >= max_readings:
                break
            now = self.clock.now_ms()
            batch: list[OutboxMessage] = []
            while due and due[0][0] <= now and len(batch) < _BATCH:
                if max_readings is not None and stats.readings >= max_readings:
                    break
                _, i = heapq.heappop(due)
                live = self._live[i]
                batch += self._reading(live, now, stats)
                heapq.heappush(due, (live.next_start_ms + window_ms, i))
            if batch:
                try:
                    self.outbox.enqueue_many(batch)
                except BaseException:
                    # The batch never happened: back to the chains the outbox holds.
                    self._live = self._load_all()
                    raise
                if self.publisher is not None:
                    self.publisher.wake()
                continue
            wait = _MAX_SLEEP_S if not due else min(_MAX_SLEEP_S, self.clock.wall_s_until(due[0][0]))
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            stop_event.wait(wait)
        return stats

    def _reading(self, live: _Live, now_ms: int, stats: FleetStats) -> list[OutboxMessage]:
        """The device's next reading (and maybe a fault after it). Advances the in-memory chain:
        the caller must commit the batch or abandon the runner."""
        window_ms = self.window_s * 1000
        start = live.next_start_ms
        if now_ms - (start + window_ms) > self._backlog_ms:
            skipped = (now_ms // window_ms * window_ms - window_ms - start) // window_ms
            stats.skipped_windows += skipped
            start += skipped * window_ms
        metrics = live.model.step(start_ms=start, window_s=self.window_s)
        end = start + window_ms
        body = Body(
            device=live.device.id,
            seq=live.seq + 1,
            ts_ms=end,
            kind=live.device.kind,
            window_s=self.window_s,
            metrics=metrics,
            prev=live.prev,
        )
        message = sign_body(body, live.device.key)
        out = [
            OutboxMessage(
                live.device.id,
                live.topic,
                message.raw,
                body.seq,
                body.prev,
                {"model": live.model.state_json(), "next_ms": end},
            )
        ]
        live.seq, live.prev, live.next_start_ms, live.last_metrics = body.seq, message.chain_hash, end, metrics
        stats.readings += 1
        if self.fault_rate:
            # Seeded by (fleet, device, seq): the same faults at the same places every run.
            rng = random.Random(f"{self.seed}:{live.device.id}:{body.seq}:fault")  # noqa: S311 - simulation
            if rng.random() < self.fault_rate:
                name = rng.choice(self._faults)
                fault = make_fault(name, self._snapshot(live, now_ms=wall_ms()), rng)
                if fault.seq is None:
                    out.append(OutboxMessage(live.device.id, fault.topic, fault.payload))
                else:
                    # Genuine but rejected: it takes the next link, and the chain goes on from it
                    # (same model state and window: the next genuine reading is unchanged but
                    # for its seq and prev).
                    out.append(
                        OutboxMessage(
                            live.device.id,
                            fault.topic,
                            fault.payload,
                            fault.seq,
                            live.prev,
                            {"model": live.model.state_json(), "next_ms": live.next_start_ms},
                        )
                    )
                    live.seq, live.prev = fault.seq, chain_hash(fault.payload)
                    stats.chained += 1
                stats.faults[name] += 1
        return out

    def _snapshot(self, live: _Live, *, now_ms: int) -> DeviceSnapshot:
        return DeviceSnapshot(
            device_id=live.device.id,
            kind=live.device.kind,
            key=live.device.key,
            seq=live.seq,
            prev=live.prev,
            ts_ms=live.next_start_ms,
            window_s=self.window_s,
            metrics=live.last_metrics or {},
            rating=live.model.rating_json(),
            now_ms=now_ms,
            last_ts_ms=live.next_start_ms,  # the end of the last genuine window: its ts_ms
        )

    def heads(self) -> dict[str, tuple[int, bytes]]:
        """Each device's in-memory chain head: (last seq, prev for the next reading)."""
        return {live.device.id: (live.seq, live.prev) for live in self._live}


def pregenerate(
    devices: Sequence[FleetDevice], count: int, *, window_s: int | None = None, start_ms: int, seed: int = 0
) -> list[tuple[str, bytes]]:
    """``count`` consecutive signed readings per device (seq 1..count from genesis), as
    ``(topic, payload)`` interleaved round-robin across devices, for load tests that must not pay
    for signing while they measure. Cost is about 50 us a reading (model step ~10 us, body
    checks ~13 us, signature ~25 us), i.e. about 20,000 readings/s on one core."""
    window_s = _fleet_window(devices, window_s)
    window_ms = window_s * 1000
    first = start_ms // window_ms * window_ms
    lives = [
        (d, build_model(d.kind, seed=device_seed(seed, d.id), rating=d.rating), telemetry_topic(d.id)) for d in devices
    ]
    prevs = [GENESIS_PREV] * len(lives)
    out: list[tuple[str, bytes]] = []
    for n in range(count):
        start = first + n * window_ms
        for j, (device, model, topic) in enumerate(lives):
            body = Body(
                device=device.id,
                seq=n + 1,
                ts_ms=start + window_ms,
                kind=device.kind,
                window_s=window_s,
                metrics=model.step(start_ms=start, window_s=window_s),
                prev=prevs[j],
            )
            message = sign_body(body, device.key)
            prevs[j] = message.chain_hash
            out.append((topic, message.raw))
    return out
