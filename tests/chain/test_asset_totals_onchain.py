"""AnchorRegistry.verifyAssetTotals: an asset's epoch totals checked against the anchored
checkpoint by the contract itself, and every way it refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain._artifacts import load_artifact
from chain.reverts import edge
from chain.types import Checkpoint
from chain.writer import ChainClient
from protocol.asset_totals import AssetLeaf, AssetTotalsProof, asset_key, assets_root, totals_proof
from protocol.epoch import AssetTotals
from protocol.merkle.log import MerkleLog
from tests.support.chain import Chain, flip, grow, meta, reverts

EPOCH_TOTALS = [
    {
        "solar-rooftop": AssetTotals(readings=2, energy_wh=1_500, revenue=4_200, cost=0),
        "mining-pod": AssetTotals(readings=1, energy_wh=3_000, revenue=2_000, cost=3_500),  # a loss
        "ev-hub": AssetTotals(),  # silent, still committed
    },
    {
        "solar-rooftop": AssetTotals(readings=1, energy_wh=700, revenue=1_960, cost=0),
        "mining-pod": AssetTotals(readings=3, energy_wh=9_000, revenue=12_000, cost=10_500),
        "ev-hub": AssetTotals(readings=1, energy_wh=10_000, revenue=25_000, cost=12_000),
    },
]
SIZES = [3, 8]


def _anchor(client: ChainClient, log: MerkleLog, epoch: int, *, tree_epoch: int | None = None) -> None:
    size, previous = SIZES[epoch], SIZES[epoch - 1] if epoch else 0
    root = assets_root(epoch=epoch if tree_epoch is None else tree_epoch, currency="HKD", totals=EPOCH_TOTALS[epoch])
    client.anchor(
        epoch=epoch,
        tree_size=size,
        root=log.root(size),
        meta_hash=meta(epoch),
        assets_root=root,
        proof=log.consistency_proof(previous, size),
    )


def _proof(asset: str, epoch: int, *, tree_epoch: int | None = None) -> AssetTotalsProof:
    return totals_proof(
        asset=asset, epoch=epoch if tree_epoch is None else tree_epoch, currency="HKD", totals=EPOCH_TOTALS[epoch]
    )


@pytest.fixture
def anchored(chain: Chain) -> tuple[Chain, list[Checkpoint]]:
    log = grow(MerkleLog(), SIZES[-1])
    for epoch in range(len(SIZES)):
        _anchor(chain.attestor, log, epoch)
    reader = chain.reader()
    return chain, [reader.checkpoint(e) for e in range(len(SIZES))]


def test_every_assets_totals_verify_against_the_anchored_checkpoint(
    anchored: tuple[Chain, list[Checkpoint]],
) -> None:
    chain, checkpoints = anchored
    reader = chain.reader()
    for epoch, checkpoint in enumerate(checkpoints):
        assert checkpoint.assets_root == assets_root(epoch=epoch, currency="HKD", totals=EPOCH_TOTALS[epoch])
        for name, totals in EPOCH_TOTALS[epoch].items():
            got = reader.verify_asset_totals(checkpoint=checkpoint, totals=_proof(name, epoch))
            assert got == AssetLeaf(
                asset_key=asset_key(name),
                epoch=epoch,
                readings=totals.readings,
                energy_wh=totals.energy_wh,
                revenue=totals.revenue,
                cost=totals.cost,
                net=totals.net,
                currency="HKD",
            )
    loss = reader.verify_asset_totals(checkpoint=checkpoints[0], totals=_proof("mining-pod", 0))
    assert loss.net == -1_500


def test_forged_misplaced_and_foreign_totals_are_refused(anchored: tuple[Chain, list[Checkpoint]]) -> None:
    chain, checkpoints = anchored
    reader = chain.reader()
    first, second = checkpoints
    good = _proof("mining-pod", 0)
    inflated = replace(good, leaf=replace(good.leaf, revenue=good.leaf.revenue + 10_000, net=good.leaf.net + 10_000))
    cases = [
        inflated,  # the issuer's better numbers
        replace(good, index=(good.index + 1) % good.count),  # the right leaf at another place
        replace(good, count=good.count + 1),  # another tree shape
        replace(good, proof=(flip(good.proof[0]), *good.proof[1:])),
        replace(_proof("solar-rooftop", 0), leaf=good.leaf),  # another asset's place and path
    ]
    for wrong in cases:
        with reverts("TotalsNotIncluded"):
            reader.verify_asset_totals(checkpoint=first, totals=wrong)
    # Epoch 1's true totals against epoch 0's checkpoint, and the other way round.
    with reverts("TotalsNotIncluded"):
        reader.verify_asset_totals(checkpoint=first, totals=_proof("mining-pod", 1))
    with reverts("TotalsNotIncluded"):
        reader.verify_asset_totals(checkpoint=second, totals=good)
    # The checkpoint must be the anchored one, field by field (a forged assets root first).
    with reverts("CheckpointMismatch", epoch=0):
        reader.verify_asset_totals(checkpoint=replace(first, assets_root=flip(first.assets_root)), totals=good)
    with reverts("CheckpointMismatch", epoch=0):
        reader.verify_asset_totals(checkpoint=replace(first, timestamp=first.timestamp + 1), totals=good)
    with reverts("UnknownEpoch", epoch=7):
        reader.verify_asset_totals(checkpoint=replace(first, epoch=7), totals=good)


def test_malformed_totals_are_refused_by_length(anchored: tuple[Chain, list[Checkpoint]]) -> None:
    chain, checkpoints = anchored
    contract = chain.w3.eth.contract(
        address=chain.deployment.anchor_registry.address,
        abi=load_artifact("AnchorRegistry").abi,
    )
    good = _proof("ev-hub", 1)
    c = checkpoints[1]
    fields = (c.epoch, c.tree_size, c.root, c.meta_hash, c.assets_root, c.block_number, c.timestamp)
    for data in (good.encoded[:-1], good.encoded + b"\x00", b""):
        with reverts("MalformedTotals", length=len(data)), edge():
            contract.functions.verifyAssetTotals(fields, data, good.index, good.count, list(good.proof)).call()
    assert contract.functions.ASSET_TOTALS_LENGTH().call() == 83


def test_totals_included_but_for_another_epoch_are_refused(chain: Chain) -> None:
    """An attestor that committed epoch 0's leaves (their epoch field says 0) under epoch 1: the
    proof is good, the contract still refuses to call them epoch 1's."""
    log = grow(MerkleLog(), SIZES[-1])
    _anchor(chain.attestor, log, 0)
    _anchor(chain.attestor, log, 1, tree_epoch=0)
    reader = chain.reader()
    with reverts("TotalsForAnotherEpoch", expected=1, got=0):
        reader.verify_asset_totals(checkpoint=reader.checkpoint(1), totals=_proof("ev-hub", 1, tree_epoch=0))
