"""Load publisher for ``bench.ingest``: several MQTT v5 connections, QoS 1, each with a bounded
in-flight window (so it never outruns the broker), an optional fleet-wide rate. A device's
readings always travel on one connection, in order. Writes each reading's publish time."""

from __future__ import annotations

import argparse
import json
import pickle
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench._ingest_load import Load
from config.clock import wall_ms
from config.mqtt_tls import TLSFiles, client_context

INFLIGHT = 500


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--load", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--username", default=None, help="a login allowed to publish for every device")
    parser.add_argument("--password", default=None)
    parser.add_argument("--tls", nargs=3, type=Path, default=None, metavar=("CA", "CERT", "KEY"), help="mqtts")
    args = parser.parse_args()
    load: Load = pickle.loads(args.load.read_bytes())

    shards: list[list[tuple[str, bytes, str, int]]] = [[] for _ in range(args.connections)]
    for item in load.messages:
        shards[hash(item[2]) % args.connections].append(item)
    published_at: dict[tuple[str, int], int] = {}
    lock = threading.Lock()
    started = time.perf_counter()

    def run(index: int, shard: list[tuple[str, bytes, str, int]]) -> None:
        window = threading.Semaphore(INFLIGHT)
        done = threading.Event()
        acked = [0]
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{index}", protocol=mqtt.MQTTv5
        )
        client.max_inflight_messages_set(INFLIGHT)
        if args.username:
            client.username_pw_set(args.username, args.password)
        if args.tls:
            client.tls_set_context(client_context(TLSFiles(*args.tls)))

        def on_publish(_c: object, _u: object, _mid: int, _rc: object, _p: object) -> None:
            window.release()
            acked[0] += 1
            if acked[0] == len(shard):
                done.set()

        client.on_publish = on_publish
        client.connect("localhost" if args.tls else "127.0.0.1", args.port)  # the certificate's name
        client.loop_start()
        rate = args.rate / args.connections if args.rate else None
        times: dict[tuple[str, int], int] = {}
        t0 = time.perf_counter()
        for i, (topic, payload, device, seq) in enumerate(shard):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            window.acquire()
            times[(device, seq)] = wall_ms()
            client.publish(topic, payload, qos=1)
        if shard:
            done.wait(600)
        client.disconnect()
        client.loop_stop()
        with lock:
            published_at.update(times)

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    args.out.write_bytes(pickle.dumps(published_at))
    print(json.dumps({"published": len(published_at), "msgs_s": len(published_at) / elapsed}))


if __name__ == "__main__":
    main()
