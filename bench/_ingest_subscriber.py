"""The ceiling for ``bench.ingest``: a bare paho subscriber (MQTT v5, QoS 1, automatic
acknowledgement) that receives every reading and verifies its signature, nothing else."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench._ingest_load import Load
from protocol.envelope import decode_and_verify
from protocol.errors import VerificationError
from protocol.topics import SUBSCRIPTION

IDLE_S = 15.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--load", type=Path, required=True)
    args = parser.parse_args()
    load: Load = pickle.loads(args.load.read_bytes())
    keys = {d.id: (d.alg, d.public_key) for d in load.devices}
    expected = len(load.messages)
    state = {"received": 0, "verified": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        if not state["received"]:
            state["first"] = now
        state["received"] += 1
        state["last"] = now
        device = message.topic.split("/")[3]
        alg, key = keys[device]
        try:
            decode_and_verify(bytes(message.payload), alg=alg, public_key=key)
            state["verified"] += 1
        except VerificationError:
            pass
        if state["received"] >= expected:
            done.set()

    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-ceiling", protocol=mqtt.MQTTv5
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(SUBSCRIPTION, qos=1)
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    if not subscribed.wait(30):
        sys.exit("no SUBACK")
    print("ready", flush=True)
    while not done.wait(1.0):
        if state["received"] and time.perf_counter() - state["last"] > IDLE_S:
            break
    client.disconnect()
    client.loop_stop()
    span = max(1e-9, state["last"] - state["first"])
    print(
        json.dumps({"received": state["received"], "verified": state["verified"], "msgs_s": state["received"] / span})
    )


if __name__ == "__main__":
    main()
