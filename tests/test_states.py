"""The state machines: the tables are the rules, and both the object and the bulk paths obey them."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fulfil.domain.models import Batch, Merchant, Order, Platform, PlatformShop
from fulfil.domain.states import (
    BATCH,
    ORDER,
    PARCEL,
    WORK_ORDER,
    IllegalTransition,
    OrderEvent,
    OrderState,
    StateMachine,
    WorkOrderEvent,
    WorkOrderState,
)
from tests.conftest import Backend

MACHINES: list[StateMachine] = [ORDER, WORK_ORDER, BATCH, PARCEL]  # type: ignore[type-arg]

# The rules as the domain states them, written out independently of the tables under test.
ORDER_RULES = {
    ("created", "pay"): "paid",
    ("paid", "batch"): "batched",
    ("batched", "release"): "paid",
    ("allocated", "release"): "paid",
    ("batched", "allocate"): "allocated",
    ("allocated", "start_production"): "in_production",
    ("allocated", "pack"): "packed",
    ("in_production", "pack"): "packed",
    ("packed", "pick_up"): "shipped",
    ("shipped", "deliver"): "delivered",
    **{
        (s, "cancel"): "cancelled"
        for s in ("created", "paid", "batched", "allocated", "in_production", "packed")
    },
}
WORK_ORDER_RULES = {
    ("planned", "start"): "started",
    ("started", "pause"): "paused",
    ("paused", "resume"): "started",
    ("started", "report"): "started",
    ("started", "complete"): "completed",
    ("planned", "cancel"): "cancelled",
    ("started", "cancel"): "cancelled",
    ("paused", "cancel"): "cancelled",
}


class _Thing:
    def __init__(self, status: str) -> None:
        self.id = 7
        self.status = status


@pytest.mark.parametrize(
    ("machine", "rules"), [(ORDER, ORDER_RULES), (WORK_ORDER, WORK_ORDER_RULES)], ids=["order", "work order"]
)
def test_every_pair_of_state_and_event_follows_the_rules(machine: StateMachine, rules: dict) -> None:  # type: ignore[type-arg]
    events = {e for _, e in machine.table}
    for state in machine.states:
        for event in events:
            thing = _Thing(state.value)
            expected = rules.get((state.value, str(event)))
            if expected is None:
                with pytest.raises(IllegalTransition) as info:
                    machine.fire(thing, event)
                assert thing.status == state.value  # an illegal event changes nothing
                assert str(info.value) == f"{machine.entity} 7: cannot {event} in state {state.value}"
            else:
                assert machine.fire(thing, event) == expected


@given(st.data())
def test_random_walks_stay_inside_the_machine(data: st.DataObject) -> None:
    machine = data.draw(st.sampled_from(MACHINES))
    state = data.draw(st.sampled_from(list(machine.states)))
    events = sorted({e for _, e in machine.table})
    for event in data.draw(st.lists(st.sampled_from(events), max_size=30)):
        thing = _Thing(state.value)
        if machine.allowed(state, event):
            state = machine.fire(thing, event)
            assert state in machine.states
        else:
            with pytest.raises(IllegalTransition):
                machine.fire(thing, event)


@given(st.lists(st.sampled_from(list(OrderEvent)), max_size=40))
def test_terminal_states_are_terminal(events: list[OrderEvent]) -> None:
    thing = _Thing("created")
    for event in events:
        before = thing.status
        try:
            ORDER.fire(thing, event)
        except IllegalTransition:
            continue
        assert before not in ("delivered", "cancelled")


def test_a_work_order_reports_only_while_running() -> None:
    assert WORK_ORDER.allowed(WorkOrderState.STARTED, WorkOrderEvent.REPORT)
    assert not WORK_ORDER.allowed(WorkOrderState.PAUSED, WorkOrderEvent.REPORT)
    assert not WORK_ORDER.allowed(WorkOrderState.COMPLETED, WorkOrderEvent.CANCEL)


def _orders(backend: Backend, statuses: list[OrderState]) -> list[int]:
    from fulfil.db import session_scope

    now = dt.datetime(2026, 11, 23, 12)
    with session_scope(backend.engine) as s:
        m = Merchant(code="M1", name="m", town="虞山", lon=120.7, lat=31.6)
        shop = PlatformShop(platform=Platform.DOUDIAN, shop_code="S1", name="s", merchant=m)
        s.add_all([m, shop])
        s.flush()
        orders = [
            Order(
                platform=Platform.DOUDIAN,
                shop_id=shop.id,
                platform_order_id=f"P{i}",
                merchant_id=m.id,
                status=st_,
                created_at=now,
                paid_at=now,
                ship_by=now + dt.timedelta(hours=48),
                province="32",
                city="苏州",
                receiver_sealed=b"x",
            )
            for i, st_ in enumerate(statuses)
        ]
        s.add_all(orders)
        s.flush()
        return [o.id for o in orders]


def test_bulk_transition_is_all_or_nothing_and_names_the_order(clean: Backend) -> None:
    from fulfil.db import session_scope

    ids = _orders(clean, [OrderState.PAID, OrderState.PAID, OrderState.SHIPPED, OrderState.PAID])
    with pytest.raises(IllegalTransition, match=rf"^order {ids[2]}: cannot batch in state shipped$"):
        with session_scope(clean.engine) as s:
            ORDER.fire_ids(s, Order, ids, OrderEvent.BATCH)
    with session_scope(clean.engine) as s:
        assert [o.status for o in s.scalars(select(Order).order_by(Order.id))] == [
            OrderState.PAID,
            OrderState.PAID,
            OrderState.SHIPPED,
            OrderState.PAID,
        ]
        changed = ORDER.fire_ids(s, Order, [ids[0], ids[1], ids[3]], OrderEvent.BATCH)
    assert changed == 3
    with session_scope(clean.engine) as s:
        statuses = s.scalars(select(Order.status).order_by(Order.id)).all()
    assert statuses == [OrderState.BATCHED, OrderState.BATCHED, OrderState.SHIPPED, OrderState.BATCHED]


def test_bulk_transition_of_more_ids_than_one_statement_lists(clean: Backend) -> None:
    # 12,001 orders: PostgreSQL takes them as one array, SQLite in chunks of 5,000; one illegal among them
    # fails the whole transition either way
    from fulfil.db import session_scope

    statuses = [OrderState.PAID] * 12_001
    statuses[11_000] = OrderState.SHIPPED
    ids = _orders(clean, statuses)
    with pytest.raises(IllegalTransition, match=rf"^order {ids[11_000]}: cannot batch in state shipped$"):
        with session_scope(clean.engine) as s:
            ORDER.fire_ids(s, Order, ids, OrderEvent.BATCH)
    legal = ids[:11_000] + ids[11_001:]
    with session_scope(clean.engine) as s:
        assert ORDER.fire_ids(s, Order, legal, OrderEvent.BATCH) == 12_000
    with session_scope(clean.engine) as s:
        counts = {
            row[0]: row[1] for row in s.execute(select(Order.status, func.count()).group_by(Order.status))
        }
    assert counts == {OrderState.BATCHED: 12_000, OrderState.SHIPPED: 1}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(list(OrderState)), min_size=1, max_size=8), st.sampled_from(list(OrderEvent)))
def test_bulk_and_single_paths_agree(backend: Backend, statuses: list[OrderState], event: OrderEvent) -> None:
    from fulfil.db import session_scope

    clean = backend
    clean.truncate()  # every example starts from empty tables
    ids = _orders(clean, statuses)
    legal = all(ORDER.allowed(s, event) for s in statuses)
    try:
        with session_scope(clean.engine) as s:
            ORDER.fire_ids(s, Order, ids, event)
    except IllegalTransition:
        assert not legal
    else:
        assert legal
    with session_scope(clean.engine) as s:
        after = s.scalars(select(Order.status).order_by(Order.id)).all()
    expected = [ORDER.next(st_, event) if legal else st_ for st_ in statuses]
    assert after == expected


def test_batch_machine() -> None:
    b = Batch(id=3, status="open")
    from fulfil.domain.states import BatchEvent

    BATCH.fire(b, BatchEvent.CLOSE)
    with pytest.raises(IllegalTransition, match="batch 3: cannot close in state closed"):
        BATCH.fire(b, BatchEvent.CLOSE)
