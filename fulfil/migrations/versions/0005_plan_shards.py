"""plan_shards: the independent shards of a large batch, each solved by one worker, merged into one plan

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "plan_shards",
        sa.Column("id", BigId, nullable=False),
        sa.Column("batch_id", BigId, nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("bound", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("message", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("solved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_plan_shards_batch_id_batches")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_shards")),
        sa.UniqueConstraint("batch_id", "shard", name=op.f("uq_plan_shards_batch_id_shard")),
    )
    with op.batch_alter_table("plan_shards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_shards_batch_id"), ["batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_shards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_shards_batch_id"))
    op.drop_table("plan_shards")
