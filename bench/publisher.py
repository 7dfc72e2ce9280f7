"""Publisher throughput against a local Mosquitto with a receiver that keeps up.

    .venv/bin/python -m bench.publisher [--devices 100] [--per-device 500]
        [--connections 4] [--max-inflight 1000] [--per-device-mode]

Signs the readings first (and reports the signing rate), queues them in an outbox, then times
the publisher draining it at QoS 1 to a broker whose subscriber is ``mosquitto_sub`` (C, QoS 1,
writing every payload to a file). Afterwards it checks that every reading arrived and each
device's readings arrived in order. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from device_sim.fleet import FleetDevice, pregenerate
from device_sim.outbox import Outbox, OutboxMessage
from device_sim.publisher import Publisher
from devstack.mosquitto import Mosquitto
from protocol.envelope import DeviceKind
from protocol.signing import DeviceKey
from protocol.topics import SUBSCRIPTION, device_from_topic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--max-inflight", type=int, default=1000)
    parser.add_argument("--per-device-mode", action="store_true")
    args = parser.parse_args()
    total = args.devices * args.per_device
    work = Path(tempfile.mkdtemp(prefix="publisher-bench-"))
    try:
        kinds = list(DeviceKind)
        devices = [
            FleetDevice(f"bench-{i:05d}", kinds[i % 3], DeviceKey.generate("ed25519")) for i in range(args.devices)
        ]
        t0 = time.perf_counter()
        messages = pregenerate(devices, args.per_device, start_ms=1_767_196_800_000)
        sign_s = time.perf_counter() - t0
        print(f"signed {total:,} readings in {sign_s:.2f} s: {total / sign_s:,.0f}/s (one core)")

        box = Outbox(work / "outbox.sqlite")
        t0 = time.perf_counter()
        box.enqueue_many(OutboxMessage(device_from_topic(t), t, p) for t, p in messages)
        print(f"queued in {time.perf_counter() - t0:.2f} s")

        with Mosquitto(work / "broker") as broker:
            received = work / "received.txt"
            with received.open("wb") as sink:
                sub = subprocess.Popen(
                    [
                        shutil.which("mosquitto_sub") or "mosquitto_sub",
                        *("-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1"),
                        *("-i", "bench-receiver", "-t", SUBSCRIPTION, "-C", str(total), "-F", "%p"),
                    ],
                    stdout=sink,
                )
                time.sleep(0.5)  # let it subscribe
                mode = {"passwords": None} if args.per_device_mode else {"connections": args.connections}
                publisher = Publisher(
                    Outbox(work / "outbox.sqlite", synchronous="NORMAL"),
                    port=broker.port,
                    max_inflight=args.max_inflight,
                    **mode,
                )
                t0 = time.perf_counter()
                publisher.start()
                drained = publisher.wait_until_drained(600)
                acked_s = time.perf_counter() - t0
                sub.wait(120)
                received_s = time.perf_counter() - t0
                publisher.stop()
        stats = publisher.stats()
        how = "per-device connections" if args.per_device_mode else f"{args.connections} connections"
        print(
            f"publisher ({how}, max_inflight {args.max_inflight}): {total:,} msgs acked in {acked_s:.2f} s"
            f" = {total / acked_s:,.0f} msgs/s; all received by the subscriber after {received_s:.2f} s"
            f" = {total / received_s:,.0f} msgs/s; drained={drained} {stats}"
        )
        order: dict[str, list[int]] = defaultdict(list)
        for line in received.read_bytes().splitlines():
            body = json.loads(line)["body"]
            order[body["device"]].append(body["seq"])
        complete = all(order[d.id] == list(range(1, args.per_device + 1)) for d in devices)
        print(f"received {sum(map(len, order.values())):,} of {total:,}; all complete, in order: {complete}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
