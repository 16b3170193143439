"""Batching: time windows, the size limit, the operator's trigger, idempotency; a close enqueues planning."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import func, select, update

import fulfil.cli.worker  # noqa: F401  (registers the commands on ``main``)
from fulfil import batching
from fulfil.batching import BatchNotFound, assign_orders, close_batch, close_due_batches, window_of
from fulfil.cli import main
from fulfil.db import session_scope
from fulfil.domain.models import Batch, Order, OutboxJob
from fulfil.domain.states import BatchState, IllegalTransition, OrderState
from fulfil.jobs import outbox, tasks
from tests.conftest import Backend
from tests.jobs_support import T0, add_orders

M = dt.timedelta(minutes=1)


def _batches(b: Backend) -> list[tuple[int, str, dt.datetime, int, str | None]]:
    with b.engine.connect() as conn:
        rows = conn.execute(
            select(
                Batch.id, Batch.status, Batch.window_start, Batch.order_count, Batch.close_reason
            ).order_by(Batch.id)
        )
        return [(r[0], str(r[1]), r[2], r[3], r[4]) for r in rows]


def _orders(b: Backend, ids: list[int]) -> dict[int, tuple[str, int | None]]:
    with b.engine.connect() as conn:
        rows = conn.execute(select(Order.id, Order.status, Order.batch_id).where(Order.id.in_(ids)))
        return {r[0]: (str(r[1]), r[2]) for r in rows}


def _plan_jobs(b: Backend) -> list[list[object]]:
    with b.engine.connect() as conn:
        return [
            list(r)
            for r in conn.scalars(
                select(OutboxJob.args).where(OutboxJob.task == "plan_batch").order_by(OutboxJob.id)
            )
        ]


def test_window_of_aligns_to_the_epoch() -> None:
    assert window_of(dt.datetime(2026, 11, 23, 20, 14, 59)) == (T0, T0 + 15 * M)
    assert window_of(dt.datetime(2026, 11, 23, 20, 15)) == (T0 + 15 * M, T0 + 30 * M)
    assert window_of(T0 + 7 * M, dt.timedelta(hours=1)) == (T0, T0 + 60 * M)
    with pytest.raises(ValueError, match="whole number of seconds"):
        window_of(T0, dt.timedelta(milliseconds=1500))


def test_orders_go_to_the_batch_of_their_payment_window(clean: Backend) -> None:
    paid = [T0 + 1 * M, T0 + 14 * M, T0 + 16 * M, T0 + 31 * M, T0 + 50 * M]  # the last is after `now`
    ids = add_orders(clean.engine, paid)
    unpaid = add_orders(clean.engine, [None], status=OrderState.CREATED, first=100)
    cancelled = add_orders(clean.engine, [T0 + 2 * M], status=OrderState.CANCELLED, first=200)
    now = T0 + 40 * M
    with session_scope(clean.engine) as s:
        touched = assign_orders(s, now)
    batches = _batches(clean)
    assert [(st, ws, n, r) for _, st, ws, n, r in batches] == [
        ("open", T0, 2, None),
        ("open", T0 + 15 * M, 1, None),
        ("open", T0 + 30 * M, 1, None),
    ]
    assert touched == [b[0] for b in batches]
    state = _orders(clean, ids + unpaid + cancelled)
    b1, b2, b3 = (b[0] for b in batches)
    assert [state[i] for i in ids] == [
        ("batched", b1),
        ("batched", b1),
        ("batched", b2),
        ("batched", b3),
        ("paid", None),  # paid after `now`: not yet
    ]
    assert state[unpaid[0]] == ("created", None)
    assert state[cancelled[0]] == ("cancelled", None)

    # Nothing new: a second assignment changes nothing; later orders join the open batch of their window.
    with session_scope(clean.engine) as s:
        assert assign_orders(s, now) == []
    late = add_orders(clean.engine, [T0 + 32 * M, T0 + 33 * M], first=300)
    with session_scope(clean.engine) as s:
        assert assign_orders(s, now) == [b3]
    assert _batches(clean)[2][3] == 3
    assert {_orders(clean, late)[i] for i in late} == {("batched", b3)}


def test_windows_close_when_they_end_and_each_close_enqueues_planning(clean: Backend) -> None:
    add_orders(clean.engine, [T0 + 1 * M, T0 + 16 * M, T0 + 31 * M])
    with session_scope(clean.engine) as s:
        b1, b2, _ = assign_orders(s, T0 + 40 * M)
    with session_scope(clean.engine) as s:
        assert close_due_batches(s, T0 + 29 * M) == [b1]
    with session_scope(clean.engine) as s:
        assert close_due_batches(s, T0 + 30 * M) == [b2]  # the window's end is exclusive
    with session_scope(clean.engine) as s:
        assert close_due_batches(s, T0 + 30 * M) == []
    batches = _batches(clean)
    assert [(b[1], b[4]) for b in batches] == [("closed", "window"), ("closed", "window"), ("open", None)]
    with clean.engine.connect() as conn:
        closed_at = conn.execute(select(Batch.closed_at).where(Batch.id == b2)).scalar_one()
    assert closed_at == T0 + 30 * M  # the injected clock, not the wall clock
    assert _plan_jobs(clean) == [[b1], [b2]]
    # Drained after each commit into the planning queue, as ids only.
    plan = Queue("plan", connection=clean.redis)
    assert [j.args for j in plan.get_jobs()] == [("plan_batch", b1), ("plan_batch", b2)]


def test_a_batch_reaching_its_size_closes_and_a_new_one_opens(clean: Backend) -> None:
    ids = add_orders(clean.engine, [T0 + i * 10 * dt.timedelta(seconds=1) for i in range(7)])
    with session_scope(clean.engine) as s:
        touched = assign_orders(s, T0 + 5 * M, max_size=3)
    batches = _batches(clean)
    assert [(b[1], b[3], b[4]) for b in batches] == [
        ("closed", 3, "size"),
        ("closed", 3, "size"),
        ("open", 1, None),
    ]
    assert touched == [b[0] for b in batches]
    assert _plan_jobs(clean) == [[batches[0][0]], [batches[1][0]]]
    # Earliest payments first: the first three orders fill the first batch.
    state = _orders(clean, ids)
    assert [state[i][1] for i in ids] == [batches[0][0]] * 3 + [batches[1][0]] * 3 + [batches[2][0]]
    # An open batch already holding orders only takes what fits.
    add_orders(clean.engine, [T0 + 2 * M, T0 + 3 * M, T0 + 4 * M], first=100)
    with session_scope(clean.engine) as s:
        assign_orders(s, T0 + 5 * M, max_size=3)
    assert [(b[1], b[3]) for b in _batches(clean)][2:] == [("closed", 3), ("open", 1)]


def test_operator_close_is_idempotent_and_checked(clean: Backend) -> None:
    add_orders(clean.engine, [T0 + 1 * M])
    with session_scope(clean.engine) as s:
        (bid,) = assign_orders(s, T0 + 2 * M)
    with session_scope(clean.engine) as s:
        assert close_batch(s, bid, now=T0 + 3 * M) is True
    with session_scope(clean.engine) as s:
        assert close_batch(s, bid, now=T0 + 9 * M) is False  # already closed: nothing happens
    assert [(b[1], b[4]) for b in _batches(clean)] == [("closed", "operator")]
    with clean.engine.connect() as conn:
        assert conn.execute(select(Batch.closed_at)).scalar_one() == T0 + 3 * M
    assert _plan_jobs(clean) == [[bid]]

    with (
        pytest.raises(BatchNotFound, match=f"batch {bid + 1} does not exist"),
        session_scope(clean.engine) as s,
    ):
        close_batch(s, bid + 1)
    with pytest.raises(ValueError, match="close reason 'whim'"), session_scope(clean.engine) as s:
        close_batch(s, bid, reason="whim")

    with clean.engine.begin() as conn:
        conn.execute(update(Batch).values(status=BatchState.PLANNED))
    with (
        pytest.raises(IllegalTransition, match=f"batch {bid}: cannot close in state planned"),
        session_scope(clean.engine) as s,
    ):
        close_batch(s, bid)
    assert _plan_jobs(clean) == [[bid]]


def test_the_tick_task_run_twice_closes_once(clean: Backend) -> None:
    """The handler's effect happens once however often the job runs (it reads the wall clock: the window is
    long past)."""
    long_ago = dt.datetime(2024, 6, 18, 20, 0)
    add_orders(clean.engine, [long_ago + 1 * M, long_ago + 2 * M])
    for _ in range(2):
        tasks.run("close_due_batches")
    batches = _batches(clean)
    assert [(b[1], b[3], b[4]) for b in batches] == [("closed", 2, "window")]
    assert _plan_jobs(clean) == [[batches[0][0]]]
    with clean.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Order).where(Order.status == "batched")) == 2


def test_late_orders_of_a_closed_window_get_a_batch_closed_in_the_same_tick(clean: Backend) -> None:
    add_orders(clean.engine, [T0 + 1 * M])
    with session_scope(clean.engine) as s:
        first = batching.tick(s, T0 + 16 * M)
    assert first.closed == first.assigned_to
    add_orders(clean.engine, [T0 + 5 * M], first=100)  # paid in the old window, visible only now
    with session_scope(clean.engine) as s:
        second = batching.tick(s, T0 + 17 * M)
    assert second.assigned_to == second.closed and second.closed != first.closed
    assert [(b[1], b[2], b[3]) for b in _batches(clean)] == [("closed", T0, 1), ("closed", T0, 1)]


def test_bad_arguments_are_named(clean: Backend) -> None:
    with pytest.raises(ValueError, match="max_size must be at least 1"), session_scope(clean.engine) as s:
        assign_orders(s, T0, max_size=0)
    with pytest.raises(ValueError, match="batch window"), session_scope(clean.engine) as s:
        assign_orders(s, T0, window=dt.timedelta(0))


def test_illegal_order_transition_is_refused_in_bulk(clean: Backend) -> None:
    """The bulk path goes through the order state machine: firing BATCH on orders that are not paid raises,
    naming the first offending order, and changes nothing."""
    from fulfil.domain.states import ORDER, OrderEvent

    ids = add_orders(clean.engine, [T0, T0], status=OrderState.PAID)
    shipped = add_orders(clean.engine, [T0], status=OrderState.SHIPPED, first=100)
    with (
        pytest.raises(IllegalTransition, match=f"order {shipped[0]}: cannot batch in state shipped"),
        session_scope(clean.engine) as s,
    ):
        ORDER.fire_where(s, Order, Order.id.in_(ids + shipped), OrderEvent.BATCH)
    assert {v[0] for v in _orders(clean, ids).values()} == {"paid"}


def test_cli_tick_close_and_list(clean: Backend) -> None:
    add_orders(clean.engine, [T0 + 1 * M, T0 + 20 * M])
    runner = CliRunner()
    result = runner.invoke(main, ["batches", "tick", "--now", (T0 + 25 * M).isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 batch(es) closed by their window" in result.output
    listed = runner.invoke(main, ["batches", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["status"], r["order_count"], r["close_reason"]) for r in rows] == [
        ("open", 1, None),
        ("closed", 1, "window"),
    ]
    open_id = rows[0]["id"]
    closed = runner.invoke(main, ["batches", "close", str(open_id)])
    assert closed.exit_code == 0 and "closed; planning enqueued" in closed.output
    again = runner.invoke(main, ["batches", "close", str(open_id)])
    assert again.exit_code == 0 and "already closed" in again.output
    missing = runner.invoke(main, ["batches", "close", "999999"])
    assert missing.exit_code == 1 and "batch 999999 does not exist" in missing.output
    bad = runner.invoke(main, ["batches", "tick", "--now", "yesterday"])
    assert bad.exit_code == 2 and "not an ISO date-time" in bad.output
    stats = runner.invoke(main, ["outbox", "stats", "--json"])
    assert json.loads(stats.output)["tasks"]["plan_batch"] == {
        "pending": 0,
        "enqueued": 2,
        "oldest_pending": None,
    }
    assert outbox.stats(clean.engine)[0].task == "plan_batch"


def test_the_pool_is_every_paid_order(clean: Backend, caplog: pytest.LogCaptureFixture) -> None:
    """An order released from a failed batch (paid again, old batch id still on it) joins a new batch; a paid
    order without a payment time stays in the pool, and the tick says so."""
    (released,) = add_orders(clean.engine, [T0 + 1 * M])
    with session_scope(clean.engine) as s:
        (failed,) = assign_orders(s, T0 + 2 * M)
    with clean.engine.begin() as conn:
        conn.execute(update(Batch).values(status=BatchState.FAILED))
        conn.execute(update(Order).values(status=OrderState.PAID))  # released; batch_id still says `failed`
    (no_time,) = add_orders(clean.engine, [None], first=100)
    with caplog.at_level("WARNING", logger="fulfil.batching"), session_scope(clean.engine) as s:
        (again,) = assign_orders(s, T0 + 3 * M)
    assert again != failed
    state = _orders(clean, [released, no_time])
    assert state == {released: ("batched", again), no_time: ("paid", None)}
    assert "1 paid order(s) have no paid_at and stay in the pool" in caplog.text
