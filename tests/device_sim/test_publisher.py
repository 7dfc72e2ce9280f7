"""Publisher against a real Mosquitto: order, flow control, rejections, store-and-forward."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from device_sim.outbox import Outbox, OutboxMessage
from device_sim.publisher import Publisher
from devstack.broker_auth import Login, write_broker_auth
from devstack.mosquitto import Mosquitto
from protocol.topics import SUBSCRIPTION, telemetry_topic
from tests.device_sim.conftest import Subscriber


def payload(device: str, seq: int, size: int = 200) -> bytes:
    head = f'{{"body":{{"device":"{device}","seq":{seq}}},"pad":"'.encode()
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def fill(box: Outbox, devices: list[str], per_device: int, *, start: int = 1) -> None:
    box.enqueue_many(
        OutboxMessage(d, telemetry_topic(d), payload(d, seq))
        for seq in range(start, start + per_device)
        for d in devices
    )


def first_arrivals(messages: list[tuple[str, bytes]]) -> tuple[dict[str, list[int]], int]:
    """Per device, the seqs in order of first arrival; and how many arrivals were repeats."""
    import json

    order: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    duplicates = 0
    for _, raw in messages:
        body = json.loads(raw)["body"]
        key = (body["device"], body["seq"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        order[body["device"]].append(body["seq"])
    return order, duplicates


def devices(n: int) -> list[str]:
    return [f"dev-{i:03d}" for i in range(n)]


def test_multiplexed_delivers_everything_in_order(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    ids = devices(20)
    fill(box, ids, 100)
    publisher = Publisher(box, port=broker.port, connections=3, max_inflight=50)
    publisher.start()
    try:
        assert publisher.wait_until_drained(20)
        assert subscriber.wait_for(2000, 10)
        subscriber.settle(0.2, 2)
    finally:
        publisher.stop()
    order, duplicates = first_arrivals(subscriber.messages)
    assert duplicates == 0
    assert len(subscriber.messages) == 2000
    assert {d: order[d] for d in ids} == {d: list(range(1, 101)) for d in ids}
    stats = publisher.stats()
    assert (stats.published, stats.rejected, stats.reconnects, stats.inflight) == (2000, 0, 0, 0)
    assert stats.connections == 3
    assert publisher.pending() == 0


def test_inflight_window_is_never_exceeded(tmp_path: Path, broker: Mosquitto, subscriber: Subscriber) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    fill(box, devices(4), 500)
    publisher = Publisher(box, port=broker.port, connections=2, max_inflight=8)
    peak = 0
    publisher.start()
    try:
        deadline = time.monotonic() + 20
        while publisher.pending() and time.monotonic() < deadline:
            peak = max(peak, publisher.stats().inflight)
        assert publisher.wait_until_drained(10)
    finally:
        publisher.stop()
    assert 0 < peak <= 16
    assert subscriber.wait_for(2000, 10)


def test_per_device_connections_and_refused_messages(tmp_path: Path) -> None:
    passwords = {"sol-a-0001": "pw-a-0123456789", "sol-a-0002": "pw-b-0123456789", "sol-a-0003": "pw-c-0123456789"}
    dynsec = tmp_path / "dynsec.json"
    write_broker_auth(
        path=dynsec, devices=passwords, gateway=Login("gateway", "gw-pw-12345"), admin=Login("admin", "admin-pw-12345")
    )
    box = Outbox(tmp_path / "o.sqlite")
    with Mosquitto(tmp_path / "broker", dynsec_file=dynsec) as broker:
        gateway = Subscriber(broker.port, username="gateway", password="gw-pw-12345")
        assert gateway.subscribed.wait(5)
        fill(box, ["sol-a-0001", "sol-a-0002"], 20)
        # sol-a-0001 tries to speak for sol-a-0002: the broker's ACL refuses it (PUBACK 0x87).
        box.enqueue("sol-a-0001", telemetry_topic("sol-a-0002"), payload("sol-a-0002", 999))
        fill(box, ["sol-a-0001", "sol-a-0002"], 5, start=21)
        # sol-a-0003's keystore password is wrong: its readings wait in the outbox.
        fill(box, ["sol-a-0003"], 3)
        lookup = {**passwords, "sol-a-0003": "not-its-password"}
        publisher = Publisher(box, port=broker.port, passwords=lookup, backoff_s=(0.05, 0.2))
        publisher.start()
        try:
            assert gateway.wait_for(50, 10)
            deadline = time.monotonic() + 5
            while publisher.rejected < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            gateway.settle(0.3, 3)
            time.sleep(0.2)
            stats = publisher.stats()
        finally:
            publisher.stop()
            gateway.close()
    order, duplicates = first_arrivals(gateway.messages)
    assert duplicates == 0
    assert dict(order) == {"sol-a-0001": list(range(1, 26)), "sol-a-0002": list(range(1, 26))}
    assert (stats.published, stats.rejected) == (50, 1)
    assert stats.connections == 3
    assert stats.connections_up == 2
    remaining = box.peek(10)
    assert [t for _, t, _ in remaining] == [telemetry_topic("sol-a-0003")] * 3


def test_too_large_for_the_broker_is_rejected_not_retried(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    fill(box, ["dev-1"], 2)
    box.enqueue("dev-1", telemetry_topic("dev-1"), payload("dev-1", 3, size=70_000))
    fill(box, ["dev-1"], 2, start=4)
    publisher = Publisher(box, port=broker.port, connections=1)
    publisher.start()
    try:
        assert publisher.wait_until_drained(10)
        assert subscriber.wait_for(4, 5)
    finally:
        publisher.stop()
    order, _ = first_arrivals(subscriber.messages)
    assert order["dev-1"] == [1, 2, 4, 5]
    assert (publisher.published, publisher.rejected, publisher.reconnects) == (4, 1, 0)


def test_store_and_forward_across_a_broker_outage(tmp_path: Path) -> None:
    """The broker stops while devices keep producing; after its restart everything arrives, at
    least once, and each device's first arrivals are in order."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    subscriber = Subscriber(broker.port, client_id="persistent-gateway")
    assert subscriber.subscribed.wait(5)
    box = Outbox(tmp_path / "o.sqlite")
    ids = devices(10)
    per_device = 150
    stop_producing = threading.Event()

    def produce() -> None:
        for seq in range(1, per_device + 1):
            fill(box, ids, 1, start=seq)
            publisher.wake()
            time.sleep(0.01)
        stop_producing.set()

    publisher = Publisher(box, port=broker.port, connections=2, max_inflight=20, backoff_s=(0.05, 0.3))
    publisher.start()
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert subscriber.wait_for(200, 10)
        broker.stop()
        outage_start = publisher.pending()
        time.sleep(0.6)
        accumulated = publisher.pending()
        broker.start()
        producer.join(30)
        assert stop_producing.is_set()
        assert publisher.wait_until_drained(20)
        assert subscriber.wait_for(len(ids) * per_device, 20)
        subscriber.settle(0.3, 3)
    finally:
        publisher.stop()
        subscriber.close()
        broker.stop()
    assert accumulated > outage_start  # readings piled up on disk while the broker was away
    order, duplicates = first_arrivals(subscriber.messages)
    assert {d: order[d] for d in ids} == {d: list(range(1, per_device + 1)) for d in ids}
    assert len(subscriber.messages) == len(ids) * per_device + duplicates
    assert publisher.reconnects >= 2  # both connections came back
    assert publisher.published >= len(ids) * per_device


def test_starts_before_the_broker_and_resumes_after_its_own_restart(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")  # port chosen, not started yet
    box = Outbox(tmp_path / "o.sqlite")
    fill(box, devices(3), 30)
    first = Publisher(box, port=broker.port, connections=1, backoff_s=(0.05, 0.1))
    first.start()
    time.sleep(0.3)
    assert first.published == 0
    broker.start()
    subscriber = Subscriber(broker.port)
    try:
        assert subscriber.subscribed.wait(5)
        deadline = time.monotonic() + 10
        while first.published < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.stop()
        fill(box, devices(3), 30, start=31)
        second = Publisher(tmp_path / "o.sqlite", port=broker.port, connections=2)
        second.start()
        assert second.wait_until_drained(10)
        second.stop()
        # Messages sent before the subscriber was there are lost by MQTT's design, not ours:
        # only count what it could have seen.
        subscriber.settle(0.3, 3)
    finally:
        subscriber.close()
        broker.stop()
    order, _ = first_arrivals(subscriber.messages)
    for d in devices(3):
        assert order[d][-30:] == list(range(31, 61))
        assert order[d] == sorted(order[d])
    assert Counter(p for _, p in subscriber.messages).most_common(1)[0][1] <= 2


@pytest.mark.parametrize("bad", [0, 70_000])
def test_rejects_bad_settings(tmp_path: Path, bad: int) -> None:
    with pytest.raises(ValueError, match="max_inflight"):
        Publisher(Outbox(tmp_path / "o.sqlite"), max_inflight=bad)


def test_holds_readings_while_no_gateway_is_subscribed(tmp_path: Path) -> None:
    """Mosquitto answers "no matching subscribers" while no gateway holds the shared
    subscription: the readings stay in the outbox and go out, in order, once one subscribes."""
    with Mosquitto(tmp_path / "broker") as broker:
        box = Outbox(tmp_path / "o.sqlite")
        ids = devices(4)
        fill(box, ids, 25)
        publisher = Publisher(box, port=broker.port, connections=2, max_inflight=10, backoff_s=(0.05, 0.3))
        publisher.start()
        try:
            deadline = time.monotonic() + 10
            while publisher.stats().undelivered == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert publisher.stats().undelivered > 0
            assert publisher.pending() == 100  # nothing was dropped
            subscriber = Subscriber(broker.port, client_id="late-gateway", topic=f"$share/gw/{SUBSCRIPTION}")
            assert subscriber.subscribed.wait(5)
            assert publisher.wait_until_drained(20)
            assert subscriber.wait_for(100, 10)
            subscriber.close()
        finally:
            publisher.stop()
    order, _ = first_arrivals(subscriber.messages)
    assert all(order[d] == list(range(1, 26)) for d in ids)


def test_shared_subscription_survives_a_broker_restart(tmp_path: Path) -> None:
    """After a restart Mosquitto 2.0 has forgotten the shared subscription until the gateway
    re-subscribes; the publisher's retries on "no matching subscribers" bridge that gap."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    subscriber = Subscriber(broker.port, client_id="shared-gateway", topic=f"$share/gw/{SUBSCRIPTION}")
    assert subscriber.subscribed.wait(5)
    box = Outbox(tmp_path / "o.sqlite")
    ids = devices(5)
    publisher = Publisher(box, port=broker.port, connections=2, max_inflight=20, backoff_s=(0.05, 0.3))
    publisher.start()
    try:
        fill(box, ids, 40)
        publisher.wake()
        assert subscriber.wait_for(100, 10)
        broker.stop()
        fill(box, ids, 40, start=41)
        broker.start()  # the publisher may reconnect before the subscriber re-subscribes
        publisher.wake()
        assert publisher.wait_until_drained(30)
        assert subscriber.wait_for(len(ids) * 80, 20)
    finally:
        publisher.stop()
        subscriber.close()
        broker.stop()
    order, _ = first_arrivals(subscriber.messages)
    assert all(sorted(order[d]) == list(range(1, 81)) for d in ids)
