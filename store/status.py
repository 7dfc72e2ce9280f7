"""The status vocabularies stored in the database. ``StrEnum`` members equal their stored
strings, so rows written before these types existed compare and filter the same (no migration)."""

from __future__ import annotations

from enum import StrEnum


class EpochStatus(StrEnum):
    """An epoch's anchoring: ``closed`` → ``sent`` (transaction hash recorded) → ``anchored``."""

    CLOSED = "closed"
    SENT = "sent"
    ANCHORED = "anchored"


class DeviceStatus(StrEnum):
    """A registered device: its readings are accepted while ``active``; revocation is final."""

    ACTIVE = "active"
    REVOKED = "revoked"
