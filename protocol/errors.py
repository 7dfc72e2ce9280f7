"""The one error tree of assetproof.

Every failure a verifier can report is a :class:`VerificationError` (or a subclass) carrying a
stable ``reason`` code. The gateway stores that code in quarantine and the auditor prints it, so
the codes are part of the public contract: add new ones, never rename old ones.
"""

from __future__ import annotations


class AssetproofError(Exception):
    """Root of every error assetproof raises on purpose."""


class VerificationError(AssetproofError):
    """Something failed to verify; ``reason`` says what, in a stable machine-readable code."""

    reason: str = "verification_failed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class OversizedError(VerificationError):
    """The message is larger than the protocol allows."""

    reason = "oversized"


class MalformedError(VerificationError):
    """The bytes are not a well-formed message: not UTF-8, not JSON, or not the schema.

    ``field`` names the offending field (dotted path) where one can be named.
    """

    reason = "malformed"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NonCanonicalError(VerificationError):
    """Valid JSON, but not the RFC 8785 canonical encoding of itself."""

    reason = "non_canonical"


class UnsupportedAlgorithmError(VerificationError):
    """The message names a signature algorithm this protocol version does not support."""

    reason = "unsupported_alg"


class InvalidKeyError(VerificationError):
    """A public key is not a valid key for its algorithm."""

    reason = "invalid_key"


class BadSignatureError(VerificationError):
    """The signature does not verify under the given key."""

    reason = "bad_signature"


class InvalidProofError(VerificationError):
    """A Merkle proof is unusable: bad sizes, bad index, wrong length, wrong hash widths."""

    reason = "invalid_proof"


class RootMismatchError(InvalidProofError):
    """A proof is well formed but leads to a different root than the one expected."""

    reason = "root_mismatch"

    def __init__(self, message: str, *, expected: bytes, calculated: bytes) -> None:
        super().__init__(f"{message}: expected root {expected.hex()}, calculated {calculated.hex()}")
        self.expected = expected
        self.calculated = calculated


class BundleError(VerificationError):
    """A proof bundle is unreadable or internally inconsistent."""

    reason = "bad_bundle"


class MetadataError(VerificationError):
    """Epoch metadata is unreadable or does not follow the format."""

    reason = "bad_metadata"


class ExportFormatError(VerificationError):
    """An export file is not in the export format."""

    reason = "bad_export"


class RangeError(AssetproofError, ValueError):
    """A caller asked for an index or size that lies outside what exists (a programming error
    on the caller's side, not a verification failure)."""
