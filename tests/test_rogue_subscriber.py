"""No device login can make the broker drop others' readings (issue 12, point 1).

20,000 signed readings go through a real Mosquitto (the provisioned dynamic-security config) to
two gateway worker processes on one shared subscription, into SQLite and PostgreSQL. During the
run an active device's login and a revoked device's login (revoked in the store, its broker login
not yet removed) try to join the gateways' share group, and every other filter: each SUBSCRIBE is
refused, so Mosquitto never deals them a message. Then ``assetproof devices revoke`` reaches the
broker through ``$CONTROL``: the revoked device's open connection is dropped and it cannot log in
again. Every published reading is stored exactly once; nothing is quarantined.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from contextlib import AbstractContextManager
from pathlib import Path

import paho.mqtt.client as mqtt
from sqlalchemy import func, select

from devstack.broker_auth import BrokerAuthDir, Login, write_broker_auth
from devstack.mosquitto import Mosquitto
from protocol.topics import SUBSCRIPTION, shared_subscription, telemetry_topic
from store.db import make_engine
from store.devices import revoke_device
from store.tables import Quarantine, Reading
from tests.support.devices import NOW_MS, register
from tests.support.mqtt_login import NOT_AUTHORIZED, MqttLogin
from tests.support.processes import (
    REPO,
    count_rows,
    publisher,
    start_gateway,
    stop_process,
    wait_for,
    wait_published,
    wait_subscribed,
)

DEVICES, PER_DEVICE = 40, 500  # 20,000 readings
GROUP = "assetproof-gateway"
ROGUE_FILTERS = ("#", SUBSCRIPTION, shared_subscription(GROUP), f"$share/{GROUP}/#", shared_subscription("rogues"))


def load_writer(port: int, login: Login, *, inflight: int = 500) -> AbstractContextManager[mqtt.Client]:
    return publisher(port, client_id="load-writer", inflight=inflight, login=(login.username, login.password))


def test_rogue_subscribers_cannot_take_readings(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    fleet = register(engine, DEVICES, asset="rooftop", prefix="sol")
    (revoked,) = register(engine, 1, asset="rooftop", prefix="old")
    engine.dispose()
    for d in fleet:  # readings a window apart (protocol.timing), the last one before now
        d.ts_ms = NOW_MS - (PER_DEVICE + 1) * 60_000
    readings = [(d.topic, d.next().raw) for _ in range(PER_DEVICE) for d in fleet]
    passwords = {d.id: secrets.token_urlsafe(24) for d in [*fleet, revoked]}
    auth = BrokerAuthDir(tmp_path / "broker-auth")
    auth.directory.mkdir(mode=0o700)
    gateway, admin, writer = (Login(name, secrets.token_urlsafe(24)) for name in ("gw", "admin", "loader"))
    auth.write_login(auth.gateway_login_file, gateway)
    auth.write_login(auth.admin_login_file, admin)
    write_broker_auth(
        path=auth.config, devices=passwords, gateway=gateway, admin=admin, share_group=GROUP, load_writer=writer
    )
    active = fleet[7]

    broker = Mosquitto(tmp_path / "broker", dynsec_file=auth.config)
    broker.start()
    log = tmp_path / "gw.log"
    login = ["--username", gateway.username, "--password", gateway.password, "--share-group", GROUP]
    workers = [
        start_gateway(database_url=db_url, port=broker.port, log_path=log, client_id=f"gw-{i}", extra=login)
        for i in (1, 2)
    ]
    reader = make_engine(db_url, writer=False)
    rogues: list[MqttLogin] = []
    try:
        wait_subscribed(log, count=2)
        # The revoked device's login is still at the broker: revocation has not reached it yet.
        make_writer = make_engine(db_url)
        revoke_device(make_writer, device_id=revoked.id, now_ms=NOW_MS)
        make_writer.dispose()
        with load_writer(broker.port, writer) as client:
            sent: list[tuple[tuple[str, bytes], mqtt.MQTTMessageInfo]] = []
            half = len(readings) // 2
            publishing = threading.Thread(
                target=lambda: sent.extend((item, client.publish(*item, qos=1)) for item in readings[:half])
            )
            publishing.start()
            wait_for(lambda: count_rows(reader, Reading) >= 2_000, what="the run under way")
            for user in (active.id, revoked.id):
                rogue = MqttLogin(broker.port, user, passwords[user], client_id=f"rogue-{user}")
                rogues.append(rogue)
                assert not rogue.refused
                for topic_filter in ROGUE_FILTERS:
                    assert rogue.subscribe(topic_filter) == NOT_AUTHORIZED, (user, topic_filter)
                # Nor may it speak for another device.
                assert rogue.publish(telemetry_topic(fleet[0].id), b"not mine") == NOT_AUTHORIZED

            # `devices revoke` on the already revoked device reaches the running broker.
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "devices",
                    "revoke",
                    revoked.id,
                    "--database",
                    db_url,
                    "--broker",
                    f"127.0.0.1:{broker.port}",
                    "--broker-auth",
                    str(auth.directory),
                    "--deployment",
                    str(tmp_path / "no-chain.json"),
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            )
            assert out.returncode == 0, out.stderr
            said = " ".join(out.stdout.split())  # rich wraps lines at the terminal width
            assert "already revoked in the store" in said
            assert "through $CONTROL and disconnected" in said
            held = rogues[1]
            held.wait(lambda: "Administrative action" in held.disconnects, "the revoked device dropped")
            held.wait(lambda: len(held.connacks) >= 2 and held.refused, "its reconnect refused")
            assert MqttLogin(broker.port, revoked.id, passwords[revoked.id], client_id="again").refused

            publishing.join(120)
            assert not publishing.is_alive()
            # The second half is published after the rogues tried: the run is certainly still going.
            sent += [(item, client.publish(*item, qos=1)) for item in readings[half:]]
            wait_published(client, sent, timeout_s=180)
        wait_for(lambda: count_rows(reader, Reading) >= len(readings), timeout_s=180, what="every reading stored")
        stop_codes = [stop_process(w) for w in workers]  # drained: nothing late can arrive after this
        assert stop_codes == [0, 0], log.read_text()[-2000:]
        with reader.connect() as conn:
            distinct = conn.execute(
                select(func.count()).select_from(select(Reading.device_id, Reading.seq).distinct().subquery())
            ).scalar_one()
        assert count_rows(reader, Reading) == distinct == DEVICES * PER_DEVICE
        assert count_rows(reader, Quarantine) == 0
        assert "subscribed to $share/" in log.read_text()
    finally:
        for rogue in rogues:
            rogue.close()
        for w in workers:
            stop_process(w)
        reader.dispose()
        broker.stop()
