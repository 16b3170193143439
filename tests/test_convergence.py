"""Convergence: canonical orders applied out of order end in the platform's true state; cancellations free
what the plan held, before production, and turn goods into the owner's stock after it started."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from fulfil import db
from fulfil.domain.models import (
    AllocationDecision,
    ExceptionItem,
    InboxStatus,
    Order,
    OrderLine,
    Parcel,
    Sku,
    Stock,
    Style,
    WorkOrder,
)
from fulfil.domain.states import (
    ORDER,
    PARCEL,
    WORK_ORDER,
    OrderEvent,
    OrderState,
    ParcelEvent,
    ParcelState,
    WorkOrderEvent,
    WorkOrderState,
)
from fulfil.intake.address import parse_address
from fulfil.intake.convergence import Incoming, Outcome, converge
from fulfil.pii import Sealer
from fulfil.planning import jobs
from integrations.base import Address, CanonicalOrder, OrderStatus
from integrations.base import OrderLine as CanonicalLine
from tests.conftest import Backend
from tests.test_planning import Belt, add_batch, cascade, first_batch, paid, seed_belt

# the plans these tests converge are the rule cascade's, checked by hand in test_planning.py
__all__ = ["cascade"]

T0 = dt.datetime(2026, 11, 23, 12, 0)
CANTON = Address("张三", "13800001234", "广东省", "广州市", "天河区", "体育西路1号")
SHANGHAI = Address("张三", "13800001234", "上海市", "上海市", "浦东新区", "世纪大道100号")


@pytest.fixture(autouse=True)
def _leave_the_database_empty(clean: Backend) -> Iterator[None]:
    """Leave nothing behind: the demo's test refuses a database that holds shops but no orders."""
    yield
    clean.truncate()


def snapshot(
    number: str,
    status: OrderStatus,
    updated: dt.datetime,
    *,
    paid_at: dt.datetime | None = None,
    address: Address | None = CANTON,
    ship_by: dt.datetime | None = None,
    presale: bool = False,
) -> CanonicalOrder:
    return CanonicalOrder(
        platform="doudian",
        shop_code="1",
        platform_order_id=number,
        status=status,
        created_at=T0,
        paid_at=paid_at,
        updated_at=updated,
        lines=[CanonicalLine("K1a", 2)],
        address=address,
        ship_by=ship_by,
        presale=presale,
        cancel_reason="不想要了" if status == OrderStatus.CANCELLED else None,
    )


def incoming(
    belt: Belt,
    ref: int,
    order: CanonicalOrder,
    lines: tuple[tuple[int, int], ...] | None = None,
    unknown: tuple[str, ...] = (),
) -> Incoming:
    return Incoming(
        ref=ref,
        order=order,
        shop_id=belt.shop,
        merchant_id=belt.merchant["M1"],
        lines=((belt.sku["K1a"], 2),) if lines is None else lines,
        unknown_codes=unknown,
        address=parse_address(order.address) if order.address else None,
    )


def apply(b: Backend, *items: Incoming) -> list[Outcome]:
    with db.session_scope(b.engine) as session:
        return converge(session, list(items), Sealer(b.settings.pii_key))


def order_row(engine: Engine, number: str) -> Any:
    with engine.connect() as c:
        return c.execute(
            select(
                Order.id,
                Order.status,
                Order.paid_at,
                Order.ship_by,
                Order.presale,
                Order.province,
                Order.city,
                Order.receiver_sealed,
                Order.platform_updated_at,
            ).where(Order.platform_order_id == number)
        ).one()


def exceptions(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return [
            (k, s)
            for k, s in c.execute(
                select(ExceptionItem.kind, ExceptionItem.subject).order_by(ExceptionItem.id)
            )
        ]


# --- out of order ----------------------------------------------------------------------------------------


def test_paid_before_created_converges_to_paid(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    paid_at = T0 + dt.timedelta(minutes=1)
    [o1] = apply(clean, incoming(belt, 1, snapshot("P1", OrderStatus.PAID, paid_at, paid_at=paid_at)))
    [o2] = apply(clean, incoming(belt, 2, snapshot("P1", OrderStatus.CREATED, T0)))
    assert o1.status == InboxStatus.NORMALISED and o1.order_id is not None
    assert (o2.status, o2.order_id) == (InboxStatus.IGNORED, o1.order_id)
    row = order_row(clean.engine, "P1")
    assert (row.status, row.paid_at, row.ship_by) == (
        OrderState.PAID,
        paid_at,
        paid_at + dt.timedelta(hours=48),
    )
    assert (row.province, row.city, row.platform_updated_at) == ("44", "广州市", paid_at)
    assert Sealer(clean.settings.pii_key).open(row.receiver_sealed).phone == "13800001234"
    with clean.engine.connect() as c:
        assert c.execute(select(OrderLine.sku_id, OrderLine.quantity)).all() == [(belt.sku["K1a"], 2)]


def test_created_then_paid_in_order_fires_pay(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    [o1] = apply(clean, incoming(belt, 1, snapshot("P2", OrderStatus.CREATED, T0, address=None)))
    row = order_row(clean.engine, "P2")
    assert (row.status, row.paid_at, row.province) == (OrderState.CREATED, None, "")
    paid_at = T0 + dt.timedelta(minutes=5)
    ship_by = T0 + dt.timedelta(days=10)
    pay = snapshot("P2", OrderStatus.PAID, paid_at, paid_at=paid_at, ship_by=ship_by, presale=True)
    [o2] = apply(clean, incoming(belt, 2, pay))
    assert o2.status == InboxStatus.NORMALISED and o2.order_id == o1.order_id
    row = order_row(clean.engine, "P2")
    assert (row.status, row.paid_at, row.ship_by, row.presale) == (OrderState.PAID, paid_at, ship_by, True)
    assert row.province == "44"


def test_cancel_before_paid_converges_to_cancelled(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    t_paid, t_cancel = T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=2)
    [o1] = apply(clean, incoming(belt, 1, snapshot("P3", OrderStatus.CANCELLED, t_cancel, paid_at=t_paid)))
    [o2] = apply(clean, incoming(belt, 2, snapshot("P3", OrderStatus.PAID, t_paid, paid_at=t_paid)))
    [o3] = apply(clean, incoming(belt, 3, snapshot("P3", OrderStatus.CREATED, T0)))
    assert o1.status == InboxStatus.NORMALISED
    assert [o.status for o in (o2, o3)] == [InboxStatus.IGNORED, InboxStatus.IGNORED]
    assert order_row(clean.engine, "P3").status == OrderState.CANCELLED
    assert exceptions(clean.engine) == []  # nothing was planned: nothing to flag


def test_snapshots_of_one_order_in_one_call_keep_the_newest(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    t_paid = T0 + dt.timedelta(minutes=1)
    out = apply(
        clean,
        incoming(belt, 1, snapshot("P4", OrderStatus.PAID, t_paid, paid_at=t_paid)),
        incoming(
            belt, 2, snapshot("P4", OrderStatus.CANCELLED, T0 + dt.timedelta(minutes=3), paid_at=t_paid)
        ),
        incoming(belt, 3, snapshot("P4", OrderStatus.CREATED, T0)),
    )
    assert [o.status for o in out] == [InboxStatus.IGNORED, InboxStatus.NORMALISED, InboxStatus.IGNORED]
    assert len({o.order_id for o in out}) == 1
    assert order_row(clean.engine, "P4").status == OrderState.CANCELLED


def test_an_address_change_before_shipment_updates_province_and_receiver(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    sealer = Sealer(clean.settings.pii_key)
    t1 = T0 + dt.timedelta(minutes=1)
    apply(clean, incoming(belt, 1, snapshot("P5", OrderStatus.PAID, t1, paid_at=t1)))
    moved = snapshot("P5", OrderStatus.PAID, T0 + dt.timedelta(minutes=9), paid_at=t1, address=SHANGHAI)
    [out] = apply(clean, incoming(belt, 2, moved))
    assert out.status == InboxStatus.NORMALISED
    row = order_row(clean.engine, "P5")
    assert (row.province, row.city) == ("31", "浦东新区")
    assert sealer.open(row.receiver_sealed).address == "世纪大道100号"
    # a late delivery of the older snapshot does not move the receiver back
    [stale] = apply(clean, incoming(belt, 3, snapshot("P5", OrderStatus.PAID, t1, paid_at=t1)))
    assert stale.status == InboxStatus.IGNORED
    assert order_row(clean.engine, "P5").province == "31"


# --- what the platform sends that cannot be made ----------------------------------------------------


def test_unknown_skus_and_bad_addresses_wait_in_the_exceptions_queue(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    t1 = T0 + dt.timedelta(minutes=1)
    unknown = incoming(belt, 1, snapshot("E1", OrderStatus.PAID, t1, paid_at=t1), lines=(), unknown=("X-9",))
    no_address = incoming(belt, 2, snapshot("E2", OrderStatus.PAID, t1, paid_at=t1, address=None))
    bad = Incoming(
        3,
        snapshot("E3", OrderStatus.PAID, t1, paid_at=t1),
        belt.shop,
        belt.merchant["M1"],
        ((belt.sku["K1a"], 1),),
        address_error="province '火星' is not a mainland Chinese province",
    )
    fine = incoming(belt, 4, snapshot("E4", OrderStatus.PAID, t1, paid_at=t1))
    out = apply(clean, unknown, no_address, bad, fine)
    assert [(o.status, o.kind) for o in out] == [
        (InboxStatus.EXCEPTION, "unknown_sku"),
        (InboxStatus.EXCEPTION, "bad_address"),
        (InboxStatus.EXCEPTION, "bad_address"),
        (InboxStatus.NORMALISED, None),
    ]
    assert "'X-9'" in (out[0].reason or "") and out[0].payload["codes"] == ["X-9"]
    assert "火星" in (out[2].reason or "")
    with clean.engine.connect() as c:
        assert c.execute(select(Order.platform_order_id)).scalars().all() == ["E4"]


def test_a_cancelled_order_new_to_us_is_recorded_even_with_unmapped_lines(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    gone = snapshot("E5", OrderStatus.CANCELLED, T0 + dt.timedelta(minutes=2), address=None)
    [out] = apply(clean, incoming(belt, 1, gone, lines=((belt.sku["K2"], 1),), unknown=("X-1",)))
    assert out.status == InboxStatus.NORMALISED and "X-1" in (out.reason or "")
    assert order_row(clean.engine, "E5").status == OrderState.CANCELLED
    # and a late "paid" for it changes nothing
    [late] = apply(clean, incoming(belt, 2, snapshot("E5", OrderStatus.PAID, T0 + dt.timedelta(minutes=1))))
    assert late.status == InboxStatus.IGNORED
    assert order_row(clean.engine, "E5").status == OrderState.CANCELLED


def test_shipped_elsewhere_is_flagged_and_cancel_after_shipment_is_a_return(clean: Backend) -> None:
    belt = seed_belt(clean.engine)
    t1 = T0 + dt.timedelta(minutes=1)
    [o] = apply(clean, incoming(belt, 1, snapshot("S1", OrderStatus.PAID, t1, paid_at=t1)))
    [shipped] = apply(
        clean, incoming(belt, 2, snapshot("S1", OrderStatus.SHIPPED, t1 + dt.timedelta(hours=1)))
    )
    assert shipped.status == InboxStatus.NORMALISED
    assert order_row(clean.engine, "S1").status == OrderState.PAID  # ours is left alone, operations decide
    assert exceptions(clean.engine) == [("shipped_outside_belt", f"order {o.order_id}")]

    # an order we shipped: "shipped" changes nothing, "cancelled" is a return to handle
    with db.session_scope(clean.engine) as s:
        oid = apply(clean, incoming(belt, 3, snapshot("S2", OrderStatus.PAID, t1, paid_at=t1)))[0].order_id
        assert oid is not None
        order = s.get(Order, oid)
        assert order is not None
        for event in (OrderEvent.BATCH, OrderEvent.ALLOCATE, OrderEvent.PACK, OrderEvent.PICK_UP):
            ORDER.fire(order, event)
    [again] = apply(clean, incoming(belt, 4, snapshot("S2", OrderStatus.SHIPPED, t1 + dt.timedelta(hours=2))))
    assert again.status == InboxStatus.NORMALISED
    [refund] = apply(
        clean, incoming(belt, 5, snapshot("S2", OrderStatus.CANCELLED, t1 + dt.timedelta(hours=3)))
    )
    assert refund.status == InboxStatus.NORMALISED
    assert order_row(clean.engine, "S2").status == OrderState.SHIPPED
    assert exceptions(clean.engine)[1:] == [("cancelled_after_shipment", f"order {oid}")]


# --- cancellations against a plan ------------------------------------------------------------------------


def _number(engine: Engine, order_id: int) -> str:
    with engine.connect() as c:
        return str(c.execute(select(Order.platform_order_id).where(Order.id == order_id)).scalar_one())


def cancel(b: Backend, belt: Belt, order_id: int, ref: int = 1) -> Outcome:
    number = _number(b.engine, order_id)
    [out] = apply(b, incoming(belt, ref, snapshot(number, OrderStatus.CANCELLED, T0 + dt.timedelta(hours=5))))
    return out


def test_cancelling_before_production_frees_capacity_stock_and_parcels(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, (o1, o2, o3, _o4) = first_batch(eng, belt)
    jobs.plan_batch(bid)

    out = cancel(clean, belt, o3)  # K2 3 from stock, K2 1 made (a lot of its own), K1b 1 from the S1 lot
    assert (out.status, out.order_id) == (InboxStatus.NORMALISED, o3)
    with eng.connect() as c:
        assert c.execute(select(Order.status).where(Order.id == o3)).scalar_one() == OrderState.CANCELLED
        taken = c.execute(
            select(AllocationDecision.id)
            .join(OrderLine, OrderLine.id == AllocationDecision.order_line_id)
            .where(OrderLine.order_id == o3)
        ).all()
        assert taken == []
        assert c.execute(select(Stock.on_hand, Stock.reserved)).one() == (5, 2)  # O2 still holds 2
        parcels = c.execute(select(Parcel.order_id, Parcel.status).order_by(Parcel.order_id)).all()
        assert [(o, s) for o, s in parcels if o == o3] == [(o3, ParcelState.CANCELLED)] * 2
        assert {s for o, s in parcels if o != o3} == {ParcelState.PLANNED}
        lots = dict(
            c.execute(select(Style.code, WorkOrder.status).join(Style, Style.id == WorkOrder.style_id)).all()
        )
        # the S2 lot existed for O3's one piece; the S1 lot keeps its minimum of 20 for O1
        assert lots == {"S1": WorkOrderState.PLANNED, "S2": WorkOrderState.CANCELLED}
        assert c.execute(
            select(WorkOrder.quantity).where(WorkOrder.status == WorkOrderState.PLANNED)
        ).all() == [(20,)]
    assert exceptions(eng) == [("unfillable", f"order {_o4}")]  # the plan's own; no cancellation flag

    cancel(clean, belt, o1, ref=2)
    cancel(clean, belt, o2, ref=3)
    with eng.connect() as c:
        assert c.execute(select(WorkOrder.status)).scalars().all() == [WorkOrderState.CANCELLED] * 2
        assert c.execute(select(Stock.on_hand, Stock.reserved)).one() == (5, 0)
        assert c.execute(select(AllocationDecision.id)).all() == []


def test_a_lot_above_its_minimum_shrinks_by_the_cancelled_pieces(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, (big, small) = add_batch(eng, belt, [(paid(0), [("K1a", 25)]), (paid(1), [("K1a", 10)])])
    jobs.plan_batch(bid)
    with eng.connect() as c:
        before = c.execute(
            select(WorkOrder.quantity, WorkOrder.regular_minutes, WorkOrder.overtime_minutes)
        ).one()
    assert before[0] == 35 and before[1] + before[2] == pytest.approx(70.0)

    cancel(clean, belt, small)
    with eng.connect() as c:
        after = c.execute(
            select(
                WorkOrder.quantity, WorkOrder.regular_minutes, WorkOrder.overtime_minutes, WorkOrder.status
            )
        ).one()
    assert after[0] == 25 and after[1] + after[2] == pytest.approx(50.0)
    assert after[3] == WorkOrderState.PLANNED

    cancel(clean, belt, big, ref=2)  # 0 pieces left: not even the minimum lot is made
    with eng.connect() as c:
        assert c.execute(select(WorkOrder.status)).scalar_one() == WorkOrderState.CANCELLED


def test_cancelling_after_production_started_flags_it_and_the_goods_become_stock(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, (o1, o2, _o3, _o4) = first_batch(eng, belt)
    jobs.plan_batch(bid)
    with db.session_scope(eng) as s:
        # the S1 lot starts (O1's 3 pieces are in it); O2's 2 pieces of K2 are picked and packed
        WORK_ORDER.fire_where(s, WorkOrder, WorkOrder.quantity == 20, WorkOrderEvent.START)
        ORDER.fire_ids(s, Order, [o1], OrderEvent.START_PRODUCTION)
        stock = s.execute(select(Stock)).scalar_one()
        stock.on_hand, stock.reserved = stock.on_hand - 2, stock.reserved - 2
        PARCEL.fire_where(s, Parcel, Parcel.order_id == o2, ParcelEvent.PACK)
        ORDER.fire_ids(s, Order, [o2], OrderEvent.PACK)

    assert cancel(clean, belt, o1).status == InboxStatus.NORMALISED
    assert cancel(clean, belt, o2, ref=2).status == InboxStatus.NORMALISED
    with eng.connect() as c:
        statuses = dict(c.execute(select(Order.id, Order.status).where(Order.id.in_([o1, o2]))).all())
        assert statuses == {o1: OrderState.CANCELLED, o2: OrderState.CANCELLED}
        # the started lot goes on (20 pieces); O1's 3 become M1's stock at H1, the only (so nearest) warehouse
        assert c.execute(
            select(WorkOrder.quantity, WorkOrder.status).where(WorkOrder.quantity == 20)
        ).one() == (20, WorkOrderState.STARTED)
        stock = {
            code: (on_hand, reserved)
            for code, on_hand, reserved in c.execute(
                select(Sku.code, Stock.on_hand, Stock.reserved).join(Sku, Sku.id == Stock.sku_id)
            )
        }
        assert stock == {"K1a": (3, 0), "K2": (5, 3)}  # O2's picked pieces are back on the shelf
        assert (
            c.execute(select(Parcel.status).where(Parcel.order_id.in_([o1, o2]))).scalars().all()
            == [ParcelState.CANCELLED] * 2
        )
        flags = c.execute(
            select(ExceptionItem.subject, ExceptionItem.payload).where(
                ExceptionItem.kind == "cancelled_after_production_started"
            )
        ).all()
    assert [s for s, _ in flags] == [f"order {o1}", f"order {o2}"]
    assert flags[0][1]["goods_to_stock"] == [
        {"sku_id": belt.sku["K1a"], "quantity": 3, "warehouse": "H1", "made": True}
    ]


def test_a_cancellation_waits_for_a_running_planner(clean: Backend) -> None:
    """The planning lock: a batch being planned never sees one of its orders cancelled half-way."""
    eng = clean.engine
    belt = seed_belt(eng)
    bid, (o1, *_rest) = first_batch(eng, belt)
    jobs.plan_batch(bid)
    number = _number(eng, o1)
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            apply(
                clean, incoming(belt, 1, snapshot(number, OrderStatus.CANCELLED, T0 + dt.timedelta(hours=5)))
            )
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        done.set()

    with eng.connect() as planner:
        if clean.name == "postgresql":
            jobs.take_planning_lock(planner)
        else:
            planner.execute(text("UPDATE batches SET id = id WHERE 0"))  # the planner's SQLite write lock
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()
        planner.rollback()
    worker.join(30)
    assert done.is_set() and not errors
    assert order_row(eng, number).status == OrderState.CANCELLED
