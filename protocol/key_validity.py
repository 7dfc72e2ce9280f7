"""Whether a device key counts for a reading: judged by chain time, never by the reading's word.

A reading's ``ts_ms`` is chosen by whoever signs it, so it cannot decide which key was valid: an
operator holding a rotated-out or revoked key could date new readings inside the old key's
window. What nobody can choose is the time of the block that anchored the first checkpoint
including the reading's leaf. The rule, the same as ``DeviceRegistry.acceptsReading`` on chain
(and in the dashboard), in the order a refusal is reported:

1. the key came in force at or before the anchor: ``from_time <= anchored_at``;
2. the anchor came before the key's end: a rotation leaves ``rotation_grace`` seconds for
   readings already in flight (``anchored_at < rotated_at + rotation_grace``), a revocation none
   (``anchored_at < revoked_at``), and a revocation also cuts a rotated key's grace short;
3. the reading is not dated after the key's end: ``ts_ms <= end * 1000``;
4. the reading is dated at most ``max_backfill`` seconds before the key's start (a device may
   deliver what it measured shortly before it was registered, no more).

Times in seconds are block timestamps; ``ts_ms`` is the reading's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KeySpan", "KeyVerdict", "judge_key"]


class KeyVerdict(StrEnum):
    """The outcome of :func:`judge_key`; the values name the refusal in reports."""

    VALID = "valid"
    ANCHORED_BEFORE_KEY = "anchored_before_key"
    ANCHORED_AFTER_KEY = "anchored_after_key"
    DATED_AFTER_KEY_END = "dated_after_key_end"
    DATED_BEFORE_BACKFILL = "dated_before_backfill"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySpan:
    """One key's life on chain, in block seconds."""

    from_time: int
    rotated_at: int | None = None
    """When the next key replaced it (None while it was never rotated out)."""
    revoked_at: int | None = None
    """When the device was revoked (None if never): ends the key if it was still in force, and
    cuts a rotated key's grace short."""

    @property
    def end(self) -> int | None:
        """The key's end for the reading's date (None while it is in force)."""
        ends = [t for t in (self.rotated_at, self.revoked_at) if t is not None]
        return min(ends) if ends else None

    def anchor_limit(self, *, rotation_grace: int) -> int | None:
        """The first block time at which an anchor no longer counts for this key."""
        limits = []
        if self.rotated_at is not None:
            limits.append(self.rotated_at + rotation_grace)
        if self.revoked_at is not None:
            limits.append(self.revoked_at)
        return min(limits) if limits else None


def judge_key(span: KeySpan, *, anchored_at: int, ts_ms: int, rotation_grace: int, max_backfill: int) -> KeyVerdict:
    """Whether a reading dated ``ts_ms`` and first anchored at block time ``anchored_at``
    counts under the key whose life is ``span`` (see the module's rule)."""
    if anchored_at < span.from_time:
        return KeyVerdict.ANCHORED_BEFORE_KEY
    limit = span.anchor_limit(rotation_grace=rotation_grace)
    if limit is not None and anchored_at >= limit:
        return KeyVerdict.ANCHORED_AFTER_KEY
    end = span.end
    if end is not None and ts_ms > end * 1000:
        return KeyVerdict.DATED_AFTER_KEY_END
    if ts_ms + max_backfill * 1000 < span.from_time * 1000:
        return KeyVerdict.DATED_BEFORE_BACKFILL
    return KeyVerdict.VALID
