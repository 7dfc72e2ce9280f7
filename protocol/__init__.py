"""assetproof's consensus-critical core: what crosses a boundary, as pure functions.

Changing anything here can invalidate proofs that were already anchored: the canonical bytes of
a reading, the leaf and node hashes, the proof shapes, the bundle and epoch-metadata formats.
Every such format is pinned by golden vectors in ``tests/protocol``; a change that moves a
vector is a new format version, never an edit.

No I/O, no clock, no environment, no database and no network: everything here is a function of
its arguments, so the gateway, the attestor, the auditor and a browser agree byte for byte.
"""

from protocol.errors import (
    AssetproofError,
    BadSignatureError,
    BundleError,
    InvalidKeyError,
    InvalidProofError,
    MalformedError,
    MetadataError,
    NonCanonicalError,
    OversizedError,
    RangeError,
    RootMismatchError,
    UnsupportedAlgorithmError,
    VerificationError,
)

__all__ = [
    "AssetproofError",
    "BadSignatureError",
    "BundleError",
    "InvalidKeyError",
    "InvalidProofError",
    "MalformedError",
    "MetadataError",
    "NonCanonicalError",
    "OversizedError",
    "RangeError",
    "RootMismatchError",
    "UnsupportedAlgorithmError",
    "VerificationError",
]
