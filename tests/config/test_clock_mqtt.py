"""The one wall clock and the one MQTT version vocabulary."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.clock import wall_ms
from config.mqtt import MqttVersion
from device_sim.publisher import Publisher, PublisherError
from gateway.service import GatewayConfig
from gateway.tariff import load_tariff


def test_wall_ms_is_integer_milliseconds_of_the_wall_clock() -> None:
    before = time.time_ns() // 1_000_000
    now = wall_ms()
    after = time.time_ns() // 1_000_000
    assert isinstance(now, int)
    assert before <= now <= after


def test_mqtt_versions_parse_from_their_wire_names() -> None:
    assert MqttVersion.parse("5") is MqttVersion.V5
    assert MqttVersion.parse("3.1.1") is MqttVersion.V3_1_1
    assert MqttVersion.V5 == "5"  # a StrEnum: logs and configs keep the plain values
    with pytest.raises(ValueError, match=r"unsupported MQTT protocol '4': one of 5, 3\.1\.1"):
        MqttVersion.parse("4")


def test_gateway_and_publisher_share_the_vocabulary(tmp_path: Path) -> None:
    tariff = load_tariff()
    config = GatewayConfig(database_url="sqlite://", tariff=tariff, protocol=MqttVersion.V3_1_1)
    assert config.protocol is MqttVersion.V3_1_1
    with pytest.raises(ValueError, match="unsupported MQTT protocol"):
        GatewayConfig(database_url="sqlite://", tariff=tariff, protocol="4")  # type: ignore[arg-type]
    with pytest.raises(PublisherError, match="unsupported MQTT protocol"):
        Publisher(tmp_path / "outbox.sqlite", protocol="3.1")  # type: ignore[arg-type]
