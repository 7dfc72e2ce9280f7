"""Anchoring epochs on anvil and on eth-tester, including every crash point."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from attestor.anchoring import Anchorer, ReconcileError
from attestor.epochs import EpochBuilder, EpochPolicy, metadata_of
from chain.errors import ContractRevert
from protocol.merkle.hashing import leaf_hash
from protocol.merkle.log import tree_root
from store.db import make_engine
from store.tables import Epoch
from tests.attestor.test_epochs import _ingest
from tests.support.chain import Chain
from tests.support.devices import NOW_MS, register


def _epochs(db_url: str, engine: Engine, count: int) -> EpochBuilder:
    (dev,) = register(engine)
    builder = EpochBuilder(engine, policy=EpochPolicy(window_ms=1_000, max_leaves=1_000))
    for n in range(count):
        _ingest(db_url, engine, [(dev.topic, dev.next().raw) for _ in range(n + 2)])
        builder.append_pending()
        assert builder.close_due_epoch(now_ms=NOW_MS + (n + 1) * 10_000) is not None
    return builder


def _status(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(r.number, r.status) for r in conn.execute(select(Epoch.number, Epoch.status).order_by(Epoch.number))]


def test_anchors_in_order_with_consistency_proofs(db_url: str, chain: Chain) -> None:
    engine = make_engine(db_url)
    builder = _epochs(db_url, engine, 3)
    anchorer = Anchorer(engine, chain.attestor)
    done = [anchorer.anchor_next() for _ in range(3)]
    assert [a.epoch for a in done if a] == [0, 1, 2]
    assert anchorer.anchor_next() is None
    assert _status(engine) == [(0, "anchored"), (1, "anchored"), (2, "anchored")]
    log = builder.log()
    for number, size in ((0, 2), (1, 5), (2, 9)):
        onchain = chain.reader().checkpoint(number)
        assert (onchain.tree_size, onchain.root) == (size, log.root(size))
    with engine.connect() as conn:
        rows = conn.execute(select(Epoch).order_by(Epoch.number)).all()
    assert all(r.tx_hash and r.block_number and r.gas_used for r in rows)
    engine.dispose()


def test_crash_after_send_before_receipt(db_url: str, chain: Chain) -> None:
    engine = make_engine(db_url)
    builder = _epochs(db_url, engine, 1)
    with engine.connect() as conn:
        row = conn.execute(select(Epoch)).one()
    tx = chain.attestor.send_anchor(
        epoch=0,
        tree_size=row.leaves_to,
        root=row.root,
        meta_hash=row.meta_hash,
        assets_root=metadata_of(row).assets_root,
        proof=builder.log().consistency_proof(0, 2),
    )
    with engine.begin() as conn:  # what the attestor had committed when it was killed
        conn.execute(update(Epoch).values(status="sent", tx_hash=tx))
    anchored = Anchorer(engine, chain.attestor).anchor_next()
    assert anchored is not None
    assert anchored.tx_hash == tx
    assert chain.reader().epoch_count() == 1  # not sent twice
    assert _status(engine) == [(0, "anchored")]
    engine.dispose()


def test_crash_after_receipt_before_database_update(db_url: str, chain: Chain) -> None:
    engine = make_engine(db_url)
    builder = _epochs(db_url, engine, 2)
    with engine.connect() as conn:
        rows = conn.execute(select(Epoch).order_by(Epoch.number)).all()
    anchorer = Anchorer(engine, chain.attestor)
    anchorer.anchor_next()
    chain.attestor.anchor(  # mined, but the attestor died before writing it down
        epoch=1,
        tree_size=rows[1].leaves_to,
        root=rows[1].root,
        meta_hash=rows[1].meta_hash,
        assets_root=metadata_of(rows[1]).assets_root,
        proof=builder.log().consistency_proof(rows[0].leaves_to, rows[1].leaves_to),
    )
    recovered = anchorer.anchor_next()
    assert recovered is not None
    assert recovered.recovered
    assert chain.reader().epoch_count() == 2
    assert _status(engine) == [(0, "anchored"), (1, "anchored")]
    engine.dispose()


def test_lost_transaction_is_sent_again(db_url: str, chain: Chain) -> None:
    engine = make_engine(db_url)
    _epochs(db_url, engine, 1)
    with engine.begin() as conn:
        conn.execute(update(Epoch).values(status="sent", tx_hash=b"\x42" * 32))  # never reached the node
    anchored = Anchorer(engine, chain.attestor, receipt_timeout_s=0.3).anchor_next()
    assert anchored is not None
    assert anchored.tx_hash != b"\x42" * 32
    assert chain.reader().epoch_count() == 1
    engine.dispose()


def test_rewritten_history_is_refused_by_the_contract(db_url: str, chain: Chain) -> None:
    engine = make_engine(db_url)
    _epochs(db_url, engine, 2)
    anchorer = Anchorer(engine, chain.attestor)
    anchorer.anchor_next()
    forged = tree_root([leaf_hash(b"forged %d" % i) for i in range(5)])
    with engine.begin() as conn:  # an operator rewrites epoch 1 to a root that does not extend epoch 0
        conn.execute(update(Epoch).where(Epoch.number == 1).values(root=forged))
    with pytest.raises(ContractRevert) as caught:
        anchorer.anchor_next()
    assert caught.value.name == "InconsistentProof"
    assert chain.reader().epoch_count() == 1
    engine.dispose()


def test_a_different_checkpoint_on_chain_stops_the_attestor(db_url: str, chain: Chain) -> None:
    engine = make_engine(db_url)
    _epochs(db_url, engine, 1)
    anchorer = Anchorer(engine, chain.attestor)
    anchorer.anchor_next()
    with engine.begin() as conn:  # the database now claims another root for an anchored epoch
        conn.execute(update(Epoch).values(status="closed", root=b"\x01" * 32))
    with pytest.raises(ReconcileError, match="epoch 0 on chain"):
        anchorer.anchor_next()
    engine.dispose()
