"""``fulfil bench belt``: a generated Changshu day loaded from the database, planned, and written back.

The timed part is what a planning worker does with one batch: read the batch and the belt's state
(:func:`~fulfil.planning.load.load_batch`), allocate it with the optimiser, and write the plan (decisions,
work orders, stock reservations, parcels) in one transaction. Generating the belt and forming the batch come
before the clock starts. ``greedy_objective`` is the rule cascade's plan of the same problem (nearest stock,
then the nearest qualified workshop with capacity), solved separately for the comparison.

With ``--rollback`` the plan's transaction is rolled back after it is written (and timed), so the same day can
be planned again without generating it anew (``--reuse``).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click
from sqlalchemy import Engine, func, insert, select, update

from fulfil import db, settings
from fulfil.belt.generate import BeltError, BeltParams, clear_belt, generate_belt
from fulfil.cli.bench import bench, emit, peak_rss_mb, progress
from fulfil.cli.generate import _migrated_engine
from fulfil.domain.models import Batch, Order
from fulfil.domain.states import BatchState, OrderState
from fulfil.pii import Sealer
from fulfil.planning.load import load_batch
from fulfil.planning.write import write_plan
from solvers.allocation import allocate, solve


def _one_batch(engine: Engine) -> tuple[int, int]:
    """Every paid order not in a batch goes into one closed batch, closed after its last order."""
    with db.session_scope(engine) as s:
        pool = (Order.status == OrderState.PAID) & Order.batch_id.is_(None)
        first, last, n = s.execute(
            select(func.min(Order.paid_at), func.max(Order.paid_at), func.count()).where(pool)
        ).one()
        if not n or first is None or last is None:
            raise click.ClickException(
                "the database holds no paid orders outside batches: generate a day first"
            )
        bid: int = s.execute(
            insert(Batch)
            .values(
                status=BatchState.CLOSED,
                window_start=first,
                window_end=last + dt.timedelta(microseconds=1),
                close_reason="operator",
                closed_at=last,
                order_count=n,
            )
            .returning(Batch.id)
        ).scalar_one()
        s.execute(
            update(Order)
            .where(pool)
            .values(batch_id=bid, status=OrderState.BATCHED)
            .execution_options(synchronize_session=False)
        )
    return bid, int(n)


def _closed_batch(engine: Engine, batch_id: int) -> tuple[int, int]:
    """A closed batch to plan again, and its orders (at 12 million, putting them back in the pool and
    batching them anew takes longer than planning them)."""
    with db.session_scope(engine) as s:
        status = s.scalar(select(Batch.status).where(Batch.id == batch_id))
        if status is None:
            raise click.ClickException(f"batch {batch_id} does not exist")
        if status != BatchState.CLOSED:
            raise click.ClickException(
                f"batch {batch_id} is {status}, not closed: only a closed batch is planned"
            )
        n = s.scalar(
            select(func.count()).where(Order.batch_id == batch_id, Order.status == OrderState.BATCHED)
        )
    return batch_id, int(n or 0)


@bench.command("belt")
@click.option("--orders", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--workshops", type=click.IntRange(min=1), default=3_000, show_default=True)
@click.option("--warehouses", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--skus", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="seed of the generated belt")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="the optimiser's time limit")  # fmt: skip
@click.option("--reset", is_flag=True, help="first delete ALL rows of ALL tables, then generate the day")
@click.option("--reuse", is_flag=True, help="plan the paid orders already in the database (no generation)")
@click.option("--rollback", is_flag=True, help="roll the written plan back (to plan the same day again)")
@click.option("--batch", "batch", type=int, default=None,
              help="plan this closed batch again (no generation; --rollback leaves it closed)")  # fmt: skip
def belt_cmd(
    orders: int,
    workshops: int,
    warehouses: int,
    skus: int,
    seed: int,
    seconds: float,
    reset: bool,
    reuse: bool,
    rollback: bool,
    batch: int | None,
) -> None:
    """Plan one generated day as one batch: load, solve, write; one JSON line of figures."""
    if reset and reuse:
        raise click.UsageError("--reset and --reuse contradict each other")
    if batch is not None and (reset or reuse):
        raise click.UsageError("--batch plans a batch already there: no --reset or --reuse")
    engine = _migrated_engine()
    if batch is None and not reuse:
        if reset:
            clear_belt(engine)
            progress("cleared all rows of all tables")
        params = BeltParams.scaled(orders, workshops=workshops, warehouses=warehouses, skus=skus, seed=seed)
        progress(
            f"generating {orders:,} orders, {workshops:,} workshops, {warehouses} warehouses, {skus:,} SKUs"
        )
        t = time.perf_counter()
        try:
            generate_belt(engine, params, Sealer(settings.get().pii_key))
        except BeltError as exc:
            raise click.ClickException(f"{exc} (--reset clears it, --reuse plans what is there)") from None
        progress(f"  generated in {time.perf_counter() - t:.1f} s")
    batch_id, n = _one_batch(engine) if batch is None else _closed_batch(engine, batch)
    progress(f"batch {batch_id}: {n:,} orders; loading, solving ({seconds:g} s limit), writing")

    t0 = time.perf_counter()
    with db.sessionmaker_for(engine)() as session:
        loaded = load_batch(session, batch_id)
        t_load = time.perf_counter()
        progress(f"  loaded in {t_load - t0:.1f} s: {loaded.problem.n_cells:,} demand cells")
        result = solve(loaded.problem, seconds=seconds, seed=0)
        t_solve = time.perf_counter()
        progress(f"  solved in {t_solve - t_load:.1f} s ({result.solver}); writing the plan")
        summary = write_plan(session, loaded, result, started_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        if rollback:
            session.flush()
            session.rollback()
        else:
            session.commit()
        t_write = time.perf_counter()
    total = time.perf_counter() - t0
    rss = peak_rss_mb()
    greedy = allocate(loaded.problem)
    if rollback and batch is None:
        with db.session_scope(engine) as s:  # back to the pool, for --reuse
            s.execute(
                update(Order).where(Order.batch_id == batch_id).values(batch_id=None, status=OrderState.PAID)
            )
            s.execute(update(Batch).where(Batch.id == batch_id).values(status=BatchState.FAILED))
    line: dict[str, Any] = {
        "bench": "belt",
        "database": engine.dialect.name,
        "orders": n,
        "cells": loaded.problem.n_cells,
        "workshops": loaded.problem.n_workshops,
        "warehouses": loaded.problem.n_warehouses,
        "skus": loaded.problem.n_skus,
        "seconds": round(total, 3),
        "load_seconds": round(t_load - t0, 3),
        "solve_seconds": round(t_solve - t_load, 3),
        "write_seconds": round(t_write - t_solve, 3),
        "peak_rss_mb": rss,
        "objective": result.objective_fen,
        "bound": None if result.bound_fen is None else round(result.bound_fen, 1),
        "gap": None if result.gap is None else round(float(result.gap), 6),
        "stopped_by": result.stopped_by,
        "solver": result.solver,
        "greedy_objective": greedy.objective_fen,
        "saving_vs_greedy": round(1 - result.objective_fen / greedy.objective_fen, 6)
        if greedy.objective_fen
        else None,
        "decisions": summary.decisions,
        "work_orders": summary.work_orders,
        "unfilled_orders": summary.orders_unfilled,
        "rolled_back": rollback,
    }
    emit(line)
