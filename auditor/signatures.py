"""Signatures re-verified with the keys the chain registered: one verifier per key, in chunks.

A reading's signer is whichever registered key verifies it, tried in
:func:`auditor.keys.signing_order`; almost always the first candidate does, so a batch costs one
verification per reading. Whether the signer *counts* is judged afterwards, by chain time
(:mod:`auditor.keys`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.types import DeviceProfile, KeyRecord
from protocol.envelope import Message
from protocol.errors import VerificationError
from protocol.signing import VerifyingKey

__all__ = ["DeviceOnChain", "SignatureWork", "find_signers", "verify_chunk"]


@dataclass(slots=True)
class DeviceOnChain:
    """A device as the DeviceRegistry knows it, with a verifier per key made once."""

    keys: list[KeyRecord]
    asset_id: bytes
    profile: DeviceProfile
    verifiers: dict[int, VerifyingKey] = field(default_factory=dict)

    def verifier(self, key: KeyRecord) -> VerifyingKey:
        found = self.verifiers.get(key.index)
        if found is None:
            found = self.verifiers[key.index] = VerifyingKey.from_bytes(key.alg, key.public_key)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureWork:
    """One message to verify, with the keys that may have signed it, in the order to try them."""

    message: Message
    candidates: list[tuple[KeyRecord, VerifyingKey]]
    leaf_index: int | None
    epoch: int
    anchored_at: int
    rejected: str | None = None
    """The quarantine reason when the message is a chained rejection."""


def verify_chunk(work: list[tuple[Message, VerifyingKey, int]]) -> list[tuple[Message, int, str]]:
    """Verify each message with its one key; the failures, with their leaf index and why."""
    failures = []
    for message, key, index in work:
        try:
            key.verify(message=message.signed_bytes, signature=message.signature)
        except VerificationError as exc:
            failures.append((message, index, str(exc)))
    return failures


def find_signers(work: list[SignatureWork]) -> list[tuple[SignatureWork, KeyRecord | None, str | None]]:
    """For each item, the key that signs it, or None and why none does."""
    results: list[tuple[SignatureWork, KeyRecord | None, str | None]] = []
    for item in work:
        error: str | None = None
        signer: KeyRecord | None = None
        for key, verifier in item.candidates:
            try:
                verifier.verify(message=item.message.signed_bytes, signature=item.message.signature)
            except VerificationError as exc:
                error = error or str(exc)
            else:
                signer = key
                break
        results.append((item, signer, None if signer is not None else error))
    return results
