"""``verify_bundles_offline``: a batch of bundles on several threads gives, per bundle and in
order, exactly what ``verify_bundle_offline`` says of it."""

from __future__ import annotations

import json

from auditor.verify import verify_bundles_offline
from protocol.bundle import Checkpoint, ProofBundle
from protocol.envelope import sign_body
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from tests.support.envelopes import body


def test_a_batch_in_order_with_each_failure_named() -> None:
    key = DeviceKey.generate("es256")
    messages = [sign_body(body(seq=1), key)]
    for seq in range(2, 600):
        messages.append(sign_body(body(seq=seq, prev=messages[-1].chain_hash), key))
    log = MerkleLog()
    log.extend(m.raw for m in messages)
    size = log.size
    checkpoint = Checkpoint(epoch=0, tree_size=size, root=log.root(), meta_hash=bytes(32))
    encoded = []
    for i, m in enumerate(messages):
        bundle = ProofBundle(
            message=m.raw,
            device_id=m.body.device,
            alg="es256",
            public_key=key.public_key,
            leaf_index=i,
            tree_size=size,
            inclusion_proof=tuple(log.inclusion_proof(i, size)),
            checkpoint=checkpoint,
        )
        obj = bundle.to_json()
        if i == 300:
            obj["leaf_index"] = 301  # a proof for another leaf
        if i == 450:
            obj["checkpoint"]["root"] = "00" * 32
        encoded.append(json.dumps(obj).encode())
    encoded.append(b"not json")
    results = verify_bundles_offline(encoded, threads=2)
    assert len(results) == len(encoded)
    failed = {i: r.reason for i, r in enumerate(results) if r is not None}
    assert failed == {300: "root_mismatch", 450: "root_mismatch", len(messages): "bad_bundle"}
    assert verify_bundles_offline(encoded[:5], threads=1) == [None] * 5
