"""explanations: per solver run, the shadow prices, each decision's cost breakdown and runner-up, and the
constraint that kept each late or unfilled order from its ship-by

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "run_explanations",
        sa.Column("solver_run_id", BigId, nullable=False),
        sa.Column("lp_objective", sa.Float(), nullable=True),
        sa.Column("lp_message", sa.String(length=512), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["solver_run_id"], ["solver_runs.id"], name=op.f("fk_run_explanations_solver_run_id_solver_runs")
        ),
        sa.PrimaryKeyConstraint("solver_run_id", name=op.f("pk_run_explanations")),
    )
    op.create_table(
        "shadow_prices",
        sa.Column("id", BigId, nullable=False),
        sa.Column("solver_run_id", BigId, nullable=False),
        sa.Column("workshop_id", BigId, nullable=False),
        sa.Column("process_family_id", BigId, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("regular_fen_per_minute", sa.Float(), nullable=False),
        sa.Column("overtime_fen_per_minute", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["process_family_id"],
            ["process_families.id"],
            name=op.f("fk_shadow_prices_process_family_id_process_families"),
        ),
        sa.ForeignKeyConstraint(
            ["solver_run_id"], ["solver_runs.id"], name=op.f("fk_shadow_prices_solver_run_id_solver_runs")
        ),
        sa.ForeignKeyConstraint(
            ["workshop_id"], ["workshops.id"], name=op.f("fk_shadow_prices_workshop_id_workshops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_prices")),
    )
    with op.batch_alter_table("shadow_prices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shadow_prices_solver_run_id"), ["solver_run_id"], unique=False)

    op.create_table(
        "decision_explanations",
        sa.Column("decision_id", BigId, nullable=False),
        sa.Column("solver_run_id", BigId, nullable=False),
        sa.Column("unit_fen", sa.BigInteger(), nullable=False),
        sa.Column("surplus_fen", sa.BigInteger(), nullable=False),
        sa.Column("overtime_fen", sa.BigInteger(), nullable=False),
        sa.Column("changeover_fen", sa.BigInteger(), nullable=False),
        sa.Column("handling_fen", sa.BigInteger(), nullable=False),
        sa.Column("shipping_fen", sa.BigInteger(), nullable=False),
        sa.Column("late_fen", sa.BigInteger(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column(
            "runner_kind",
            sa.Enum("workshop", "warehouse", name="sitekind", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("runner_workshop_id", BigId, nullable=True),
        sa.Column("runner_warehouse_id", BigId, nullable=True),
        sa.Column("runner_stock_owner_id", BigId, nullable=True),
        sa.Column("runner_day", sa.Date(), nullable=True),
        sa.Column("runner_new_lot", sa.Boolean(), nullable=False),
        sa.Column("runner_extra_fen_per_piece", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["allocation_decisions.id"],
            name=op.f("fk_decision_explanations_decision_id_allocation_decisions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["runner_stock_owner_id"],
            ["merchants.id"],
            name=op.f("fk_decision_explanations_runner_stock_owner_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["runner_warehouse_id"],
            ["shared_warehouses.id"],
            name=op.f("fk_decision_explanations_runner_warehouse_id_shared_warehouses"),
        ),
        sa.ForeignKeyConstraint(
            ["runner_workshop_id"],
            ["workshops.id"],
            name=op.f("fk_decision_explanations_runner_workshop_id_workshops"),
        ),
        sa.ForeignKeyConstraint(
            ["solver_run_id"],
            ["solver_runs.id"],
            name=op.f("fk_decision_explanations_solver_run_id_solver_runs"),
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_explanations")),
    )
    with op.batch_alter_table("decision_explanations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decision_explanations_solver_run_id"), ["solver_run_id"], unique=False
        )

    op.create_table(
        "order_bindings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("solver_run_id", BigId, nullable=False),
        sa.Column("order_id", BigId, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pieces", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_bindings_order_id_orders")),
        sa.ForeignKeyConstraint(
            ["solver_run_id"], ["solver_runs.id"], name=op.f("fk_order_bindings_solver_run_id_solver_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_bindings")),
    )
    with op.batch_alter_table("order_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_bindings_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_bindings_solver_run_id"), ["solver_run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_bindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_bindings_solver_run_id"))
        batch_op.drop_index(batch_op.f("ix_order_bindings_order_id"))
    op.drop_table("order_bindings")
    with op.batch_alter_table("decision_explanations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_explanations_solver_run_id"))
    op.drop_table("decision_explanations")
    with op.batch_alter_table("shadow_prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shadow_prices_solver_run_id"))
    op.drop_table("shadow_prices")
    op.drop_table("run_explanations")
