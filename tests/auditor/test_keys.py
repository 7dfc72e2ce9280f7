"""The auditor's key judgement names each refusal (the chain-backed cases are in test_red_team)."""

from __future__ import annotations

import pytest

from auditor.keys import KeyRules, judge, signing_order
from chain.types import KeyEnd, KeyRecord

RULES = KeyRules(rotation_grace=600, max_backfill=3600)


def _key(index: int, start: int, until: int | None, end: KeyEnd, *, revoked: int | None = None) -> KeyRecord:
    return KeyRecord(
        index=index,
        alg="ed25519",
        public_key=bytes([index]) * 32,
        from_block=index + 1,
        from_time=start,
        until_block=None if until is None else index + 10,
        until_time=until,
        end=end,
        device_revoked_time=revoked,
    )


ROTATED = _key(0, 1000, 5000, KeyEnd.ROTATED)
CURRENT = _key(1, 5000, None, KeyEnd.ACTIVE)


@pytest.mark.parametrize(
    ("key", "anchored_at", "ts_s", "reason"),
    [
        (ROTATED, 5000 + 599, 4999, None),  # in flight at the rotation, anchored within the grace
        (ROTATED, 5000 + 600, 4999, "key_rotated_out"),  # one second late
        (ROTATED, 5100, 5001, "dated_after_key_end"),
        (ROTATED, 999, 999, "anchored_before_key"),
        (ROTATED, 2000, 1000 - 3600, None),  # backfill bound, inclusive
        (ROTATED, 2000, 1000 - 3601, "dated_before_backfill"),
        (_key(0, 1000, 5000, KeyEnd.ROTATED, revoked=5100), 5100, 4000, "key_revoked"),  # revocation cuts the grace
        (_key(0, 1000, 5000, KeyEnd.REVOKED, revoked=5000), 5000, 4000, "key_revoked"),
        (_key(0, 1000, 5000, KeyEnd.REVOKED, revoked=5000), 4999, 4000, None),
    ],
)
def test_each_refusal_is_named(key: KeyRecord, anchored_at: int, ts_s: int, reason: str | None) -> None:
    refusal = judge("sol-a", key, anchored_at=anchored_at, ts_ms=ts_s * 1000, rules=RULES)
    assert (refusal.reason if refusal is not None else None) == reason
    if refusal is not None:
        assert f"key #{key.index} of device 'sol-a'" in str(refusal)


def test_the_key_in_force_at_the_anchor_is_tried_first_then_the_newest() -> None:
    third = _key(2, 9000, None, KeyEnd.ACTIVE)
    second = _key(1, 5000, 9000, KeyEnd.ROTATED)
    assert [k.index for k in signing_order([ROTATED, second, third], anchored_at=6000)] == [1, 2, 0]
    assert [k.index for k in signing_order([ROTATED, second, third], anchored_at=500)] == [2, 1, 0]
