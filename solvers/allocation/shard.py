"""Cut a large allocation problem into shards that do not interact, solve them apart, merge the plans.

Why a problem falls apart: capacity is per workshop × process family × day and a style has one family, so two
styles interact through workshop minutes only when some workshop is qualified for both (same family); stock
rows are per SKU, and a SKU has one style, so stock (pooled or not) never couples two styles; a lot planned
earlier is of one style. The connected components of the graph styles ↔ (workshop, family) therefore share
nothing but **warehouse handling** (``warehouse_handling[warehouse, day]``, order lines), which every SKU's
picks at a warehouse draw on.

Handling is cut deterministically: each warehouse-day's lines go to the shards in proportion to the lines of
their cells that could be picked there that day (stock they may take, within the model's pick window), in
whole lines by largest remainder, ties to the lower shard. Where a warehouse-day has room for everybody, each
shard gets at least all it could use, so the cut only restricts where handling really is contested.

The merged plan is feasible for the whole problem: each shard's plan keeps its own shard's constraints, the
shards share no workshop minutes, stock row, lot or cell, and their handling shares add up to at most the
warehouse-day's capacity. Its bound is the sum of the shards' bounds, each a bound of the shard *with every
warehouse-day's full handling* (see :func:`solve_shard` and :func:`merge`).

Shards are packed from components (first-fit decreasing by cells, up to ``max_cells`` each) so a belt with
hundreds of small components gives a few shards, not hundreds of jobs.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from solvers.allocation.data import I64, AllocationProblem, as_i64
from solvers.allocation.lp import LpError, solve_lp
from solvers.allocation.model import build_model, constant_fen, group_cells, stock_rows
from solvers.allocation.orders import finish
from solvers.allocation.result import AllocationResult, SiteKind
from solvers.allocation.solve import solve

SOLVER = "optimiser/sharded"


@dataclass(frozen=True, eq=False)
class Shard:
    """One independent part of a problem: its sub-problem, densely re-indexed, and the maps back.

    Every map is sorted ascending: shard index ``i`` of a kind is whole-problem index ``<kind>[i]``.
    Process families and provinces keep the whole problem's indices.
    """

    index: int
    problem: AllocationProblem
    cells: I64
    styles: I64
    skus: I64
    merchants: I64
    workshops: I64
    warehouses: I64
    stock_rows: I64
    open_lots: I64
    qualifications: I64
    # [shard warehouse, day]: the whole problem's handling there, for the relaxation that gives the bound
    full_handling: I64
    # whether some warehouse-day gives this shard less than it could use there: only then is the shard's
    # problem a restriction of its part of the whole, and its own bound none of the whole's
    restricted: bool

    @property
    def n_cells(self) -> int:
        return int(self.cells.shape[0])

    def relaxation(self) -> AllocationProblem:
        """The shard with every warehouse-day's full handling: its optimum is at most what the whole
        problem's optimum spends on this shard's cells."""
        return replace(self.problem, warehouse_handling=self.full_handling.copy())


# --- split -------------------------------------------------------------------------------------------------


def _components(p: AllocationProblem) -> list[I64]:
    """The cells of each group of styles that share workshop minutes, ordered by their first cell."""
    n_s, n_f = p.n_styles, max(p.n_families, 1)
    n_res = p.n_workshops * n_f
    # edges style -> (workshop, family) resource: qualifications, and lots planned earlier (which may grow)
    src = np.concatenate((p.qual_style, p.open_lot_style))
    res = np.concatenate(
        (
            p.qual_workshop * n_f + p.style_family[p.qual_style],
            p.open_lot_workshop * n_f + p.style_family[p.open_lot_style],
        )
    )
    n = n_s + n_res
    graph = sp.coo_matrix((np.ones(src.shape[0]), (src, n_s + res)), shape=(n, n)).tocsr()
    _, label = connected_components(graph, directed=False)
    cell_label = label[p.cell_style]
    labels, first = np.unique(cell_label, return_index=True)
    out = []
    for lab in labels[np.argsort(first, kind="stable")]:
        out.append(np.flatnonzero(cell_label == lab).astype(np.int64))
    return out


def _can_make(p: AllocationProblem) -> np.ndarray:
    """Per style: whether the model can give it any lot — a qualification whose workshop has room for the
    style's minimum lot on some usable plan day, or a qualified lot planned earlier."""
    room = (p.regular_minutes + p.overtime_minutes)[:, :, p.first_day :].max(axis=2, initial=0.0)
    need = np.maximum(p.style_min_lot, 1) * p.style_minutes_per_unit
    fits = room[p.qual_workshop, p.style_family[p.qual_style]] >= need[p.qual_style] - 1e-9
    out = np.zeros(p.n_styles, np.bool_)
    out[p.qual_style[fits]] = True
    n_s = max(p.n_styles, 1)
    qualified = np.isin(p.open_lot_workshop * n_s + p.open_lot_style, p.qual_workshop * n_s + p.qual_style)
    out[p.open_lot_style[qualified]] = True
    return out


def _attach_stock_only(p: AllocationProblem, components: list[I64]) -> list[I64]:
    """Components none of whose styles can be made, joined to the first component that can make something.

    They are independent of it all the same; the reason is a limit of
    :func:`solvers.allocation.plan.to_result`: a problem whose model has stock picks but no lot at all makes
    it fail (an empty-array index), which a whole batch almost never is but a stock-only shard often would.
    """
    can = _can_make(p)
    makes = [bool(can[p.cell_style[c]].any()) for c in components]
    if all(makes) or not any(makes):
        return components
    host = makes.index(True)
    joined = np.sort(np.concatenate([c for c, m in zip(components, makes, strict=True) if not m]))
    out = [c for c, m in zip(components, makes, strict=True) if m]
    out[0] = np.sort(np.concatenate((components[host], joined)))
    return out


def _pack(components: list[I64], max_cells: int | None) -> list[I64]:
    """Components into shards of at most ``max_cells`` cells (a larger component is a shard of its own):
    first-fit decreasing, deterministic; shards ordered by their first cell."""
    if max_cells is None:
        return components
    if max_cells < 1:
        raise ValueError(f"max_cells must be at least 1, got {max_cells}")
    order = sorted(range(len(components)), key=lambda i: (-components[i].shape[0], int(components[i][0])))
    bins: list[list[int]] = []
    sizes: list[int] = []
    for i in order:
        size = int(components[i].shape[0])
        for b in range(len(bins)):
            if sizes[b] + size <= max_cells:
                bins[b].append(i)
                sizes[b] += size
                break
        else:
            bins.append([i])
            sizes.append(size)
    shards = [np.sort(np.concatenate([components[i] for i in b])) for b in bins]
    shards.sort(key=lambda c: int(c[0]))
    return shards


def _eligible(p: AllocationProblem) -> tuple[I64, I64, I64, I64]:
    """Pairs (cell, warehouse) where a served cell may take stock, with the first and last day of its pick
    window (the problem's: ``pick_early_days`` before its due day to ``max_late_days`` after)."""
    served = p.province_shipping_fen[p.cell_province] >= 0
    cell, row = stock_rows(p, p.cell_sku)
    ok = served[cell] & p.may_take(p.cell_owner[cell], p.stock_owner[row]) & (p.stock_available[row] > 0)
    cell, wh = cell[ok], p.stock_warehouse[row[ok]]
    key = np.unique(cell * max(p.n_warehouses, 1) + wh)
    cell, wh = key // max(p.n_warehouses, 1), key % max(p.n_warehouses, 1)
    due = p.due_day()[cell]
    lo, hi = p.first_pick_day(due), p.last_day(due)
    return cell.astype(np.int64), wh.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64)


def largest_remainder(total: int, weights: I64) -> I64:
    """``total`` in whole parts proportional to ``weights`` (all zero: nothing), largest remainders first,
    ties to the lower index. A part is at least its weight whenever ``total`` is at least their sum."""
    w = weights.astype(np.int64)
    s = int(w.sum())
    if s == 0 or total <= 0:
        return np.zeros(w.shape[0], np.int64)
    exact = w * total  # integer arithmetic: no float ties decided by rounding
    base = exact // s
    rest = total - int(base.sum())
    order = np.lexsort((np.arange(w.shape[0]), -(exact % s)))
    base[order[:rest]] += 1
    out: I64 = base
    return out


def _handling_shares(p: AllocationProblem, shard_of_cell: I64, n_shards: int) -> tuple[I64, I64]:
    """Per shard, warehouse and day: the handling it gets, and the most its cells could ever pick there
    (every eligible line on any plan day — deliberately not the model's window, so that the "restricted"
    test never depends on how the model places picks).

    The cut goes in two tiers: first the lines of cells whose style no workshop can make (stock is their
    only source: a line of theirs left out is a piece unfilled), then the rest, each tier in proportion to
    the lines that could be picked there within their pick windows."""
    cell, wh, lo, hi = _eligible(p)
    k = shard_of_cell[cell]
    lines = p.cell_lines[cell]
    stock_only = ~_can_make(p)[p.cell_style[cell]]
    n_w, days = p.n_warehouses, p.days
    span = hi - lo + 1
    rep = np.repeat(np.arange(cell.shape[0]), span)
    day = lo[rep] + np.arange(rep.shape[0]) - np.repeat(np.cumsum(span) - span, span)
    want = np.zeros((2, n_shards, n_w, days), np.int64)  # [tier, shard, warehouse, day]
    np.add.at(want, ((~stock_only[rep]).astype(np.int64), k[rep], wh[rep], day), lines[rep])
    most = np.zeros((n_shards, n_w), np.int64)
    np.add.at(most, (k, wh), lines)
    share = np.zeros((n_shards, n_w, days), np.int64)
    for w in range(n_w):
        for d in range(days):
            left = int(p.warehouse_handling[w, d])
            first = want[0, :, w, d]
            share[:, w, d] = first if first.sum() <= left else largest_remainder(left, first)
            left -= int(share[:, w, d].sum())
            rest = want[1, :, w, d]
            if not rest.any() and not first.any():
                rest = most[:, w]  # nobody's window reaches this day: split by what could use it at all
            share[:, w, d] += largest_remainder(left, rest)
    return share, most


def split(problem: AllocationProblem, *, max_cells: int | None = None) -> list[Shard]:
    """The shards of ``problem``: connected components (see the module docstring) packed into shards of at
    most ``max_cells`` cells (None: one shard per component). Deterministic: the same problem always gives the
    same shards, in the same order."""
    p = problem
    if p.n_cells == 0:
        return []
    groups = _pack(_attach_stock_only(p, _components(p)), max_cells)
    shard_of_cell = np.empty(p.n_cells, np.int64)
    for k, cells in enumerate(groups):
        shard_of_cell[cells] = k
    share, most = _handling_shares(p, shard_of_cell, len(groups))
    return [_shard(p, k, cells, share[k], most[k]) for k, cells in enumerate(groups)]


def _positions(sorted_ids: I64, values: I64) -> I64:
    return np.searchsorted(sorted_ids, values).astype(np.int64)


def _shard(p: AllocationProblem, k: int, cells: I64, share: I64, most: I64) -> Shard:
    styles = np.unique(p.cell_style[cells])
    skus = np.unique(p.cell_sku[cells])
    rows = np.flatnonzero(np.isin(p.stock_sku, skus)).astype(np.int64)
    lots = np.flatnonzero(np.isin(p.open_lot_style, styles)).astype(np.int64)
    quals = np.flatnonzero(np.isin(p.qual_style, styles)).astype(np.int64)
    merchants = np.unique(np.concatenate((p.cell_owner[cells], p.stock_owner[rows], p.open_lot_owner[lots])))
    workshops = np.unique(np.concatenate((p.qual_workshop[quals], p.open_lot_workshop[lots])))
    warehouses = np.unique(p.stock_warehouse[rows])
    # the families of this shard's styles: the other families' minutes of its workshops belong to other shards
    families = np.zeros(p.n_families, np.bool_)
    families[p.style_family[styles]] = True

    def minutes(a: np.ndarray) -> np.ndarray:
        out = a[workshops].copy()
        out[:, ~families, :] = 0
        return out

    # the listed orders' lines in this shard's cells (an order across shards is listed in each, in part: the
    # merge counts its parcels whole), and the previous plan's pieces of its cells at its own sites
    in_shard = np.isin(p.order_line_cell, cells)
    line_order = p.order_line_order()[in_shard]
    _, line_counts = np.unique(line_order, return_counts=True)
    order_start = np.concatenate(([0], np.cumsum(line_counts))).astype(np.int64)
    prev = np.flatnonzero(np.isin(p.prev_cell, cells))
    prev_kind, prev_site = p.prev_kind[prev], p.prev_site[prev]
    sites = np.where(prev_kind == SiteKind.WAREHOUSE, 0, 1)
    site_lists = (warehouses, workshops)
    prev_at = np.full(prev.shape[0], -1, np.int64)
    for k, listed in enumerate(site_lists):
        mask = sites == k
        if listed.size and mask.any():
            pos = np.minimum(np.searchsorted(listed, prev_site[mask]), listed.shape[0] - 1)
            prev_at[mask] = np.where(listed[pos] == prev_site[mask], pos, -1)
    here = prev_at >= 0  # a previous site outside the shard keeps none of its pieces here: churn regardless
    prev, prev_at = prev[here], prev_at[here]

    full = p.warehouse_handling[warehouses]
    mine = share[warehouses]
    # restricted: some warehouse-day gives less than the whole capacity and less than all it could use
    restricted = bool(np.any((mine < full) & (mine < most[warehouses][:, None])))
    sub = AllocationProblem(
        merchant_lon=p.merchant_lon[merchants],
        merchant_lat=p.merchant_lat[merchants],
        merchant_pools=p.merchant_pools[merchants],
        style_family=p.style_family[styles],
        style_minutes_per_unit=p.style_minutes_per_unit[styles],
        style_min_lot=p.style_min_lot[styles],
        style_changeover_fen=p.style_changeover_fen[styles],
        sku_style=_positions(styles, p.sku_style[skus]),
        sku_weight_g=p.sku_weight_g[skus],
        cell_style=_positions(styles, p.cell_style[cells]),
        cell_sku=_positions(skus, p.cell_sku[cells]),
        cell_owner=_positions(merchants, p.cell_owner[cells]),
        cell_quantity=p.cell_quantity[cells],
        cell_lines=p.cell_lines[cells],
        cell_ship_by=p.cell_ship_by[cells],
        cell_province=p.cell_province[cells],
        workshop_lon=p.workshop_lon[workshops],
        workshop_lat=p.workshop_lat[workshops],
        regular_minutes=minutes(p.regular_minutes),
        overtime_minutes=minutes(p.overtime_minutes),
        overtime_fen_per_minute=p.overtime_fen_per_minute[workshops],
        qual_workshop=_positions(workshops, p.qual_workshop[quals]),
        qual_style=_positions(styles, p.qual_style[quals]),
        qual_unit_cost_fen=p.qual_unit_cost_fen[quals],
        warehouse_lon=p.warehouse_lon[warehouses],
        warehouse_lat=p.warehouse_lat[warehouses],
        warehouse_handling=as_i64(mine),
        warehouse_handling_fen=p.warehouse_handling_fen[warehouses],
        stock_warehouse=_positions(warehouses, p.stock_warehouse[rows]),
        stock_owner=_positions(merchants, p.stock_owner[rows]),
        stock_sku=_positions(skus, p.stock_sku[rows]),
        stock_available=p.stock_available[rows],
        province_shipping_fen=p.province_shipping_fen,
        start=p.start,
        days=p.days,
        first_day=p.first_day,
        ready_minute=p.ready_minute,
        late_fen_per_unit_day=p.late_fen_per_unit_day,
        pick_early_days=p.pick_early_days,
        max_late_days=p.max_late_days,
        unfilled_fen_per_unit=p.unfilled_fen_per_unit,
        open_lot_workshop=_positions(workshops, p.open_lot_workshop[lots]),
        open_lot_style=_positions(styles, p.open_lot_style[lots]),
        open_lot_day=p.open_lot_day[lots],
        open_lot_spare=p.open_lot_spare[lots],
        open_lot_owner=_positions(merchants, p.open_lot_owner[lots]),
        order_start=order_start,
        order_line_cell=_positions(cells, p.order_line_cell[in_shard]),
        order_line_quantity=p.order_line_quantity[in_shard],
        split_fen_per_parcel=p.split_fen_per_parcel,
        prev_cell=_positions(cells, p.prev_cell[prev]),
        prev_kind=p.prev_kind[prev],
        prev_site=prev_at,
        prev_day=p.prev_day[prev],
        prev_quantity=p.prev_quantity[prev],
        churn_fen_per_unit=p.churn_fen_per_unit,
    )
    return Shard(
        index=k,
        problem=sub,
        cells=cells,
        styles=styles,
        skus=skus,
        merchants=merchants,
        workshops=workshops,
        warehouses=warehouses,
        stock_rows=rows,
        open_lots=lots,
        qualifications=quals,
        full_handling=as_i64(full),
        restricted=restricted,
    )


# --- solving one shard -------------------------------------------------------------------------------------


def shard_seed(seed: int, k: int) -> int:
    """The seed of shard ``k`` of a solve seeded ``seed``: distinct per shard, the same on every machine."""
    return (seed * 1_000_003 + k * 7_919) % 2**31


def shard_seconds(seconds: float, shards: Sequence[Shard], k: int) -> float:
    """Shard ``k``'s part of a time limit: in proportion to its cells, at least a second (or all of
    ``seconds`` when that is less). The same on every machine, so a distributed solve and
    :func:`solve_sharded` give each shard the same limit."""
    total = sum(s.n_cells for s in shards)
    part = seconds * shards[k].n_cells / max(total, 1)
    return max(part, min(seconds, 1.0))


def solve_shard(shard: Shard, *, seconds: float, seed: int) -> AllocationResult:
    """Solve one shard — the one function both the single-process and the distributed path call.

    The result's bound is always a bound of the shard's *relaxation* (full handling): for a shard that was
    not restricted, the shard's problem is its relaxation as far as any plan can tell (no pick can reach its
    handling share), so the solver's own bound serves; for a restricted one, the relaxation's LP optimum is
    the bound. Both are also bounds of the shard itself, whose plans the relaxation admits too.
    """
    result = solve(shard.problem, seconds=seconds, seed=seed)
    if not shard.restricted or result.bound_fen is None:
        return result
    return replace(result, bound_fen=_relaxation_bound(shard, result, seconds))


def _relaxation_bound(shard: Shard, result: AllocationResult, seconds: float) -> float | None:
    relaxed = shard.relaxation()
    served = relaxed.province_shipping_fen[relaxed.cell_province] >= 0
    model = build_model(relaxed, group_cells(relaxed, served))
    try:
        lp = solve_lp(model, seconds=max(seconds, 1.0), solver="highs_lp")
    except LpError:
        return None  # no proven bound rather than a wrong one
    constant = constant_fen(relaxed, served)
    # as solve() does: the plan prices each allocation and lot in whole fen, each off by at most half a fen
    allowance = 0.5 * (result.n_allocations + result.lot_workshop.shape[0])
    return float(min(lp.objective + constant - allowance, float(result.objective_fen)))


# --- merge ------------------------------------------------------------------------------------------------


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)


def _mapped(values: I64, to: I64) -> I64:
    """``to[values]`` where ``values >= 0``, -1 elsewhere."""
    out = np.full(values.shape[0], -1, np.int64)
    ok = values >= 0
    out[ok] = to[values[ok]]
    return out


def merge(
    problem: AllocationProblem,
    shards: Sequence[Shard],
    results: Sequence[AllocationResult],
    *,
    seed: int = 0,
) -> AllocationResult:
    """The shards' plans as one plan of ``problem``: indices translated back, concatenated in shard order.

    The objective is the sum of the shards' (every cost belongs to one cell, lot or workshop-family-day, and
    each of those to one shard). The bound is the sum of the shards' bounds, which is valid for the whole
    problem because every shard's bound is a bound of its relaxation with the full handling of every
    warehouse-day: take any plan of the whole problem; its part on shard ``k``'s cells keeps every constraint
    of that relaxation (its picks at a warehouse-day are at most all picks there, at most the capacity; the
    shard's workshop minutes, stock rows and lots are its own), so its cost there is at least bound ``k``,
    and summing over the shards, its whole cost is at least the sum. (A shard's bound under its handling
    *share* would not do: that problem is a restriction, its optimum may exceed the relaxation's.)
    """
    if len(shards) != len(results):
        raise ValueError(f"merge: {len(shards)} shards but {len(results)} results")
    p = problem
    a: dict[str, list[np.ndarray]] = {}

    def put(name: str, values: np.ndarray) -> None:
        a.setdefault(name, []).append(values)

    used_regular = np.zeros(p.regular_minutes.shape, np.float64)
    used_overtime = np.zeros(p.overtime_minutes.shape, np.float64)
    used_handling = np.zeros(p.warehouse_handling.shape, np.int64)
    lot_offset = 0
    bound: float | None = 0.0
    stopped: list[str] = []
    for s, r in zip(shards, results, strict=True):
        kind = r.alloc_kind
        put("alloc_cell", s.cells[r.alloc_cell])
        put("alloc_kind", kind)
        site = np.where(
            kind == SiteKind.WAREHOUSE,
            s.warehouses[np.where(kind == SiteKind.WAREHOUSE, r.alloc_site, 0)] if s.warehouses.size else -1,
            s.workshops[np.where(kind == SiteKind.WORKSHOP, r.alloc_site, 0)] if s.workshops.size else -1,
        )
        put("alloc_site", site)
        put("alloc_owner", _mapped(r.alloc_owner, s.merchants))
        for name in (
            "alloc_day",
            "alloc_quantity",
            "alloc_regular_minutes",
            "alloc_overtime_minutes",
            "alloc_goods_fen",
            "alloc_overtime_fen",
            "alloc_changeover_fen",
            "alloc_shipping_fen",
            "alloc_late_fen",
            "alloc_late",
            "alloc_why",
            "lot_family",
            "lot_day",
            "lot_quantity",
            "lot_allocated",
            "lot_regular_minutes",
            "lot_overtime_minutes",
            "unfilled_quantity",
            "unfilled_reason",
        ):
            put(name, getattr(r, name))
        put("alloc_lot", np.where(r.alloc_lot >= 0, r.alloc_lot + lot_offset, -1))
        put("lot_workshop", s.workshops[r.lot_workshop])
        put("lot_style", s.styles[r.lot_style])
        put("lot_surplus_sku", _mapped(r.lot_surplus_sku, s.skus))
        put("lot_owner", _mapped(r.lot_owner, s.merchants))
        put("lot_open", _mapped(r.lot_open, s.open_lots))
        put("unfilled_cell", s.cells[r.unfilled_cell])
        used_regular[s.workshops] += r.used_regular
        used_overtime[s.workshops] += r.used_overtime
        used_handling[s.warehouses] += r.used_handling
        lot_offset += int(r.lot_workshop.shape[0])
        bound = None if bound is None or r.bound_fen is None else bound + r.bound_fen
        stopped.append(r.stopped_by)
    floats = {
        "alloc_regular_minutes",
        "alloc_overtime_minutes",
        "lot_regular_minutes",
        "lot_overtime_minutes",
    }
    arrays = {
        f.name: _cat(a.get(f.name, []), np.float64 if f.name in floats else np.int64)
        for f in fields(AllocationResult)
        if f.name.startswith(("alloc_", "lot_", "unfilled_")) and f.name != "unfilled_fen"
    }
    arrays["alloc_late"] = _cat(a.get("alloc_late", []), np.bool_)
    stopped_by = (
        "optimal" if all(x == "optimal" for x in stopped) else "time" if "time" in stopped else "work"
    )
    merged = AllocationResult(
        solver=SOLVER,
        status="feasible",
        seconds=float(sum(r.seconds for r in results)),
        used_regular=used_regular,
        used_overtime=used_overtime,
        used_handling=used_handling,
        unfilled_fen=int(sum(r.unfilled_fen for r in results)),
        split_fen=0,  # counted below
        churn_fen=0,
        bound_fen=bound,
        stopped_by=stopped_by,
        seed=seed,
        **arrays,
    )
    # orders across shards and churn are counted on the whole plan; the shards' bounds count at most the
    # splits and churn of their own cells, so their sum stays a bound. Optimal shards make an optimal whole
    # only if the whole pays no more than they did (no order split across shards, no churn a shard missed)
    whole = finish(p, merged)
    if stopped_by == "optimal" and whole.objective_fen > sum(r.objective_fen for r in results):
        whole = replace(whole, stopped_by="work")
    return whole


def solve_sharded(
    problem: AllocationProblem, *, seconds: float, seed: int, max_cells: int | None = None
) -> AllocationResult:
    """The single-process reference of a distributed solve: split, :func:`solve_shard` each, merge."""
    shards = split(problem, max_cells=max_cells)
    results = [
        solve_shard(s, seconds=shard_seconds(seconds, shards, k), seed=shard_seed(seed, k))
        for k, s in enumerate(shards)
    ]
    return merge(problem, shards, results, seed=seed)


# --- shard results and problems as bytes (what a worker stores for the merge) -----------------------------

_SCALARS = (
    "solver",
    "status",
    "seconds",
    "unfilled_fen",
    "split_fen",
    "churn_fen",
    "bound_fen",
    "stopped_by",
    "seed",
)


def result_to_bytes(result: AllocationResult, *, fingerprint: str = "") -> bytes:
    """A result as an ``.npz`` (no pickles): its arrays, its scalars, and the fingerprint of the problem it
    solved, so a reader can tell whether that problem is still the one at hand."""
    arrays = {f.name: getattr(result, f.name) for f in fields(AllocationResult) if f.name not in _SCALARS}
    bound = math.nan if result.bound_fen is None else float(result.bound_fen)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        **arrays,
        _text=np.array([result.solver, result.status, result.stopped_by, fingerprint]),
        _numbers=np.array([result.seconds, bound]),
        _ints=np.array([result.unfilled_fen, result.seed, result.split_fen, result.churn_fen], np.int64),
    )
    return buf.getvalue()


def result_from_bytes(data: bytes) -> tuple[AllocationResult, str]:
    """The result :func:`result_to_bytes` stored, and the fingerprint stored with it."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        solver, status, stopped_by, fingerprint = (str(x) for x in z["_text"])
        seconds, bound = (float(x) for x in z["_numbers"])
        unfilled_fen, seed, split_fen, churn_fen = (int(x) for x in z["_ints"])
        arrays = {f.name: z[f.name] for f in fields(AllocationResult) if f.name not in _SCALARS}
    result = AllocationResult(
        solver=solver,
        status=status,
        seconds=seconds,
        unfilled_fen=unfilled_fen,
        split_fen=split_fen,
        churn_fen=churn_fen,
        bound_fen=None if math.isnan(bound) else bound,
        stopped_by=stopped_by,
        seed=seed,
        **arrays,
    )
    return result, fingerprint


def fingerprint(problem: AllocationProblem) -> str:
    """A digest of every field of ``problem``: equal digests, equal problems (for a merge to check that a
    shard solved elsewhere solved the problem it now sees)."""
    h = hashlib.sha256()
    for f in fields(AllocationProblem):
        value = getattr(problem, f.name)
        h.update(f.name.encode())
        if isinstance(value, np.ndarray):
            h.update(str(value.dtype).encode())
            h.update(str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()
