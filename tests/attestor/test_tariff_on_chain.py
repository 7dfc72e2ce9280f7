"""With a chain, the attestor prices each epoch with the tariff the pricing authority published
on chain in force at the epoch window's start, and closes (so anchors) nothing it cannot price."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import Engine, select

from attestor.epochs import EpochBuilder, EpochPolicy, TariffUnavailableError
from gateway.batch import BatchProcessor
from gateway.records import Incoming
from gateway.tariff import record_tariff
from protocol.cashflow import reading_cash_flow, tariff_hash
from protocol.envelope import decode_message
from store.db import make_engine
from store.tables import Reading
from tests.support.chain import Chain
from tests.support.devices import NOW_MS, TARIFF, register


def _ingest(db_url: str, engine: Engine, count: int) -> None:
    (device,) = register(engine, 1)
    record_tariff(engine, TARIFF)
    reader = make_engine(db_url, writer=False)
    processor = BatchProcessor(engine=engine, reader=reader, tariff=TARIFF, clock_ms=lambda: NOW_MS)
    processor.process([Incoming(device.topic, device.next().raw, NOW_MS) for _ in range(count)])
    processor.close()
    reader.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_epochs_are_priced_with_the_tariff_published_for_their_window(db_url: str, anvil_chain: Chain) -> None:
    engine = make_engine(db_url)
    _ingest(db_url, engine, 6)
    builder = EpochBuilder(engine, policy=EpochPolicy(window_ms=1, max_leaves=3), tariffs=anvil_chain.attestor)
    builder.append_pending()

    # Nothing published: the epoch is not closed, and the error says what to do.
    with pytest.raises(TariffUnavailableError, match="no tariff in force on chain at its window's start"):
        builder.close_due_epoch(now_ms=NOW_MS + 10)

    # The pricing authority publishes the gateway's tariff with the bitcoin price doubled, and a
    # later one: each epoch is priced with the one in force at its window's start, not with the
    # operator's (the gateway's, in the database).
    published = dataclasses.replace(TARIFF, id="published-hk", btc_price=TARIFF.btc_price * 2)
    anvil_chain.pricing.publish_tariff(published, effective_from=0)
    reader = anvil_chain.reader()
    change = reader.block_timestamp(reader.block_number()) + 100
    later = dataclasses.replace(TARIFF, id="published-hk-2", solar_fit_per_kwh=TARIFF.solar_fit_per_kwh + 1)
    anvil_chain.pricing.publish_tariff(later, effective_from=change)

    first = builder.close_due_epoch(now_ms=change * 1000 + 1_000)  # its window starts before the change
    assert first is not None
    assert first.metadata.tariff == published
    in_force = reader.tariff_in_force(first.metadata.start_ms // 1000)
    assert in_force is not None
    assert tariff_hash(first.metadata.tariff) == in_force.tariff_hash
    second = builder.close_due_epoch(now_ms=change * 1000 + 2_000)  # its window starts after it
    assert second is not None
    assert second.metadata.start_ms == change * 1000 + 1_000
    assert second.metadata.tariff == later

    with engine.connect() as conn:
        rows = conn.execute(select(Reading.raw).where(Reading.epoch == 0)).scalars().all()
    revenue = sum(reading_cash_flow(decode_message(bytes(raw)).body, published).revenue for raw in rows)
    assert sum(t.revenue for t in first.metadata.assets.values()) == revenue
