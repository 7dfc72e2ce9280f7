"""Why the gateway quarantined a message: one stable code per cause.

The codes are stored in the database, exported in quarantine exports and printed by the
auditor, so they are a format: a :class:`~enum.StrEnum` keeps every member equal to (and
serialised as) its plain string, and a member may be added but never renamed.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["QuarantineReason"]


@unique
class QuarantineReason(StrEnum):
    # Decoding and verifying the bytes (the reason codes of protocol.errors).
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    NON_CANONICAL = "non_canonical"
    UNSUPPORTED_ALG = "unsupported_alg"
    INVALID_KEY = "invalid_key"
    BAD_SIGNATURE = "bad_signature"
    VERIFICATION_FAILED = "verification_failed"
    # Who sent it.
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    # Where it sits in its device's chain.
    REPLAY = "replay"
    GAP = "gap"
    BAD_PREV = "bad_prev"
    # Signed and linked, but its content cannot count (quarantined *chained*).
    KIND_MISMATCH = "kind_mismatch"
    CLOCK_SKEW = "clock_skew"
    IMPLAUSIBLE = "implausible"
    WRONG_WINDOW = "wrong_window"
    """``window_s`` is not the device's registered reporting window (:mod:`protocol.timing`)."""
    TOO_SOON = "too_soon"
    """Less than a window after the device's previous counted reading (:mod:`protocol.timing`)."""
