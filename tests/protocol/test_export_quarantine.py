"""quarantine.json's parser: the messages beside the digests, the older digests-only form, and
a specific error for each malformed document."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from protocol.errors import ExportFormatError
from protocol.export import QuarantineExport, QuarantineMessage, quarantine_digests

RAW = b'{"alg":"ed25519","body":{},"sig":"00"}'
DIGEST = hashlib.sha256(RAW).digest()


def message(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "digest": DIGEST.hex(),
        "reason": "implausible",
        "chained": True,
        "publisher": "sol-0001",
        "device": "sol-0001",
        "seq": 118,
        "raw_size": len(RAW),
        "raw": base64.b64encode(RAW).decode(),
    }
    entry.update(changes)
    return entry


def document(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"digests": [m["digest"] for m in messages], "messages": list(messages)}


def test_round_trip() -> None:
    junk = b"\x00junk"
    doc = document(
        message(),
        message(
            digest=hashlib.sha256(junk + b"rest").hexdigest(),
            reason="oversized",
            chained=False,
            device=None,
            seq=None,
            raw_size=len(junk) + 4,
            raw=base64.b64encode(junk).decode(),
        ),
        message(reason="malformed", chained=False, publisher=None, device=None, seq=None),
    )
    parsed = QuarantineExport.from_json(doc)
    assert parsed.to_json() == doc
    first, truncated, anonymous = parsed.messages
    assert first == QuarantineMessage(
        digest=DIGEST,
        reason="implausible",
        chained=True,
        publisher="sol-0001",
        device="sol-0001",
        seq=118,
        raw_size=len(RAW),
        raw=RAW,
    )
    assert first.complete
    assert not truncated.complete
    assert truncated.raw == junk
    assert anonymous.publisher is None
    assert quarantine_digests(doc) == list(parsed.digests)


def test_older_export_without_messages() -> None:
    parsed = QuarantineExport.from_json({"digests": [DIGEST.hex()]})
    assert (parsed.digests, parsed.messages) == ((DIGEST,), ())
    assert quarantine_digests({"digests": []}) == []


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"digests": [DIGEST.hex()], "messages": []}, "1 digests but 0 messages"),
        ({"digests": [hashlib.sha256(b"x").hexdigest()], "messages": [message()]}, "differs from digests"),
        ({"digests": [], "messages": {}}, "must be a list"),
        ({"digests": [], "messages": [], "extra": 1}, "unknown"),
        (document(message(raw="not base64!")), "standard base64"),
        (document(message(raw="QQ")), "not valid base64"),
        (document(message(raw_size=3)), "more than raw_size"),
        (document(message(chained="yes")), "true or false"),
        (document(message(seq=None)), "names its device"),
        (document(message(publisher="sol-0002")), "names its device"),
        (document(message(seq=0)), "outside 1"),
        (document(message(seq=True)), "must be an integer"),
        (document(message(reason="Not A Reason")), "reason name"),
        (document(message(device="Bad Id")), "must match"),
        (document(message(publisher=7)), "device id or null"),
        (document(message(digest="AB" * 32)), "lowercase hex"),
        (document({k: v for k, v in message().items() if k != "raw"}), "missing ['raw']"),
        ([], "JSON object"),
    ],
)
def test_malformed_documents_are_named(doc: object, error: str) -> None:
    with pytest.raises(ExportFormatError, match=error.replace("[", r"\[").replace("]", r"\]")):
        QuarantineExport.from_json(doc)
