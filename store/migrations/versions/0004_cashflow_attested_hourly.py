"""attested cash flow: hourly sums of the readings in anchored epochs, per device and per asset;
a covering index for an asset's hours of cash flow

Revision ID: 0004
Revises: 0003

The backfill is written out here rather than calling ``store.cashflow``: a migration must keep
doing what it did when later code changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ENERGY = {
    "sqlite": "json_extract(r.metrics, '$.energy_wh')",
    "postgresql": "CAST(r.metrics ->> 'energy_wh' AS BIGINT)",
}
_SUMS = ("readings", "energy_wh", "revenue", "cost")
_COVERED = ("asset", "hour_ms", "readings", "energy_wh", "revenue", "cost", "active_s")


def _sum_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "cashflow_attested_hourly",
        sa.Column("device_id", sa.String(length=63), nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=63), nullable=False),
        *_sum_columns(),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.PrimaryKeyConstraint("device_id", "hour_ms"),
    )
    op.create_table(
        "cashflow_attested_asset_hourly",
        sa.Column("asset", sa.String(length=63), nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), nullable=False),
        *_sum_columns(),
        sa.ForeignKeyConstraint(["asset"], ["asset.name"]),
        sa.PrimaryKeyConstraint("asset", "hour_ms"),
    )
    with op.batch_alter_table("cashflow_hourly", schema=None) as batch_op:
        batch_op.create_index("ix_cashflow_hourly_asset_hour", list(_COVERED), unique=False)

    # Epochs anchored before these tables existed.
    energy = _ENERGY[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO cashflow_attested_hourly (device_id, hour_ms, asset, readings, energy_wh, revenue, cost)"  # noqa: S608
        f" SELECT r.device_id, r.ts_ms - r.ts_ms % 3600000, d.asset, count(*), sum({energy}),"
        " sum(r.revenue), sum(r.cost)"
        " FROM reading r JOIN device d ON d.id = r.device_id JOIN epoch e ON e.number = r.epoch"
        " WHERE e.status = 'anchored'"
        " GROUP BY r.device_id, r.ts_ms - r.ts_ms % 3600000, d.asset"
    )
    sums = ", ".join(_SUMS)
    op.execute(
        f"INSERT INTO cashflow_attested_asset_hourly (asset, hour_ms, {sums})"  # noqa: S608
        f" SELECT asset, hour_ms, {', '.join(f'sum({c})' for c in _SUMS)}"
        " FROM cashflow_attested_hourly GROUP BY asset, hour_ms"
    )


def downgrade() -> None:
    with op.batch_alter_table("cashflow_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_cashflow_hourly_asset_hour")
    op.drop_table("cashflow_attested_asset_hourly")
    op.drop_table("cashflow_attested_hourly")
