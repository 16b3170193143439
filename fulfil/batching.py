"""Batching: paid, unallocated orders collect in the open batch of their time window until the batch closes.

A batch closes when its window ends (reason ``window``), when it reaches its size limit (``size``), or when an
operator says so (``operator``). Every close fires the batch state machine's ``CLOSE`` and writes a
``plan_batch`` job to the outbox in the same transaction, so a closed batch is always planned, once.

Windows are aligned to multiples of their length since the Unix epoch (naive UTC): with 15 minutes,
10:00–10:15, 10:15–10:30, ... An order belongs to the window of its payment time (``paid_at``; a paid order
without one stays in the pool, with a warning, until it is set). The pool is every order in state ``paid``:
the state means "waits for a batch", so an order released from a failed batch joins again. An order that
becomes visible after its window's batch closed gets a fresh batch for that window, which the same tick
closes: late orders are planned at once rather than held back.

Columnar: orders are read as two numpy columns and moved with bulk UPDATEs (by (paid_at, id) range on
PostgreSQL, by id on SQLite); no ORM object per order.
The clock is injected (``now``), so a test or a simulated day decides what time it is.

Batching writers are serialised (a transaction-scoped advisory lock on PostgreSQL, the database write lock on
SQLite): two ticks, or a tick and an operator, never assign the same order twice or close a batch twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import column, func, insert, literal, select, table, text, tuple_, update
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.domain.models import Batch, Order
from fulfil.domain.states import BATCH, ORDER, BatchEvent, BatchState, OrderEvent, OrderState
from fulfil.jobs import outbox

log = logging.getLogger(__name__)

DEFAULT_WINDOW = dt.timedelta(minutes=15)
DEFAULT_MAX_SIZE = 50_000
CLOSE_REASONS = ("window", "size", "operator")
_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)
_READ_CHUNK = 100_000
_ID_CHUNK = 10_000  # ids per IN list: well inside SQLite's and PostgreSQL's bound-parameter limits
_LOCK_KEY = 0x66756C_6261  # "ful" "ba": the advisory lock every batching writer takes


class BatchNotFound(LookupError):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def window_of(t: dt.datetime, window: dt.timedelta = DEFAULT_WINDOW) -> tuple[dt.datetime, dt.datetime]:
    """The window ``[start, end)`` that ``t`` falls in."""
    _check_window(window)
    start = _EPOCH + ((t - _EPOCH) // window) * window
    return start, start + window


def _check_window(window: dt.timedelta) -> None:
    if window <= dt.timedelta(0) or window % dt.timedelta(seconds=1):
        raise ValueError(f"batch window must be a positive whole number of seconds, got {window}")


def _serialise(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    else:
        db.sqlite_write_lock(session)


# --- assignment ----------------------------------------------------------------------------------------


def assign_orders(
    session: Session,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    max_size: int = DEFAULT_MAX_SIZE,
) -> list[int]:
    """Put every order in state ``paid`` (paid at or before ``now``) into the open batch of its window.

    Fires ``BATCH`` on the orders in bulk, keeps ``order_count``, closes a batch that reaches ``max_size``
    (reason ``size``) and continues in a new one. Returns the ids of the batches that received orders.
    """
    _check_window(window)
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}")
    _serialise(session)
    ids, paid_us = _unbatched_orders(session, now)
    if ids.size == 0:
        return []
    window_us = window // _US
    starts = (paid_us // window_us) * window_us
    cuts = np.flatnonzero(np.diff(starts)) + 1
    group_starts = np.concatenate(([0], cuts))
    group_ends = np.concatenate((cuts, [ids.size]))

    open_batches: dict[tuple[dt.datetime, dt.datetime], tuple[int, int]] = {}
    for bid, ws, we, count in session.execute(
        select(Batch.id, Batch.window_start, Batch.window_end, Batch.order_count)
        .where(Batch.status == BatchState.OPEN)
        .order_by(Batch.id)
    ):
        open_batches[(ws, we)] = (bid, count)

    touched: list[int] = []
    for lo, hi in zip(group_starts.tolist(), group_ends.tolist(), strict=True):
        ws = _EPOCH + int(starts[lo]) * _US
        key = (ws, ws + window)
        current = open_batches.pop(key, None)
        pos = lo
        while pos < hi:
            if current is None:
                current = (_open_batch(session, *key), 0)
            bid, count = current
            take = min(max_size - count, hi - pos)
            if take > 0:
                count += _move(session, bid, ids[pos : pos + take], paid_us[pos : pos + take])
                pos += take
                if not touched or touched[-1] != bid:
                    touched.append(bid)
            current = (bid, count)
            if count >= max_size:
                _close(session, [bid], "size", now)
                current = None
    if touched:
        log.info("batching: %d order(s) assigned to batch(es) %s", ids.size, _ids(touched))
    return touched


def _unbatched_orders(
    session: Session, now: dt.datetime
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Ids and payment times (µs since the epoch) of the pool, sorted by payment time, then id."""
    unknown = session.scalar(
        select(func.count()).where(Order.status == OrderState.PAID, Order.paid_at.is_(None))
    )
    if unknown:
        log.warning(
            "batching: %d paid order(s) have no paid_at and stay in the pool until it is set", unknown
        )
    result = session.execute(
        select(Order.id, Order.paid_at)
        .where(Order.status == OrderState.PAID, Order.paid_at <= now)
        .execution_options(yield_per=_READ_CHUNK)
    )
    id_parts: list[npt.NDArray[np.int64]] = []
    time_parts: list[npt.NDArray[np.int64]] = []
    for part in result.partitions():
        id_parts.append(np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part)))
        times = np.array([r[1] for r in part], dtype="datetime64[us]")
        time_parts.append(times.astype(np.int64))
    if not id_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    ids, paid_us = np.concatenate(id_parts), np.concatenate(time_parts)
    order = np.lexsort((ids, paid_us))
    return ids[order], paid_us[order]


def _open_batch(session: Session, start: dt.datetime, end: dt.datetime) -> int:
    bid: int = session.execute(
        insert(Batch)
        .values(status=BatchState.OPEN, window_start=start, window_end=end, order_count=0)
        .returning(Batch.id)
    ).scalar_one()
    return bid


def _move(session: Session, batch_id: int, ids: npt.NDArray[np.int64], paid_us: npt.NDArray[np.int64]) -> int:
    """Move the pool's orders ``ids`` (a run in (paid_at, id) order) into the batch; returns the count."""
    if session.get_bind().dialect.name == "postgresql":
        moved = _move_range(session, batch_id, ids, paid_us)
    else:
        moved = _move_ids(session, batch_id, ids)
    if moved:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(order_count=Batch.order_count + moved)
            .execution_options(synchronize_session=False)
        )
    return moved


def _move_range(
    session: Session, batch_id: int, ids: npt.NDArray[np.int64], paid_us: npt.NDArray[np.int64]
) -> int:
    """PostgreSQL: select the run by its (paid_at, id) bounds on the (status, paid_at) index.

    Id lists would be exact too, but the planner, misled by statistics gathered before the orders were
    batched, picks the status or batch index for them and turns a linear pass into a quadratic one. An order
    that becomes paid inside the run's bounds while we work joins it: it belongs to that window anyway.
    """
    lo = (_EPOCH + int(paid_us[0]) * _US, int(ids[0]))
    hi = (_EPOCH + int(paid_us[-1]) * _US, int(ids[-1]))
    key = tuple_(Order.paid_at, Order.id)
    in_run = (
        (Order.status == OrderState.PAID)
        & Order.paid_at.between(lo[0], hi[0])
        & (key >= tuple_(literal(lo[0]), literal(lo[1])))
        & (key <= tuple_(literal(hi[0]), literal(hi[1])))
    )
    return ORDER.fire_where(session, Order, in_run, OrderEvent.BATCH, {"batch_id": batch_id})


_RUN = table("batching_run", column("id"))  # SQLite: a temporary table holding one run's order ids


def _move_ids(session: Session, batch_id: int, ids: npt.NDArray[np.int64]) -> int:
    """SQLite: by primary key, through a temporary table of the run's ids, one statement per step.

    Chunked id lists would let SQLite's planner scan the (status, paid_at) index once per chunk (quadratic);
    one statement per run is linear whichever access path it picks. The write lock taken at the start means
    nothing else changed these orders since they were read; the state machine still checks every row.
    """
    session.execute(text("CREATE TEMP TABLE IF NOT EXISTS batching_run (id INTEGER PRIMARY KEY)"))
    session.execute(text("DELETE FROM batching_run"))
    conn = session.connection()
    ids = np.sort(ids)  # appended in key order, the temporary table's b-tree never splits mid-page
    for start in range(0, ids.size, _READ_CHUNK):
        rows = [(i,) for i in ids[start : start + _READ_CHUNK].tolist()]
        conn.exec_driver_sql("INSERT INTO batching_run (id) VALUES (?)", rows)
    in_run = Order.id.in_(select(_RUN.c.id))
    moved = ORDER.fire_where(session, Order, in_run, OrderEvent.BATCH, {"batch_id": batch_id})
    session.execute(text("DELETE FROM batching_run"))
    return moved


# --- closing ---------------------------------------------------------------------------------------------


def _close(session: Session, batch_ids: list[int], reason: str, now: dt.datetime) -> None:
    for start in range(0, len(batch_ids), _ID_CHUNK):
        chunk = batch_ids[start : start + _ID_CHUNK]
        BATCH.fire_where(
            session, Batch, Batch.id.in_(chunk), BatchEvent.CLOSE, {"close_reason": reason, "closed_at": now}
        )
    for bid in batch_ids:
        outbox.enqueue(session, "plan_batch", bid)
    log.info("batching: closed batch(es) %s (%s); planning enqueued", _ids(batch_ids), reason)


def close_due_batches(session: Session, now: dt.datetime) -> list[int]:
    """Close every open batch whose window has ended by ``now`` (reason ``window``); returns their ids."""
    _serialise(session)
    due = list(
        session.scalars(
            select(Batch.id)
            .where(Batch.status == BatchState.OPEN, Batch.window_end <= now)
            .order_by(Batch.id)
        )
    )
    if due:
        _close(session, due, "window", now)
    return due


def close_batch(
    session: Session, batch_id: int, reason: str = "operator", *, now: dt.datetime | None = None
) -> bool:
    """Close one batch (an operator's trigger). True if it closed now, False if it was already closed.

    A batch already planned or failed raises :class:`~fulfil.domain.states.IllegalTransition`; a missing
    batch raises :class:`BatchNotFound`. ``now`` (default: the current time) is recorded as ``closed_at``.
    """
    if reason not in CLOSE_REASONS:
        raise ValueError(f"close reason {reason!r} is not one of {', '.join(CLOSE_REASONS)}")
    _serialise(session)
    status = session.execute(select(Batch.status).where(Batch.id == batch_id)).scalar_one_or_none()
    if status is None:
        raise BatchNotFound(f"batch {batch_id} does not exist")
    if status == BatchState.CLOSED:
        return False
    _close(session, [batch_id], reason, now or utcnow())
    return True


@dataclass(frozen=True)
class TickResult:
    assigned_to: list[int]  # batches that received orders
    closed: list[int]  # batches closed by their window


def tick(
    session: Session,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    max_size: int = DEFAULT_MAX_SIZE,
) -> TickResult:
    """One periodic step: assign the pool to batches, then close the batches whose window has ended."""
    assigned = assign_orders(session, now, window, max_size)
    return TickResult(assigned, close_due_batches(session, now))


def close_due_batches_job() -> None:
    """The ``close_due_batches`` task: a tick at the current time, in its own transaction. Idempotent."""
    from fulfil import db

    with db.session_scope() as session:
        tick(session, utcnow())


# --- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRow:
    id: int
    status: str
    window_start: dt.datetime
    window_end: dt.datetime
    order_count: int
    close_reason: str | None
    closed_at: dt.datetime | None


def list_batches(session: Session, status: str | None = None, limit: int = 50) -> list[BatchRow]:
    """The newest ``limit`` batches, newest first, optionally only those in ``status``."""
    query = select(
        Batch.id,
        Batch.status,
        Batch.window_start,
        Batch.window_end,
        Batch.order_count,
        Batch.close_reason,
        Batch.closed_at,
    )
    if status is not None:
        query = query.where(Batch.status == BatchState(status))
    rows = session.execute(query.order_by(Batch.id.desc()).limit(limit))
    return [BatchRow(r[0], str(r[1]), *r[2:]) for r in rows]


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:10]))
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
