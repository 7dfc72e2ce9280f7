"""The ingest half as a user runs it: ``assetproof devices provision``, Mosquitto with the
generated dynamic-security config, an authenticated gateway, ``assetproof simulate`` on an
accelerated clock, and the broker going away in the middle. Every reading the devices signed is
stored once, in order, and nothing is quarantined."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from device_sim.outbox import Outbox
from devstack.mosquitto import Mosquitto
from store.db import make_engine
from store.tables import DeviceState, Quarantine, Reading
from tests.support.processes import REPO, count_rows, start_gateway, stop_process, wait_for, wait_subscribed


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_provision_simulate_outage_ingest(db_url: str, tmp_path: Path) -> None:
    keys, auth = tmp_path / "keys", tmp_path / "broker-auth"
    common = [
        "--database",
        db_url,
        "--keystore",
        str(keys),
        "--broker-auth",
        str(auth),
        "--deployment",
        str(tmp_path / "no-chain.json"),  # ingest only: no contracts
    ]
    cli("devices", "provision", "--kind", "solar", "--count", "3", "--asset", "hk-rooftops", *common)
    cli(
        "devices", "provision", "--kind", "charger", "--count", "2", "--asset", "kowloon-hub", "--alg", "es256", *common
    )
    cli("devices", "provision", "--kind", "miner", "--count", "2", "--asset", "hydro-pod", *common)
    gateway_login = json.loads((auth / "gateway.json").read_text())

    broker = Mosquitto(tmp_path / "broker", dynsec_file=auth / "dynsec.json")
    broker.start()
    log = tmp_path / "gw.log"
    gw = start_gateway(
        database_url=db_url,
        port=broker.port,
        log_path=log,
        extra=["--username", gateway_login["username"], "--password", gateway_login["password"]],
    )
    outbox = tmp_path / "outbox.sqlite"
    sim = None
    try:
        wait_subscribed(log)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "simulate",
                "--keystore",
                str(keys),
                "--broker",
                f"127.0.0.1:{broker.port}",
                "--outbox",
                str(outbox),
                "--accelerate",
                "600",
                "--seconds",
                "6",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        time.sleep(2.0)
        broker.stop()  # devices keep signing into their outbox meanwhile
        time.sleep(1.5)
        broker.start()
        output, _ = sim.communicate(timeout=60)
        assert sim.returncode == 0, output.decode()[-2000:]
        heads = {device: state.seq for device, state in Outbox(outbox).device_states().items()}
        assert len(heads) == 7
        assert sum(heads.values()) > 100
        engine = make_engine(db_url, writer=False)
        wait_for(lambda: count_rows(engine, Reading) == sum(heads.values()), what="every signed reading stored")
        time.sleep(0.5)
        with engine.connect() as conn:
            stored = dict(conn.execute(select(DeviceState.device_id, DeviceState.last_seq)).all())
        assert stored == heads
        assert count_rows(engine, Reading) == sum(heads.values())
        assert count_rows(engine, Quarantine) == 0
        engine.dispose()
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
        assert stop_process(gw) == 0, log.read_text()[-2000:]
        broker.stop()
