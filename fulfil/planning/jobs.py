"""The ``plan_batch`` job: load a closed batch, solve it, write the plan — once.

Idempotent: a batch that is not ``closed`` (already planned, failed, or still open) is left alone. Plans are
written one at a time: every batch takes from the same capacity and stock, so two plans made side by side
from the same snapshot would both spend the same free minutes. The planning lock (a transaction-scoped
advisory lock on PostgreSQL, then ``SELECT ... FOR UPDATE`` of the batch row; the database write lock on
SQLite, taken before anything is read) covers load, solve and write in one transaction.

Batches are planned in the order they closed (closing time, then id), whichever worker gets to which job
first: ``plan_batch(b)`` first plans every batch that closed before ``b`` and still waits. Each batch spends
what its predecessors left, so a fixed order makes a day's plan reproducible.

A solve that raises leaves the batch ``failed`` with its orders back in the pool, a failed ``SolverRun``
and an exception item, then re-raises so the worker records the job as failed.

A batch with more cells than ``FULFIL_SHARD_CELLS`` is cut into independent shards solved by separate jobs
``plan_shard(batch_id, shard)`` on any worker, and merged by ``plan_batch(batch_id)`` once all are solved
(:mod:`fulfil.planning.shards`). Batches that closed after it wait until it is planned or failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from fulfil import db, settings
from fulfil.domain.models import Batch, ExceptionItem, Order, SolverRun
from fulfil.domain.states import BATCH, ORDER, BatchEvent, BatchState, OrderEvent, OrderState
from fulfil.planning import shards
from fulfil.planning.explain import record_explanations
from fulfil.planning.load import load_batch
from fulfil.planning.write import PlanSummary, write_plan
from solvers.allocation import AllocationProblem, AllocationResult, allocate, solve

log = logging.getLogger(__name__)

_PLAN_LOCK_KEY = 0x66756C_706C  # "ful" "pl": taken by every plan writer


def take_planning_lock(session: Session | Connection) -> None:
    """Take the belt's planning lock for this transaction (PostgreSQL; SQLite has one writer anyway).

    Every plan writer holds it, and so does anything that frees what a planner may be spending (a
    cancellation of a planned order); take it before locking any order row, as the planner does.
    """
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PLAN_LOCK_KEY})


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _lock_batch(session: Session, batch_id: int) -> BatchState | None:
    """Take the planning lock and return the batch's state (None if there is no such batch)."""
    if session.get_bind().dialect.name == "postgresql":
        take_planning_lock(session)
        query = select(Batch.status).where(Batch.id == batch_id).with_for_update()
    else:
        db.sqlite_write_lock(session)  # before our snapshot begins: another planner cannot slip in
        query = select(Batch.status).where(Batch.id == batch_id)
    status = session.execute(query).scalar_one_or_none()
    return None if status is None else BatchState(status)


def plan_session(session: Session, batch_id: int) -> PlanSummary | shards.ShardsPending | None:
    """Plan batch ``batch_id`` in ``session``'s transaction; None if it is not waiting to be planned, and
    :class:`~fulfil.planning.shards.ShardsPending` if it was cut into shards that are not all solved yet."""
    status = _lock_batch(session, batch_id)
    if status is None:
        raise LookupError(f"batch {batch_id} does not exist")
    if status != BatchState.CLOSED:
        log.info("plan_batch %d: batch is %s, nothing to do", batch_id, status)
        return None
    started = _utcnow()
    t0 = time.perf_counter()
    loaded = load_batch(session, batch_id)
    load_s = time.perf_counter() - t0
    parameters: dict[str, object] = {"load_seconds": round(load_s, 3)}
    sharded = shards.merge_or_start(session, loaded)
    if isinstance(sharded, shards.ShardsPending):
        log.info("plan_batch %d: %d of %d shards solved", batch_id, sharded.solved, sharded.shards)
        return sharded
    if sharded is None:
        result = allocate_batch(loaded.problem)
    else:
        result, started = sharded.result, sharded.started_at
        parameters.update(shards=sharded.shards, shards_solved_again=sharded.resolved)
    t1 = time.perf_counter()
    summary = write_plan(session, loaded, result, started_at=started, parameters=parameters)
    try:
        # a savepoint: an explanation that cannot be made leaves the plan itself standing
        with session.begin_nested():
            record_explanations(session, loaded, result, summary.solver_run_id)
    except Exception:
        log.exception("plan_batch %d: the plan's explanation was not recorded", batch_id)
    if sharded is not None:
        shards.enqueue_waiting(session, batch_id)
    log.info(
        "plan_batch %d: %d orders allocated, %d unfilled, %d new work orders, %d grown, %d parcels; "
        "objective %d fen; load %.2fs, solve %.2fs, write %.2fs",
        batch_id,
        summary.orders_allocated,
        summary.orders_unfilled,
        summary.work_orders,
        summary.work_orders_grown,
        summary.parcels,
        summary.objective_fen,
        load_s,
        result.seconds,
        time.perf_counter() - t1,
    )
    return summary


def allocate_batch(problem: AllocationProblem) -> AllocationResult:
    """The configured planner on one batch's problem. The seed is a setting, not the batch id: ids come from
    sequences that a cleared database does not reset, and the same orders on the same belt state must plan
    the same way."""
    s = settings.get()
    if s.planner == "cascade":
        return allocate(problem)
    return solve(problem, seconds=s.plan_seconds, seed=s.plan_seed)


def plan_batch(batch_id: int) -> None:
    """The ``plan_batch`` task (ids only): plan the batches that closed before this one and still wait, then
    this one; each in its own transaction, each only if it is still closed. A batch cut into shards stops the
    line until it is planned: its merge enqueues the planning of the batches after it.
    """
    eng = db.engine()
    with eng.connect() as conn:
        mine = conn.execute(select(Batch.closed_at).where(Batch.id == batch_id)).one_or_none()
        earlier: list[int] = []
        if mine is not None and mine[0] is not None:
            earlier = list(
                conn.scalars(
                    select(Batch.id)
                    .where(
                        Batch.status == BatchState.CLOSED,
                        Batch.id != batch_id,
                        (Batch.closed_at < mine[0]) | ((Batch.closed_at == mine[0]) & (Batch.id < batch_id)),
                    )
                    .order_by(Batch.closed_at, Batch.id)
                )
            )
    for bid in earlier:
        try:
            if not plan_one(bid):
                log.info(
                    "plan_batch %d: earlier batch %d waits for its shards; planned after it", batch_id, bid
                )
                return
        except Exception:
            # recorded as a failed batch by plan_one; this job's own batch still gets its turn
            log.warning("plan_batch %d: earlier batch %d failed", batch_id, bid)
    plan_one(batch_id)


def plan_one(batch_id: int) -> bool:
    """Plan one batch if it is closed, in one transaction; a failure marks it failed and re-raises. False
    while the batch waits for its shards (nothing after it may be planned yet), else True."""
    eng = db.engine()
    started = _utcnow()
    try:
        with db.session_scope(eng) as session:
            outcome = plan_session(session, batch_id)
    except LookupError:
        raise
    except Exception as exc:
        log.exception("plan_batch %d failed", batch_id)
        with db.session_scope(eng) as session:
            fail_batch(session, batch_id, f"{type(exc).__name__}: {exc}", started)
        raise
    return not isinstance(outcome, shards.ShardsPending)


def plan_shard(batch_id: int, k: int) -> None:
    """The ``plan_shard`` task: solve shard ``k`` of a cut batch and store it (once); the last one stored
    enqueues the merge. A shard that raises fails the batch, marks its row failed and re-raises."""
    eng = db.engine()
    started = _utcnow()
    # the solve runs outside any lock (it is the part that runs in parallel); the merge checks, under the
    # planning lock, that each shard's data is still what was solved
    try:
        with db.session_scope(eng) as session:
            todo = shards.shard_to_solve(session, batch_id, k)
            if todo is None:
                log.info("plan_batch %d shard %d: already solved, or the batch is not closed", batch_id, k)
                return
            loaded = load_batch(session, batch_id)
        n, seed = todo
        solved = shards.solve_stored(loaded, k, n, seed)
    except Exception as exc:
        log.exception("plan_batch %d shard %d failed", batch_id, k)
        message = f"shard {k}: {type(exc).__name__}: {exc}"
        with db.session_scope(eng) as session:
            if fail_batch(session, batch_id, message, started):
                shards.mark_failed(session, batch_id, k, message)
                shards.enqueue_waiting(session, batch_id)
        raise
    with db.session_scope(eng) as session:
        if shards.store(session, batch_id, k, solved):
            log.info("plan_batch %d shard %d of %d: solved and stored", batch_id, k, n)


def fail_batch(session: Session, batch_id: int, message: str, started_at: dt.datetime) -> bool:
    """Mark a closed batch failed: its orders back to the pool, a failed solver run, an exception item."""
    if _lock_batch(session, batch_id) != BatchState.CLOSED:
        return False
    in_batch = (Order.batch_id == batch_id) & (Order.status == OrderState.BATCHED)
    released = ORDER.fire_where(session, Order, in_batch, OrderEvent.RELEASE, {"batch_id": None})
    BATCH.fire_where(session, Batch, Batch.id == batch_id, BatchEvent.FAIL)
    session.add(
        SolverRun(
            batch_id=batch_id,
            solver="greedy",
            status="failed",
            seed=0,
            parameters={},
            message=message[:512],
            started_at=started_at,
            finished_at=_utcnow(),
        )
    )
    session.add(
        ExceptionItem(
            kind="plan_failed",
            subject=f"batch {batch_id}",
            reason=message[:512],
            payload={"batch_id": batch_id, "orders_released": released},
            status="open",
            created_at=_utcnow(),
        )
    )
    return True
