"""TariffRegistry on anvil and eth-tester: the pricing authority publishes canonical tariffs with
the time they take effect; nobody reprices the past; readers get every price from the chain."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from chain.devchain import mine, set_next_block_timestamp
from chain.errors import InvalidTariffError
from chain.tariff_reader import parse_published_tariff
from protocol.cashflow import tariff_bytes, tariff_hash
from protocol.envelope import canonical_json
from tests.support.chain import Chain, reverts, sample_tariff


def now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def test_tariff_hash_is_sha256_of_the_canonical_json() -> None:
    tariff = sample_tariff()
    raw = tariff_bytes(tariff)
    assert raw == canonical_json(tariff.to_json())
    assert raw.startswith(b'{"btc_difficulty":')  # sorted keys
    assert b" " not in raw
    assert tariff_hash(tariff) == hashlib.sha256(raw).digest()
    # Exact bytes and hash: what is on chain must stay verifiable by later versions.
    assert raw == (
        b'{"btc_difficulty":90000000000000,"btc_fees_sats":20000000,"btc_price":50000000,'
        b'"btc_subsidy_sats":312500000,"charger_price_per_kwh":450,"charger_session_fee":500,"currency":"HKD",'
        b'"grid_price_per_kwh":150,"id":"hk-2026","miner_power_price_per_kwh":120,"pool_fee_bps":200,'
        b'"solar_fit_per_kwh":300}'
    )
    assert tariff_hash(tariff).hex() == "d3cac4b2e3397bc45536e6796ba9f93e3aa719412f7d4fee999d1287dd00f182"
    assert tariff_hash(replace(tariff, btc_price=tariff.btc_price + 1)) != tariff_hash(tariff)


def test_publish_and_read_every_tariff_back(chain: Chain) -> None:
    pricing, reader, w3 = chain.pricing, chain.reader(), chain.w3
    t = now(chain) + 100
    first, second, third = (sample_tariff(f"hk-{n}", btc_price=50_000_000 + n) for n in range(3))
    assert reader.tariff_in_force(t) is None
    assert reader.published_tariffs() == []
    # The first may take effect in the past: it covers the history before the deployment.
    set_next_block_timestamp(w3, t)
    r0 = pricing.publish_tariff(first, effective_from=t - 86_400)
    set_next_block_timestamp(w3, t + 10)
    pricing.publish_tariff(second, effective_from=t + 10)  # from its own block on
    set_next_block_timestamp(w3, t + 20)
    r2 = pricing.publish_tariff(third, effective_from=t + 3_600)  # announced an hour ahead
    published = reader.published_tariffs()
    assert [(p.index, p.tariff, p.effective_from) for p in published] == [
        (0, first, t - 86_400),
        (1, second, t + 10),
        (2, third, t + 3_600),
    ]
    assert [p.tariff_hash for p in published] == [tariff_hash(x) for x in (first, second, third)]
    assert (published[0].block_number, published[0].timestamp) == (r0.block_number, t)
    assert (published[2].block_number, published[2].timestamp, published[2].problem) == (r2.block_number, t + 20, None)
    assert reader.tariff_count() == 3
    assert reader.tariff_at(1) == published[1]
    # In force: the last whose effective time is at or before the time asked.
    for time_s, index in (
        (t - 86_401, None),
        (t - 86_400, 0),
        (t + 9, 0),
        (t + 10, 1),
        (t + 3_599, 1),
        (t + 3_600, 2),
        (2**64 - 1, 2),
    ):
        found = reader.tariff_in_force(time_s)
        assert (found.index if found else None) == index, time_s
        if found is not None:
            assert found == published[index]
    # A window of blocks.
    assert reader.published_tariffs(from_block=r2.block_number) == published[2:]
    assert reader.published_tariffs(to_block=r0.block_number) == published[:1]
    with reverts("TariffIndexOutOfRange", index=3, count=3):
        reader.tariff_at(3)


def test_nobody_reprices_the_past(chain: Chain) -> None:
    pricing, w3 = chain.pricing, chain.w3
    t = now(chain) + 100
    set_next_block_timestamp(w3, t)
    pricing.publish_tariff(sample_tariff("a"), effective_from=t + 1_000)
    set_next_block_timestamp(w3, t + 50)
    mine(w3)
    # Before its block (a call is judged at the latest or next block: far enough back for both).
    with reverts("RetroactiveTariff", effectiveFrom=t + 10):
        pricing.publish_tariff(sample_tariff("b"), effective_from=t + 10)
    # Not after the previous one's effective time.
    for effective_from in (t + 1_000, t + 999):
        with reverts("NotAfterPrevious", previous=t + 1_000, effectiveFrom=effective_from):
            pricing.publish_tariff(sample_tariff("b"), effective_from=effective_from)
    pricing.publish_tariff(sample_tariff("b"), effective_from=t + 1_001)


def test_only_the_pricing_authority_publishes(chain: Chain) -> None:
    for client in (chain.attestor, chain.registrar, chain.governor, chain.stranger):
        with reverts("NotPricingAuthority", caller=client.address):
            client.publish_tariff(sample_tariff(), effective_from=0)
    with reverts("EmptyTariff"):
        chain.pricing.transact("TariffRegistry", "publish", b"", 0)
    assert chain.reader().tariff_count() == 0


def test_bytes_that_are_not_a_canonical_tariff_are_flagged(chain: Chain) -> None:
    """The contract keeps a hash of whatever bytes it is given; the reader refuses to price with
    anything but the canonical encoding of a valid tariff, and says why."""
    tariff = sample_tariff()
    canonical = tariff_bytes(tariff)
    spaced = canonical.replace(b",", b", ")
    float_price = canonical.replace(b'"btc_price":50000000', b'"btc_price":5e7')
    missing = canonical.replace(b',"pool_fee_bps":200', b"")
    later = now(chain) + 1_000  # after the first, each must take effect in the future
    for n, raw in enumerate((spaced, b"not json", float_price, missing)):
        chain.pricing.transact("TariffRegistry", "publish", raw, later + n)
    chain.pricing.publish_tariff(tariff, effective_from=later + 10)
    published = chain.reader().published_tariffs()
    assert [p.raw for p in published] == [spaced, b"not json", float_price, missing, canonical]
    assert [p.tariff_hash for p in published] == [hashlib.sha256(p.raw).digest() for p in published]
    for bad in published[:4]:
        assert bad.parsed is None
        assert bad.problem is not None
        with pytest.raises(InvalidTariffError, match=f"tariff {bad.index} published on chain is unusable"):
            _ = bad.tariff
    assert "canonical" in (published[0].problem or "")
    assert "not a tariff" in (published[1].problem or "")
    assert published[4].tariff == tariff
    assert parse_published_tariff(canonical) == (tariff, None)
