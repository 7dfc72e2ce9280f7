"""Cash flow arithmetic, epoch metadata and proof bundles."""

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.bundle import Anchor, Checkpoint, ProofBundle, verify_bundle_offline
from protocol.cashflow import Tariff, reading_cash_flow
from protocol.envelope import DeviceKind, Message, sign_body
from protocol.epoch import AssetTotals, EpochMetadata
from protocol.errors import (
    BadSignatureError,
    BundleError,
    MetadataError,
    RootMismatchError,
    VerificationError,
)
from protocol.merkle.hashing import EMPTY_ROOT
from protocol.merkle.log import MerkleLog
from protocol.signing import DeviceKey
from tests.support.envelopes import body

TARIFF = Tariff(
    id="hk-2026-11",
    currency="HKD",
    solar_fit_per_kwh=400,  # HK$4.00/kWh feed-in
    charger_price_per_kwh=450,
    charger_session_fee=1000,
    grid_price_per_kwh=150,
    miner_power_price_per_kwh=60,
    btc_price=70_000_000,  # HK$700,000 per BTC, in cents
    btc_difficulty=150_000_000_000_000,
    btc_subsidy_sats=312_500_000,
    btc_fees_sats=10_000_000,
    pool_fee_bps=200,
)


def test_cash_flow_formulas() -> None:
    solar = reading_cash_flow(body(DeviceKind.SOLAR), TARIFF)
    assert (solar.revenue, solar.cost) == (81 * 400 // 1000, 0)
    charger = reading_cash_flow(body(DeviceKind.CHARGER), TARIFF)
    assert charger.revenue == 1100 * 450 // 1000 + 1 * 1000
    assert charger.cost == 1183 * 150 // 1000
    miner = reading_cash_flow(body(DeviceKind.MINER), TARIFF)
    hashes = 17_280_000 * 10**9
    expected_btc = hashes / (150_000_000_000_000 * 2**32) * (312_500_000 + 10_000_000) / 1e8 * 0.98
    assert miner.revenue == int(
        hashes * 322_500_000 * 9_800 * 70_000_000 // (150_000_000_000_000 * 2**32 * 10_000 * 10**8)
    )
    assert abs(miner.revenue - expected_btc * 70_000_000) <= 1
    assert miner.cost == 82 * 60 // 1000
    assert miner.net == miner.revenue - miner.cost


def test_tariff_validation() -> None:
    as_json = TARIFF.to_json()
    assert Tariff.from_json(as_json) == TARIFF
    for change, message in [
        ({"currency": "hkd"}, "ISO 4217"),
        ({"btc_difficulty": 0}, "positive"),
        ({"pool_fee_bps": 10_001}, "10000"),
        ({"btc_price": 1.5}, "integer"),
        ({"btc_price": -1}, "integer"),
        ({"id": ""}, "tariff id"),
    ]:
        with pytest.raises(MetadataError, match=message):
            Tariff.from_json({**as_json, **change})
    with pytest.raises(MetadataError, match="missing"):
        Tariff.from_json({k: v for k, v in as_json.items() if k != "btc_price"})
    with pytest.raises(MetadataError, match="unknown"):
        Tariff.from_json({**as_json, "extra": 1})


def _meta(**change: Any) -> EpochMetadata:
    fields: dict[str, Any] = {
        "epoch": 3,
        "start_ms": 1_000,
        "end_ms": 61_000,
        "leaves_from": 0,
        "leaves_to": 4,
        "tariff": TARIFF,
        "assets": {
            "solar-rooftop": AssetTotals(readings=3, energy_wh=243, revenue=96, cost=0),
            "mining-pod": AssetTotals(readings=1, energy_wh=82, revenue=2, cost=4),
        },
        "quarantine_count": 0,
        "quarantine_root": EMPTY_ROOT,
    }
    fields.update(change)
    return EpochMetadata(**fields)


def test_metadata_round_trip_and_hash() -> None:
    meta = _meta()
    data = meta.canonical_bytes()
    parsed = EpochMetadata.parse(data)
    assert parsed == meta
    assert parsed.meta_hash == meta.meta_hash
    assert list(meta.assets) == ["mining-pod", "solar-rooftop"]  # sorted, whatever the input order
    assert meta.assets["mining-pod"].net == -2
    assert json.loads(data)["assets"]["mining-pod"]["net"] == -2
    # Whitespace does not change the hash: it is over the canonical form.
    assert EpochMetadata.parse(json.dumps(json.loads(data), indent=2).encode()).meta_hash == meta.meta_hash
    assert _meta(quarantine_count=1).meta_hash != meta.meta_hash


@given(
    readings=st.integers(0, 2**40),
    money=st.integers(0, 2**53 - 1),
    name=st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True),
)
def test_metadata_canonical_bytes_are_rfc8785(readings: int, money: int, name: str) -> None:
    """The fast encoder behind meta_hash is byte-identical to RFC 8785 on everything the
    metadata schema admits (ASCII names, integers up to 2**53 - 1, negative nets)."""
    import rfc8785

    totals = AssetTotals(readings=readings, energy_wh=money, revenue=money // 3, cost=money)
    meta = _meta(leaves_to=readings, assets={name: totals}, end_ms=max(1_000, money))
    assert meta.canonical_bytes() == rfc8785.dumps(meta.to_json())


def test_metadata_rejections() -> None:
    good = _meta().to_json()
    cases: list[tuple[Any, str]] = [
        ({**good, "version": 1}, "version"),
        ({**good, "version": 3}, "version"),
        ({**good, "assets_root": "AB" * 32}, "assets_root"),
        ({k: v for k, v in good.items() if k != "assets_root"}, "missing"),
        ({**good, "window": {"start_ms": 5, "end_ms": 4}}, "before"),
        ({**good, "leaves": {"from": 5, "to": 4}}, "below"),
        ({**good, "leaves": {"from": 0, "to": 9}}, "add up"),
        ({**good, "quarantine": {"count": 0, "root": "00"}}, "hex"),
        ({**good, "assets": {"Bad Name": good["assets"]["mining-pod"]}}, "asset name"),
        ({**good, "assets": {**good["assets"], "mining-pod": {**good["assets"]["mining-pod"], "net": 5}}}, "net"),
        ({**good, "extra": 1}, "unknown"),
    ]
    for obj, message in cases:
        with pytest.raises(MetadataError, match=message):
            EpochMetadata.from_json(obj)
    with pytest.raises(MetadataError):
        EpochMetadata.parse(b"not json")


# --- bundles ------------------------------------------------------------------------------------


def _log_with(messages: list[Message]) -> MerkleLog:
    log = MerkleLog()
    log.extend(m.raw for m in messages)
    return log


@pytest.fixture
def fixture_bundle() -> tuple[ProofBundle, list[Message], DeviceKey]:
    key = DeviceKey.generate("es256")
    messages, prev = [], bytes(32)
    for seq in range(1, 5):
        m = sign_body(body(seq=seq, prev=prev), key)
        messages.append(m)
        prev = m.chain_hash
    meta = _meta(assets={"solar-rooftop": AssetTotals(readings=4, energy_wh=324, revenue=128, cost=0)})
    log = _log_with(messages)
    bundle = ProofBundle(
        message=messages[2].raw,
        device_id="sol-0001",
        alg="es256",
        public_key=key.public_key,
        leaf_index=2,
        tree_size=4,
        inclusion_proof=tuple(log.inclusion_proof(2, 4)),
        checkpoint=Checkpoint(epoch=3, tree_size=4, root=log.root(), meta_hash=meta.meta_hash),
        metadata=meta,
        anchor=Anchor(
            chain_id=31337,
            contract="0x" + "ab" * 20,
            tx_hash="0x" + "cd" * 32,
            block_number=7,
            block_timestamp=1_763_700_000,
        ),
    )
    return bundle, messages, key


def test_bundle_round_trip_and_verify(fixture_bundle: Any) -> None:
    bundle, _, _ = fixture_bundle
    verify_bundle_offline(bundle)
    data = json.dumps(bundle.to_json()).encode()
    parsed = ProofBundle.parse(data)
    assert parsed == bundle
    verify_bundle_offline(parsed)
    assert parsed.decoded_message().body.seq == 3
    bare = replace(bundle, metadata=None, anchor=None)
    verify_bundle_offline(ProofBundle.parse(json.dumps(bare.to_json()).encode()))


def test_bundle_attacks_are_caught(fixture_bundle: Any) -> None:
    bundle, messages, key = fixture_bundle
    log = _log_with(messages)
    bigger = _log_with([*messages, messages[0]])
    attacks: list[tuple[str, ProofBundle, type[VerificationError], str]] = [
        ("another reading's bytes", replace(bundle, message=messages[1].raw), RootMismatchError, "root_mismatch"),
        ("another device named", replace(bundle, device_id="sol-0002"), BundleError, "bad_bundle"),
        (
            "another key",
            replace(bundle, public_key=DeviceKey.generate("es256").public_key),
            BadSignatureError,
            "bad_signature",
        ),
        (
            "wrong index",
            replace(bundle, leaf_index=1, inclusion_proof=tuple(log.inclusion_proof(1, 4))),
            RootMismatchError,
            "root_mismatch",
        ),
        (
            "proof for another tree size",
            replace(bundle, tree_size=5, inclusion_proof=tuple(bigger.inclusion_proof(2, 5))),
            BundleError,
            "wrong_tree_size",
        ),
        (
            "root rewritten",
            replace(bundle, checkpoint=replace(bundle.checkpoint, root=b"\x01" * 32)),
            RootMismatchError,
            "root_mismatch",
        ),
        (
            "metadata swapped",
            replace(bundle, metadata=_meta()),
            BundleError,
            "meta_hash_mismatch",
        ),
    ]
    for name, attacked, error, reason in attacks:
        with pytest.raises(error) as caught:
            verify_bundle_offline(attacked)
        assert caught.value.reason == reason, name
    tampered = json.loads(bundle.message)
    tampered["body"]["metrics"]["energy_wh"] += 1
    import rfc8785

    with pytest.raises(BadSignatureError):
        verify_bundle_offline(replace(bundle, message=rfc8785.dumps(tampered)))
    assert key.alg == "es256"


def test_bundle_parse_errors(fixture_bundle: Any) -> None:
    bundle, _, _ = fixture_bundle
    good = bundle.to_json()
    cases: list[tuple[Any, str]] = [
        ({**good, "format": "x"}, "not a"),
        ({**good, "version": 2}, "not a"),
        ({**good, "message": "XYZ"}, "message"),
        ({**good, "inclusion_proof": "ab"}, "inclusion_proof"),
        ({**good, "inclusion_proof": ["ab"]}, "32 bytes"),
        ({**good, "leaf_index": -1}, "leaf_index"),
        ({**good, "device": {**good["device"], "alg": "rsa"}}, "unsupported"),
        ({**good, "device": {**good["device"], "id": "A"}}, "device.id"),
        ({**good, "anchor": {**good["anchor"], "contract": "0x12"}}, "address"),
        ({**good, "anchor": {**good["anchor"], "tx_hash": "12"}}, "tx_hash"),
        ({**good, "checkpoint": {**good["checkpoint"], "root": "00"}}, "32 bytes"),
        ({k: v for k, v in good.items() if k != "anchor"}, "missing"),
        ({**good, "metadata": {"format": "x"}}, "metadata"),
    ]
    for obj, message in cases:
        with pytest.raises(BundleError, match=message):
            ProofBundle.from_json(obj)
    for data in (b"", b"[]", b"\xff"):
        with pytest.raises(BundleError):
            ProofBundle.parse(data)
