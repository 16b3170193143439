"""dispatch: courier accounts, service restrictions and areas, sites' contact phones, a parcel's courier point
and day, waybills and pickups that retry, tracking scans

Waybills and pickup parcels are written one per parcel, twelve million a day, so like allocation decisions
and parcels (0007) they lose their foreign keys; every id they carry was read in the same transaction, and
parcels are never deleted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

UNCHECKED = {
    "waybills": [("parcel_id", "parcels"), ("courier_id", "couriers")],
    "pickup_parcels": [("pickup_id", "pickups"), ("parcel_id", "parcels")],
}


def upgrade() -> None:
    with op.batch_alter_table("couriers") as batch:
        batch.add_column(sa.Column("max_weight_g", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("courier_points") as batch:
        batch.add_column(sa.Column("radius_km", sa.Float(), server_default="30", nullable=False))
    for table in ("workshops", "shared_warehouses"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("contact_phone", sa.String(length=20), nullable=True))

    op.create_table(
        "courier_accounts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("courier", sa.String(length=16), nullable=False),
        sa.Column("app_key", sa.String(length=128), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("base_url", sa.String(length=256), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courier_accounts")),
    )
    with op.batch_alter_table("courier_accounts") as batch:
        batch.create_index(batch.f("ix_courier_accounts_courier"), ["courier"], unique=False)

    with op.batch_alter_table("parcels") as batch:
        batch.add_column(sa.Column("packed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("courier_point_id", BigId, nullable=True))
        batch.add_column(sa.Column("ship_on", sa.Date(), nullable=True))
        batch.create_index("ix_parcels_point_ship_on", ["courier_point_id", "ship_on"], unique=False)

    for table, keys in UNCHECKED.items():
        with op.batch_alter_table(table) as batch:
            for column, referenced in keys:
                batch.drop_constraint(f"fk_{table}_{column}_{referenced}", type_="foreignkey")

    with op.batch_alter_table("waybills") as batch:
        batch.alter_column("tracking_number", existing_type=sa.String(length=64), nullable=True)
        batch.add_column(sa.Column("status", sa.String(length=16), server_default="pending", nullable=False))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("print_data", sa.Text(), nullable=True))
        batch.add_column(sa.Column("issued_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_waybills_status_next", ["status", "next_attempt_at"], unique=False)
    # a waybill written before this revision always had its number
    op.execute(
        "UPDATE waybills SET status = 'issued', issued_at = created_at WHERE tracking_number IS NOT NULL"
    )

    with op.batch_alter_table("pickups") as batch:
        batch.add_column(sa.Column("day", sa.Date(), nullable=True))
        batch.add_column(sa.Column("vans", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("total_weight_g", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=512), nullable=True))
        batch.create_unique_constraint(batch.f("uq_pickups_request_id"), ["request_id"])

    op.create_table(
        "tracking_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("courier", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("parcel_id", BigId, nullable=True),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
        sa.UniqueConstraint("courier", "event_id", name=op.f("uq_tracking_events_courier_event_id")),
    )
    with op.batch_alter_table("tracking_events") as batch:
        batch.create_index("ix_tracking_events_state_id", ["state", "id"], unique=False)
        batch.create_index(batch.f("ix_tracking_events_tracking_number"), ["tracking_number"], unique=False)


def downgrade() -> None:
    op.drop_table("tracking_events")
    with op.batch_alter_table("pickups") as batch:
        batch.drop_constraint(batch.f("uq_pickups_request_id"), type_="unique")
        for column in (
            "last_error",
            "next_attempt_at",
            "attempts",
            "request_id",
            "total_weight_g",
            "vans",
            "day",
        ):
            batch.drop_column(column)
    op.execute("DELETE FROM waybills WHERE tracking_number IS NULL")
    with op.batch_alter_table("waybills") as batch:
        batch.drop_index("ix_waybills_status_next")
        for column in ("issued_at", "print_data", "last_error", "next_attempt_at", "attempts", "status"):
            batch.drop_column(column)
        batch.alter_column("tracking_number", existing_type=sa.String(length=64), nullable=False)
    for table, keys in UNCHECKED.items():
        with op.batch_alter_table(table) as batch:
            for column, referenced in keys:
                batch.create_foreign_key(f"fk_{table}_{column}_{referenced}", referenced, [column], ["id"])
    with op.batch_alter_table("parcels") as batch:
        batch.drop_index("ix_parcels_point_ship_on")
        for column in ("ship_on", "courier_point_id", "packed_at"):
            batch.drop_column(column)
    op.drop_table("courier_accounts")
    for table in ("workshops", "shared_warehouses"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("contact_phone")
    with op.batch_alter_table("courier_points") as batch:
        batch.drop_column("radius_km")
    with op.batch_alter_table("couriers") as batch:
        batch.drop_column("max_weight_g")
