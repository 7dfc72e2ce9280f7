"""The per-asset totals leaf and the assets tree: golden vectors, round trips and refusals."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.asset_totals import (
    ENCODED_LENGTH,
    AssetLeaf,
    AssetTotalsProof,
    asset_key,
    asset_leaves,
    assets_root,
    totals_proof,
    verify_totals_proof,
)
from protocol.epoch import AssetTotals
from protocol.errors import InvalidProofError, MalformedError

# Golden vectors: any other implementation (the contract, a token, a JS verifier) must give these.
SOLAR = AssetLeaf.of(
    asset="solar-rooftop", epoch=3, readings=90, energy_wh=1_234_567, revenue=98_765, cost=100_000, currency="HKD"
)
SOLAR_HEX = (
    "26f6b0db1af8820096fe088e92ef323b85dcac15dc472392b9eae372384bb8e1"  # SHA-256("solar-rooftop")
    "0000000000000003"  # epoch
    "000000000000005a"  # readings 90
    "000000000012d687"  # energy_wh 1,234,567
    "00000000000181cd"  # revenue 98,765
    "00000000000186a0"  # cost 100,000
    "fffffffffffffb2d"  # net -1,235 (two's complement)
    "484b44"  # "HKD"
)
TOTALS = {
    "solar-rooftop": AssetTotals(readings=90, energy_wh=1_234_567, revenue=98_765, cost=100_000),
    "mining-pod": AssetTotals(readings=10, energy_wh=5_000, revenue=7_000, cost=2_000),
    "ev-hub": AssetTotals(),  # known, silent this epoch: still a leaf, all zero
}
ROOT_HEX = "f1177eec2315872ec2e6833e4bbb17c0f5c9a33f29113b1d33a72ca4ead7c37e"


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_encoding_golden_vector() -> None:
    encoded = SOLAR.encode()
    assert len(encoded) == ENCODED_LENGTH == 83
    assert encoded.hex() == SOLAR_HEX
    assert SOLAR.asset_key == asset_key("solar-rooftop") == _sha(b"solar-rooftop")
    assert SOLAR.leaf_hash == _sha(b"\x00" + encoded)
    assert AssetLeaf.decode(encoded) == SOLAR


def test_tree_golden_vector_ordered_by_key_with_silent_assets() -> None:
    leaves = asset_leaves(epoch=3, currency="HKD", totals=TOTALS)
    keys = [leaf.asset_key for _, leaf in leaves]
    assert keys == sorted(keys)
    assert [name for name, _ in leaves] == ["solar-rooftop", "ev-hub", "mining-pod"]
    assert leaves[1][1].encode()[32:] == (3).to_bytes(8, "big") + bytes(40) + b"HKD"
    h = [_sha(b"\x00" + leaf.encode()) for _, leaf in leaves]
    by_hand = _sha(b"\x01" + _sha(b"\x01" + h[0] + h[1]) + h[2])  # RFC 6962 over 3 leaves
    root = assets_root(epoch=3, currency="HKD", totals=TOTALS)
    assert root == by_hand
    assert root.hex() == ROOT_HEX
    assert assets_root(epoch=3, currency="HKD", totals={}) == _sha(b"")


def test_the_root_changes_with_any_field() -> None:
    root = assets_root(epoch=3, currency="HKD", totals=TOTALS)
    assert assets_root(epoch=4, currency="HKD", totals=TOTALS) != root
    assert assets_root(epoch=3, currency="USD", totals=TOTALS) != root
    without_silent = {k: v for k, v in TOTALS.items() if k != "ev-hub"}
    assert assets_root(epoch=3, currency="HKD", totals=without_silent) != root


def test_every_proof_verifies_and_no_other() -> None:
    root = assets_root(epoch=3, currency="HKD", totals=TOTALS)
    for name in TOTALS:
        proof = totals_proof(asset=name, epoch=3, currency="HKD", totals=TOTALS)
        assert proof.count == 3
        leaf = verify_totals_proof(proof, root=root)
        assert leaf.asset_key == asset_key(name)
    proof = totals_proof(asset="mining-pod", epoch=3, currency="HKD", totals=TOTALS)
    assert (proof.index, [p.hex() for p in proof.proof]) == (
        2,
        ["fed9228a8752fedc45f270d3b54c25525f7a0d37a486019e745c05913a7c47f2"],
    )
    forged = AssetTotalsProof(
        leaf=AssetLeaf.of(
            asset="mining-pod", epoch=3, readings=10, energy_wh=5_000, revenue=9_000, cost=2_000, currency="HKD"
        ),
        index=proof.index,
        count=proof.count,
        proof=proof.proof,
    )
    with pytest.raises(InvalidProofError):
        verify_totals_proof(forged, root=root)
    with pytest.raises(InvalidProofError):
        verify_totals_proof(proof, root=_sha(b"another root"))
    with pytest.raises(KeyError):
        totals_proof(asset="unknown", epoch=3, currency="HKD", totals=TOTALS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes.fromhex(SOLAR_HEX)[:-1], "83 bytes"),
        (bytes.fromhex(SOLAR_HEX) + b"\x00", "83 bytes"),
        (bytes.fromhex(SOLAR_HEX)[:-3] + b"hkd", "currency"),
        (bytes.fromhex(SOLAR_HEX)[:72] + (5).to_bytes(8, "big") + b"HKD", "net"),
    ],
)
def test_decode_refuses(data: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        AssetLeaf.decode(data)


def test_construction_refuses_out_of_range() -> None:
    with pytest.raises(MalformedError, match="readings"):
        AssetLeaf.of(asset="a", epoch=0, readings=-1, energy_wh=0, revenue=0, cost=0, currency="HKD")
    with pytest.raises(MalformedError, match="revenue"):
        AssetLeaf.of(asset="a", epoch=0, readings=0, energy_wh=0, revenue=2**64, cost=0, currency="HKD")
    with pytest.raises(MalformedError, match="net"):
        AssetLeaf.of(asset="a", epoch=0, readings=0, energy_wh=0, revenue=0, cost=2**63 + 1, currency="HKD")
    with pytest.raises(MalformedError, match="asset_key"):
        AssetLeaf(asset_key=b"short", epoch=0, readings=0, energy_wh=0, revenue=0, cost=0, net=0, currency="HKD")


@given(
    epoch=st.integers(0, 2**64 - 1),
    counts=st.tuples(*[st.integers(0, 2**53 - 1)] * 4),
    name=st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True),
)
def test_round_trip(epoch: int, counts: tuple[int, int, int, int], name: str) -> None:
    readings, energy, revenue, cost = counts
    leaf = AssetLeaf.of(
        asset=name, epoch=epoch, readings=readings, energy_wh=energy, revenue=revenue, cost=cost, currency="USD"
    )
    assert AssetLeaf.decode(leaf.encode()) == leaf
    assert int.from_bytes(leaf.encode()[72:80], "big", signed=True) == revenue - cost
