"""QuarantineReason: the stored codes stay plain strings, and every code the decoder raises is one."""

from __future__ import annotations

import json

from protocol import errors
from protocol.quarantine import QuarantineReason

DECODE_ERRORS = (
    errors.VerificationError,
    errors.OversizedError,
    errors.MalformedError,
    errors.NonCanonicalError,
    errors.UnsupportedAlgorithmError,
    errors.InvalidKeyError,
    errors.BadSignatureError,
)


def test_every_decode_error_reason_is_a_quarantine_reason() -> None:
    assert {QuarantineReason(cls.reason) for cls in DECODE_ERRORS} <= set(QuarantineReason)


def test_members_are_their_stored_strings() -> None:
    assert QuarantineReason.IMPLAUSIBLE == "implausible"
    assert f"{QuarantineReason.GAP}" == "gap"
    assert json.dumps({"reason": QuarantineReason.BAD_PREV}) == '{"reason": "bad_prev"}'
    assert {QuarantineReason.REPLAY: 1} == {"replay": 1}
