"""The MQTT versions assetproof speaks, shared by the gateway and the device simulator."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MqttVersion"]


class MqttVersion(StrEnum):
    """``V5``: shared subscriptions, reason codes, session expiry, any number of gateway
    workers. ``V3_1_1``: for brokers without v5 (the embedded amqtt broker); exactly one gateway
    worker. A ``StrEnum``, so the values ``"5"`` and ``"3.1.1"`` still compare equal to it."""

    V5 = "5"
    V3_1_1 = "3.1.1"

    @classmethod
    def parse(cls, value: str) -> MqttVersion:
        """``value`` as a version; ValueError naming the supported ones for anything else."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unsupported MQTT protocol {value!r}: one of {', '.join(cls)}") from None
