"""Write a solved batch back, in the caller's one transaction, in bulk.

What is written: a ``SolverRun``; work orders (one per workshop × style × day lot, with its minimum-lot
surplus); allocation decisions per order line: the lines of orders of more than one piece at the sites the
solver's cut chose for them (:func:`solvers.allocation.orders.line_pieces`), so that an order's parcels are
the ones its split-shipment penalty counted, every other line along what its cell's allocations have left,
earliest day first, unfilled pieces last; stock reservations; parcels (one per order and site, priced at the
cheapest courier for their weight); orders to ``allocated``; the batch to ``planned``.

A lot planned by an earlier batch that this one grew keeps its work order, whose quantity and minutes grow.
An order any part of which fits nowhere stays out of the plan whole: it goes back to the pool (``RELEASE``,
no batch) with an ``unfillable`` exception naming the reason; what the solver had set aside for its other
lines is not reserved, and a lot it shared keeps its quantity (the difference becomes surplus).

Rows move columnar: COPY on PostgreSQL, executemany on SQLite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from fulfil.dbcolumns import Categorical, write_columns
from fulfil.domain.models import (
    AllocationDecision,
    Batch,
    ExceptionItem,
    Order,
    Parcel,
    SiteKind,
    SolverRun,
    Stock,
    WorkOrder,
)
from fulfil.domain.states import (
    BATCH,
    ORDER,
    BatchEvent,
    OrderEvent,
    OrderState,
    ParcelState,
    WorkOrderState,
)
from fulfil.planning.load import LoadedBatch
from solvers.allocation import UNFILLED_TEXT, WHY_TEXT, AllocationResult, Unfilled, Why
from solvers.allocation import SiteKind as SolverSite
from solvers.allocation.orders import line_pieces

I64 = npt.NDArray[np.int64]
_NO_LINES = "the order has no lines"


@dataclass(frozen=True)
class PlanSummary:
    batch_id: int
    solver_run_id: int
    orders_allocated: int
    orders_unfilled: int
    decisions: int
    work_orders: int  # new
    work_orders_grown: int  # planned earlier, grown by this batch
    parcels: int
    objective_fen: int
    solve_seconds: float


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _prorate(total: I64, whole: I64, start: I64, end: I64) -> I64:
    """The part of ``total`` falling on ``[start, end)`` of ``whole`` units; the parts of one whole add up
    exactly to its total (floors of cumulative shares telescope)."""
    safe = np.maximum(whole, 1)
    out: I64 = total * end // safe - total * start // safe
    return out


def bulk_insert(session: Session, table: Table, columns: dict[str, Sequence[Any]]) -> int:
    """Insert rows given as columns: COPY on PostgreSQL, executemany elsewhere. Returns the row count."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    if n == 0:
        return 0
    rows = zip(*(columns[c] for c in names), strict=True)
    if session.get_bind().dialect.name == "postgresql":
        raw = session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        session.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
    return n


def write_plan(
    session: Session,
    loaded: LoadedBatch,
    result: AllocationResult,
    *,
    started_at: dt.datetime,
    parameters: dict[str, Any] | None = None,
) -> PlanSummary:
    p, r = loaded.problem, result
    b = loaded.batch_id

    # --- disaggregate: the listed orders' lines as the solver cut them (so each order's parcels are the sites
    # it chose), every other line along what its cell's allocations have left, earliest day first -----------
    n_listed = p.n_order_lines
    other = np.setdiff1d(np.arange(loaded.line_id.shape[0]), loaded.listed_line)  # still sorted by cell
    pl, seg_src, seg_qty, seg_from = line_pieces(p, r, loaded.line_cell[other], loaded.line_quantity[other])
    seg_line = np.where(
        pl < n_listed,
        loaded.listed_line[np.minimum(pl, max(n_listed - 1, 0))] if n_listed else 0,
        other[np.maximum(pl - n_listed, 0)] if other.size else 0,
    )
    if int(seg_qty.sum()) != int(loaded.line_quantity.sum()):
        raise RuntimeError(
            f"batch {b}: the solution places {int(seg_qty.sum())} pieces, the lines hold "
            f"{int(loaded.line_quantity.sum())}"
        )
    seg_cell = np.where(
        seg_src >= 0,
        r.alloc_cell[np.maximum(seg_src, 0)] if r.n_allocations else -1,
        r.unfilled_cell[np.maximum(-1 - seg_src, 0)] if r.unfilled_cell.size else -1,
    )
    if not np.array_equal(loaded.line_cell[seg_line], seg_cell):
        raise RuntimeError(f"batch {b}: a piece of the solution crosses demand cells")
    seg_order = loaded.line_order[seg_line]

    unfilled_seg = seg_src < 0
    unfilled_orders = np.union1d(np.unique(seg_order[unfilled_seg]), loaded.empty_orders)
    keep = ~np.isin(seg_order, unfilled_orders) & ~unfilled_seg
    ai = seg_src[keep]  # allocation index of each kept piece
    k_line, k_order, k_qty = seg_line[keep], seg_order[keep], seg_qty[keep]
    k_alloc_from = seg_from[keep]
    k_kind, k_site, k_day = r.alloc_kind[ai], r.alloc_site[ai], r.alloc_day[ai]
    k_owner, k_lot, k_late = r.alloc_owner[ai], r.alloc_lot[ai], r.alloc_late[ai]
    # made: a share of the allocation's unit costs; from stock: each decision is one line picked once
    k_goods = np.where(
        k_kind == SolverSite.WORKSHOP,
        _prorate(r.alloc_goods_fen[ai], r.alloc_quantity[ai], k_alloc_from, k_alloc_from + k_qty),
        p.warehouse_handling_fen[np.where(k_kind == SolverSite.WAREHOUSE, k_site, 0)]
        if p.n_warehouses
        else 0,
    ).astype(np.int64)
    k_overtime = _prorate(r.alloc_overtime_fen[ai], r.alloc_quantity[ai], k_alloc_from, k_alloc_from + k_qty)
    k_sku = loaded.line_sku[k_line]

    # --- parcels: one per order and site ------------------------------------------------------------------
    order_pos = np.searchsorted(loaded.order_ids, k_order)
    n_sites = max(p.n_workshops, p.n_warehouses, 1)
    parcel_key = (order_pos * 2 + k_kind) * n_sites + k_site
    parcel_keys, k_parcel = np.unique(parcel_key, return_inverse=True)
    k_parcel = k_parcel.reshape(-1)
    n_parcels = parcel_keys.shape[0]
    par_site = parcel_keys % n_sites
    par_kind = (parcel_keys // n_sites) % 2
    par_order_pos = parcel_keys // n_sites // 2
    par_weight = np.bincount(k_parcel, weights=k_qty * p.sku_weight_g[k_sku], minlength=n_parcels)
    par_weight = par_weight.astype(np.int64)
    par_day = np.zeros(n_parcels, np.int64)
    np.maximum.at(par_day, k_parcel, k_day)
    par_prov = loaded.order_province[par_order_pos]
    par_courier, par_price = _cheapest(loaded, par_prov, par_weight)
    par_qty = np.bincount(k_parcel, weights=k_qty, minlength=n_parcels).astype(np.int64)
    # each piece's share of its parcel's price
    by_parcel = np.argsort(k_parcel, kind="stable")
    cum = np.cumsum(k_qty[by_parcel])
    parcel_first = np.concatenate(([0], np.cumsum(par_qty)[:-1])).astype(np.int64)
    end_in_parcel = cum - parcel_first[k_parcel[by_parcel]]
    k_shipping = np.empty_like(k_qty)
    k_shipping[by_parcel] = _prorate(
        par_price[k_parcel[by_parcel]],
        par_qty[k_parcel[by_parcel]],
        end_in_parcel - k_qty[by_parcel],
        end_in_parcel,
    )

    # --- solver run ---------------------------------------------------------------------------------------
    finished = _utcnow()
    summary = r.summary(p)
    run_id: int = session.execute(
        insert(SolverRun)
        .values(
            batch_id=b,
            solver=r.solver,
            status=r.status,
            objective=float(r.objective_fen),
            bound=r.bound_fen,
            gap=r.gap,
            seconds=r.seconds,
            parameters={**p.summary(), "first_day": p.first_day, **(parameters or {}), "result": summary},
            seed=r.seed,
            message=None,
            started_at=started_at,
            finished_at=finished,
        )
        .returning(SolverRun.id)
    ).scalar_one()

    # --- work orders: a new one per new lot; a lot planned earlier grows its work order ---------------------
    n_lots = r.lot_workshop.shape[0]
    wo_ids = np.full(n_lots, -1, np.int64)
    earlier = np.flatnonzero(r.lot_open >= 0)
    wo_ids[earlier] = loaded.open_lot_work_order[r.lot_open[earlier]]
    spare = np.zeros(n_lots, np.int64)
    spare[earlier] = p.open_lot_spare[r.lot_open[earlier]]
    grown = earlier[r.lot_quantity[earlier] > spare[earlier]]
    if grown.size:
        wo = cast(Table, WorkOrder.__table__)
        session.execute(
            update(wo)
            .where(wo.c.id == bindparam("wo_id"), wo.c.status == WorkOrderState.PLANNED)
            .values(
                quantity=wo.c.quantity + bindparam("more"),
                regular_minutes=wo.c.regular_minutes + bindparam("reg"),
                overtime_minutes=wo.c.overtime_minutes + bindparam("ot"),
            ),
            [
                {
                    "wo_id": int(wo_ids[i]),
                    "more": int(r.lot_quantity[i] - spare[i]),
                    "reg": float(r.lot_regular_minutes[i]),
                    "ot": float(r.lot_overtime_minutes[i]),
                }
                for i in grown.tolist()
            ],
        )
        # the open lots were read under the planning lock, but a workshop may start work at any time
        started = session.execute(
            select(func.count())
            .select_from(WorkOrder)
            .where(WorkOrder.id.in_(wo_ids[grown].tolist()), WorkOrder.status != WorkOrderState.PLANNED)
        ).scalar_one()
        if started:
            raise RuntimeError(
                f"batch {b}: {started} work order(s) to grow were started meanwhile; plan again"
            )
    new_lots = np.flatnonzero(r.lot_open < 0)
    n_new = int(new_lots.size)
    if n_new:
        lot_rows = [
            {
                "batch_id": b,
                "workshop_id": int(loaded.workshop_ids[r.lot_workshop[i]]),
                "style_id": int(loaded.style_ids[r.lot_style[i]]),
                "process_family_id": int(loaded.family_ids[r.lot_family[i]]),
                "day": loaded.day0 + dt.timedelta(days=int(r.lot_day[i])),
                "quantity": int(r.lot_quantity[i]),
                "regular_minutes": float(r.lot_regular_minutes[i]),
                "overtime_minutes": float(r.lot_overtime_minutes[i]),
                "due_at": loaded.ready_at_utc(int(r.lot_day[i])),
                "status": WorkOrderState.PLANNED,
                "quantity_done": 0,
                "defects": 0,
            }
            for i in new_lots.tolist()
        ]
        wo_ids[new_lots] = np.array(
            session.execute(insert(WorkOrder).returning(WorkOrder.id, sort_by_parameter_order=True), lot_rows)
            .scalars()
            .all(),
            dtype=np.int64,
        )

    # --- allocation decisions -----------------------------------------------------------------------------
    made = k_kind == SolverSite.WORKSHOP
    # reasons are few (why × late): written as codes into their labels, no Python per decision
    why_late = r.alloc_why[ai].astype(np.int64) * 2 + k_late.astype(np.int64)
    reason_labels = [
        WHY_TEXT[Why(code // 2)] + ("; late: no capacity before ship-by" if code % 2 else "")
        for code in range(2 * (max(int(w) for w in Why) + 1))
    ]
    day0 = np.datetime64(loaded.day0, "D")
    n_decisions = (
        0
        if k_qty.size == 0
        else write_columns(
            session,
            cast(Table, AllocationDecision.__table__),
            {
                "solver_run_id": np.full(k_qty.shape[0], run_id, np.int64),
                "order_line_id": loaded.line_id[k_line],
                "source": _site_kind(made),
                "workshop_id": _masked_ids(made, loaded.workshop_ids, k_site),
                "warehouse_id": _masked_ids(~made, loaded.warehouse_ids, k_site),
                "stock_owner_id": _masked_ids(~made, loaded.merchant_ids, k_owner),
                "work_order_id": _masked_ids(made, wo_ids, k_lot),
                "day": day0 + k_day,
                "quantity": k_qty,
                "goods_fen": k_goods,
                "overtime_fen": k_overtime,
                "shipping_fen": k_shipping,
                "late": k_late.astype(np.bool_),
                "reason": Categorical(why_late, reason_labels),
            },
        )
    )

    # --- stock reservations (the check constraint keeps reserved within on hand) ---------------------------
    from_stock = ~made
    if from_stock.any():
        skey = np.stack((k_site[from_stock], k_owner[from_stock], k_sku[from_stock]), axis=1)
        uniq, inv = np.unique(skey, axis=0, return_inverse=True)
        qty = np.bincount(inv.reshape(-1), weights=k_qty[from_stock], minlength=uniq.shape[0]).astype(
            np.int64
        )
        stock = cast(Table, Stock.__table__)
        session.execute(
            update(stock)
            .where(
                stock.c.warehouse_id == bindparam("w"),
                stock.c.owner_id == bindparam("o"),
                stock.c.sku_id == bindparam("s"),
            )
            .values(reserved=stock.c.reserved + bindparam("q")),
            [
                {"w": int(w), "o": int(o), "s": int(s), "q": int(q)}
                for w, o, s, q in zip(
                    loaded.warehouse_ids[uniq[:, 0]].tolist(),
                    loaded.merchant_ids[uniq[:, 1]].tolist(),
                    loaded.sku_ids[uniq[:, 2]].tolist(),
                    qty.tolist(),
                    strict=True,
                )
            ],
        )

    # --- parcels ------------------------------------------------------------------------------------------
    par_made = par_kind == SolverSite.WORKSHOP
    n_parcel_rows = (
        write_columns(
            session,
            cast(Table, Parcel.__table__),
            {
                "order_id": loaded.order_ids[par_order_pos],
                "batch_id": np.full(n_parcels, b, np.int64),
                "site_kind": _site_kind(par_made),
                "workshop_id": _masked_ids(par_made, loaded.workshop_ids, par_site),
                "warehouse_id": _masked_ids(~par_made, loaded.warehouse_ids, par_site),
                "status": Categorical(np.zeros(n_parcels, np.int64), [ParcelState.PLANNED.value]),
                "weight_g": par_weight,
                "ready_on": day0 + par_day,
                "courier_id": loaded.courier_ids[par_courier] if n_parcels else np.empty(0, np.int64),
                "shipping_fen": par_price,
            },
        )
        if n_parcels
        else 0
    )

    # --- orders and the batch -----------------------------------------------------------------------------
    if unfilled_orders.size:
        ids = unfilled_orders.tolist()
        ORDER.fire_ids(session, Order, ids, OrderEvent.RELEASE, {"batch_id": None})
        _record_unfilled(session, loaded, r, run_id, seg_order, seg_src, seg_line, seg_qty, unfilled_orders)
    allocated = ORDER.fire_where(
        session, Order, (Order.batch_id == b) & (Order.status == OrderState.BATCHED), OrderEvent.ALLOCATE
    )
    BATCH.fire_where(session, Batch, Batch.id == b, BatchEvent.PLAN)
    return PlanSummary(
        batch_id=b,
        solver_run_id=run_id,
        orders_allocated=allocated,
        orders_unfilled=int(unfilled_orders.size),
        decisions=n_decisions,
        work_orders=n_new,
        work_orders_grown=int(grown.size),
        parcels=n_parcel_rows,
        objective_fen=r.objective_fen,
        solve_seconds=r.seconds,
    )


def _site_kind(made: npt.NDArray[np.bool_]) -> Categorical:
    return Categorical(made.astype(np.int64), [SiteKind.WAREHOUSE.value, SiteKind.WORKSHOP.value])


def _masked_ids(mask: npt.NDArray[np.bool_], ids: I64, index: I64) -> np.ma.MaskedArray[Any, Any]:
    """``ids[index]`` where ``mask``, NULL elsewhere."""
    values = np.where(mask, ids[np.where(mask, index, 0)] if ids.size else 0, 0).astype(np.int64)
    return np.ma.MaskedArray(values, mask=~mask)


def _cheapest(loaded: LoadedBatch, province: I64, weight_g: I64) -> tuple[I64, I64]:
    """Per parcel, the courier with the lowest price for its weight to its province, and that price."""
    if province.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first_w = loaded.price_first_weight_g[:, province]
    first = loaded.price_first_fen[:, province]
    add = loaded.price_additional_fen_per_kg[:, province]
    extra_kg = -(-np.maximum(weight_g[None, :] - first_w, 0) // 1000)
    price = np.where(first >= 0, first + extra_kg * add, np.iinfo(np.int64).max)
    if price.shape[0] == 0 or np.any(price.min(axis=0) == np.iinfo(np.int64).max):
        # the solver leaves cells to unserved provinces unfilled, so a parcel here is a bug
        raise RuntimeError(f"batch {loaded.batch_id}: a parcel goes to a province no courier serves")
    best = price.argmin(axis=0).astype(np.int64)
    return best, price[best, np.arange(price.shape[1])].astype(np.int64)


def _record_unfilled(
    session: Session,
    loaded: LoadedBatch,
    r: AllocationResult,
    run_id: int,
    seg_order: I64,
    seg_src: I64,
    seg_line: I64,
    seg_qty: I64,
    unfilled_orders: I64,
) -> None:
    """One open ``unfillable`` exception per order, unless the order already has one open."""
    lines: dict[int, list[dict[str, Any]]] = {}
    reason: dict[int, str] = {}
    bad = np.flatnonzero(seg_src < 0)
    for s in bad.tolist():
        oid = int(seg_order[s])
        text = UNFILLED_TEXT[Unfilled(int(r.unfilled_reason[-1 - int(seg_src[s])]))]
        reason.setdefault(oid, text)
        lines.setdefault(oid, []).append(
            {
                "order_line_id": int(loaded.line_id[seg_line[s]]),
                "sku_id": int(loaded.sku_ids[loaded.line_sku[seg_line[s]]]),
                "quantity": int(seg_qty[s]),
                "reason": text,
            }
        )
    subjects = {int(o): f"order {int(o)}" for o in unfilled_orders.tolist()}
    existing: set[str] = set()
    values = list(subjects.values())
    for i in range(0, len(values), 5000):
        existing.update(
            session.scalars(
                select(ExceptionItem.subject).where(
                    ExceptionItem.kind == "unfillable",
                    ExceptionItem.status == "open",
                    ExceptionItem.subject.in_(values[i : i + 5000]),
                )
            )
        )
    now = _utcnow()
    rows = [
        {
            "kind": "unfillable",
            "subject": subject,
            "reason": reason.get(oid, _NO_LINES)[:512],
            "payload": {
                "batch_id": loaded.batch_id,
                "solver_run_id": run_id,
                "unfilled_lines": lines.get(oid, []),
            },
            "status": "open",
            "created_at": now,
        }
        for oid, subject in subjects.items()
        if subject not in existing
    ]
    if rows:
        session.execute(insert(ExceptionItem), rows)
