"""AnchorRegistry on anvil and eth-tester: every revert, history rewrites refused, long runs."""

from __future__ import annotations

import random

import pytest

from chain._artifacts import load_artifact
from chain.client import ChainClient
from chain.errors import ConfirmationTimeoutError, ContractRevert
from chain.node import mine
from protocol.errors import VerificationError
from protocol.merkle import MerkleLog, leaf_hash, verify_consistency
from tests.chain.conftest import Chain
from tests.chain.helpers import flip, grow, leaf, meta, reverts


def anchor(client: ChainClient, log: MerkleLog, *, epoch: int, previous: int, size: int) -> int:
    receipt = client.anchor(
        epoch=epoch,
        tree_size=size,
        root=log.root(size),
        meta_hash=meta(epoch),
        proof=log.consistency_proof(previous, size),
    )
    return receipt.gas_used


# --- each custom error ----------------------------------------------------------------------------


def test_only_the_attestor_anchors(chain: Chain) -> None:
    log = grow(MerkleLog(), 3)
    for client in (chain.stranger, chain.admin):
        with reverts("NotAttestor"):
            client.anchor(epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), proof=[])
    assert chain.reader().latest_checkpoint() is None


def test_epochs_are_numbered_without_gaps(chain: Chain) -> None:
    log = grow(MerkleLog(), 10)
    with reverts("WrongEpoch", expected=0, got=1):
        chain.attestor.anchor(epoch=1, tree_size=3, root=log.root(3), meta_hash=meta(1), proof=[])
    anchor(chain.attestor, log, epoch=0, previous=0, size=3)
    for epoch in (0, 2, 7, 2**64 - 1):  # a repeat, gaps, the largest epoch number
        with reverts("WrongEpoch", expected=1, got=epoch):
            chain.attestor.anchor(
                epoch=epoch, tree_size=5, root=log.root(5), meta_hash=meta(1), proof=log.consistency_proof(3, 5)
            )
    anchor(chain.attestor, log, epoch=1, previous=3, size=5)
    assert chain.reader().epoch_count() == 2


def test_zero_root_is_refused(chain: Chain) -> None:
    with reverts("ZeroRoot"):
        chain.attestor.anchor(epoch=0, tree_size=1, root=bytes(32), meta_hash=meta(0), proof=[])


def test_tree_must_grow_every_epoch(chain: Chain) -> None:
    log = grow(MerkleLog(), 8)
    with reverts("TreeSizeNotGrowing", previous=0, given=0):
        chain.attestor.anchor(epoch=0, tree_size=0, root=log.root(0), meta_hash=meta(0), proof=[])
    anchor(chain.attestor, log, epoch=0, previous=0, size=5)
    # An epoch without new leaves is not anchored (the attestor skips it), nor a shrinking tree.
    for size in (5, 4, 1, 0):
        with reverts("TreeSizeNotGrowing", previous=5, given=size):
            chain.attestor.anchor(epoch=1, tree_size=size, root=log.root(size), meta_hash=meta(1), proof=[])


def test_first_checkpoint_takes_no_proof(chain: Chain) -> None:
    log = grow(MerkleLog(), 4)
    with reverts("InconsistentProof"):
        chain.attestor.anchor(epoch=0, tree_size=4, root=log.root(), meta_hash=meta(0), proof=[log.root(2)])


def test_unknown_epoch_in_views(chain: Chain) -> None:
    reader = chain.reader()
    with reverts("UnknownEpoch", epoch=0):
        reader.checkpoint(0)
    with reverts("UnknownEpoch", epoch=3):
        reader.verify_inclusion(epoch=3, index=0, leaf_hash=leaf_hash(leaf(0)), proof=[])
    assert reader.latest_checkpoint() is None
    assert reader.epoch_count() == 0


# --- the contract refuses any rewritten history, even from the attestor ---------------------------

PAIRS = [(1, 2), (1, 9), (4, 5), (4, 13), (5, 6), (6, 64), (8, 9), (13, 100)]


@pytest.mark.parametrize(("previous", "size"), PAIRS)
def test_a_root_that_does_not_extend_the_checkpoint_is_refused(chain: Chain, previous: int, size: int) -> None:
    log = grow(MerkleLog(), size + 8)
    anchor(chain.attestor, log, epoch=0, previous=0, size=previous)
    proof = log.consistency_proof(previous, size)

    def refused(*, tree_size: int = size, root: bytes | None = None, proof: list[bytes] = proof) -> None:
        with reverts("InconsistentProof"):
            chain.attestor.anchor(
                epoch=1,
                tree_size=tree_size,
                root=log.root(size) if root is None else root,
                meta_hash=meta(1),
                proof=proof,
            )

    # A forked history: one leaf before the checkpoint rewritten, with the fork's own proof.
    fork = MerkleLog()
    fork.extend(leaf(i) if i != previous - 1 else b"rewritten" for i in range(size))
    refused(root=fork.root(size), proof=fork.consistency_proof(previous, size))
    refused(root=fork.root(size))  # ... or with the honest proof
    # The root of another size under the right one.
    refused(root=log.root(size + 1))
    refused(root=log.root(size - 1))
    # Every single tampered proof element, a proof cut short or made longer.
    for position in range(len(proof)):
        refused(proof=[flip(p) if i == position else p for i, p in enumerate(proof)])
    refused(proof=proof[:-1])
    refused(proof=[*proof, proof[-1]])
    # A genuine proof, but between other sizes.
    refused(proof=log.consistency_proof(previous, size + 1))
    if previous > 1:
        refused(proof=log.consistency_proof(previous - 1, size))
    assert chain.reader().epoch_count() == 1
    # The honest checkpoint still goes through.
    anchor(chain.attestor, log, epoch=1, previous=previous, size=size)
    assert chain.reader().checkpoint(1).root == log.root(size)


def chain_verdict(client: ChainClient, *, claimed: int, root: bytes, proof: list[bytes]) -> bool:
    try:
        client.check_anchor(epoch=1, tree_size=claimed, root=root, meta_hash=meta(1), proof=proof)
    except ContractRevert as revert:
        if revert.name in ("InconsistentProof", "TreeSizeNotGrowing"):
            return False
        raise
    return True


def test_a_wrong_size_is_judged_exactly_as_rfc_9162_judges_it(chain: Chain) -> None:
    """An RFC 6962 root does not commit to its tree size: a consistency proof only fixes the
    shape of the path, and sizes whose paths have the same shape pass the check with the same
    proof, in the contract as in :func:`protocol.merkle.verify_consistency` (and in every RFC
    9162 verifier). The contract refuses every other wrong size. What catches a shape-equivalent
    size lie is the auditor's completeness check: the claimed last leaf has no inclusion proof."""
    log = grow(MerkleLog(), 80)
    anchor(chain.attestor, log, epoch=0, previous=0, size=5)
    lies: list[tuple[int, int]] = []
    refused = 0
    for size in (6, 7, 9, 12, 13, 16, 17, 33, 40):
        proof = log.consistency_proof(5, size)
        for claimed in sorted({size - 1, size + 1, size + 2, size + 3, 2 * size} - {5, size}):
            try:
                verify_consistency(size1=5, size2=claimed, proof=proof, root1=log.root(5), root2=log.root(size))
                rfc_accepts = True
            except VerificationError:
                rfc_accepts = False
            chain_accepts = chain_verdict(chain.attestor, claimed=claimed, root=log.root(size), proof=proof)
            assert chain_accepts == rfc_accepts, (size, claimed)
            if chain_accepts:
                lies.append((size, claimed))
            refused += not chain_accepts
    assert lies
    assert refused
    # A shape-equivalent lie passes both verifiers and is anchored ...
    size, claimed = lies[0]
    chain.attestor.anchor(
        epoch=1, tree_size=claimed, root=log.root(size), meta_hash=meta(1), proof=log.consistency_proof(5, size)
    )
    # ... but the last leaf it claims cannot be shown in it, whatever proof the log offers.
    reader = chain.reader()
    last = claimed - 1
    for proof in (log.inclusion_proof(last, claimed), log.inclusion_proof(min(last, size - 1), size)):
        assert not reader.verify_inclusion(epoch=1, index=last, leaf_hash=leaf_hash(leaf(last)), proof=proof)


# --- long runs --------------------------------------------------------------------------------------

SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 100, 127, 128, 129, 1000, 1023, 1024, 1025, 4097, 10_000, 65_537]


def test_a_long_run_of_checkpoints_verifies_on_chain(chain: Chain) -> None:
    log = grow(MerkleLog(), SIZES[-1])
    reader = chain.reader()
    rng = random.Random(6962)
    start_block = reader.block_number()
    previous = 0
    for epoch, size in enumerate(SIZES):
        anchor(chain.attestor, log, epoch=epoch, previous=previous, size=size)
        latest = reader.latest_checkpoint()
        assert latest is not None
        assert (latest.epoch, latest.tree_size, latest.root, latest.meta_hash) == (
            epoch,
            size,
            log.root(size),
            meta(epoch),
        )
        previous = size

    assert reader.epoch_count() == len(SIZES)
    for epoch, size in enumerate(SIZES):
        checkpoint = reader.checkpoint(epoch)
        assert (checkpoint.tree_size, checkpoint.root, checkpoint.meta_hash) == (size, log.root(size), meta(epoch))
        assert checkpoint.block_number > start_block
        indexes = {0, size - 1, rng.randrange(size), rng.randrange(size)}
        for index in sorted(indexes):
            proof = log.inclusion_proof(index, size)
            hashed = leaf_hash(leaf(index))
            assert reader.verify_inclusion(epoch=epoch, index=index, leaf_hash=hashed, proof=proof)
            assert not reader.verify_inclusion(epoch=epoch, index=index, leaf_hash=flip(hashed), proof=proof)
            if proof:
                tampered = [*proof[:-1], flip(proof[-1], 7)]
                assert not reader.verify_inclusion(epoch=epoch, index=index, leaf_hash=hashed, proof=tampered)
                assert not reader.verify_inclusion(epoch=epoch, index=index, leaf_hash=hashed, proof=proof[:-1])
            assert not reader.verify_inclusion(epoch=epoch, index=index, leaf_hash=hashed, proof=[*proof, hashed])
            if size > 1:  # the same proof does not prove the leaf at another place
                other = (index + 1) % size
                assert not reader.verify_inclusion(epoch=epoch, index=other, leaf_hash=hashed, proof=proof)
        assert not reader.verify_inclusion(epoch=epoch, index=size, leaf_hash=leaf_hash(leaf(size)), proof=[])

    events = reader.anchored_events(from_block=chain.deployment.anchor_registry.block)
    assert [(e.epoch, e.tree_size, e.root, e.meta_hash) for e in events] == [
        (epoch, size, log.root(size), meta(epoch)) for epoch, size in enumerate(SIZES)
    ]
    assert [e.block_number for e in events] == [reader.checkpoint(e.epoch).block_number for e in events]


def test_gas_per_anchor_grows_with_log_of_the_size(chain: Chain) -> None:
    log = grow(MerkleLog(), 1 << 14)
    gas = {}
    previous = 0
    for epoch, size in enumerate([1, 1 << 4, (1 << 8) + 3, (1 << 12) + 5, (1 << 14) - 1]):
        gas[size] = anchor(chain.attestor, log, epoch=epoch, previous=previous, size=size)
        previous = size
    # Three storage slots per epoch (66,300) and the intrinsic 21,000 are fixed; the proof adds
    # a few thousand per level.
    assert 85_000 < gas[1] < 95_000
    assert max(gas.values()) < 115_000


# --- sending and waiting apart; confirmations; reverts of mined transactions -------------------------


def test_send_then_wait_from_a_new_client(chain: Chain) -> None:
    log = grow(MerkleLog(), 3)
    tx_hash = chain.attestor.send_anchor(epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), proof=[])
    assert isinstance(tx_hash, bytes)
    assert len(tx_hash) == 32
    # As after a restart: another client (same key) waits for the recorded hash.
    again = ChainClient(chain.w3, account=chain.attestor.account, deployment=chain.deployment)
    receipt = again.wait_anchor(tx_hash)
    assert receipt.tx_hash == tx_hash
    assert receipt.gas_used > 21_000
    assert chain.reader().checkpoint(0).block_number == receipt.block_number


def test_confirmations_wait_for_blocks_on_top(chain: Chain) -> None:
    log = grow(MerkleLog(), 3)
    client = ChainClient(chain.w3, account=chain.attestor.account, deployment=chain.deployment, confirmations=2)
    tx_hash = client.send_anchor(epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), proof=[])
    with pytest.raises(ConfirmationTimeoutError):
        client.wait_anchor(tx_hash, timeout=0.2)
    mine(chain.w3, 2)
    receipt = client.wait_anchor(tx_hash, timeout=5)
    assert chain.w3.eth.block_number >= receipt.block_number + 2


def test_a_mined_revert_is_decoded_with_its_transaction(chain: Chain) -> None:
    """A transaction that passed its gas estimate but reverts when mined (here: sent with a
    fixed gas limit, bypassing the estimate) still comes back as the contract's error."""
    w3 = chain.w3
    account = chain.attestor.account
    log = grow(MerkleLog(), 3)
    contract = w3.eth.contract(
        address=chain.deployment.anchor_registry.address, abi=load_artifact("AnchorRegistry").abi
    )
    tx = contract.functions.anchor(5, 3, log.root(), meta(5), []).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address), "gas": 200_000}
    )
    tx_hash = bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    with reverts("WrongEpoch", expected=0, got=5) as info:
        chain.attestor.wait(tx_hash)
    assert info.value.tx_hash == tx_hash


def test_hashes_must_be_32_bytes(chain: Chain) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        chain.attestor.send_anchor(epoch=0, tree_size=1, root=b"short", meta_hash=meta(0), proof=[])
    with pytest.raises(ValueError, match="32 bytes"):
        chain.attestor.send_anchor(epoch=0, tree_size=1, root=meta(1), meta_hash=meta(0), proof=[b"x" * 31])
