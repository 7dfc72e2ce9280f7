"""``assetproof demo`` on the embedded amqtt broker (MQTT 3.1.1), the fallback when Mosquitto is
not installed: every signed reading accepted, nothing lost, epochs anchored."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import demo.stack
from demo.options import DemoError, DemoOptions
from demo.stack import DemoStack

SECONDS = 15.0


def test_the_demo_runs_on_the_embedded_amqtt_broker(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    stack = DemoStack(
        DemoOptions(seconds=SECONDS, home=home, api_port=0, broker="amqtt", epoch_seconds=3.0), say=lambda _line: None
    )
    try:
        stack.start()
        assert stack.broker_label.startswith("embedded amqtt on 127.0.0.1:")
        assert "MQTT 3.1.1" in stack.broker_label
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            assert stack.failed() is None
            time.sleep(0.5)
        summary = stack.finish()
    finally:
        stack.close()
    assert stack.failed() is None
    saved = json.loads((home / "summary.json").read_text())
    assert saved["broker"] == summary.broker == stack.broker_label
    assert summary.signed > 0
    assert summary.accepted + summary.chained == summary.signed
    assert summary.lost == 0
    assert summary.epochs_anchored >= 1
    assert summary.unanchored_readings == 0
    assert summary.ok, summary


def test_auto_falls_back_to_amqtt_only_without_mosquitto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def stack(broker: str) -> DemoStack:
        return DemoStack(DemoOptions(home=tmp_path, broker=broker), say=lambda _line: None)  # type: ignore[arg-type]

    monkeypatch.setattr(demo.stack, "find_mosquitto", lambda: None)
    assert stack("auto")._choose_broker() == ("amqtt", "Mosquitto not installed")
    with pytest.raises(DemoError, match="Mosquitto is not installed"):
        stack("mosquitto")._choose_broker()
    monkeypatch.setattr(demo.stack, "find_mosquitto", lambda: "/usr/sbin/mosquitto")
    assert stack("auto")._choose_broker() == ("mosquitto", "")
    assert stack("amqtt")._choose_broker() == ("amqtt", "chosen over Mosquitto")
    with pytest.raises(DemoError, match="unknown broker"):
        stack("rabbitmq")
