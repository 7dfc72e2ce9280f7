"""AnchorRegistry on anvil and eth-tester: every revert, history rewrites refused, long runs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from functools import partial

import pytest
from eth_utils.crypto import keccak

from chain._artifacts import load_artifact
from chain.devchain import mine, set_next_block_timestamp
from chain.errors import CheckpointMismatchError, ConfirmationTimeoutError, ContractRevert, InclusionProofError
from chain.reader import ChainReader
from chain.types import AnchoredEvent, Checkpoint, checkpoint_commitment
from chain.writer import ChainClient
from protocol.errors import VerificationError
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import MerkleLog
from protocol.merkle.verify import verify_consistency
from tests.support.chain import Chain, assets, flip, grow, leaf, meta, reverts


def anchor(client: ChainClient, log: MerkleLog, *, epoch: int, previous: int, size: int) -> int:
    receipt = client.anchor(
        epoch=epoch,
        tree_size=size,
        root=log.root(size),
        meta_hash=meta(epoch),
        assets_root=assets(epoch),
        proof=log.consistency_proof(previous, size),
    )
    return receipt.gas_used


def tampered(checkpoint: Checkpoint) -> Iterator[Checkpoint]:
    """``checkpoint`` with one field changed, every field in turn."""
    yield replace(checkpoint, tree_size=checkpoint.tree_size + 1)
    yield replace(checkpoint, tree_size=checkpoint.tree_size - 1)
    yield replace(checkpoint, root=flip(checkpoint.root))
    yield replace(checkpoint, meta_hash=flip(checkpoint.meta_hash))
    yield replace(checkpoint, assets_root=flip(checkpoint.assets_root))
    yield replace(checkpoint, block_number=checkpoint.block_number + 1)
    yield replace(checkpoint, block_number=checkpoint.block_number - 1)
    yield replace(checkpoint, timestamp=checkpoint.timestamp + 1)
    yield replace(checkpoint, timestamp=checkpoint.timestamp - 1)
    if checkpoint.epoch > 0:
        yield replace(checkpoint, epoch=checkpoint.epoch - 1)


def previous_args(checkpoint: Checkpoint | None) -> tuple[int, bytes, bytes, bytes, int, int]:
    """The ``Previous`` tuple ``anchor`` takes (all zero for None)."""
    if checkpoint is None:
        return (0, bytes(32), bytes(32), bytes(32), 0, 0)
    c = checkpoint
    return (c.tree_size, c.root, c.meta_hash, c.assets_root, c.block_number, c.timestamp)


# --- each custom error ----------------------------------------------------------------------------


def test_only_the_attestor_anchors(chain: Chain) -> None:
    log = grow(MerkleLog(), 3)
    for client in (chain.stranger, chain.registrar, chain.governor, chain.pricing):
        with reverts("NotAttestor"):
            client.anchor(epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), assets_root=assets(0), proof=[])
    assert chain.reader().latest_checkpoint() is None


def test_epochs_are_numbered_without_gaps(chain: Chain) -> None:
    log = grow(MerkleLog(), 10)
    with reverts("WrongEpoch", expected=0, got=1):
        chain.attestor.anchor(
            epoch=1, tree_size=3, root=log.root(3), meta_hash=meta(1), assets_root=assets(1), proof=[]
        )
    anchor(chain.attestor, log, epoch=0, previous=0, size=3)
    for epoch in (0, 2, 7, 2**64 - 1):  # a repeat, gaps, the largest epoch number
        with reverts("WrongEpoch", expected=1, got=epoch):
            chain.attestor.anchor(
                epoch=epoch,
                tree_size=5,
                root=log.root(5),
                meta_hash=meta(1),
                assets_root=assets(1),
                proof=log.consistency_proof(3, 5),
            )
    # A gap refused even with a previous checkpoint that is anchored (epoch 0's, for epoch 2).
    first = chain.reader().checkpoint(0)
    with reverts("WrongEpoch", expected=1, got=2):
        chain.attestor.transact(
            "AnchorRegistry",
            "anchor",
            2,
            5,
            log.root(5),
            meta(2),
            assets(2),
            previous_args(first),
            log.consistency_proof(3, 5),
        )
    anchor(chain.attestor, log, epoch=1, previous=3, size=5)
    assert chain.reader().epoch_count() == 2
    with reverts("WrongEpoch", expected=2, got=1):  # a repeat, with its true previous checkpoint
        chain.attestor.anchor(
            epoch=1,
            tree_size=5,
            root=log.root(5),
            meta_hash=meta(1),
            assets_root=assets(1),
            proof=log.consistency_proof(3, 5),
            previous=first,
        )


def test_zero_root_is_refused(chain: Chain) -> None:
    with reverts("ZeroRoot"):
        chain.attestor.anchor(epoch=0, tree_size=1, root=bytes(32), meta_hash=meta(0), assets_root=assets(0), proof=[])


def test_tree_must_grow_every_epoch(chain: Chain) -> None:
    log = grow(MerkleLog(), 8)
    with reverts("TreeSizeNotGrowing", previous=0, given=0):
        chain.attestor.anchor(
            epoch=0, tree_size=0, root=log.root(0), meta_hash=meta(0), assets_root=assets(0), proof=[]
        )
    anchor(chain.attestor, log, epoch=0, previous=0, size=5)
    # An epoch without new leaves is not anchored (the attestor skips it), nor a shrinking tree.
    for size in (5, 4, 1, 0):
        with reverts("TreeSizeNotGrowing", previous=5, given=size):
            chain.attestor.anchor(
                epoch=1, tree_size=size, root=log.root(size), meta_hash=meta(1), assets_root=assets(1), proof=[]
            )


def test_first_checkpoint_takes_no_proof(chain: Chain) -> None:
    log = grow(MerkleLog(), 4)
    with reverts("InconsistentProof"):
        chain.attestor.anchor(
            epoch=0, tree_size=4, root=log.root(), meta_hash=meta(0), assets_root=assets(0), proof=[log.root(2)]
        )


def test_a_wrong_previous_checkpoint_is_refused(chain: Chain) -> None:
    log = grow(MerkleLog(), 9)
    # Epoch 0 has no previous checkpoint: anything but all zeros is refused.
    for field in range(6):
        fields = list(previous_args(None))
        fields[field] = 1 if field in (0, 4, 5) else meta(99)
        with reverts("PreviousCheckpointMismatch", epoch=0):
            chain.attestor.transact(
                "AnchorRegistry", "anchor", 0, 4, log.root(4), meta(0), assets(0), tuple(fields), []
            )
    with pytest.raises(ValueError, match="no previous"):
        chain.attestor.check_anchor(
            epoch=0,
            tree_size=4,
            root=log.root(4),
            meta_hash=meta(0),
            assets_root=assets(0),
            proof=[],
            previous=reader_checkpoint_stub(),
        )
    anchor(chain.attestor, log, epoch=0, previous=0, size=4)
    first = chain.reader().checkpoint(0)
    proof = log.consistency_proof(4, 9)
    # Every field of the previous checkpoint changed in turn (the epoch's own proof would fit a
    # smaller size too: still refused, the size is part of the commitment).
    for wrong in tampered(first):
        with reverts("PreviousCheckpointMismatch", epoch=1):
            chain.attestor.check_anchor(
                epoch=1,
                tree_size=9,
                root=log.root(9),
                meta_hash=meta(1),
                assets_root=assets(1),
                proof=proof,
                previous=wrong,
            )
    with pytest.raises(ValueError, match="is epoch 0, not 1"):
        chain.attestor.check_anchor(
            epoch=1,
            tree_size=9,
            root=log.root(9),
            meta_hash=meta(1),
            assets_root=assets(1),
            proof=proof,
            previous=replace(first, epoch=1),
        )
    # Epoch 0's fields given as the previous checkpoint of epoch 1 under another epoch number
    # (the commitment covers the epoch): refused by the contract.
    with reverts("PreviousCheckpointMismatch", epoch=1):
        chain.attestor.transact(
            "AnchorRegistry",
            "anchor",
            1,
            9,
            log.root(9),
            meta(1),
            assets(1),
            previous_args(replace(first, tree_size=5, root=log.root(5))),
            log.consistency_proof(5, 9),
        )
    # The right one, given or looked up by the client, goes through.
    chain.attestor.check_anchor(
        epoch=1, tree_size=9, root=log.root(9), meta_hash=meta(1), assets_root=assets(1), proof=proof
    )
    chain.attestor.anchor(
        epoch=1, tree_size=9, root=log.root(9), meta_hash=meta(1), assets_root=assets(1), proof=proof, previous=first
    )
    assert chain.reader().checkpoint(1).tree_size == 9


def reader_checkpoint_stub() -> Checkpoint:
    return Checkpoint(
        epoch=0, tree_size=1, root=meta(7), meta_hash=meta(8), assets_root=assets(8), block_number=1, timestamp=1
    )


def test_unknown_epoch_in_views(chain: Chain) -> None:
    reader = chain.reader()
    with reverts("UnknownEpoch", epoch=0):
        reader.checkpoint(0)
    with reverts("UnknownEpoch", epoch=0):
        reader.epoch_block(0)
    with reverts("UnknownEpoch", epoch=0):
        reader.commitment(0)
    with reverts("UnknownEpoch", epoch=3):
        reader.verify_inclusion(epoch=3, index=0, leaf_hash=leaf_hash(leaf(0)), proof=[])
    assert reader.latest_checkpoint() is None
    assert reader.epoch_count() == 0
    log = grow(MerkleLog(), 3)
    anchor(chain.attestor, log, epoch=0, previous=0, size=3)
    made_up = replace(reader.checkpoint(0), epoch=1)
    with reverts("UnknownEpoch", epoch=1):
        reader.verify_checkpoint(made_up)
    with reverts("UnknownEpoch", epoch=1):
        reader.verify_inclusion(checkpoint=made_up, index=0, leaf_hash=leaf_hash(leaf(0)), proof=[])
    with reverts("UnknownEpoch", epoch=2**64 - 1):
        reader.epoch_block(2**64 - 1)


def test_a_checkpoint_other_than_the_anchored_one_is_a_mismatch(chain: Chain) -> None:
    log = grow(MerkleLog(), 6)
    anchor(chain.attestor, log, epoch=0, previous=0, size=3)
    anchor(chain.attestor, log, epoch=1, previous=3, size=6)
    reader = chain.reader()
    checkpoint = reader.checkpoint(1)
    proof = log.inclusion_proof(4, 6)
    reader.verify_inclusion(checkpoint=checkpoint, index=4, leaf_hash=leaf_hash(leaf(4)), proof=proof)
    for wrong in tampered(checkpoint):
        with reverts("CheckpointMismatch", epoch=wrong.epoch):
            reader.verify_inclusion(checkpoint=wrong, index=4, leaf_hash=leaf_hash(leaf(4)), proof=proof)
    # The other epoch's own fields under this epoch's number.
    moved = replace(reader.checkpoint(0), epoch=1)
    first = log.inclusion_proof(0, 3)
    with reverts("CheckpointMismatch", epoch=1):
        reader.verify_inclusion(checkpoint=moved, index=0, leaf_hash=leaf_hash(leaf(0)), proof=first)


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
                assets_root=assets(1),
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
    # The fork from its own start: its previous checkpoint (the honest one with the fork's
    # root) and its own proof, consistent with each other: refused, the previous checkpoint is
    # not the anchored one, whoever sends it (the attestor's key here).
    honest = chain.reader().checkpoint(0)
    forged = replace(honest, root=fork.root(previous))
    if forged != honest:
        with reverts("PreviousCheckpointMismatch", epoch=1):
            chain.attestor.anchor(
                epoch=1,
                tree_size=size,
                root=fork.root(size),
                meta_hash=meta(1),
                assets_root=assets(1),
                proof=fork.consistency_proof(previous, size),
                previous=forged,
            )
    assert chain.reader().epoch_count() == 1
    # The honest checkpoint still goes through.
    anchor(chain.attestor, log, epoch=1, previous=previous, size=size)
    assert chain.reader().checkpoint(1).root == log.root(size)


def chain_verdict(client: ChainClient, *, claimed: int, root: bytes, proof: list[bytes]) -> bool:
    try:
        client.check_anchor(
            epoch=1, tree_size=claimed, root=root, meta_hash=meta(1), assets_root=assets(1), proof=proof
        )
    except ContractRevert as revert:
        if revert.name in ("InconsistentProof", "TreeSizeNotGrowing"):
            return False
        raise
    return True


def test_a_wrong_size_is_judged_exactly_as_rfc_9162_judges_it(chain: Chain) -> None:
    """An RFC 6962 root does not commit to its tree size: a consistency proof only fixes the
    shape of the path, and sizes whose paths have the same shape pass the check with the same
    proof, in the contract as in :func:`protocol.merkle.verify.verify_consistency` (and in every RFC
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
        epoch=1,
        tree_size=claimed,
        root=log.root(size),
        meta_hash=meta(1),
        assets_root=assets(1),
        proof=log.consistency_proof(5, size),
    )
    # ... but the last leaf it claims cannot be shown in it, whatever proof the log offers.
    reader = chain.reader()
    last = claimed - 1
    for proof in (log.inclusion_proof(last, claimed), log.inclusion_proof(min(last, size - 1), size)):
        with pytest.raises(InclusionProofError):
            reader.verify_inclusion(epoch=1, index=last, leaf_hash=leaf_hash(leaf(last)), proof=proof)


# --- one commitment per epoch, the fields in the event -----------------------------------------------


def storage_word(chain: Chain, slot: int) -> bytes:
    address = chain.deployment.anchor_registry.address
    return bytes(chain.w3.eth.get_storage_at(address, slot)).rjust(32, b"\0")


def test_each_epoch_is_one_slot_committing_to_every_field(chain: Chain) -> None:
    log = grow(MerkleLog(), 40)
    reader = chain.reader()
    sizes = [3, 17, 40]
    stamp = int(chain.w3.eth.get_block("latest")["timestamp"]) + 1_000
    blocks = []
    for epoch, size in enumerate(sizes):
        mine(chain.w3, epoch + 1)
        stamp += 97 * (epoch + 1)
        set_next_block_timestamp(chain.w3, stamp)
        receipt = chain.attestor.anchor(
            epoch=epoch,
            tree_size=size,
            root=log.root(size),
            meta_hash=meta(epoch),
            assets_root=assets(epoch),
            proof=log.consistency_proof(sizes[epoch - 1] if epoch else 0, size),
        )
        blocks.append(receipt.block_number)
        checkpoint = reader.checkpoint(epoch)
        assert checkpoint == Checkpoint(
            epoch=epoch,
            tree_size=size,
            root=log.root(size),
            meta_hash=meta(epoch),
            assets_root=assets(epoch),
            block_number=receipt.block_number,
            timestamp=stamp,
        )
        assert reader.latest_checkpoint() == checkpoint

    for epoch, size in enumerate(sizes):
        checkpoint = reader.checkpoint(epoch)
        assert reader.epoch_block(epoch) == blocks[epoch]
        commitment = checkpoint_commitment(
            epoch=epoch,
            tree_size=size,
            root=log.root(size),
            meta_hash=meta(epoch),
            assets_root=assets(epoch),
            block_number=blocks[epoch],
            timestamp=checkpoint.timestamp,
        )
        assert len(commitment) == 24
        assert reader.commitment(epoch) == commitment == checkpoint.commitment()
        # The epoch's whole record: commitment (24 bytes) then block number (8 bytes), at the
        # mapping slot keccak256(epoch . 2) (Governed's holders and pending changes are 0 and 1).
        slot = int.from_bytes(keccak(epoch.to_bytes(32, "big") + (2).to_bytes(32, "big")), "big")
        assert storage_word(chain, slot) == commitment + blocks[epoch].to_bytes(8, "big")
        reader.verify_checkpoint(checkpoint)
        for wrong in tampered(checkpoint):
            with pytest.raises(CheckpointMismatchError):
                reader.verify_checkpoint(wrong)
    # Nothing else: no head, no latest root (the first slots are empty); latest() is the count
    # and the last record.
    assert [storage_word(chain, slot) for slot in range(4)] == [bytes(32)] * 4
    contract = chain.w3.eth.contract(
        address=chain.deployment.anchor_registry.address, abi=load_artifact("AnchorRegistry").abi
    )
    assert tuple(contract.functions.latest().call()) == (3, blocks[2], reader.commitment(2))


def test_checkpoint_refuses_events_that_do_not_match_the_commitment(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that lies about the ``Anchored`` logs or the block's time is caught: the reader
    checks what it read against the contract's commitment before returning it."""
    log = grow(MerkleLog(), 9)
    anchor(chain.attestor, log, epoch=0, previous=0, size=4)
    mine(chain.w3, 2)
    anchor(chain.attestor, log, epoch=1, previous=4, size=9)
    mine(chain.w3, 2)
    reader = chain.reader()
    honest = reader.checkpoint(1)
    block = honest.block_number
    (event,) = reader.anchored_events(from_block=block, to_block=block)

    def node_returns(*events: AnchoredEvent) -> None:
        monkeypatch.setattr(reader, "_anchored_in_block", lambda _block: list(events))

    lies = [
        replace(event, tree_size=event.tree_size + 1),
        replace(event, root=flip(event.root)),
        replace(event, meta_hash=flip(event.meta_hash)),
        replace(event, assets_root=flip(event.assets_root)),
        replace(event, block_number=block + 1),
    ]
    for lie in lies:
        node_returns(lie)
        for read in (lambda: reader.checkpoint(1), reader.latest_checkpoint):
            with pytest.raises(CheckpointMismatchError, match="does not match"):
                read()
    for missing in ((), (replace(event, epoch=0),)):  # no event, or another epoch's
        node_returns(*missing)
        with pytest.raises(CheckpointMismatchError, match="no Anchored event"):
            reader.checkpoint(1)
    # A forged event next to the real one: the real one is found and returned.
    node_returns(lies[1], event)
    assert reader.checkpoint(1) == honest
    monkeypatch.undo()

    # Looking in the wrong block (another epoch's, or a later one) finds no event for the epoch.
    for wrong_block in (reader.epoch_block(0), block + 1):
        monkeypatch.setattr(reader, "epoch_block", lambda _epoch, b=wrong_block: b)
        with pytest.raises(CheckpointMismatchError, match="no Anchored event"):
            reader.checkpoint(1)
    monkeypatch.undo()
    # A wrong time for the block.
    monkeypatch.setattr(ChainReader, "block_timestamp", lambda self, b: honest.timestamp + 1)
    with pytest.raises(CheckpointMismatchError, match="does not match"):
        reader.checkpoint(1)
    monkeypatch.undo()
    assert reader.checkpoint(1) == honest
    assert reader.latest_checkpoint() == honest


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
        assert reader.epoch_count() == epoch + 1  # found by searching the records
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
            included = partial(reader.verify_inclusion, checkpoint=checkpoint)
            included(index=index, leaf_hash=hashed, proof=proof)
            if index == 0:  # by epoch number: the reader fetches and checks the checkpoint first
                reader.verify_inclusion(epoch=epoch, index=index, leaf_hash=hashed, proof=proof)
            refused = [{"index": index, "leaf_hash": flip(hashed), "proof": proof}]
            if proof:
                refused.append({"index": index, "leaf_hash": hashed, "proof": [*proof[:-1], flip(proof[-1], 7)]})
                refused.append({"index": index, "leaf_hash": hashed, "proof": proof[:-1]})
            refused.append({"index": index, "leaf_hash": hashed, "proof": [*proof, hashed]})
            if size > 1:  # the same proof does not prove the leaf at another place
                refused.append({"index": (index + 1) % size, "leaf_hash": hashed, "proof": proof})
            for arguments in refused:
                with pytest.raises(InclusionProofError):
                    included(**arguments)
        with pytest.raises(InclusionProofError):
            reader.verify_inclusion(checkpoint=checkpoint, index=size, leaf_hash=leaf_hash(leaf(size)), proof=[])

    events = reader.anchored_events(from_block=chain.deployment.anchor_registry.block)
    assert [(e.epoch, e.tree_size, e.root, e.meta_hash) for e in events] == [
        (epoch, size, log.root(size), meta(epoch)) for epoch, size in enumerate(SIZES)
    ]
    assert [e.block_number for e in events] == [reader.checkpoint(e.epoch).block_number for e in events]


def test_gas_per_anchor_grows_with_log_of_the_size(chain: Chain) -> None:
    log = grow(MerkleLog(), 1 << 14)
    gas = {}
    proofs = {}
    previous = 0
    for epoch, size in enumerate([1, 2, 1 << 4, (1 << 8) + 3, (1 << 12) + 5, (1 << 14) - 1]):
        gas[size] = anchor(chain.attestor, log, epoch=epoch, previous=previous, size=size)
        proofs[size] = len(log.consistency_proof(previous, size))
        previous = size
    # Every epoch writes one fresh slot and nothing else: 22,100 + the intrinsic 21,000, the
    # event, the calldata; every later epoch also reads the previous record (2,100) and checks
    # the previous checkpoint given in calldata against it (its calldata, one keccak). The assets
    # root adds a word of calldata to each (the new one and the previous one's) and to the event.
    assert 45_000 < gas[1] < 54_000
    assert 50_000 < gas[2] < 59_000
    # ... and per proof element its calldata (~512) and one or two SHA-256 calls (~250 each).
    for size in list(gas)[2:]:
        assert gas[size] - gas[2] < (proofs[size] - proofs[2]) * 1_100, (size, gas)
    assert max(list(gas.values())[1:]) < 72_000


# --- sending and waiting apart; confirmations; reverts of mined transactions -------------------------


def test_send_then_wait_from_a_new_client(chain: Chain) -> None:
    log = grow(MerkleLog(), 3)
    tx_hash = chain.attestor.send_anchor(
        epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), assets_root=assets(0), proof=[]
    )
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
    tx_hash = client.send_anchor(
        epoch=0, tree_size=3, root=log.root(), meta_hash=meta(0), assets_root=assets(0), proof=[]
    )
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
    tx = contract.functions.anchor(5, 3, log.root(), meta(5), assets(5), previous_args(None), []).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address), "gas": 200_000}
    )
    tx_hash = bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    with reverts("WrongEpoch", expected=0, got=5) as info:
        chain.attestor.wait(tx_hash)
    assert info.value.tx_hash == tx_hash


def test_hashes_must_be_32_bytes(chain: Chain) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        chain.attestor.send_anchor(
            epoch=0, tree_size=1, root=b"short", meta_hash=meta(0), assets_root=assets(0), proof=[]
        )
    with pytest.raises(ValueError, match="32 bytes"):
        chain.attestor.send_anchor(
            epoch=0, tree_size=1, root=meta(1), meta_hash=meta(0), assets_root=assets(0), proof=[b"x" * 31]
        )
