"""Signatures re-verified with the keys the chain registered: one verifier per key, in chunks."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.verify import key_for_time
from chain.types import KeyRecord
from protocol.envelope import Message
from protocol.errors import VerificationError
from protocol.signing import VerifyingKey

__all__ = ["DeviceOnChain", "verify_chunk"]


@dataclass(slots=True)
class DeviceOnChain:
    """A device as the DeviceRegistry knows it, with a verifier per key made once."""

    keys: list[KeyRecord]
    asset_id: bytes
    verifiers: dict[int, VerifyingKey] = field(default_factory=dict)

    def key_at(self, at_s: int) -> KeyRecord | None:
        return key_for_time(self.keys, at_s)

    def verifier(self, key: KeyRecord) -> VerifyingKey:
        found = self.verifiers.get(key.index)
        if found is None:
            found = self.verifiers[key.index] = VerifyingKey.from_bytes(key.alg, key.public_key)
        return found


def verify_chunk(work: list[tuple[Message, VerifyingKey, int]]) -> list[tuple[Message, int, str]]:
    """Verify each message with its key; the failures, with their leaf index and why."""
    failures = []
    for message, key, index in work:
        try:
            key.verify(message=message.signed_bytes, signature=message.signature)
        except VerificationError as exc:
            failures.append((message, index, str(exc)))
    return failures
