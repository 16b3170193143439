"""Explanations of a written plan: recorded after :func:`~fulfil.planning.write.write_plan`, read by the API.

:func:`record_explanations` runs :func:`solvers.allocation.explain.explain` on the batch's problem and the
result just written, and stores, in bulk (COPY on PostgreSQL), in the caller's transaction:

- ``run_explanations``: one row per solver run (the fixed-lot LP's objective, or why it has none);
- ``shadow_prices``: fen per extra minute, per workshop × process family × day, only where not zero;
- ``decision_explanations``: per allocation decision, its share of its allocation's cost parts (the
  solver's prices: a decision row's own ``goods_fen``/``shipping_fen`` are the booked figures, priced per
  parcel) and the allocation's runner-up;
- ``order_bindings``: per late or unfilled order, the binding constraint, as a code and a sentence.

Decisions are per order line, allocations per demand cell: a decision is matched to its allocation by
(cell of its line, site, stock owner, day), read back from the rows ``write_plan`` wrote, so nothing here
depends on how that module cuts cells into lines. A decision gets the share of its allocation's parts its
pieces are of the allocation's pieces (cumulative floors: the shares of the decisions of one allocation
never add up to more than the allocation's part; pieces of orders left unfilled have no decision).

:func:`batch_explanation` and :func:`decision_explanation` are the read side, for the dashboard.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, case, func, insert, select
from sqlalchemy.orm import Session

from fulfil.dbcolumns import Categorical, read_columns, write_columns
from fulfil.domain.models import (
    AllocationDecision,
    Batch,
    DecisionExplanation,
    OrderBinding,
    ProcessFamily,
    RunExplanation,
    ShadowPrice,
    SharedWarehouse,
    SiteKind,
    SolverRun,
    Workshop,
)
from fulfil.planning.load import LoadedBatch
from solvers.allocation import AllocationResult
from solvers.allocation import SiteKind as SolverSite
from solvers.allocation.explain import Binding, Explanation, explain

I64 = npt.NDArray[np.int64]
_PARTS = (
    "unit_fen",
    "surplus_fen",
    "overtime_fen",
    "changeover_fen",
    "handling_fen",
    "shipping_fen",
    "late_fen",
)


class ExplanationNotFound(LookupError):
    """Nothing to explain under that id; the message names it."""


# --- writing ------------------------------------------------------------------------------------------------


def record_explanations(
    session: Session,
    loaded: LoadedBatch,
    result: AllocationResult,
    solver_run_id: int,
    *,
    seconds: float = 10.0,
) -> None:
    """Explain ``result`` (the plan of ``loaded`` written as solver run ``solver_run_id``) and store it."""
    t0 = time.perf_counter()
    e = explain(loaded.problem, result, seconds=seconds)
    names = _Names.read(session, loaded)
    _write_shadow_prices(session, loaded, e, solver_run_id)
    dec = _Decisions.read(session, loaded, solver_run_id)
    _write_decision_explanations(session, loaded, result, e, dec, solver_run_id)
    _write_order_bindings(session, loaded, e, dec, names, solver_run_id)
    session.execute(
        insert(RunExplanation).values(
            solver_run_id=solver_run_id,
            lp_objective=e.lp_objective,
            lp_message=None if e.lp_message is None else e.lp_message[:512],
            seconds=time.perf_counter() - t0,
        )
    )


@dataclass(frozen=True)
class _Names:
    """What the sentences call families, days and sites."""

    family: list[str]
    workshop: list[str]
    warehouse: list[str]
    day0: dt.date

    @staticmethod
    def read(session: Session, loaded: LoadedBatch) -> _Names:
        fam = {i: n for i, n in session.execute(select(ProcessFamily.id, ProcessFamily.name))}
        ws = {i: c for i, c in session.execute(select(Workshop.id, Workshop.code))}
        wh = {i: c for i, c in session.execute(select(SharedWarehouse.id, SharedWarehouse.code))}
        return _Names(
            [fam.get(int(i), f"family {i}") for i in loaded.family_ids.tolist()],
            [ws.get(int(i), f"workshop {i}") for i in loaded.workshop_ids.tolist()],
            [wh.get(int(i), f"warehouse {i}") for i in loaded.warehouse_ids.tolist()],
            loaded.day0,
        )

    def text(self, e: Explanation, i: int) -> str:
        return e.binding_text(
            i,
            family=lambda f: self.family[f],
            day=lambda d: (self.day0 + dt.timedelta(days=d)).isoformat(),
            site=lambda k, s: (
                f"workshop {self.workshop[s]}"
                if k == SolverSite.WORKSHOP
                else f"warehouse {self.warehouse[s]}"
            ),
        )


@dataclass(frozen=True, eq=False)
class _Decisions:
    """The run's decisions as written, with the dense indices of the problem."""

    id: I64
    line: I64  # position in the loaded lines
    cell: I64
    order: I64  # order id
    kind: I64  # solver SiteKind
    site: I64
    owner: I64  # -1 for a workshop
    day: I64
    quantity: I64
    late: npt.NDArray[np.bool_]

    @staticmethod
    def read(session: Session, loaded: LoadedBatch, run_id: int) -> _Decisions:
        d = AllocationDecision
        made = d.source == SiteKind.WORKSHOP
        ids, line_id, kind, site_id, owner_id, day, qty, late = read_columns(
            session,
            select(
                d.id,
                d.order_line_id,
                case((made, int(SolverSite.WORKSHOP)), else_=int(SolverSite.WAREHOUSE)),
                func.coalesce(d.workshop_id, d.warehouse_id),
                func.coalesce(d.stock_owner_id, -1),
                d.day,
                d.quantity,
                d.late,
            )
            .where(d.solver_run_id == run_id)
            .order_by(d.id),
            [np.int64, np.int64, np.int64, np.int64, np.int64, "datetime64[D]", np.int64, np.bool_],
        )
        by_id = np.argsort(loaded.line_id)
        line = by_id[
            _positions(loaded.line_id[by_id], line_id, np.ones(line_id.shape[0], np.bool_), "order line")
        ]
        is_made = kind == SolverSite.WORKSHOP
        site = np.where(
            is_made,
            _positions(loaded.workshop_ids, site_id, is_made, "workshop"),
            _positions(loaded.warehouse_ids, site_id, ~is_made, "warehouse"),
        )
        owner = _positions(loaded.merchant_ids, owner_id, owner_id >= 0, "merchant")
        days = (day - np.datetime64(loaded.day0, "D")).astype(np.int64)
        return _Decisions(
            id=ids,
            line=line,
            cell=loaded.line_cell[line],
            order=loaded.line_order[line],
            kind=kind,
            site=site.astype(np.int64),
            owner=owner.astype(np.int64),
            day=days,
            quantity=qty,
            late=late.astype(np.bool_),
        )


def _positions(sorted_ids: I64, values: I64, where: npt.NDArray[np.bool_], what: str) -> I64:
    """Positions of ``values`` in ``sorted_ids`` where ``where`` (each must be there), -1 elsewhere."""
    out = np.full(values.shape[0], -1, np.int64)
    want = values[where]
    if want.size == 0:
        return out
    at = np.minimum(np.searchsorted(sorted_ids, want), max(sorted_ids.shape[0] - 1, 0))
    if sorted_ids.size == 0 or not np.array_equal(sorted_ids[at], want):
        bad = want if sorted_ids.size == 0 else want[sorted_ids[at] != want]
        raise RuntimeError(
            f"explanations: a decision names {what} {int(bad[0])}, which the batch did not load"
        )
    out[where] = at
    return out


def _alloc_key(loaded: LoadedBatch, cell: I64, kind: I64, site: I64, owner: I64, day: I64) -> I64:
    p = loaded.problem
    n_sites = max(p.n_workshops, p.n_warehouses, 1)
    key: I64 = (((cell * 2 + kind) * n_sites + site) * (p.n_merchants + 1) + owner + 1) * p.days + day
    return key


def _write_shadow_prices(session: Session, loaded: LoadedBatch, e: Explanation, run_id: int) -> None:
    w, f, d = np.nonzero((e.shadow_regular > 0) | (e.shadow_overtime > 0))
    if w.size == 0:
        return
    write_columns(
        session,
        cast(Table, ShadowPrice.__table__),
        {
            "solver_run_id": np.full(w.shape[0], run_id, np.int64),
            "workshop_id": loaded.workshop_ids[w],
            "process_family_id": loaded.family_ids[f],
            "day": np.datetime64(loaded.day0, "D") + d,
            "regular_fen_per_minute": e.shadow_regular[w, f, d],
            "overtime_fen_per_minute": e.shadow_overtime[w, f, d],
        },
    )


def _write_decision_explanations(
    session: Session,
    loaded: LoadedBatch,
    r: AllocationResult,
    e: Explanation,
    dec: _Decisions,
    run_id: int,
) -> None:
    if dec.id.size == 0:
        return
    # allocations that share (cell, site, owner, day) — an earlier lot's spare and its growth — are one
    owner = np.where(r.alloc_kind == SolverSite.WAREHOUSE, r.alloc_owner, -1)
    a_key = _alloc_key(loaded, r.alloc_cell, r.alloc_kind, r.alloc_site, owner, r.alloc_day)
    keys, a_group = np.unique(a_key, return_inverse=True)
    a_group = a_group.reshape(-1)
    n_g = keys.shape[0]
    g_qty = np.bincount(a_group, weights=r.alloc_quantity, minlength=n_g).astype(np.int64)
    g_parts = {k: np.bincount(a_group, weights=getattr(e, k), minlength=n_g).astype(np.int64) for k in _PARTS}
    # the group's runner-up is that of its largest allocation
    by_size = np.lexsort((-r.alloc_quantity, a_group))
    first = np.concatenate(([True], a_group[by_size][1:] != a_group[by_size][:-1]))
    rep = np.empty(n_g, np.int64)
    rep[a_group[by_size][first]] = by_size[first]

    d_key = _alloc_key(loaded, dec.cell, dec.kind, dec.site, dec.owner, dec.day)
    at = np.minimum(np.searchsorted(keys, d_key), n_g - 1)
    if not np.array_equal(keys[at], d_key):
        bad = int(dec.id[keys[at] != d_key][0])
        raise RuntimeError(f"explanations: decision {bad} matches no allocation of the solver's result")
    g = at.astype(np.int64)
    # each decision's share of its allocation's parts: cumulative floors over the decisions, in id order
    order = np.lexsort((dec.id, g))
    gs, qs = g[order], dec.quantity[order]
    cum = np.cumsum(qs)
    starts = np.concatenate(([True], gs[1:] != gs[:-1]))
    base = np.maximum.accumulate(np.where(starts, cum - qs, 0))
    end = cum - base
    start = end - qs
    whole = np.maximum(g_qty[gs], 1)
    columns: dict[str, Any] = {}
    total = np.zeros(dec.id.shape[0], np.int64)
    for k in _PARTS:
        part = g_parts[k][gs]
        share = np.empty_like(total)
        share[order] = part * end // whole - part * start // whole
        columns[k] = share
        total += share
    columns["total_fen"] = total
    i = rep[g]
    kind = e.runner_kind[i]
    made = kind == SolverSite.WORKSHOP
    stock = kind == SolverSite.WAREHOUSE
    none = kind < 0
    site = np.maximum(e.runner_site[i], 0)
    workshop_ids = loaded.workshop_ids[np.where(made, site, 0)] if loaded.workshop_ids.size else site
    warehouse_ids = loaded.warehouse_ids[np.where(stock, site, 0)] if loaded.warehouse_ids.size else site
    owner_ids = loaded.merchant_ids[np.maximum(e.runner_owner[i], 0)]
    extra = e.runner_extra_fen_per_piece[i]
    write_columns(
        session,
        cast(Table, DecisionExplanation.__table__),
        {
            "decision_id": dec.id,
            "solver_run_id": np.full(dec.id.shape[0], run_id, np.int64),
            **columns,
            # code -1 is NULL: no other way to serve the pieces
            "runner_kind": Categorical(
                np.where(none, -1, np.where(made, 1, 0)).astype(np.int64),
                [SiteKind.WAREHOUSE.value, SiteKind.WORKSHOP.value],
            ),
            "runner_workshop_id": np.ma.MaskedArray(workshop_ids, mask=~made),
            "runner_warehouse_id": np.ma.MaskedArray(warehouse_ids, mask=~stock),
            "runner_stock_owner_id": np.ma.MaskedArray(owner_ids, mask=~stock),
            "runner_day": np.ma.MaskedArray(
                np.datetime64(loaded.day0, "D") + np.maximum(e.runner_day[i], 0), mask=none
            ),
            "runner_new_lot": e.runner_new_lot[i],
            "runner_extra_fen_per_piece": np.ma.MaskedArray(np.where(none, 0.0, extra), mask=none),
        },
    )


def _write_order_bindings(
    session: Session, loaded: LoadedBatch, e: Explanation, dec: _Decisions, names: _Names, run_id: int
) -> None:
    cells = e.binding_cell
    if cells.size == 0:
        return
    # late: orders with a late decision; pieces: their late pieces; named by the cell holding most of them
    late = np.flatnonzero(dec.late)
    l_order, l_cell, l_pieces = _per_order(dec.order[late], dec.cell[late], dec.quantity[late])
    # unfilled: orders with lines but no decision in this run (write_plan keeps such an order out whole);
    # pieces: all of the order's; named by its cell with the most unfilled pieces
    out = ~np.isin(loaded.line_order, dec.order) & np.isin(loaded.line_cell, cells[e.binding_unfilled > 0])
    u_cell_unfilled = e.binding_unfilled[np.searchsorted(cells, loaded.line_cell[out])]
    u_order, u_cell, _ = _per_order(loaded.line_order[out], loaded.line_cell[out], u_cell_unfilled)
    totals = np.bincount(
        np.searchsorted(loaded.order_ids, loaded.line_order),
        weights=loaded.line_quantity,
        minlength=loaded.order_ids.shape[0],
    ).astype(np.int64)
    u_pieces = totals[np.searchsorted(loaded.order_ids, u_order)]
    n_late, n_un = l_order.shape[0], u_order.shape[0]
    if n_late + n_un == 0:
        return
    b = np.searchsorted(cells, np.concatenate((l_cell, u_cell)))
    texts = {i: names.text(e, i) for i in np.unique(b).tolist()}
    write_columns(
        session,
        cast(Table, OrderBinding.__table__),
        {
            "solver_run_id": np.full(n_late + n_un, run_id, np.int64),
            "order_id": np.concatenate((l_order, u_order)),
            "status": Categorical(
                np.concatenate((np.zeros(n_late, np.int64), np.ones(n_un, np.int64))), ["late", "unfilled"]
            ),
            "pieces": np.concatenate((l_pieces, u_pieces)),
            "code": Categorical(e.binding_code[b], [c.name.lower() for c in Binding]),
            "reason": [texts[i][:512] for i in b.tolist()],
        },
    )


def _per_order(order: I64, cell: I64, pieces: I64) -> tuple[I64, I64, I64]:
    """Per order: the order, its cell with the most ``pieces`` (the lowest on a tie), its total pieces."""
    if order.size == 0:
        e = np.empty(0, np.int64)
        return e, e, e
    pair = np.stack((order, cell), axis=1)
    uk, inv = np.unique(pair, axis=0, return_inverse=True)
    q = np.bincount(inv.reshape(-1), weights=pieces, minlength=uk.shape[0]).astype(np.int64)
    ranked = np.lexsort((uk[:, 1], -q, uk[:, 0]))
    o = uk[ranked, 0]
    first = np.concatenate(([True], o[1:] != o[:-1]))
    orders = o[first]
    total = np.bincount(np.searchsorted(orders, uk[:, 0]), weights=q, minlength=orders.shape[0])
    return orders, uk[ranked, 1][first], total.astype(np.int64)


# --- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFigures:
    id: int
    solver: str
    status: str
    objective_fen: float | None
    bound_fen: float | None
    gap: float | None
    seconds: float | None
    costs: dict[str, Any]  # the result's summary as write_plan stored it
    explained: bool
    lp_objective_fen: float | None
    lp_message: str | None


@dataclass(frozen=True)
class ShadowPriceOut:
    workshop_id: int
    workshop: str
    process_family_id: int
    family: str
    day: dt.date
    regular_fen_per_minute: float
    overtime_fen_per_minute: float


@dataclass(frozen=True)
class OrderBindingOut:
    order_id: int
    status: str  # late, unfilled
    pieces: int
    code: str
    reason: str


@dataclass(frozen=True)
class BatchExplanation:
    batch_id: int
    solver_run: RunFigures
    shadow_prices: list[ShadowPriceOut]  # highest regular price first, at most ``limit``
    shadow_price_count: int
    orders: list[OrderBindingOut]  # most pieces first, at most ``limit``
    order_count: int


@dataclass(frozen=True)
class CostBreakdown:
    unit_fen: int
    surplus_fen: int
    overtime_fen: int
    changeover_fen: int
    handling_fen: int
    shipping_fen: int
    late_fen: int
    total_fen: int


@dataclass(frozen=True)
class RunnerUp:
    site_kind: str
    workshop_id: int | None
    warehouse_id: int | None
    site: str  # the site's code
    stock_owner_id: int | None
    day: dt.date
    new_lot: bool
    extra_fen_per_piece: float


@dataclass(frozen=True)
class DecisionExplanationOut:
    decision_id: int
    solver_run_id: int
    order_line_id: int
    source: str
    workshop_id: int | None
    warehouse_id: int | None
    day: dt.date
    quantity: int
    late: bool
    breakdown: CostBreakdown
    runner_up: RunnerUp | None  # None: no other site could take the pieces


def batch_explanation(session: Session, batch_id: int, *, limit: int = 200) -> BatchExplanation:
    """The latest solver run of batch ``batch_id`` with its shadow prices and late or unfilled orders."""
    if session.get(Batch, batch_id) is None:
        raise ExplanationNotFound(f"batch {batch_id} does not exist")
    run = session.scalars(
        select(SolverRun).where(SolverRun.batch_id == batch_id).order_by(SolverRun.id.desc()).limit(1)
    ).first()
    if run is None:
        raise ExplanationNotFound(f"batch {batch_id} has no solver run")
    rx = session.get(RunExplanation, run.id)
    prices = session.execute(
        select(ShadowPrice, Workshop.code, ProcessFamily.name)
        .join(Workshop, Workshop.id == ShadowPrice.workshop_id)
        .join(ProcessFamily, ProcessFamily.id == ShadowPrice.process_family_id)
        .where(ShadowPrice.solver_run_id == run.id)
        .order_by(ShadowPrice.regular_fen_per_minute.desc(), ShadowPrice.id)
        .limit(limit)
    ).all()
    n_prices = session.execute(
        select(func.count()).select_from(ShadowPrice).where(ShadowPrice.solver_run_id == run.id)
    ).scalar_one()
    bindings = session.scalars(
        select(OrderBinding)
        .where(OrderBinding.solver_run_id == run.id)
        .order_by(OrderBinding.pieces.desc(), OrderBinding.order_id)
        .limit(limit)
    ).all()
    n_bindings = session.execute(
        select(func.count()).select_from(OrderBinding).where(OrderBinding.solver_run_id == run.id)
    ).scalar_one()
    summary = (run.parameters or {}).get("result", {})
    return BatchExplanation(
        batch_id=batch_id,
        solver_run=RunFigures(
            id=run.id,
            solver=run.solver,
            status=run.status,
            objective_fen=run.objective,
            bound_fen=run.bound,
            gap=run.gap,
            seconds=run.seconds,
            costs={k: v for k, v in summary.items() if k.endswith("_fen") or k.startswith("pieces")},
            explained=rx is not None,
            lp_objective_fen=None if rx is None else rx.lp_objective,
            lp_message=None if rx is None else rx.lp_message,
        ),
        shadow_prices=[
            ShadowPriceOut(
                sp.workshop_id,
                code,
                sp.process_family_id,
                name,
                sp.day,
                sp.regular_fen_per_minute,
                sp.overtime_fen_per_minute,
            )
            for sp, code, name in prices
        ],
        shadow_price_count=int(n_prices),
        orders=[OrderBindingOut(b.order_id, b.status, b.pieces, b.code, b.reason) for b in bindings],
        order_count=int(n_bindings),
    )


def decision_explanation(session: Session, decision_id: int) -> DecisionExplanationOut:
    """Allocation decision ``decision_id``'s cost breakdown and runner-up."""
    d = session.get(AllocationDecision, decision_id)
    if d is None:
        raise ExplanationNotFound(f"decision {decision_id} does not exist")
    x = session.get(DecisionExplanation, decision_id)
    if x is None:
        raise ExplanationNotFound(f"decision {decision_id} has no explanation (its plan was not explained)")
    runner: RunnerUp | None = None
    if x.runner_kind is not None and x.runner_day is not None and x.runner_extra_fen_per_piece is not None:
        if x.runner_kind == SiteKind.WORKSHOP:
            code = session.execute(
                select(Workshop.code).where(Workshop.id == x.runner_workshop_id)
            ).scalar_one()
        else:
            code = session.execute(
                select(SharedWarehouse.code).where(SharedWarehouse.id == x.runner_warehouse_id)
            ).scalar_one()
        runner = RunnerUp(
            site_kind=str(x.runner_kind.value),
            workshop_id=x.runner_workshop_id,
            warehouse_id=x.runner_warehouse_id,
            site=code,
            stock_owner_id=x.runner_stock_owner_id,
            day=x.runner_day,
            new_lot=x.runner_new_lot,
            extra_fen_per_piece=x.runner_extra_fen_per_piece,
        )
    return DecisionExplanationOut(
        decision_id=d.id,
        solver_run_id=d.solver_run_id,
        order_line_id=d.order_line_id,
        source=str(SiteKind(d.source).value),
        workshop_id=d.workshop_id,
        warehouse_id=d.warehouse_id,
        day=d.day,
        quantity=d.quantity,
        late=d.late,
        breakdown=CostBreakdown(
            x.unit_fen,
            x.surplus_fen,
            x.overtime_fen,
            x.changeover_fen,
            x.handling_fen,
            x.shipping_fen,
            x.late_fen,
            x.total_fen,
        ),
        runner_up=runner,
    )


__all__ = [
    "BatchExplanation",
    "DecisionExplanationOut",
    "ExplanationNotFound",
    "batch_explanation",
    "decision_explanation",
    "record_explanations",
]
