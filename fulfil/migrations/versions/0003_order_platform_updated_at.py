"""orders.platform_updated_at (intake convergence); exceptions.kind up to 64 characters

orders.platform_updated_at: the platform's last change applied to an order, so an older snapshot never
overwrites a newer one. exceptions.kind grows from 32 to 64 characters for kinds such as
cancelled_after_production_started.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform_updated_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=32), type_=sa.String(length=64), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=64), type_=sa.String(length=32), existing_nullable=False
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("platform_updated_at")
