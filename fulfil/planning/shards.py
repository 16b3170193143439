"""Large batches planned as shards: cut, solved by several workers (on several machines), merged — in the DB.

The flow, every step an rq job that carries ids only (``plan_batch(batch_id)`` or
``plan_shard(batch_id, shard)``) and every step idempotent:

1. ``plan_batch(b)`` finds, under the planning lock, a closed batch with more cells than
   ``FULFIL_SHARD_CELLS``: it cuts the problem (:func:`solvers.allocation.shard.split`), writes one
   ``plan_shards`` row per shard (``pending``) and enqueues ``plan_shard(b, k)`` for each through the
   outbox, in one transaction. The batch stays ``closed``; batches that closed after it wait (their jobs
   return) so that every batch still spends only what the batches before it left.
2. ``plan_shard(b, k)`` re-loads the batch, re-cuts it (deterministic: the same data, the same shards),
   solves shard ``k`` with :func:`solvers.allocation.shard.solve_shard` — the very function the
   single-process :func:`solvers.allocation.shard.solve_sharded` calls — and stores its result as an ``.npz``
   with the digest of the shard's problem. Only a ``pending`` row is written: a shard solved twice keeps its
   first result. The transaction that stores the last shard (serialised on the batch row) enqueues the merge.
3. The merge is ``plan_batch(b)`` again: under the planning lock it re-loads and re-cuts, takes each stored
   result whose digest matches the shard it now sees (and solves afresh any shard whose data changed in the
   meantime — a cancellation, a started work order), merges, checks the plan against every constraint and
   writes it with :func:`fulfil.planning.write.write_plan` in one transaction; then it enqueues the planning
   of the batches that waited. A batch already planned is left alone, so a second merge does nothing.

A shard that raises fails the batch as a failed solve does (orders back to the pool, a failed solver run, an
exception item), and marks its row ``failed`` with the message.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, case, func, select, update
from sqlalchemy.orm import Session

from fulfil import db, settings
from fulfil.domain.models import Batch, PlanShard
from fulfil.domain.states import BatchState
from fulfil.jobs import outbox
from fulfil.planning.load import LoadedBatch
from solvers.allocation import AllocationProblem, AllocationResult
from solvers.allocation.check import check_plan
from solvers.allocation.shard import (
    Shard,
    fingerprint,
    merge,
    result_from_bytes,
    result_to_bytes,
    shard_seconds,
    shard_seed,
    solve_shard,
    split,
)

log = logging.getLogger(__name__)

PENDING, SOLVED, FAILED = "pending", "solved", "failed"


@dataclass(frozen=True)
class ShardsPending:
    """The batch is cut and waits for its shards."""

    batch_id: int
    shards: int
    solved: int


@dataclass(frozen=True)
class MergedPlan:
    result: AllocationResult
    shards: int
    resolved: int  # shards the merge solved itself because their data changed after they were solved
    started_at: dt.datetime


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def wanted(problem: AllocationProblem) -> bool:
    """Whether a batch is large enough to be cut: the optimiser plans it and it has more cells than the
    setting. (The rule cascade is fast whole, and its plan of a cut batch would not be its plan.)"""
    s = settings.get()
    return s.planner == "optimiser" and problem.n_cells > s.shard_cells


def cut(problem: AllocationProblem) -> list[Shard]:
    """The batch's shards: the same data gives the same shards on every worker."""
    return split(problem, max_cells=settings.get().shard_cells)


def solve_one(shards: list[Shard], k: int, seed: int) -> AllocationResult:
    """Shard ``k`` solved as :func:`~solvers.allocation.shard.solve_sharded` solves it."""
    return solve_shard(shards[k], seconds=shard_seconds(settings.get().plan_seconds, shards, k), seed=seed)


# --- steps 1 and 3, under the planning lock ---------------------------------------------------------------


def merge_or_start(session: Session, loaded: LoadedBatch) -> MergedPlan | ShardsPending | None:
    """For a closed batch under the planning lock: its merged plan when every shard is solved, the count
    when some still wait, or None when it is not to be cut (plan it whole). A large batch seen for the first
    time is cut here: its rows and shard jobs are written in the caller's transaction."""
    b, problem = loaded.batch_id, loaded.problem
    rows = session.scalars(select(PlanShard).where(PlanShard.batch_id == b).order_by(PlanShard.shard)).all()
    if not rows:
        if not wanted(problem):
            return None
        shards = cut(problem)
        if len(shards) < 2:
            return None  # one part only: nothing to share out
        now = _utcnow()
        seed = settings.get().plan_seed
        for k in range(len(shards)):
            session.add(
                PlanShard(
                    batch_id=b,
                    shard=k,
                    shards=len(shards),
                    status=PENDING,
                    seed=shard_seed(seed, k),
                    created_at=now,
                )
            )
            outbox.enqueue(session, "plan_shard", b, k)
        log.info("plan_batch %d: %d cells cut into %d shards", b, problem.n_cells, len(shards))
        return ShardsPending(b, len(shards), 0)
    failed = [r for r in rows if r.status == FAILED]
    if failed:
        # the shard's job failed the batch in the same transaction; a batch still closed here means that
        # transaction is not what happened, so fail it now rather than plan without the shard
        raise RuntimeError(f"shard {failed[0].shard} of batch {b} failed: {failed[0].message}")
    solved = sum(r.status == SOLVED for r in rows)
    if solved < len(rows):
        return ShardsPending(b, len(rows), solved)
    shards = cut(problem)
    results: list[AllocationResult] = []
    resolved = 0
    for k, shard in enumerate(shards):
        stored = rows[k].result if len(rows) == len(shards) else None
        result, digest = result_from_bytes(stored) if stored is not None else (None, "")
        if result is None or digest != fingerprint(shard.problem):
            # the batch's data changed after this shard was solved: solve it afresh, here, on what holds now
            log.warning("plan_batch %d: shard %d changed since it was solved; solving it again", b, k)
            seed = rows[k].seed if len(rows) == len(shards) else shard_seed(settings.get().plan_seed, k)
            result = solve_one(shards, k, seed)
            resolved += 1
        results.append(result)
    merged = merge(problem, shards, results, seed=settings.get().plan_seed)
    errors = check_plan(problem, merged)
    if errors:
        raise RuntimeError(f"batch {b}: the merged plan breaks a constraint: {errors[0]}")
    return MergedPlan(merged, len(shards), resolved, min(r.created_at for r in rows))


def enqueue_waiting(session: Session, batch_id: int) -> None:
    """After a cut batch is planned or failed: plan the batches that waited for it (the newest closed one's
    job plans every earlier one first, in order)."""
    newest = session.execute(
        select(Batch.id)
        .where(Batch.status == BatchState.CLOSED, Batch.id != batch_id)
        .order_by(Batch.closed_at.desc(), Batch.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if newest is not None:
        outbox.enqueue(session, "plan_batch", newest)


# --- step 2, on any worker ----------------------------------------------------------------------------------


def shard_to_solve(session: Session, batch_id: int, k: int) -> tuple[int, int] | None:
    """(shards, seed) of shard ``k`` if it still waits to be solved and its batch is closed, else None."""
    row = session.execute(
        select(PlanShard.status, PlanShard.shards, PlanShard.seed, Batch.status)
        .join(Batch, Batch.id == PlanShard.batch_id)
        .where(PlanShard.batch_id == batch_id, PlanShard.shard == k)
    ).one_or_none()
    if row is None or row[0] != PENDING or BatchState(row[3]) != BatchState.CLOSED:
        return None
    return int(row[1]), int(row[2])


def solve_stored(
    loaded: LoadedBatch, k: int, shards_then: int, seed: int
) -> tuple[AllocationResult, bytes] | None:
    """Shard ``k`` of the batch as loaded now, solved, with its stored form; None when the batch no longer
    cuts into the shards it was cut into (the merge then solves that shard itself)."""
    shards = cut(loaded.problem)
    if len(shards) != shards_then:
        return None
    result = solve_one(shards, k, seed)
    return result, result_to_bytes(result, fingerprint=fingerprint(shards[k].problem))


def lock_batch_row(session: Session, batch_id: int) -> BatchState | None:
    """Lock the batch's row (not the planning lock: storing a shard must not wait for another batch's
    solve) and return its state. On SQLite the database write lock, taken before reading."""
    if session.get_bind().dialect.name == "postgresql":
        status = session.execute(
            select(Batch.status).where(Batch.id == batch_id).with_for_update()
        ).scalar_one_or_none()
    else:
        db.sqlite_write_lock(session)
        status = session.execute(select(Batch.status).where(Batch.id == batch_id)).scalar_one_or_none()
    return None if status is None else BatchState(status)


def store(session: Session, batch_id: int, k: int, solved: tuple[AllocationResult, bytes] | None) -> bool:
    """Store shard ``k``'s result if its row still waits; the transaction that stores the last one enqueues
    the merge. True if this call stored it."""
    if lock_batch_row(session, batch_id) != BatchState.CLOSED:
        return False
    result = None if solved is None else solved[0]
    stored: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(PlanShard)
        .where(PlanShard.batch_id == batch_id, PlanShard.shard == k, PlanShard.status == PENDING)
        .values(
            status=SOLVED,
            objective=None if result is None else float(result.objective_fen),
            bound=None if result is None else result.bound_fen,
            seconds=None if result is None else result.seconds,
            result=None if solved is None else solved[1],
            solved_at=_utcnow(),
        )
    )
    if not stored.rowcount:
        return False  # solved by an earlier run of this job: its result stays
    counts = session.execute(
        select(func.count(), func.sum(case((PlanShard.status == SOLVED, 1), else_=0))).where(
            PlanShard.batch_id == batch_id
        )
    ).one()
    if int(counts[1] or 0) == int(counts[0]):
        outbox.enqueue(session, "plan_batch", batch_id)  # every shard is in: the merge
    return True


def mark_failed(session: Session, batch_id: int, k: int, message: str) -> None:
    session.execute(
        update(PlanShard)
        .where(PlanShard.batch_id == batch_id, PlanShard.shard == k, PlanShard.status == PENDING)
        .values(status=FAILED, message=message[:512], solved_at=_utcnow())
    )
