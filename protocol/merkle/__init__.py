"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and an append-only log.

Leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``, empty tree
``SHA-256("")``. Proofs are exactly those of RFC 9162 section 2.1.3 (inclusion) and 2.1.4
(consistency), ordered from the leaf upwards, so any RFC 6962 verifier accepts them.

Three modules, so a verifier reads only what it runs:

- :mod:`protocol.merkle.hashing`: the leaf and node hashes, sizes, and the input checks;
- :mod:`protocol.merkle.log`: the append-only log over a node store, compact ranges, and proofs
  built from them (the operator's side);
- :mod:`protocol.merkle.verify`: inclusion and consistency verification (the auditor's side).
"""
