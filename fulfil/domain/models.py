"""The belt's domain model (SQLAlchemy 2 typed mappings).

Conventions: money in integer fen (1/100 yuan) so sums are exact and fit the solvers' int64 costs;
weights in grams; capacity in minutes; timestamps are naive UTC; a courier's cut-off is local belt time.
Receiver personal data is only stored sealed (see :mod:`fulfil.pii`).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from fulfil.domain.states import BatchState, OrderState, ParcelState, WorkOrderState

# Primary keys are BIGINT on PostgreSQL (a belt makes billions of rows) and INTEGER on SQLite, where only
# INTEGER PRIMARY KEY is the auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


def _enum(enum: type[StrEnum]) -> SAEnum:
    return SAEnum(enum, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Platform(StrEnum):
    DOUDIAN = "doudian"
    KUAISHOU = "kuaishou"
    TAOBAO = "taobao"
    JD = "jd"
    PINDUODUO = "pinduoduo"
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"


class SiteKind(StrEnum):
    WORKSHOP = "workshop"
    WAREHOUSE = "warehouse"


# --- the front: merchants, shops, platform apps -------------------------------------------------------


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    town: Mapped[str] = mapped_column(String(32))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    # May an order of this merchant take another pooling merchant's stock?
    pools_stock: Mapped[bool] = mapped_column(Boolean, default=False)

    shops: Mapped[list[PlatformShop]] = relationship(back_populates="merchant")


class PlatformShop(Base):
    __tablename__ = "platform_shops"
    __table_args__ = (UniqueConstraint("platform", "shop_code"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform))
    shop_code: Mapped[str] = mapped_column(String(64))  # the platform's own shop id
    name: Mapped[str] = mapped_column(String(128))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))

    merchant: Mapped[Merchant] = relationship(back_populates="shops")


class PlatformApp(Base):
    """An app registered with a platform. The secret is stored sealed and never shown."""

    __tablename__ = "platform_apps"
    __table_args__ = (UniqueConstraint("platform", "app_key", "secret_fingerprint"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform))
    app_key: Mapped[str] = mapped_column(String(128))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # First 8 hex digits of SHA-256 of the secret: tells two rotating secrets apart without revealing either.
    secret_fingerprint: Mapped[str] = mapped_column(String(16))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)

    def __repr__(self) -> str:
        return (
            f"PlatformApp(id={self.id}, platform={self.platform}, app_key={self.app_key!r}, secret=<hidden>)"
        )


# --- what is made: styles and SKUs --------------------------------------------------------------------


class ProcessFamily(Base):
    """A family of processes that share workshop capacity (cut-and-sew, knitting, printing ...)."""

    __tablename__ = "process_families"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))


class Style(Base):
    __tablename__ = "styles"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        CheckConstraint("minutes_per_unit > 0", name="minutes_positive"),
        CheckConstraint("min_lot >= 0", name="min_lot_nonnegative"),
        CheckConstraint("changeover_fen >= 0", name="changeover_nonnegative"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    process_family_id: Mapped[int] = mapped_column(ForeignKey("process_families.id"))
    minutes_per_unit: Mapped[float] = mapped_column(Float)
    min_lot: Mapped[int] = mapped_column(Integer)
    changeover_fen: Mapped[int] = mapped_column(Integer)


class Sku(Base):
    __tablename__ = "skus"
    __table_args__ = (UniqueConstraint("style_id", "code"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str] = mapped_column(String(32))
    size: Mapped[str] = mapped_column(String(16))
    weight_g: Mapped[int] = mapped_column(Integer)


class PlatformSkuMapping(Base):
    """A platform's SKU code as a shop lists it, mapped to the merchant's SKU."""

    __tablename__ = "platform_sku_mappings"
    __table_args__ = (UniqueConstraint("shop_id", "platform_sku_code"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("platform_shops.id"))
    platform_sku_code: Mapped[str] = mapped_column(String(64))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))


# --- the back: workshops and shared warehouses --------------------------------------------------------


class Workshop(Base):
    __tablename__ = "workshops"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    town: Mapped[str] = mapped_column(String(32))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    workers: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float] = mapped_column(Float)  # 0..1, share of pieces passing inspection
    reliability: Mapped[float] = mapped_column(Float)  # 0..1, share of lots finished on the planned day
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    contact_phone: Mapped[str | None] = mapped_column(String(20))  # the dispatch desk couriers call


class WorkshopCapacity(Base):
    """The capacity calendar: minutes a workshop offers a process family on a day."""

    __tablename__ = "workshop_capacity"
    __table_args__ = (
        CheckConstraint("regular_minutes >= 0", name="regular_nonnegative"),
        CheckConstraint("overtime_minutes >= 0", name="overtime_nonnegative"),
    )
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    process_family_id: Mapped[int] = mapped_column(ForeignKey("process_families.id"), primary_key=True)
    regular_minutes: Mapped[int] = mapped_column(Integer)
    overtime_minutes: Mapped[int] = mapped_column(Integer)
    overtime_premium_fen_per_minute: Mapped[int] = mapped_column(Integer)


class Qualification(Base):
    """A workshop qualified to make a style, at its unit cost."""

    __tablename__ = "qualifications"
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), primary_key=True)
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id"), primary_key=True, index=True)
    unit_cost_fen: Mapped[int] = mapped_column(Integer)


class SharedWarehouse(Base):
    __tablename__ = "shared_warehouses"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    town: Mapped[str] = mapped_column(String(32))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    daily_handling_capacity: Mapped[int] = mapped_column(Integer)  # order lines picked and packed a day
    handling_fen_per_line: Mapped[int] = mapped_column(Integer)
    contact_phone: Mapped[str | None] = mapped_column(String(20))  # the dispatch desk couriers call


class Stock(Base):
    """An owner's stock of one SKU in one shared warehouse."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_nonnegative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    )
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("shared_warehouses.id"), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), primary_key=True, index=True)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)


# --- couriers -----------------------------------------------------------------------------------------


class Courier(Base):
    __tablename__ = "couriers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # ZTO, YTO, YUNDA, STO, JT, SF, JD, EMS
    name: Mapped[str] = mapped_column(String(64))
    # The heaviest parcel the courier takes (a service restriction); 0: no limit.
    max_weight_g: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CourierAccount(Base):
    """Our account with a courier's API (or Cainiao's, for the couriers it issues waybills for).

    The secret and the extra fields (monthly card, access token, cpCode ...) are stored sealed, never shown.
    """

    __tablename__ = "courier_accounts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # whose API: a courier's code (ZTO, SF, JD, YUNDA, YTO) or CAINIAO, which issues waybills for several
    courier: Mapped[str] = mapped_column(String(16), index=True)
    app_key: Mapped[str] = mapped_column(String(128))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    base_url: Mapped[str | None] = mapped_column(String(256))  # None: the courier's production host
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)

    def __repr__(self) -> str:
        return (
            f"CourierAccount(id={self.id}, courier={self.courier!r}, app_key={self.app_key!r},"
            " secret=<hidden>)"
        )


class CourierPoint(Base):
    """A courier's local depot (网点): it has a daily quota and vans, and a cut-off for the day's pickups."""

    __tablename__ = "courier_points"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    courier_id: Mapped[int] = mapped_column(ForeignKey("couriers.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    town: Mapped[str] = mapped_column(String(32))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    daily_quota: Mapped[int] = mapped_column(Integer)  # parcels a day
    cutoff: Mapped[dt.time] = mapped_column(Time)  # local belt time
    van_capacity: Mapped[int] = mapped_column(Integer)  # parcels a van carries
    # The point collects at sites within this distance (great circle, km): its service area.
    radius_km: Mapped[float] = mapped_column(Float, default=30.0, server_default="30")


class CourierPrice(Base):
    """A courier's price from the belt to a destination province: first kilogram, then each further one."""

    __tablename__ = "courier_prices"
    courier_id: Mapped[int] = mapped_column(ForeignKey("couriers.id"), primary_key=True)
    province: Mapped[str] = mapped_column(String(2), primary_key=True)  # GB/T 2260 two-digit code
    first_weight_g: Mapped[int] = mapped_column(Integer)
    first_fen: Mapped[int] = mapped_column(Integer)
    additional_fen_per_kg: Mapped[int] = mapped_column(Integer)


# --- orders -------------------------------------------------------------------------------------------


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("platform", "shop_id", "platform_order_id"),
        Index("ix_orders_status_paid_at", "status", "paid_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform))
    shop_id: Mapped[int] = mapped_column(ForeignKey("platform_shops.id"))
    platform_order_id: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    status: Mapped[OrderState] = mapped_column(_enum(OrderState))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    ship_by: Mapped[dt.datetime] = mapped_column(DateTime)
    presale: Mapped[bool] = mapped_column(Boolean, default=False)
    province: Mapped[str] = mapped_column(String(2))
    city: Mapped[str] = mapped_column(String(32))
    # Where the parcel finally goes (ISO 3166-1 alpha-2). Abroad, ``province`` is the export hand-over's.
    country: Mapped[str] = mapped_column(String(2), default="CN", server_default="CN")
    receiver_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    # The platform's last change applied to this row (intake): an older snapshot never overwrites a newer one.
    platform_updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    quantity: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="lines")


# --- planning -----------------------------------------------------------------------------------------


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    status: Mapped[BatchState] = mapped_column(_enum(BatchState), default=BatchState.OPEN)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime)
    window_end: Mapped[dt.datetime] = mapped_column(DateTime)
    close_reason: Mapped[str | None] = mapped_column(String(16))  # window, size, operator
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    order_count: Mapped[int] = mapped_column(Integer, default=0)


class SolverRun(Base):
    __tablename__ = "solver_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    solver: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # running, feasible, optimal, failed
    objective: Mapped[float | None] = mapped_column(Float)
    bound: Mapped[float | None] = mapped_column(Float)
    gap: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(String(512))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class PlanShard(Base):
    """One independent shard of a large batch, solved by whichever worker took it; the merge reads them all.

    ``result`` holds the shard's plan as the solver returned it (an ``.npz`` of its arrays), so a shard solved
    once is never solved again, and a worker that dies loses only its own shard.
    """

    __tablename__ = "plan_shards"
    __table_args__ = (UniqueConstraint("batch_id", "shard"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    shard: Mapped[int] = mapped_column(Integer)  # 0-based, of ``shards``
    shards: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending, solved, failed
    seed: Mapped[int] = mapped_column(BigInteger)
    objective: Mapped[float | None] = mapped_column(Float)
    bound: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    result: Mapped[bytes | None] = mapped_column(LargeBinary)
    message: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    solved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class WorkOrder(Base):
    """A lot of one style for one workshop on one day; surplus above the orders goes to the owner's stock."""

    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_work_orders_workshop_day", "workshop_id", "day"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id"))
    process_family_id: Mapped[int] = mapped_column(ForeignKey("process_families.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    regular_minutes: Mapped[float] = mapped_column(Float)
    overtime_minutes: Mapped[float] = mapped_column(Float)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime)
    status: Mapped[WorkOrderState] = mapped_column(_enum(WorkOrderState), default=WorkOrderState.PLANNED)
    quantity_done: Mapped[int] = mapped_column(Integer, default=0)
    defects: Mapped[int] = mapped_column(Integer, default=0)


class AllocationDecision(Base):
    """Where one order line (or part of it) comes from, and what that costs.

    Its ids reference other tables without foreign keys: a plan writes a million of these, and checking each
    key of each row costs PostgreSQL a query apiece (migration 0007 says why the references hold anyway)."""

    __tablename__ = "allocation_decisions"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "(source = 'workshop' AND workshop_id IS NOT NULL AND warehouse_id IS NULL)"
            " OR (source = 'warehouse' AND warehouse_id IS NOT NULL AND workshop_id IS NULL)",
            name="one_source",
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    solver_run_id: Mapped[int] = mapped_column(BigId, index=True)  # solver_runs.id
    order_line_id: Mapped[int] = mapped_column(BigId, index=True)  # order_lines.id
    source: Mapped[SiteKind] = mapped_column(_enum(SiteKind))
    workshop_id: Mapped[int | None] = mapped_column(BigId)  # workshops.id
    warehouse_id: Mapped[int | None] = mapped_column(BigId)  # shared_warehouses.id
    stock_owner_id: Mapped[int | None] = mapped_column(BigId)  # merchants.id
    work_order_id: Mapped[int | None] = mapped_column(BigId, index=True)  # work_orders.id
    day: Mapped[dt.date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    goods_fen: Mapped[int] = mapped_column(Integer)  # unit cost, or handling for stock
    overtime_fen: Mapped[int] = mapped_column(Integer)
    shipping_fen: Mapped[int] = mapped_column(Integer)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(256))


# --- dispatch -----------------------------------------------------------------------------------------


class Parcel(Base):
    """What one order ships from one site: a split order makes several parcels.

    Like :class:`AllocationDecision`, written in bulk by a plan, without foreign keys (migration 0007)."""

    __tablename__ = "parcels"
    __table_args__ = (
        CheckConstraint(
            "(site_kind = 'workshop' AND workshop_id IS NOT NULL AND warehouse_id IS NULL)"
            " OR (site_kind = 'warehouse' AND warehouse_id IS NOT NULL AND workshop_id IS NULL)",
            name="one_site",
        ),
        Index("ix_parcels_point_ship_on", "courier_point_id", "ship_on"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)  # orders.id
    batch_id: Mapped[int] = mapped_column(BigId, index=True)  # batches.id
    site_kind: Mapped[SiteKind] = mapped_column(_enum(SiteKind))
    workshop_id: Mapped[int | None] = mapped_column(BigId)  # workshops.id
    warehouse_id: Mapped[int | None] = mapped_column(BigId)  # shared_warehouses.id
    status: Mapped[ParcelState] = mapped_column(_enum(ParcelState), default=ParcelState.PLANNED)
    weight_g: Mapped[int] = mapped_column(Integer)
    ready_on: Mapped[dt.date] = mapped_column(Date)
    courier_id: Mapped[int | None] = mapped_column(BigId)  # couriers.id: the plan's, then dispatch's choice
    shipping_fen: Mapped[int | None] = mapped_column(Integer)
    packed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # when it was ready to collect
    # Dispatch: the courier point that collects it, on which day (its quota is counted per day).
    courier_point_id: Mapped[int | None] = mapped_column(BigId)  # courier_points.id
    ship_on: Mapped[dt.date | None] = mapped_column(Date)


class Waybill(Base):
    """An electronic waybill (电子面单): asked for when a parcel gets its courier, then the tracking number
    the courier gave it. One per parcel; written in bulk, so without foreign keys (migration 0008)."""

    __tablename__ = "waybills"
    __table_args__ = (
        UniqueConstraint("courier_id", "tracking_number"),
        Index("ix_waybills_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    parcel_id: Mapped[int] = mapped_column(BigId, unique=True)  # parcels.id
    courier_id: Mapped[int] = mapped_column(BigId)  # couriers.id
    tracking_number: Mapped[str | None] = mapped_column(String(64))  # None until the courier answers
    request_id: Mapped[str] = mapped_column(String(64), unique=True)  # makes a retried request idempotent
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(512))
    print_data: Mapped[str | None] = mapped_column(Text)  # Cainiao's data for cloud printing
    issued_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Pickup(Base):
    """A booked collection (揽收) at one site by one courier point, in a window before the cut-off."""

    __tablename__ = "pickups"
    __table_args__ = (
        CheckConstraint(
            "(site_kind = 'workshop' AND workshop_id IS NOT NULL AND warehouse_id IS NULL)"
            " OR (site_kind = 'warehouse' AND warehouse_id IS NOT NULL AND workshop_id IS NULL)",
            name="one_site",
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    courier_point_id: Mapped[int] = mapped_column(ForeignKey("courier_points.id"), index=True)
    site_kind: Mapped[SiteKind] = mapped_column(_enum(SiteKind))
    workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"))
    warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("shared_warehouses.id"))
    window_start: Mapped[dt.datetime] = mapped_column(DateTime)
    window_end: Mapped[dt.datetime] = mapped_column(DateTime)
    parcel_count: Mapped[int] = mapped_column(Integer)
    # requested, booked (the courier confirmed), standing (the point's regular round: no booking by API),
    # collected, failed
    status: Mapped[str] = mapped_column(String(16), default="requested")
    booking_ref: Mapped[str | None] = mapped_column(String(64))
    day: Mapped[dt.date | None] = mapped_column(Date)
    vans: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    total_weight_g: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(512))


class PickupParcel(Base):
    """Which parcels a pickup collects: one row per parcel, written in bulk (no foreign keys, see 0008)."""

    __tablename__ = "pickup_parcels"
    pickup_id: Mapped[int] = mapped_column(BigId, primary_key=True)  # pickups.id
    parcel_id: Mapped[int] = mapped_column(BigId, primary_key=True, unique=True)  # parcels.id


class TrackingEvent(Base):
    """A courier's tracking scan, stored once (keyed by courier and event id) before the push is answered."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("courier", "event_id"),
        Index("ix_tracking_events_state_id", "state", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    courier: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    tracking_number: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # integrations.couriers.base.TrackingStatus
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    description: Mapped[str] = mapped_column(String(256), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(
        String(16), default="received"
    )  # received, applied, ignored, exception
    parcel_id: Mapped[int | None] = mapped_column(BigId)  # parcels.id, once matched
    reason: Mapped[str | None] = mapped_column(String(512))


# --- infrastructure -----------------------------------------------------------------------------------


class OutboxJob(Base):
    """A job written in the same transaction as the data it acts on, enqueued to rq after the commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "enqueued_at", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(64))  # a name in fulfil.jobs.tasks.REGISTRY
    args: Mapped[list[Any]] = mapped_column(JSON)  # ids only
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ExceptionItem(Base):
    """Something that could not be processed, kept whole with its reason for an operator."""

    __tablename__ = "exceptions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # e.g. unknown_sku, unfillable, bad_address
    subject: Mapped[str] = mapped_column(String(64))  # "order 123", "inbox 9", ...
    reason: Mapped[str] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, resolved, dismissed
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, server_default=func.now())


# --- intake: the inbox of platform messages, pull cursors, ship confirmations ---------------------------


class InboxStatus(StrEnum):
    RECEIVED = "received"  # stored and acknowledged; normalisation pending
    NORMALISED = "normalised"  # became (or updated) exactly one order
    IGNORED = "ignored"  # understood and nothing to do (a heartbeat, an event for a state already reached)
    EXCEPTION = "exception"  # kept whole with its reason in the exceptions queue


class InboxMessage(Base):
    """A platform message, stored once (keyed by platform and its message id) before the push is answered."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("platform", "message_id"),
        Index("ix_inbox_status_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform))
    message_id: Mapped[str] = mapped_column(String(128))
    app_key: Mapped[str | None] = mapped_column(String(128))  # which registered app it came through
    topic: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(20))  # integrations.base.PushEvent, or "pulled"
    shop_code: Mapped[str | None] = mapped_column(String(64))
    platform_order_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[InboxStatus] = mapped_column(_enum(InboxStatus), default=InboxStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    reason: Mapped[str | None] = mapped_column(String(512))


class IntakeCursor(Base):
    """Where the pull of one platform shop resumes: orders changed before ``position`` have been pulled."""

    __tablename__ = "intake_cursors"
    __table_args__ = (UniqueConstraint("platform", "shop_code"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform))
    shop_code: Mapped[str] = mapped_column(String(64))
    position: Mapped[dt.datetime] = mapped_column(DateTime)
    page_cursor: Mapped[str | None] = mapped_column(String(256))  # inside the window being pulled
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class ShipConfirmation(Base):
    """A tracking number to write back to the order's platform once the parcel is picked up."""

    __tablename__ = "ship_confirmations"
    __table_args__ = (Index("ix_ship_confirmations_status_next", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id"), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform))
    courier_code: Mapped[str] = mapped_column(String(16))
    tracking_number: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), unique=True)  # the platform sees retries as one
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    last_error: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Belt(Base):
    """What the generator made in this database: one row per generated belt, so a rerun can say so clearly."""

    __tablename__ = "belts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[dt.date] = mapped_column(Date)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


# --- explanations of a plan (issue 4): per solver run, written once after the plan ------------------------


class RunExplanation(Base):
    """That a solver run's plan was explained, and the figures of the LP behind its shadow prices."""

    __tablename__ = "run_explanations"
    solver_run_id: Mapped[int] = mapped_column(ForeignKey("solver_runs.id"), primary_key=True)
    lp_objective: Mapped[float | None] = mapped_column(Float)  # the fixed-lot LP's optimum, fen
    lp_message: Mapped[str | None] = mapped_column(String(512))  # why there are no shadow prices
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class ShadowPrice(Base):
    """Fen one more minute of a workshop's process family on a day would save (>= 0); zeros are not stored."""

    __tablename__ = "shadow_prices"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    solver_run_id: Mapped[int] = mapped_column(ForeignKey("solver_runs.id"), index=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    process_family_id: Mapped[int] = mapped_column(ForeignKey("process_families.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    regular_fen_per_minute: Mapped[float] = mapped_column(Float)
    overtime_fen_per_minute: Mapped[float] = mapped_column(Float)


class DecisionExplanation(Base):
    """An allocation decision's share of the plan's cost, by part, and the cheapest other way to serve it."""

    __tablename__ = "decision_explanations"
    # the explanation goes with its decision (a cancelled order's decisions are deleted)
    decision_id: Mapped[int] = mapped_column(
        ForeignKey("allocation_decisions.id", ondelete="CASCADE"), primary_key=True
    )
    solver_run_id: Mapped[int] = mapped_column(ForeignKey("solver_runs.id"), index=True)
    unit_fen: Mapped[int] = mapped_column(BigInteger)
    surplus_fen: Mapped[int] = mapped_column(BigInteger)
    overtime_fen: Mapped[int] = mapped_column(BigInteger)
    changeover_fen: Mapped[int] = mapped_column(BigInteger)
    handling_fen: Mapped[int] = mapped_column(BigInteger)
    shipping_fen: Mapped[int] = mapped_column(BigInteger)
    late_fen: Mapped[int] = mapped_column(BigInteger)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    runner_kind: Mapped[SiteKind | None] = mapped_column(_enum(SiteKind))  # NULL: no other way
    runner_workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"))
    runner_warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("shared_warehouses.id"))
    runner_stock_owner_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    runner_day: Mapped[dt.date | None] = mapped_column(Date)
    runner_new_lot: Mapped[bool] = mapped_column(Boolean, default=False)
    runner_extra_fen_per_piece: Mapped[float | None] = mapped_column(Float)


class OrderBinding(Base):
    """A late or unfilled order of a solver run's plan, with the constraint that kept it from ship-by."""

    __tablename__ = "order_bindings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    solver_run_id: Mapped[int] = mapped_column(ForeignKey("solver_runs.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # late, unfilled
    pieces: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(32))  # solvers.allocation.explain.Binding, lower case
    reason: Mapped[str] = mapped_column(String(512))


__all__ = [
    "AllocationDecision",
    "Base",
    "Batch",
    "Belt",
    "Courier",
    "CourierAccount",
    "CourierPoint",
    "CourierPrice",
    "DecisionExplanation",
    "ExceptionItem",
    "InboxMessage",
    "InboxStatus",
    "IntakeCursor",
    "Merchant",
    "Order",
    "OrderBinding",
    "OrderLine",
    "OutboxJob",
    "Parcel",
    "Pickup",
    "PickupParcel",
    "PlanShard",
    "Platform",
    "PlatformApp",
    "PlatformShop",
    "PlatformSkuMapping",
    "ProcessFamily",
    "Qualification",
    "RunExplanation",
    "ShadowPrice",
    "SharedWarehouse",
    "ShipConfirmation",
    "SiteKind",
    "Sku",
    "Stock",
    "Style",
    "TrackingEvent",
    "Waybill",
    "WorkOrder",
]
