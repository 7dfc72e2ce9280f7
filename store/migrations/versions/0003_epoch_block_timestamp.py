"""epoch block timestamp: part of what the chain commits to for a checkpoint

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("epoch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("block_timestamp", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("epoch", schema=None) as batch_op:
        batch_op.drop_column("block_timestamp")
