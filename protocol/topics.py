"""The MQTT topic scheme: ``assetproof/v1/devices/{device_id}/telemetry``.

One topic per device, so the broker's ACL can let each device publish only to its own topic,
and a gateway can tell which device a message claims to come from before decoding it.
"""

from __future__ import annotations

from typing import Final

from protocol.envelope import validate_device_id
from protocol.errors import MalformedError

__all__ = ["SUBSCRIPTION", "TOPIC_PREFIX", "device_from_topic", "shared_subscription", "telemetry_topic"]

TOPIC_PREFIX: Final = "assetproof/v1/devices/"
_SUFFIX: Final = "/telemetry"
SUBSCRIPTION: Final = TOPIC_PREFIX + "+" + _SUFFIX


def telemetry_topic(device_id: str) -> str:
    """The topic device ``device_id`` publishes its readings on."""
    return TOPIC_PREFIX + validate_device_id(device_id) + _SUFFIX


def device_from_topic(topic: str) -> str:
    """The device id a telemetry topic names; :class:`MalformedError` for any other topic."""
    if not (topic.startswith(TOPIC_PREFIX) and topic.endswith(_SUFFIX)):
        raise MalformedError(f"not a telemetry topic: {topic[:200]!r}", field="topic")
    return validate_device_id(topic[len(TOPIC_PREFIX) : -len(_SUFFIX)], field_name="topic device")


def shared_subscription(group: str) -> str:
    """The MQTT v5 shared subscription that splits all telemetry among a group's workers."""
    if not group or any(c in group for c in "/+#"):
        raise ValueError(f"invalid share group name {group!r}")
    return f"$share/{group}/{SUBSCRIPTION}"
