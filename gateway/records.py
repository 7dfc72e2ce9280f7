"""What a gateway batch takes in and gives back: the broker's messages and the batch's tallies."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from protocol.envelope import Message


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message as it left the broker, converted from paho's object at the edge."""

    topic: str
    payload: bytes
    received_ms: int
    token: Any = None  # what the MQTT edge needs to acknowledge it


@dataclass(slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    released: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    """Stored in quarantine, per reason (chained rejections included)."""
    chained: int = 0
    """Of those, chained rejections (they advanced their device's chain)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Counted but not stored (publisher over its quarantine budget), per reason."""

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


@dataclass(slots=True)
class Candidate:
    """A decoded message on its way through classification."""

    incoming: Incoming
    message: Message
    verified_with: bytes | None  # the public key the signature verified under, if it did
    from_hold: bool = False
