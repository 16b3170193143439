"""Planning a batch against the database: load, greedy solve, write — checked by hand on a tiny belt."""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, update

from fulfil import batching, settings
from fulfil.domain.models import (
    AllocationDecision,
    Batch,
    Courier,
    CourierPrice,
    ExceptionItem,
    Merchant,
    Order,
    OrderLine,
    Parcel,
    Platform,
    PlatformShop,
    ProcessFamily,
    Qualification,
    SharedWarehouse,
    Sku,
    SolverRun,
    Stock,
    Style,
    WorkOrder,
    Workshop,
    WorkshopCapacity,
)
from fulfil.domain.states import BatchState, OrderState, WorkOrderState
from fulfil.planning import jobs
from fulfil.planning.load import PlanningError, load_batch
from tests.conftest import Backend
from tests.jobs_support import run_fulfil


@pytest.fixture(autouse=True)
def cascade(monkeypatch: pytest.MonkeyPatch) -> Any:
    """These tests check the rule cascade's hand-checkable decisions and the planning machinery around it;
    the optimiser's plans are checked in test_optimiser.py."""
    monkeypatch.setenv("FULFIL_PLANNER", "cascade")
    settings.get.cache_clear()
    yield
    monkeypatch.delenv("FULFIL_PLANNER")
    settings.get.cache_clear()


# 02:00 UTC is 10:00 on the belt: early enough to make goods for today's 18:00 pickup
CLOSE = dt.datetime(2026, 11, 23, 2, 0)
DAY0 = dt.date(2026, 11, 23)


@dataclass
class Belt:
    merchant: dict[str, int]
    style: dict[str, int]
    sku: dict[str, int]
    workshop: dict[str, int]
    warehouse: int
    courier: dict[str, int]
    shop: int


def _one(conn: Any, model: Any, **values: Any) -> int:
    ident: int = conn.execute(insert(model).values(**values).returning(model.id)).scalar_one()
    return ident


def seed_belt(engine: Engine) -> Belt:
    """Two workshops (W1 near the merchant, W2 far), one shared warehouse, two couriers, four SKUs:
    K1a/K1b of style S1 (2 min a piece, minimum lot 20, both workshops), K2 of S2 (1 min, W1 only, 5 in
    stock), K3 of S3 (qualified nowhere, no stock)."""
    with engine.begin() as c:
        fam = _one(c, ProcessFamily, code="sew", name="cut and sew")
        m1 = _one(
            c, Merchant, code="M1", name="虞山服饰", town="虞山", lon=120.75, lat=31.65, pools_stock=False
        )
        shop = _one(c, PlatformShop, platform=Platform.DOUDIAN, shop_code="1", name="旗舰店", merchant_id=m1)
        common = {"merchant_id": m1, "process_family_id": fam, "changeover_fen": 1000}
        s1 = _one(c, Style, code="S1", name="针织衫", minutes_per_unit=2.0, min_lot=20, **common)
        s2 = _one(c, Style, code="S2", name="T恤", minutes_per_unit=1.0, min_lot=0, **common)
        s3 = _one(c, Style, code="S3", name="羊绒大衣", minutes_per_unit=5.0, min_lot=0, **common)
        sku = {
            "K1a": _one(c, Sku, style_id=s1, code="K1a", colour="黑", size="M", weight_g=300),
            "K1b": _one(c, Sku, style_id=s1, code="K1b", colour="白", size="L", weight_g=500),
            "K2": _one(c, Sku, style_id=s2, code="K2", colour="灰", size="M", weight_g=2000),
            "K3": _one(c, Sku, style_id=s3, code="K3", colour="驼", size="M", weight_g=200),
        }
        w = {"quality": 0.98, "reliability": 0.95, "active": True, "workers": 30}
        w1 = _one(c, Workshop, code="W1", name="一厂", town="虞山", lon=120.76, lat=31.66, **w)
        w2 = _one(c, Workshop, code="W2", name="二厂", town="梅李", lon=120.95, lat=31.80, **w)
        c.execute(
            insert(WorkshopCapacity),
            [
                {
                    "workshop_id": ws,
                    "day": DAY0 + dt.timedelta(days=d),
                    "process_family_id": fam,
                    "regular_minutes": reg,
                    "overtime_minutes": ot,
                    "overtime_premium_fen_per_minute": 2,
                }
                for ws, reg, ot in ((w1, 100, 50), (w2, 480, 120))
                for d in range(7)
            ],
        )
        c.execute(
            insert(Qualification),
            [
                {"workshop_id": w1, "style_id": s1, "unit_cost_fen": 1500},
                {"workshop_id": w2, "style_id": s1, "unit_cost_fen": 1400},
                {"workshop_id": w1, "style_id": s2, "unit_cost_fen": 800},
            ],
        )
        h1 = _one(
            c,
            SharedWarehouse,
            code="H1",
            name="云仓",
            town="虞山",
            lon=120.751,
            lat=31.651,
            daily_handling_capacity=1000,
            handling_fen_per_line=30,
        )
        c.execute(insert(Stock).values(warehouse_id=h1, owner_id=m1, sku_id=sku["K2"], on_hand=5, reserved=0))
        ca = _one(c, Courier, code="ZTO", name="中通")
        cb = _one(c, Courier, code="YUNDA", name="韵达")
        c.execute(
            insert(CourierPrice),
            [
                # A is cheaper for light parcels, B for heavy ones
                {
                    "courier_id": ca,
                    "province": p,
                    "first_weight_g": 1000,
                    "first_fen": 500,
                    "additional_fen_per_kg": 200,
                }
                for p in ("44", "31")
            ]
            + [
                {
                    "courier_id": cb,
                    "province": p,
                    "first_weight_g": 1000,
                    "first_fen": 600,
                    "additional_fen_per_kg": 100,
                }
                for p in ("44", "31")
            ],
        )
    return Belt(
        {"M1": m1}, {"S1": s1, "S2": s2, "S3": s3}, sku, {"W1": w1, "W2": w2}, h1, {"A": ca, "B": cb}, shop
    )


_numbers = iter(range(10**6))


def add_batch(
    engine: Engine, belt: Belt, orders: list[tuple[dt.datetime, list[tuple[str, int]]]], province: str = "44"
) -> tuple[int, list[int]]:
    """A closed batch holding ``orders`` (paid at, [(SKU, quantity)]); returns its id and the order ids."""
    with engine.begin() as c:
        bid = _one(
            c,
            Batch,
            status=BatchState.CLOSED,
            window_start=CLOSE - dt.timedelta(minutes=15),
            window_end=CLOSE,
            close_reason="window",
            closed_at=CLOSE,
            order_count=len(orders),
        )
        ids = []
        for paid, lines in orders:
            oid = _one(
                c,
                Order,
                platform=Platform.DOUDIAN,
                shop_id=belt.shop,
                platform_order_id=f"69{next(_numbers):010d}",
                merchant_id=belt.merchant["M1"],
                status=OrderState.BATCHED,
                created_at=paid,
                paid_at=paid,
                ship_by=paid + dt.timedelta(hours=48),
                presale=False,
                province=province,
                city="广州",
                receiver_sealed=b"sealed",
                batch_id=bid,
            )
            c.execute(
                insert(OrderLine), [{"order_id": oid, "sku_id": belt.sku[k], "quantity": q} for k, q in lines]
            )
            ids.append(oid)
    return bid, ids


def paid(minute: int) -> dt.datetime:
    return CLOSE - dt.timedelta(minutes=60 - minute)


def first_batch(engine: Engine, belt: Belt) -> tuple[int, list[int]]:
    return add_batch(
        engine,
        belt,
        [
            (paid(0), [("K1a", 3)]),  # O1: made at W1 in a lot of 20 (17 surplus)
            (paid(1), [("K2", 2)]),  # O2: from stock
            (paid(2), [("K2", 4), ("K1b", 1)]),  # O3: 3 from stock, 1 made; K1b from the S1 lot's surplus
            (paid(3), [("K3", 1)]),  # O4: nobody makes S3 and nobody holds it
        ],
    )


def decisions(engine: Engine, order_id: int) -> list[tuple[str, str, int, str, int]]:
    with engine.connect() as c:
        rows = c.execute(
            select(
                Sku.code,
                AllocationDecision.source,
                AllocationDecision.quantity,
                func.coalesce(Workshop.code, SharedWarehouse.code),
                AllocationDecision.goods_fen,
            )
            .join(OrderLine, OrderLine.id == AllocationDecision.order_line_id)
            .join(Sku, Sku.id == OrderLine.sku_id)
            .outerjoin(Workshop, Workshop.id == AllocationDecision.workshop_id)
            .outerjoin(SharedWarehouse, SharedWarehouse.id == AllocationDecision.warehouse_id)
            .where(OrderLine.order_id == order_id)
            .order_by(Sku.code, AllocationDecision.source, AllocationDecision.quantity)
        ).all()
    return [(k, str(s), q, site, g) for k, s, q, site, g in rows]


def test_a_batch_is_planned_by_hand_checkable_rules(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, (o1, o2, o3, o4) = first_batch(eng, belt)

    jobs.plan_batch(bid)

    # stock first, by ship-by: O2 takes 2, O3 the other 3; the minimum lot of S1 (20) serves O1 and O3's K1b
    # O1 opened the lot: it carries the cost of all 20 pieces made (the surplus goes to the owner's stock)
    assert decisions(eng, o1) == [("K1a", "workshop", 3, "W1", 20 * 1500)]
    assert decisions(eng, o2) == [("K2", "warehouse", 2, "H1", 30)]
    assert decisions(eng, o3) == [
        ("K1b", "workshop", 1, "W1", 0),  # from the lot's surplus: its cost was booked on the lot's opener
        ("K2", "warehouse", 3, "H1", 30),  # handling is per line picked
        ("K2", "workshop", 1, "W1", 800),
    ]
    assert decisions(eng, o4) == []
    with eng.connect() as c:
        statuses = dict(c.execute(select(Order.id, Order.status)).all())
        assert statuses == {
            o1: OrderState.ALLOCATED,
            o2: OrderState.ALLOCATED,
            o3: OrderState.ALLOCATED,
            o4: OrderState.PAID,
        }
        assert c.execute(select(Order.batch_id).where(Order.id == o4)).scalar_one() is None
        [exc] = c.execute(select(ExceptionItem.kind, ExceptionItem.subject, ExceptionItem.reason)).all()
        assert exc == (
            "unfillable",
            f"order {o4}",
            "no stock the owner may take and no workshop qualified for the style",
        )
        assert c.execute(select(Batch.status).where(Batch.id == bid)).scalar_one() == BatchState.PLANNED
        [run] = c.execute(
            select(SolverRun.solver, SolverRun.status, SolverRun.objective, SolverRun.bound)
        ).all()
        assert run[:2] == ("greedy", "feasible") and run[2] > 0 and run[3] is None
        assert c.execute(select(Stock.on_hand, Stock.reserved)).one() == (5, 5)
        wos = c.execute(
            select(Style.code, WorkOrder.quantity, WorkOrder.regular_minutes, WorkOrder.day, WorkOrder.status)
            .join(Style, Style.id == WorkOrder.style_id)
            .order_by(Style.code)
        ).all()
        assert wos == [
            ("S1", 20, 40.0, DAY0, WorkOrderState.PLANNED),
            ("S2", 1, 1.0, DAY0, WorkOrderState.PLANNED),
        ]
        parcels = c.execute(
            select(
                Parcel.order_id,
                Parcel.site_kind,
                Parcel.weight_g,
                Parcel.ready_on,
                Courier.code,
                Parcel.shipping_fen,
            )
            .join(Courier, Courier.id == Parcel.courier_id)
            .order_by(Parcel.order_id, Parcel.site_kind)
        ).all()
    assert [(o, str(k), w, r, cc, f) for o, k, w, r, cc, f in parcels] == [
        (o1, "workshop", 900, DAY0, "ZTO", 500),
        (o2, "warehouse", 4000, DAY0, "YUNDA", 900),  # 4 kg: 500 + 3 x 200 = 1100 or 600 + 3 x 100 = 900
        (o3, "warehouse", 6000, DAY0, "YUNDA", 1100),
        (o3, "workshop", 2500, DAY0, "YUNDA", 800),  # a split order gets a parcel per site
    ]


def test_planning_twice_plans_once(clean: Backend) -> None:
    eng = clean.engine
    bid, _ = first_batch(eng, seed_belt(eng))
    jobs.plan_batch(bid)
    jobs.plan_batch(bid)
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(SolverRun)).scalar_one() == 1
        assert c.execute(select(func.count()).select_from(WorkOrder)).scalar_one() == 2
        assert c.execute(select(func.count()).select_from(Parcel)).scalar_one() == 4
        assert c.execute(select(Stock.reserved)).scalar_one() == 5


def test_concurrent_runs_plan_once(clean: Backend) -> None:
    eng = clean.engine
    bid, _ = first_batch(eng, seed_belt(eng))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            jobs.plan_batch(bid)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(SolverRun)).scalar_one() == 1
        assert c.execute(select(func.count()).select_from(Parcel)).scalar_one() == 4


def assert_no_workshop_day_beyond_its_calendar(c: Any) -> None:
    used = c.execute(
        select(
            WorkOrder.workshop_id,
            WorkOrder.day,
            func.sum(WorkOrder.regular_minutes + WorkOrder.overtime_minutes),
        ).group_by(WorkOrder.workshop_id, WorkOrder.day)
    ).all()
    cap = {
        (w, d): r + o
        for w, d, r, o in c.execute(
            select(
                WorkshopCapacity.workshop_id,
                WorkshopCapacity.day,
                WorkshopCapacity.regular_minutes,
                WorkshopCapacity.overtime_minutes,
            )
        )
    }
    assert all(minutes <= cap[(w, d)] + 1e-6 for w, d, minutes in used)


def test_a_later_batch_gets_only_the_capacity_left(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid1, _ = first_batch(eng, belt)
    jobs.plan_batch(bid1)  # W1 day 0: 41 of 100 regular minutes taken
    bid2, [o5] = add_batch(eng, belt, [(paid(5), [("K1a", 50)])])  # 100 minutes of S1
    loaded = load_batch_in_session(eng, bid2)
    assert loaded.problem.regular_minutes[0, 0, 0] == 59.0
    jobs.plan_batch(bid2)
    with eng.connect() as c:
        got = c.execute(
            select(Workshop.code, WorkOrder.day, WorkOrder.quantity)
            .join(Workshop, Workshop.id == WorkOrder.workshop_id)
            .where(WorkOrder.batch_id == bid2)
            .order_by(WorkOrder.day)
        ).all()
        # batch 1's lot of S1 at W1 today had 16 pieces spare: they come first; then that lot grows by the
        # 29 pieces W1's 59 minutes left today hold (no new minimum lot, no changeover); the last 5 open a
        # new lot of 20 tomorrow (still before ship-by)
        assert got == [("W1", DAY0 + dt.timedelta(days=1), 20)]
        grown = c.execute(
            select(WorkOrder.quantity, WorkOrder.regular_minutes)
            .join(Style, Style.id == WorkOrder.style_id)
            .where(WorkOrder.batch_id == bid1, Style.code == "S1")
        ).one()
        assert tuple(grown) == (20 + 29, 2.0 * 49)
        assert sorted(
            c.execute(
                select(WorkOrder.day, AllocationDecision.quantity)
                .join(WorkOrder, WorkOrder.id == AllocationDecision.work_order_id)
                .join(OrderLine, OrderLine.id == AllocationDecision.order_line_id)
                .where(OrderLine.order_id == o5)
            ).all()
        ) == [(DAY0, 16), (DAY0, 29), (DAY0 + dt.timedelta(days=1), 5)]
        assert_no_workshop_day_beyond_its_calendar(c)
        assert c.execute(select(Order.status).where(Order.id == o5)).scalar_one() == OrderState.ALLOCATED


@pytest.mark.parametrize("planner", ["cascade", "optimiser"])
def test_work_already_started_is_frozen(
    clean: Backend, monkeypatch: pytest.MonkeyPatch, planner: str
) -> None:
    monkeypatch.setenv("FULFIL_PLANNER", planner)
    settings.get.cache_clear()
    eng = clean.engine
    belt = seed_belt(eng)
    bid1, _ = first_batch(eng, belt)
    jobs.plan_batch(bid1)
    frozen = select(WorkOrder.id, WorkOrder.quantity, WorkOrder.regular_minutes, WorkOrder.overtime_minutes)
    with eng.begin() as c:
        c.execute(update(WorkOrder).values(status=WorkOrderState.STARTED))  # the workshops began batch 1
        before = set(c.execute(frozen).all())
        decisions_of = select(AllocationDecision.id, AllocationDecision.work_order_id)
        decided = set(c.execute(decisions_of).all())
    bid2, [o5] = add_batch(eng, belt, [(paid(5), [("K1a", 50)])])
    loaded = load_batch_in_session(eng, bid2)
    assert loaded.problem.open_lot_workshop.size == 0  # a started lot is not offered to grow
    jobs.plan_batch(bid2)
    with eng.connect() as c:
        assert set(c.execute(frozen.where(WorkOrder.batch_id == bid1)).all()) == before
        assert decided <= set(c.execute(decisions_of).all())
        started = {wo for wo, *_ in before}
        later = c.execute(
            select(AllocationDecision.work_order_id)
            .join(OrderLine, OrderLine.id == AllocationDecision.order_line_id)
            .where(OrderLine.order_id == o5)
        ).scalars()
        assert started.isdisjoint(later)
        # the started lots' minutes stay taken: no workshop-day is planned beyond its calendar
        assert_no_workshop_day_beyond_its_calendar(c)
        assert c.execute(select(Order.status).where(Order.id == o5)).scalar_one() == OrderState.ALLOCATED


def load_batch_in_session(eng: Engine, batch_id: int) -> Any:
    from fulfil import db

    with db.session_scope(eng) as s:
        return load_batch(s, batch_id)


def test_an_order_to_a_province_no_courier_serves_is_an_exception(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, [o] = add_batch(eng, belt, [(paid(0), [("K2", 1)])], province="65")
    jobs.plan_batch(bid)
    with eng.connect() as c:
        assert c.execute(select(Order.status).where(Order.id == o)).scalar_one() == OrderState.PAID
        assert (
            c.execute(select(ExceptionItem.reason)).scalar_one()
            == "no courier price to the destination province"
        )
        assert c.execute(select(Stock.reserved)).scalar_one() == 0


def test_a_minimum_lot_no_workshop_could_make_fails_the_batch_naming_the_style(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    # 400 pieces at 2 minutes: 800 minutes, and the longest qualified day is W2's 480 + 120
    with eng.begin() as c:
        c.execute(Style.__table__.update().where(Style.id == belt.style["S1"]).values(min_lot=400))
    bid, _ids = add_batch(eng, belt, [(paid(0), [("K1a", 3)]), (paid(1), [("K2", 1)])])
    message = (
        f"style {belt.style['S1']} (S1): its minimum lot needs 800 minutes in one day, "
        "and the longest day of any qualified workshop has 600"
    )
    with pytest.raises(PlanningError, match=re.escape(message) + "$"):
        jobs.plan_batch(bid)
    with eng.connect() as c:
        assert c.execute(select(Batch.status).where(Batch.id == bid)).scalar_one() == BatchState.FAILED
        assert set(c.execute(select(Order.status, Order.batch_id)).all()) == {(OrderState.PAID, None)}
        failed = select(ExceptionItem.reason).where(ExceptionItem.kind == "plan_failed")
        assert message in c.execute(failed).scalar_one()


def test_a_failed_solve_fails_the_batch_and_releases_its_orders(
    clean: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = clean.engine
    bid, _ids = first_batch(eng, seed_belt(eng))

    def broken(*_: Any) -> Any:
        raise ValueError("solver exploded")

    monkeypatch.setattr(jobs, "allocate_batch", broken)
    with pytest.raises(ValueError, match="solver exploded"):
        jobs.plan_batch(bid)
    with eng.connect() as c:
        assert c.execute(select(Batch.status).where(Batch.id == bid)).scalar_one() == BatchState.FAILED
        assert set(c.execute(select(Order.status, Order.batch_id)).all()) == {(OrderState.PAID, None)}
        assert c.execute(select(SolverRun.status, SolverRun.message)).one() == (
            "failed",
            "ValueError: solver exploded",
        )
        assert c.execute(select(ExceptionItem.kind)).scalar_one() == "plan_failed"
        assert c.execute(select(func.count()).select_from(WorkOrder)).scalar_one() == 0
    jobs.plan_batch(bid)  # a failed batch is not planned again: its orders go through a new batch


def test_closing_a_batch_plans_it_through_the_outbox_and_a_worker(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, _ids = first_batch(eng, belt)
    from fulfil import db

    with db.session_scope(eng) as s:  # reopen it, then close it as an operator would
        s.execute(Batch.__table__.update().where(Batch.id == bid).values(status=BatchState.OPEN))
        assert batching.close_batch(s, bid, "operator", now=CLOSE)
    done = run_fulfil(clean, "worker", "--burst", timeout=120)
    assert done.returncode == 0, done.stderr
    with eng.connect() as c:
        assert c.execute(select(Batch.status).where(Batch.id == bid)).scalar_one() == BatchState.PLANNED
        assert c.execute(select(func.count()).select_from(Parcel)).scalar_one() == 4


def test_batches_are_planned_in_the_order_they_closed(clean: Backend) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    first, _ = first_batch(eng, belt)
    second, _ = add_batch(eng, belt, [(paid(5), [("K1a", 50)])])
    jobs.plan_batch(
        second
    )  # the job of the later batch arrives first: the earlier batch is planned before it
    with eng.connect() as c:
        runs = c.execute(select(SolverRun.batch_id).order_by(SolverRun.id)).scalars().all()
        assert runs == [first, second]
        # so the later batch got only what the earlier one left: its spare pieces and 59 minutes of W1 today
        assert c.execute(
            select(WorkOrder.quantity).where(WorkOrder.batch_id == second).order_by(WorkOrder.day)
        ).scalars().all() == [20]
    jobs.plan_batch(first)  # the earlier batch's own job comes later: nothing left to do
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(SolverRun)).scalar_one() == 2


def test_a_batch_whose_orders_all_went_away_is_planned_empty(clean: Backend) -> None:
    eng = clean.engine
    bid, _ids = first_batch(eng, seed_belt(eng))
    with eng.begin() as c:  # cancelled after the batch closed
        c.execute(Order.__table__.update().values(status=OrderState.CANCELLED))
    jobs.plan_batch(bid)
    with eng.connect() as c:
        assert c.execute(select(Batch.status).where(Batch.id == bid)).scalar_one() == BatchState.PLANNED
        assert c.execute(select(func.count()).select_from(Parcel)).scalar_one() == 0
        assert set(c.execute(select(Order.status)).scalars()) == {OrderState.CANCELLED}
        assert c.execute(select(SolverRun.objective)).scalar_one() == 0
