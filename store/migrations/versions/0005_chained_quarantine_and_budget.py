"""chained rejections, quarantine attribution and the quarantine budget

Revision ID: 0005
Revises: 0004

- ``quarantine.device_id`` now names the device whose TOPIC carried the message (the broker
  login that published it); ``body_device`` keeps the device named in the body. Old rows are
  rewritten accordingly: their ``device_id`` was the body's device.
- ``quarantine.chained``: the message was signed by the device's current key and linked to its
  chain head, so it advanced the chain although its content was rejected. At most one chained
  row per (device, seq): a partial unique index.
- ``device_state.rejected`` counts chained rejections; ``device_state.resync_pending`` is set by
  ``assetproof devices resync`` until the device's new chain starts; ``device_key.new_chain``
  records that a key was issued to start a new chain (a resynchronisation).
- ``quarantine_window`` (per publishing device and budget window: what quarantine stored) and
  ``quarantine_dropped`` (per publishing device and reason: what the budget counted but did not
  store). ``device_id`` is ``''`` there for messages from a topic that names no device.

Written out here rather than from ``store.tables``: a migration must keep doing what it did.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PREFIX = "assetproof/v1/devices/"
_SUFFIX = "/telemetry"
_DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def upgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_device", sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column("chained", sa.Boolean(), nullable=False, server_default=sa.false()))
    # The old device_id was the body's device; the publisher is the device the topic names (a
    # valid device id there, as the gateway's topic check has it; NULL otherwise).
    op.execute("UPDATE quarantine SET body_device = device_id")
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, topic FROM quarantine WHERE topic LIKE '{_PREFIX}%'")).all()  # noqa: S608
    publishers = [
        {"b_id": row_id, "b_device": device}
        for row_id, topic in rows
        if topic.endswith(_SUFFIX) and _DEVICE_ID.fullmatch(device := topic[len(_PREFIX) : -len(_SUFFIX)])
    ]
    op.execute("UPDATE quarantine SET device_id = NULL")
    if publishers:
        bind.execute(sa.text("UPDATE quarantine SET device_id = :b_device WHERE id = :b_id"), publishers)
    op.create_index(
        "ix_quarantine_chained_link",
        "quarantine",
        ["device_id", "seq"],
        unique=True,
        sqlite_where=sa.text("chained"),
        postgresql_where=sa.text("chained"),
    )
    with op.batch_alter_table("device_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejected", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("resync_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("device_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_chain", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "quarantine_window",
        sa.Column("device_id", sa.String(length=63), nullable=False),
        sa.Column("window_ms", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "window_ms"),
    )
    op.create_table(
        "quarantine_dropped",
        sa.Column("device_id", sa.String(length=63), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "reason"),
    )


def downgrade() -> None:
    op.drop_table("quarantine_dropped")
    op.drop_table("quarantine_window")
    with op.batch_alter_table("device_key", schema=None) as batch_op:
        batch_op.drop_column("new_chain")
    with op.batch_alter_table("device_state", schema=None) as batch_op:
        batch_op.drop_column("resync_pending")
        batch_op.drop_column("rejected")
    op.drop_index("ix_quarantine_chained_link", table_name="quarantine")
    # Back to the old attribution: the body's device where it decoded.
    op.execute("UPDATE quarantine SET device_id = body_device")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_column("chained")
        batch_op.drop_column("body_device")
