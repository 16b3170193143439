"""orders.country: where a parcel finally goes (cross-border stores ship abroad)

ISO 3166-1 alpha-2, 'CN' for every order so far. A cross-border order keeps the province of the belt's export
hand-over in ``province`` (its domestic leg) and its destination country here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), server_default="CN", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("country")
