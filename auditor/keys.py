"""Which registered key signs a reading, and whether it counts: judged by chain time.

The reading's ``ts_ms`` is the signer's word, so it never picks the key. As the
ReadingVerifier does on chain, the signer is found by its signature (first the key in force at
the block time of the first checkpoint that included the reading, then the others, newest
first) and then judged by :func:`protocol.key_validity.judge_key` at that block time, with the
DeviceRegistry's ``rotation_grace`` and ``max_backfill``. A refusal is a
:class:`~protocol.errors.VerificationError` whose reason names it:

- ``key_revoked``: first anchored at or after the device's revocation (no grace);
- ``key_rotated_out``: first anchored after the key's rotation plus the grace;
- ``anchored_before_key``: first anchored before the key was registered;
- ``dated_after_key_end``: dated after its key's end (rotation or revocation);
- ``dated_before_backfill``: dated further before its key's start than the backfill bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.types import KeyRecord
from protocol.errors import VerificationError
from protocol.key_validity import KeyVerdict, judge_key

__all__ = ["KeyRules", "judge", "signing_order"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRules:
    """The DeviceRegistry's parameters that key validity depends on (read from the chain)."""

    rotation_grace: int
    max_backfill: int


def signing_order(keys: Sequence[KeyRecord], *, anchored_at: int) -> list[KeyRecord]:
    """The device's keys in the order to try them as the signer: the one in force at block time
    ``anchored_at`` first, then the others newest first (the ReadingVerifier's order)."""
    in_force = next((k for k in reversed(keys) if k.valid_at(anchored_at)), None)
    rest = [k for k in reversed(keys) if k is not in_force]
    return [in_force, *rest] if in_force is not None else rest


def judge(device_id: str, key: KeyRecord, *, anchored_at: int, ts_ms: int, rules: KeyRules) -> VerificationError | None:
    """None when ``key`` counts for a reading dated ``ts_ms`` first anchored at block time
    ``anchored_at``; else the refusal, naming the rule and the times."""
    span = key.span
    verdict = judge_key(
        span,
        anchored_at=anchored_at,
        ts_ms=ts_ms,
        rotation_grace=rules.rotation_grace,
        max_backfill=rules.max_backfill,
    )
    name = f"key #{key.index} of device {device_id!r}"
    if verdict is KeyVerdict.VALID:
        return None
    if verdict is KeyVerdict.ANCHORED_BEFORE_KEY:
        return VerificationError(
            f"{name} came in force at block time {span.from_time}; the reading was first anchored before,"
            f" at {anchored_at}",
            reason="anchored_before_key",
        )
    if verdict is KeyVerdict.ANCHORED_AFTER_KEY:
        limit = span.anchor_limit(rotation_grace=rules.rotation_grace)
        if span.revoked_at is not None and limit == span.revoked_at:
            return VerificationError(
                f"{name} was revoked at block time {span.revoked_at}; the reading was first anchored at block"
                f" time {anchored_at}, not before the revocation (a revoked key signs nothing more, whatever"
                " date the reading claims)",
                reason="key_revoked",
            )
        return VerificationError(
            f"{name} was rotated out at block time {span.rotated_at} (grace {rules.rotation_grace} s); the"
            f" reading was first anchored at block time {anchored_at}, after the grace (signed with a retired"
            " key, whatever date the reading claims)",
            reason="key_rotated_out",
        )
    if verdict is KeyVerdict.DATED_AFTER_KEY_END:
        return VerificationError(
            f"the reading is dated {ts_ms // 1000}, after {name} ended at block time {span.end}",
            reason="dated_after_key_end",
        )
    return VerificationError(
        f"the reading is dated {ts_ms // 1000}, more than the backfill bound {rules.max_backfill} s before"
        f" {name} came in force at block time {span.from_time}",
        reason="dated_before_backfill",
    )
