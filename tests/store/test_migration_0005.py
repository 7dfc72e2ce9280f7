"""Migration 0005 re-files existing quarantine under the device whose topic carried each
message (the old device_id, the body's device, moves to body_device), and goes back."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from store.db import alembic_config, make_engine
from store.tables import QUARANTINE


def test_upgrade_refiles_quarantine_by_topic_and_downgrade_restores(db_url: str) -> None:
    engine = make_engine(db_url)
    config = alembic_config(engine)
    command.downgrade(config, "0004")
    rows = [
        ("assetproof/v1/devices/sol-0001/telemetry", "sol-0001"),  # its own reading
        ("assetproof/v1/devices/sol-0001/telemetry", "sol-0002"),  # topic_mismatch: 0002 is the victim
        ("assetproof/v1/devices/sol-0001/telemetry", None),  # undecodable
        ("assetproof/v1/devices/Not Valid/telemetry", None),  # not a device topic
        ("assetproof/v1/devices/sol-0001/status", None),
        ("elsewhere", None),
    ]
    with engine.begin() as conn:
        for i, (topic, device) in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO quarantine (received_ms, reason, detail, topic, device_id, seq, raw, raw_size,"
                    " raw_sha256) VALUES (:ms, 'malformed', '', :topic, :device, NULL, :raw, 1, :raw)"
                ),
                {"ms": i, "topic": topic, "device": device, "raw": bytes([i])},
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        got = conn.execute(
            select(QUARANTINE.c.device_id, QUARANTINE.c.body_device, QUARANTINE.c.chained).order_by(QUARANTINE.c.id)
        ).all()
    assert [tuple(r) for r in got] == [
        ("sol-0001", "sol-0001", False),
        ("sol-0001", "sol-0002", False),
        ("sol-0001", None, False),
        (None, None, False),
        (None, None, False),
        (None, None, False),
    ]
    # The new columns are usable at once: a chained row per (device, seq) at most.
    chained = insert(QUARANTINE).values(
        received_ms=9,
        reason="implausible",
        topic=rows[0][0],
        device_id="sol-0001",
        body_device="sol-0001",
        seq=5,
        raw=b"x",
        raw_size=1,
        raw_sha256=b"x",
        chained=True,
    )
    with engine.begin() as conn:
        conn.execute(chained)
        conn.execute(chained.values(chained=False))  # unchained rows may repeat a seq
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(chained)

    command.downgrade(config, "0004")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT device_id FROM quarantine ORDER BY id")).scalars().all()
    assert back == [device for _, device in rows] + ["sol-0001", "sol-0001"]
    command.upgrade(config, "head")
    engine.dispose()
