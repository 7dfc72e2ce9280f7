"""``assetproof devices provision / revoke`` keep a real Mosquitto's logins in step: the first
provision writes the dynamic-security config, later ones reach the running broker through
``$CONTROL``; ``revoke`` removes the login (the running broker drops the device at once; a stopped
one finds it gone when it starts) and says which happened."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from device_sim.keystore import Keystore
from devstack.mosquitto import Mosquitto, free_port
from protocol.topics import telemetry_topic
from tests.support.mqtt_login import MqttLogin
from tests.support.processes import REPO


def cli(*args: str, code: int = 0) -> str:
    out = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, check=False)
    assert out.returncode == code, out.stdout + out.stderr[-2000:]
    return " ".join((out.stdout + out.stderr).split())  # rich wraps lines at the terminal width


def test_provision_and_revoke_reach_the_broker(tmp_path: Path) -> None:
    auth, keys = tmp_path / "broker-auth", tmp_path / "keys"
    port = free_port()
    common = [
        "--database",
        f"sqlite:///{tmp_path / 'a.db'}",
        "--broker-auth",
        str(auth),
        "--broker",
        f"127.0.0.1:{port}",
        "--deployment",
        str(tmp_path / "no-chain.json"),
    ]
    provision = ["devices", "provision", "--kind", "solar", "--asset", "roof", "--keystore", str(keys), *common]
    assert f"wrote {auth}/dynsec.json" in cli(*provision, "--count", "2")
    for name in ("dynsec.json", "admin.json", "gateway.json"):
        assert stat.S_IMODE((auth / name).stat().st_mode) == 0o600, name
    assert json.loads((auth / "admin.json").read_text())["username"] == "assetproof-admin"
    store = Keystore(keys)

    def login(device: str, client_id: str) -> MqttLogin:
        return MqttLogin(port, device, store.load(device).mqtt_password, client_id=client_id)

    with Mosquitto(tmp_path / "broker", port=port, dynsec_file=auth / "dynsec.json") as broker:
        said = cli(*provision, "--count", "1")
        assert "added to the running broker" in said
        assert "through $CONTROL" in said
        first, second, third = store.ids()
        late = login(third, "late")
        assert late.publish(telemetry_topic(third), b"own") < 0x80
        late.close()

        held = login(first, "held")
        said = cli("devices", "revoke", first, *common)
        assert f"revoked {first}" in said
        assert "through $CONTROL and disconnected" in said
        held.wait(lambda: "Administrative action" in held.disconnects, "the device dropped")
        held.wait(lambda: len(held.connacks) >= 2 and held.refused, "its reconnect refused")
        held.close()
        assert login(first, "again").refused

        broker.stop()
        said = cli("devices", "revoke", second, *common)
        assert f"removed from {auth}/dynsec.json (nothing answered" in said
        broker.start()
        assert login(second, "after-restart").refused
        assert login(first, "after-restart-1").refused
        still = login(third, "still")
        assert not still.refused
        still.close()

    assert "unknown device 'sol-nope-0001'" in cli("devices", "revoke", "sol-nope-0001", *common, code=2)
    # Revoking again (say the broker was unreachable the first time) finds no login left.
    assert "no login to remove" in cli("devices", "revoke", second, *common)
