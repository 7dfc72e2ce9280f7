"""protocol.merkle against the RFC 6962 reference vectors, mutated negatives, a recursive
reference implementation, and properties."""

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import InvalidProofError, RangeError, RootMismatchError, VerificationError
from protocol.merkle.hashing import EMPTY_ROOT, NodeId, leaf_hash, node_hash
from protocol.merkle.log import CompactRange, MemoryNodeStore, MerkleLog, consistency_proof, inclusion_proof, tree_root
from protocol.merkle.verify import root_from_inclusion_proof, verify_consistency, verify_inclusion
from tests.protocol import reference_merkle as ref

H = bytes.fromhex


def _leaf_hashes(vectors: Any) -> list[bytes]:
    return [leaf_hash(H(d)) for d in vectors["leaves"]]


# --- known answers ------------------------------------------------------------------------------


def test_hasher_known_answers(merkle_vectors: Any) -> None:
    kats = merkle_vectors["hasher_kats"]
    for kat in kats["leaf"]:
        assert leaf_hash(H(kat["data_hex"])).hex() == kat["leaf_hash"]
    for kat in kats["node"]:
        assert node_hash(H(kat["left_hex"]), H(kat["right_hex"])).hex() == kat["node_hash"]
    assert EMPTY_ROOT.hex() == kats["empty_tree"]["root"] == merkle_vectors["empty_root"]


def test_roots_for_every_size(merkle_vectors: Any) -> None:
    hashes = _leaf_hashes(merkle_vectors)
    log = MerkleLog()
    for size_text, root in merkle_vectors["roots_by_size"].items():
        size = int(size_text)
        assert tree_root(hashes[:size]).hex() == root
    for size, data in enumerate(merkle_vectors["leaves"], start=1):
        assert log.append(H(data)) == size - 1
        assert log.root().hex() == merkle_vectors["roots_by_size"][str(size)]
    for size_text, root in merkle_vectors["roots_by_size"].items():
        assert log.root(int(size_text)).hex() == root


def test_stored_perfect_subtrees(merkle_vectors: Any) -> None:
    log = MerkleLog()
    log.extend(H(d) for d in merkle_vectors["leaves"])
    for level, nodes in enumerate(merkle_vectors["node_hashes_by_level"]["levels"]):
        got = log.store.get_nodes([(level, i) for i in range(len(nodes))])
        assert [h.hex() for h in got] == nodes


def test_inclusion_vectors(merkle_vectors: Any) -> None:
    hashes = _leaf_hashes(merkle_vectors)
    for case in merkle_vectors["inclusion_proofs"]:
        index, size = case["leaf_index"], case["tree_size"]
        proof = inclusion_proof(hashes, index=index, size=size)
        assert [p.hex() for p in proof] == case["proof"]
        root = H(case["root"])
        leaf = leaf_hash(H(case["leaf_data"]))
        verify_inclusion(leaf_hash=leaf, index=index, size=size, proof=proof, root=root)
        assert root_from_inclusion_proof(leaf_hash=leaf, index=index, size=size, proof=proof) == root


def test_consistency_vectors(merkle_vectors: Any) -> None:
    hashes = _leaf_hashes(merkle_vectors)
    for case in merkle_vectors["consistency_proofs"]:
        size1, size2 = case["size1"], case["size2"]
        proof = consistency_proof(hashes, size1=size1, size2=size2)
        assert [p.hex() for p in proof] == case["proof"]
        verify_consistency(size1=size1, size2=size2, proof=proof, root1=H(case["root1"]), root2=H(case["root2"]))


# --- negatives by mutation ----------------------------------------------------------------------


def _flip(h: bytes, bit: int) -> bytes:
    mutated = bytearray(h)
    mutated[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutated)


def _proof_mutations(proof: Sequence[bytes]) -> list[tuple[str, list[bytes]]]:
    out: list[tuple[str, list[bytes]]] = []
    for i, element in enumerate(proof):
        for bit in (0, 7, 128, 255):
            mutated = list(proof)
            mutated[i] = _flip(element, bit)
            out.append((f"flip element {i} bit {bit}", mutated))
        for width in (31, 33):
            mutated = list(proof)
            mutated[i] = (element * 2)[:width]
            out.append((f"element {i} is {width} bytes", mutated))
    out.append(("element added", [*proof, b"\x00" * 32]))
    out.append(("element prepended", [b"\x00" * 32, *proof]))
    if proof:
        out.append(("last element dropped", list(proof[:-1])))
        out.append(("first element dropped", list(proof[1:])))
        out.append(("reversed", list(reversed(proof))) if len(proof) > 1 and proof[0] != proof[-1] else ("x", []))
    return [m for m in out if m[0] != "x"]


def _fails(verify: Callable[..., None], base: dict[str, Any], **change: Any) -> None:
    with pytest.raises(VerificationError):
        verify(**{**base, **change})


def test_inclusion_mutations_all_fail(merkle_vectors: Any) -> None:
    checked = 0
    for case in merkle_vectors["inclusion_proofs"]:
        index, size, proof = case["leaf_index"], case["tree_size"], [H(p) for p in case["proof"]]
        leaf = leaf_hash(H(case["leaf_data"]))
        root = H(case["root"])
        base = {"leaf_hash": leaf, "index": index, "size": size, "proof": proof, "root": root}

        def fails(base: dict[str, Any] = base, **change: Any) -> None:
            _fails(verify_inclusion, base, **change)

        for _, mutated in _proof_mutations(proof):
            fails(proof=mutated)
        if index + 1 < size or size > 1:
            fails(index=index + 1)
        if index > 0:
            fails(index=index - 1)
        # Not size - 1: a proof whose shape is the same for both sizes computes the same root,
        # which is why a checkpoint binds tree size and root together.
        fails(size=size * 2)
        fails(leaf_hash=_flip(leaf, 3))
        fails(root=_flip(root, 200))
        fails(root=root[:31])
        fails(root=root + b"\x00")
        fails(leaf_hash=leaf[:31])
        fails(leaf_hash=leaf + b"\x00")
        fails(index=size)
        fails(index=-1)
        checked += 1
    assert checked == len(merkle_vectors["inclusion_proofs"])


def test_consistency_mutations_all_fail(merkle_vectors: Any) -> None:
    for case in merkle_vectors["consistency_proofs"]:
        size1, size2, proof = case["size1"], case["size2"], [H(p) for p in case["proof"]]
        root1, root2 = H(case["root1"]), H(case["root2"])
        base = {"size1": size1, "size2": size2, "proof": proof, "root1": root1, "root2": root2}

        def fails(base: dict[str, Any] = base, **change: Any) -> None:
            _fails(verify_consistency, base, **change)

        for _, mutated in _proof_mutations(proof):
            fails(proof=mutated)
        if root1 != root2:
            fails(root1=root2, root2=root1)
        fails(root1=_flip(root1, 9))
        fails(root2=_flip(root2, 9))
        fails(root1=root1[:31])
        fails(root2=root2 + b"\x00")
        fails(size2=size2 * 2)
        if size1 + 1 < size2:
            fails(size1=size1 + 1)
        if size1 > 1:
            fails(size1=size1 - 1)
        fails(size1=size2 + 1)


def test_root_mismatch_carries_both_roots(merkle_vectors: Any) -> None:
    hashes = _leaf_hashes(merkle_vectors)
    proof = inclusion_proof(hashes, index=2, size=8)
    wrong = b"\x11" * 32
    with pytest.raises(RootMismatchError) as caught:
        verify_inclusion(leaf_hash=hashes[2], index=2, size=8, proof=proof, root=wrong)
    assert caught.value.expected == wrong
    assert caught.value.calculated == tree_root(hashes)
    assert caught.value.reason == "root_mismatch"


GARBAGE = [None, "", "00" * 32, 1.5, -1, 2**64, True, [], {}, b"", b"\x00" * 31, [b"\x00" * 32], object()]


@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
def test_verifiers_raise_only_verification_errors(bad: Any) -> None:
    good = b"\x00" * 32
    calls: list[Callable[[], object]] = [
        lambda: verify_inclusion(leaf_hash=bad, index=0, size=1, proof=[], root=good),
        lambda: verify_inclusion(leaf_hash=good, index=bad, size=2, proof=[good], root=good),
        lambda: verify_inclusion(leaf_hash=good, index=0, size=bad, proof=[good], root=good),
        lambda: verify_inclusion(leaf_hash=good, index=0, size=2, proof=bad, root=good),
        lambda: verify_inclusion(leaf_hash=good, index=0, size=2, proof=[bad], root=good),
        lambda: verify_inclusion(leaf_hash=good, index=0, size=1, proof=[], root=bad),
        lambda: root_from_inclusion_proof(leaf_hash=good, index=bad, size=bad, proof=bad),
        lambda: verify_consistency(size1=bad, size2=2, proof=[good], root1=good, root2=good),
        lambda: verify_consistency(size1=1, size2=bad, proof=[good], root1=good, root2=good),
        lambda: verify_consistency(size1=1, size2=2, proof=bad, root1=good, root2=good),
        lambda: verify_consistency(size1=1, size2=2, proof=[bad], root1=good, root2=good),
        lambda: verify_consistency(size1=1, size2=2, proof=[good], root1=bad, root2=good),
        lambda: verify_consistency(size1=1, size2=2, proof=[good], root1=good, root2=bad),
    ]
    for call in calls:
        with pytest.raises(VerificationError):
            call()


def test_consistency_edge_cases() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(5)]
    root5 = tree_root(hashes)
    verify_consistency(size1=0, size2=5, proof=[], root1=EMPTY_ROOT, root2=root5)
    verify_consistency(size1=5, size2=5, proof=[], root1=root5, root2=root5)
    with pytest.raises(RootMismatchError):
        verify_consistency(size1=0, size2=5, proof=[], root1=root5, root2=root5)
    with pytest.raises(RootMismatchError):
        verify_consistency(size1=5, size2=5, proof=[], root1=root5, root2=EMPTY_ROOT)
    with pytest.raises(InvalidProofError, match="wrong proof length"):
        verify_consistency(size1=5, size2=5, proof=[root5], root1=root5, root2=root5)
    with pytest.raises(InvalidProofError, match="smaller"):
        verify_consistency(size1=5, size2=4, proof=[], root1=root5, root2=root5)


# --- against the recursive reference ------------------------------------------------------------

REF_MAX = 64
REF_LEAVES = [bytes([i]) * (i % 5) for i in range(REF_MAX)]
REF_HASHES = [leaf_hash(d) for d in REF_LEAVES]


def test_against_reference_every_index_and_size() -> None:
    log = MerkleLog()
    log.extend(REF_LEAVES)
    for size in range(1, REF_MAX + 1):
        root = ref.mth(REF_LEAVES[:size])
        assert log.root(size) == root
        for index in range(size):
            expected = ref.path(index, REF_LEAVES[:size])
            proof = log.inclusion_proof(index, size)
            assert proof == expected, (index, size)
            verify_inclusion(leaf_hash=REF_HASHES[index], index=index, size=size, proof=proof, root=root)


def test_against_reference_every_size_pair() -> None:
    log = MerkleLog()
    log.extend(REF_LEAVES)
    for size2 in range(1, REF_MAX + 1):
        root2 = log.root(size2)
        for size1 in range(1, size2 + 1):
            expected = ref.proof(size1, REF_LEAVES[:size2])
            proof = log.consistency_proof(size1, size2)
            assert proof == expected, (size1, size2)
            verify_consistency(size1=size1, size2=size2, proof=proof, root1=log.root(size1), root2=root2)


# --- properties ---------------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_property_inclusion_round_trip_and_tamper(size: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(hashes, index=index, size=size)
    root = tree_root(hashes)
    verify_inclusion(leaf_hash=hashes[index], index=index, size=size, proof=proof, root=root)
    other = data.draw(st.integers(min_value=0, max_value=size - 1))
    if other != index:
        with pytest.raises(VerificationError):
            verify_inclusion(leaf_hash=hashes[other], index=index, size=size, proof=proof, root=root)


@settings(max_examples=60, deadline=None)
@given(size2=sizes, data=st.data())
def test_property_consistency_round_trip(size2: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size2)]
    size1 = data.draw(st.integers(min_value=0, max_value=size2))
    proof = consistency_proof(hashes, size1=size1, size2=size2)
    root1, root2 = tree_root(hashes[:size1]), tree_root(hashes)
    verify_consistency(size1=size1, size2=size2, proof=proof, root1=root1, root2=root2)
    if 0 < size1 < size2:
        forked = list(hashes)
        forked[data.draw(st.integers(min_value=0, max_value=size1 - 1))] = b"\xff" * 32
        with pytest.raises(VerificationError):
            verify_consistency(size1=size1, size2=size2, proof=proof, root1=tree_root(forked[:size1]), root2=root2)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_property_batched_extend_equals_one_by_one(batches: list[int]) -> None:
    batched, single = MerkleLog(), MerkleLog()
    for batch, n in enumerate(batches):
        leaves = [batch.to_bytes(4, "big") + bytes([j]) for j in range(n)]
        batched.extend(leaves)
        for leaf in leaves:
            single.append(leaf)
        assert batched.size == single.size
        assert batched.root() == single.root()
    assert batched.size == sum(batches)


# --- the log and its store ----------------------------------------------------------------------


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.calls = 0

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.reads += len(ids)
        self.calls += 1
        return super().get_nodes(ids)


def test_proofs_cost_logarithmic_reads_in_one_call() -> None:
    store = CountingStore()
    log = MerkleLog(store)
    log.extend(i.to_bytes(4, "big") for i in range(100_003))
    for index in (0, 1, 65_535, 65_536, 99_999, 100_002):
        store.reads = store.calls = 0
        log.inclusion_proof(index, log.size)
        assert store.calls == 1
        assert store.reads <= 2 * log.size.bit_length()
    store.reads = store.calls = 0
    log.consistency_proof(70_001, 100_003)
    assert store.calls == 1
    assert store.reads <= 2 * log.size.bit_length()
    store.reads = 0
    log.root()
    assert store.reads == 0  # the frontier is in memory


def test_log_reopens_from_its_store() -> None:
    log = MerkleLog()
    log.extend(bytes([i]) for i in range(37))
    reopened = MerkleLog(log.store)
    assert reopened.size == 37
    assert reopened.root() == log.root()
    reopened.append(b"more")
    log2 = MerkleLog()
    log2.extend([*(bytes([i]) for i in range(37)), b"more"])
    assert reopened.root() == log2.root()


def test_failed_store_write_leaves_the_log_unchanged() -> None:
    class FailingStore(MemoryNodeStore):
        fail = False

        def add_nodes(self, *, size: int, levels: Sequence[bytes]) -> None:
            if self.fail:
                raise OSError("disk full")
            super().add_nodes(size=size, levels=levels)

    store = FailingStore()
    log = MerkleLog(store)
    log.extend([b"a", b"b", b"c"])
    root = log.root()
    store.fail = True
    with pytest.raises(OSError, match="disk full"):
        log.extend([b"d", b"e"])
    assert log.size == 3
    assert log.root() == root
    store.fail = False
    log.extend([b"d", b"e"])
    assert log.root() == tree_root([leaf_hash(x) for x in (b"a", b"b", b"c", b"d", b"e")])


def test_range_errors() -> None:
    log = MerkleLog()
    log.extend([b"a", b"b"])
    with pytest.raises(RangeError):
        log.inclusion_proof(2, 2)
    with pytest.raises(RangeError):
        log.inclusion_proof(0, 3)
    with pytest.raises(RangeError):
        log.consistency_proof(2, 1)
    with pytest.raises(RangeError):
        log.root(3)
    with pytest.raises(RangeError):
        log.extend_hashes([b"short"])
    with pytest.raises(RangeError):
        inclusion_proof([b"\x00" * 32], index=0, size=2)
    assert log.consistency_proof(0, 2) == []
    assert log.consistency_proof(2, 2) == []
    assert tree_root([]) == EMPTY_ROOT
    assert log.leaf_hashes(0, 2) == [leaf_hash(b"a"), leaf_hash(b"b")]


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 300), start=st.integers(0, 300), chunk=st.integers(1, 40))
def test_compact_range_continues_a_log_from_its_frontier(total: int, start: int, chunk: int) -> None:
    start = min(start, total)
    leaves = [i.to_bytes(4, "big") for i in range(total)]
    log = MerkleLog()
    log.extend(leaves)
    compact = CompactRange(size=start, hashes=log.compact_range(start))
    assert compact.root() == log.root(start)
    for i in range(start, total, chunk):
        compact.extend(leaves[i : i + chunk])
        assert compact.root() == log.root(compact.size)
    assert compact.size == total


def test_compact_range_refuses_a_frontier_of_the_wrong_shape() -> None:
    with pytest.raises(InvalidProofError, match="has 2 hashes"):
        CompactRange(size=3, hashes=[bytes(32)])
    with pytest.raises(InvalidProofError):
        CompactRange(size=1, hashes=[b"short"])
