"""Why the plan is what it is: cost breakdowns, runners-up, shadow prices and binding constraints.

Pure, columnar and solver-agnostic: it reads an :class:`~solvers.allocation.AllocationProblem` and any
:class:`~solvers.allocation.AllocationResult` of it (the optimiser's or the rule cascade's) and returns an
:class:`Explanation` of numpy arrays.

**Breakdown.** Per allocation, what the plan charges for it, in fen: unit cost of its pieces, its share of its
lot's minimum-lot surplus, overtime premium and changeover, warehouse handling, shipping and lateness. A
result books a lot's surplus, overtime and changeover on one of the lot's allocations (which one depends on
the solver); here they are shared over the lot's allocations in proportion to their pieces, in whole fen
(cumulative floors, so the shares of one lot add up to exactly what the plan charged the lot). Summed over
all allocations the breakdown is the plan's objective less the unfilled penalty.

**Runner-up.** Per allocation, the cheapest *other* single site that could take all its pieces — another
stock row or pick day, another qualified workshop or day — within the capacity, stock and handling the plan
leaves free, and its *extra cost per piece*: (what serving the pieces there adds) − (what taking them away
from where they are saves), both at the model's prices. Taking pieces away saves the handling or the unit
cost of the production no longer needed (a lot at its minimum does not shrink; a lot left with no pieces
closes and saves its changeover), the overtime those minutes used, and the lateness. Serving them elsewhere
costs handling, or unit cost plus overtime beyond the free regular minutes, plus a new lot's minimum and
changeover when no lot of that workshop, style and day exists to grow (surplus already made there is free),
plus lateness. Moving the pieces gives a feasible plan, so for a plan the solver proved optimal the extra
cost is >= 0 (up to the plan's rounding to whole fen). Shipping is the same from every site of the belt and
cancels. No alternative: kind -1 and an extra cost of NaN.

**Shadow prices.** See :func:`shadow_prices`: fen per extra minute of a workshop's process family on a day,
>= 0, from the duals of an LP of the model with the plan's lot decisions fixed.

**Binding constraints.** Per cell with late or unfilled pieces, the first of these checks that holds, each a
relaxation that would have let the pieces be on time (unfilled: served at all, within the service window):
no courier serves the province; ship-by before the first plan day; no stock the owner may take and no
qualified workshop; on time was possible within the free capacity but costs more than lateness (a new
minimum lot, often); otherwise the capacity that is full — warehouse handling, a minimum lot that does not
fit the free minutes, every qualified workshop's family capacity through the day — with the stock side's
state (no stock the owner may take, stock short). Cheap checks on the arrays, no re-solve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import numpy as np

from solvers.allocation.data import F64, I64, AllocationProblem, B
from solvers.allocation.lp import LpError, solve_lp
from solvers.allocation.model import Model, _expand, build_model, group_cells, stock_rows
from solvers.allocation.result import AllocationResult, SiteKind

_EPS = 1e-9


class Binding(IntEnum):
    """The constraint that kept a cell's pieces from being on time (or served at all)."""

    NO_COURIER = 0
    PAST_DUE = 1  # ship-by falls before the first plan day that can still ship
    NO_SOURCE = 2
    COSTLIER = 3  # on time was possible in the free capacity, at a higher cost than lateness
    MIN_LOT_COSTLIER = 4  # ... and the cheapest on-time way needs a new minimum lot larger than the demand
    HANDLING_FULL = 5
    MIN_LOT = 6  # the pieces fit a workshop's free minutes, its minimum lot does not
    CAPACITY_FULL = 7  # every qualified workshop's family capacity full through the day
    STOCK_SHORT = 8  # no qualified workshop, and the stock the owner may take is short


class StockState(IntEnum):
    NONE = 0  # no stock the owner may take
    SHORT = 1  # there is some, the plan has used it up (or it is picked too early/late to help)
    HANDLING_FULL = 2  # free stock, but no warehouse with it can handle another line on a useful day


class MakeState(IntEnum):
    NO_WORKSHOP = 0
    FULL = 1
    MIN_LOT = 2
    FREE = 3  # capacity for it is free (the plan chose lateness or unfilled on cost)


@dataclass(frozen=True, eq=False)
class Explanation:
    # --- per allocation of the result (its order) -----------------------------------------------------------
    unit_fen: I64  # unit cost of the allocation's own pieces
    surplus_fen: I64  # share of its lot's minimum-lot surplus (pieces made that no cell takes)
    overtime_fen: I64  # share of its lot's overtime premium
    changeover_fen: I64  # share of its lot's changeover
    handling_fen: I64  # warehouse handling of a pick
    shipping_fen: I64
    late_fen: I64
    total_fen: I64  # the sum of the seven parts
    runner_kind: I64  # SiteKind of the runner-up, -1: none
    runner_site: I64  # warehouse or workshop index, -1: none
    runner_owner: I64  # stock owner of a warehouse runner-up, else -1
    runner_day: I64
    runner_new_lot: B  # the runner-up needs a new lot (minimum lot and changeover)
    runner_extra_fen_per_piece: F64  # NaN: none
    # --- per workshop × family × day (the problem's capacity shape) -----------------------------------------
    shadow_regular: F64  # fen saved by one more regular minute, >= 0
    shadow_overtime: F64  # fen saved by one more overtime minute, >= 0
    lp_objective: float | None  # the fixed-lot LP's optimum; None when it could not be solved
    lp_message: str | None  # why there are no shadow prices, if there are none
    lp_seconds: float
    # --- per cell with late or unfilled pieces --------------------------------------------------------------
    binding_cell: I64
    binding_late: I64  # pieces placed late
    binding_unfilled: I64  # pieces placed nowhere
    binding_code: I64  # Binding
    binding_stock: I64  # StockState (-1 where the checks stopped before the capacity)
    binding_make: I64  # MakeState (-1 likewise)
    binding_family: I64
    binding_day: I64  # the last day that would have done: the due day (late) or the window's end
    binding_min_lot: I64
    binding_site_kind: I64  # COSTLIER: the on-time way that was possible, else -1
    binding_site: I64
    binding_site_day: I64
    binding_extra_fen_per_piece: F64  # COSTLIER: its cost per piece above lateness, else NaN

    def binding_texts(
        self,
        family: Callable[[int], str] | None = None,
        day: Callable[[int], str] | None = None,
        site: Callable[[int, int], str] | None = None,
    ) -> list[str]:
        """The binding constraint of each late or unfilled cell as a sentence; the callables name a family
        index, a plan day and a (SiteKind, index) site (defaults: "family 2", "day 3", "workshop 7")."""
        return [self.binding_text(i, family, day, site) for i in range(self.binding_cell.shape[0])]

    def binding_text(
        self,
        i: int,
        family: Callable[[int], str] | None = None,
        day: Callable[[int], str] | None = None,
        site: Callable[[int, int], str] | None = None,
    ) -> str:
        fam = family or (lambda f: f"family {f}")
        dn = day or (lambda d: f"day {d}")
        sn = site or (lambda k, s: f"{SiteKind(k).name.lower()} {s}")
        code = Binding(int(self.binding_code[i]))
        d = int(self.binding_day[i])
        if code == Binding.NO_COURIER:
            return "no courier serves the province"
        if code == Binding.PAST_DUE:
            return f"ship-by ({dn(d)}) is before the first plan day that can still ship"
        if code == Binding.NO_SOURCE:
            return "no stock the owner may take and no qualified workshop"
        if code in (Binding.COSTLIER, Binding.MIN_LOT_COSTLIER):
            where = f"{sn(int(self.binding_site_kind[i]), int(self.binding_site[i]))} on " + dn(
                int(self.binding_site_day[i])
            )
            extra = float(self.binding_extra_fen_per_piece[i])
            head = (
                f"a new minimum lot of {int(self.binding_min_lot[i])}, larger than the demand: "
                f"on time at {where}"
                if code == Binding.MIN_LOT_COSTLIER
                else f"on time at {where} was possible"
            )
            return f"{head} but costs {extra:,.0f} fen a piece more than lateness"
        stock = {
            StockState.NONE: "no stock the owner may take",
            StockState.SHORT: "stock short",
            StockState.HANDLING_FULL: f"warehouse handling full through {dn(d)}",
        }[StockState(int(self.binding_stock[i]))]
        f = fam(int(self.binding_family[i]))
        make = {
            MakeState.NO_WORKSHOP: "no qualified workshop",
            MakeState.FULL: f"every qualified workshop's {f} capacity full through {dn(d)}",
            MakeState.MIN_LOT: (
                f"a minimum lot ({int(self.binding_min_lot[i])}) fits no qualified workshop's free {f} "
                f"capacity through {dn(d)}"
            ),
            MakeState.FREE: "workshop capacity free",
        }[MakeState(int(self.binding_make[i]))]
        return f"{stock} and {make}"


class ExplainError(ValueError):
    """The result does not belong to the problem; the message says what does not match."""


def explain(problem: AllocationProblem, result: AllocationResult, *, seconds: float = 10.0) -> Explanation:
    """Explain ``result``, a plan of ``problem`` (see the module docstring); ``seconds`` bounds the LP."""
    p, r = problem, result
    if r.used_regular.shape != p.regular_minutes.shape:
        raise ExplainError(
            f"the result's capacity shape {r.used_regular.shape} "
            f"is not the problem's {p.regular_minutes.shape}"
        )
    if r.n_allocations and int(r.alloc_cell.max()) >= p.n_cells:
        raise ExplainError(f"the result names cell {int(r.alloc_cell.max())}, the problem has {p.n_cells}")
    served = p.province_shipping_fen[p.cell_province] >= 0
    groups = group_cells(p, served)
    model = build_model(p, groups)
    parts = _breakdown(p, r)
    runner = _runners_up(p, r, model)
    t0 = time.perf_counter()
    try:
        shadow = shadow_prices(p, r, model, seconds=seconds)
        reg, ot, objective, message = shadow[0], shadow[1], shadow[2], None
    except (LpError, ExplainError) as exc:
        # the rest of the explanation stands without them
        reg = np.zeros(p.regular_minutes.shape)
        ot = np.zeros(p.regular_minutes.shape)
        objective, message = None, f"no shadow prices: {exc}"
    lp_seconds = time.perf_counter() - t0
    bind = _bindings(p, r, model, parts)
    return Explanation(
        **parts,
        **runner,
        shadow_regular=reg,
        shadow_overtime=ot,
        lp_objective=objective,
        lp_message=message,
        lp_seconds=lp_seconds,
        **bind,
    )


# --- breakdown ----------------------------------------------------------------------------------------------


def _shares(amount: I64, weight: I64, group: I64, n_groups: int) -> I64:
    """Split each group's ``amount`` over its members by ``weight``, in whole units that add up exactly:
    a member gets floor(amount · cum_end / total) − floor(amount · cum_start / total)."""
    out = np.zeros(group.shape[0], np.int64)
    if group.size == 0:
        return out
    order = np.lexsort((np.arange(group.shape[0]), group))
    g, w = group[order], weight[order]
    total = np.bincount(g, weights=w, minlength=n_groups).astype(np.int64)
    cum = np.cumsum(w)
    first = np.concatenate(([True], g[1:] != g[:-1]))
    base = np.maximum.accumulate(np.where(first, cum - w, 0))  # cum before each group's first member
    end = cum - base
    start = end - w
    a, t = amount[g], np.maximum(total[g], 1)
    out[order] = a * end // t - a * start // t
    return out


def _breakdown(p: AllocationProblem, r: AllocationResult) -> dict[str, Any]:
    n = r.n_allocations
    made = r.alloc_kind == SiteKind.WORKSHOP
    zero = np.zeros(n, np.int64)
    n_lots = int(r.lot_workshop.shape[0])
    lot = np.where(made, r.alloc_lot, 0)
    if made.any() and (r.alloc_lot[made].min() < 0 or r.alloc_lot[made].max() >= n_lots):
        raise ExplainError("a made allocation names no lot of the result")
    idx = np.flatnonzero(made)
    lot_m = lot[idx]
    # what the plan charged each lot, over all its allocations
    goods = np.bincount(lot_m, weights=r.alloc_goods_fen[idx], minlength=n_lots).astype(np.int64)
    ot = np.bincount(lot_m, weights=r.alloc_overtime_fen[idx], minlength=n_lots).astype(np.int64)
    change = np.bincount(lot_m, weights=r.alloc_changeover_fen[idx], minlength=n_lots).astype(np.int64)
    unit_cost = _qual_cost(p, r.lot_workshop, r.lot_style)
    # a lot's goods are its pieces' unit cost and, above what its cells take, the minimum lot's surplus
    unit = np.minimum(goods, unit_cost * r.lot_allocated)
    out = {
        "unit_fen": zero.copy(),
        "surplus_fen": zero.copy(),
        "overtime_fen": zero.copy(),
        "changeover_fen": zero.copy(),
    }
    q = r.alloc_quantity[idx]
    out["unit_fen"][idx] = _shares(unit, q, lot_m, n_lots)
    out["surplus_fen"][idx] = _shares(goods - unit, q, lot_m, n_lots)
    out["overtime_fen"][idx] = _shares(ot, q, lot_m, n_lots)
    out["changeover_fen"][idx] = _shares(change, q, lot_m, n_lots)
    # anything a solver books on a pick beyond handling (none does today) stays with the pick
    out["handling_fen"] = np.where(made, 0, r.alloc_goods_fen).astype(np.int64)
    stock_extra = np.where(made, 0, r.alloc_overtime_fen + r.alloc_changeover_fen).astype(np.int64)
    out["overtime_fen"] = out["overtime_fen"] + stock_extra
    out["shipping_fen"] = r.alloc_shipping_fen.astype(np.int64).copy()
    out["late_fen"] = r.alloc_late_fen.astype(np.int64).copy()
    out["total_fen"] = sum(
        (out[k] for k in ("unit_fen", "surplus_fen", "overtime_fen", "changeover_fen", "handling_fen")),
        start=out["shipping_fen"] + out["late_fen"],
    )
    return out


def _qual_cost(p: AllocationProblem, workshop: I64, style: I64) -> I64:
    """Unit cost of (workshop, style); 0 where the workshop is not qualified."""
    n_s = max(p.n_styles, 1)
    key = p.qual_workshop * n_s + p.qual_style
    order = np.argsort(key)
    want = workshop * n_s + style
    at = np.minimum(np.searchsorted(key[order], want), max(key.shape[0] - 1, 0))
    if key.size == 0:
        return np.zeros(want.shape[0], np.int64)
    hit = key[order][at] == want
    return np.where(hit, p.qual_unit_cost_fen[order[at]], 0).astype(np.int64)


# --- what the plan leaves free ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Free:
    used: F64  # [w, f, d] minutes the plan uses
    free_regular: F64
    free_total: F64
    stock_free: I64  # per stock row
    stock_row_of_alloc: I64  # per allocation: its stock row, -1 for made
    handling_free: F64  # [warehouse, day] lines
    lot_key: I64  # sorted (w, s, d) keys of the result's lots and the problem's open lots
    lot_free: I64  # free pieces there (surplus, spare left)
    lot_exists: B  # a lot exists to grow without minimum or changeover
    lot_open_owner: I64  # for an earlier lot, whose its spare is; -1 for a lot of this plan


def _stock_key(p: AllocationProblem, warehouse: I64, owner: I64, sku: I64) -> I64:
    return (warehouse * max(p.n_merchants, 1) + owner) * max(p.n_skus, 1) + sku


def _find(sorted_keys: I64, order: I64, want: I64) -> I64:
    """Index (into the unsorted array) of each wanted key, -1 where absent."""
    if sorted_keys.size == 0:
        return np.full(want.shape[0], -1, np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, want), sorted_keys.shape[0] - 1)
    return np.where(sorted_keys[at] == want, order[at], -1).astype(np.int64)


def _lot_key(p: AllocationProblem, w: I64, s: I64, d: I64) -> I64:
    return (w * max(p.n_styles, 1) + s) * p.days + d


def _free(p: AllocationProblem, r: AllocationResult) -> _Free:
    used = r.used_regular + r.used_overtime
    cap = p.regular_minutes + p.overtime_minutes
    free_total = np.maximum(cap - used, 0.0)
    free_regular = np.maximum(p.regular_minutes - used, 0.0)
    skey = _stock_key(p, p.stock_warehouse, p.stock_owner, p.stock_sku)
    sorder = np.argsort(skey)
    picks = r.alloc_kind == SiteKind.WAREHOUSE
    want = _stock_key(p, r.alloc_site, np.maximum(r.alloc_owner, 0), p.cell_sku[r.alloc_cell])
    row = np.where(picks, _find(skey[sorder], sorder, want), -1)
    if np.any(picks & (row < 0)):
        raise ExplainError("a pick of the result takes a stock row the problem does not have")
    taken = np.bincount(row[picks], weights=r.alloc_quantity[picks], minlength=skey.shape[0])
    stock_free = np.maximum(p.stock_available - taken.astype(np.int64), 0)
    handling_free = np.maximum(p.warehouse_handling - r.used_handling, 0).astype(np.float64)
    # lots: the result's, then the problem's open lots the result does not list
    rk = _lot_key(p, r.lot_workshop, r.lot_style, r.lot_day)
    r_free = np.maximum(r.lot_quantity - r.lot_allocated, 0)
    r_owner = np.where(
        r.lot_open >= 0, p.open_lot_owner[np.maximum(r.lot_open, 0)] if p.open_lot_owner.size else -1, -1
    )
    in_result = np.zeros(p.open_lot_workshop.shape[0], np.bool_)
    in_result[r.lot_open[r.lot_open >= 0]] = True
    o = np.flatnonzero(~in_result)
    ok = _lot_key(p, p.open_lot_workshop[o], p.open_lot_style[o], p.open_lot_day[o])
    keys = np.concatenate((rk, ok))
    order = np.argsort(keys, kind="stable")
    return _Free(
        used=used,
        free_regular=free_regular,
        free_total=free_total,
        stock_free=stock_free.astype(np.int64),
        stock_row_of_alloc=row.astype(np.int64),
        handling_free=handling_free,
        lot_key=keys[order],
        lot_free=np.concatenate((r_free, p.open_lot_spare[o]))[order].astype(np.int64),
        lot_exists=np.ones(keys.shape[0], np.bool_),
        lot_open_owner=np.concatenate((r_owner, p.open_lot_owner[o]))[order].astype(np.int64),
    )


def _owner_ok(p: AllocationProblem, a: I64, b: I64) -> B:
    """May merchant ``a``'s orders take merchant ``b``'s goods (the same, or both pool)?"""
    ok: B = (b >= 0) & p.may_take(a, np.maximum(b, 0))  # -1: nobody's (a lot's spare without an owner)
    return ok


def _lot_at(fr: _Free, key: I64) -> I64:
    """Position in the free-lot arrays of each (w, s, d) key, -1 where no lot is there."""
    return _find(fr.lot_key, np.arange(fr.lot_key.shape[0], dtype=np.int64), key)


# --- runners-up ---------------------------------------------------------------------------------------------


def _runners_up(p: AllocationProblem, r: AllocationResult, m: Model) -> dict[str, Any]:
    n = r.n_allocations
    fr = _free(p, r)
    g = m.groups
    cell = r.alloc_cell
    q = r.alloc_quantity.astype(np.int64)
    qf = q.astype(np.float64)
    due = p.due_day()[cell]
    owner = p.cell_owner[cell]
    style = p.cell_style[cell]
    fam = p.style_family[style]
    mpu = p.style_minutes_per_unit[style]
    late_fen = p.late_fen_per_unit_day
    grp = np.maximum(g.cell_group[cell], 0)
    line_ratio = g.g_lines / np.maximum(g.g_quantity, 1)
    made = r.alloc_kind == SiteKind.WORKSHOP

    # --- what taking the pieces away saves ----------------------------------------------------------------
    saving = r.alloc_late_fen.astype(np.float64) + np.where(made, 0, r.alloc_goods_fen)
    lot = np.where(made, r.alloc_lot, 0)
    if r.lot_workshop.size and made.any():
        lw, ls, ld = r.lot_workshop[lot], r.lot_style[lot], r.lot_day[lot]
        Q, A = r.lot_quantity[lot], r.lot_allocated[lot]
        is_open = r.lot_open[lot] >= 0
        spare = np.where(
            is_open, p.open_lot_spare[np.maximum(r.lot_open[lot], 0)] if p.open_lot_spare.size else 0, 0
        )
        need = A - q  # pieces the lot must still give
        minimum = np.maximum(p.style_min_lot[ls], 1)
        shrink_new = Q - np.where(need <= 0, 0, np.maximum(minimum, need))
        shrink_open = (Q - spare) - np.maximum(need - spare, 0)
        shrink = np.maximum(np.where(is_open, shrink_open, shrink_new), 0)
        closes = ~is_open & (need <= 0)
        u = _qual_cost(p, lw, ls)
        lf = p.style_family[ls]
        ot_used = r.used_overtime[lw, lf, ld]
        premium = p.overtime_fen_per_minute[lw, lf, ld]
        ot_saved = np.minimum(shrink * p.style_minutes_per_unit[ls], ot_used) * premium
        lot_saving = u * shrink + ot_saved + np.where(closes, p.style_changeover_fen[ls], 0)
        saving = saving + np.where(made, lot_saving, 0.0)

    # --- candidate picks: stock rows of the cell's SKU its owner may take, on a day of the pick window ------
    a_of, row = stock_rows(p, p.cell_sku[cell])
    keep = _owner_ok(p, owner[a_of], p.stock_owner[row])
    a_of, row = a_of[keep], row[keep]
    lo, hi = p.first_pick_day(due[a_of]), p.last_day(due[a_of])
    pair, off = _expand(hi - lo + 1)
    pa, prow, pday = a_of[pair], row[pair], lo[pair] + off
    wh = p.stock_warehouse[prow]
    own_row = fr.stock_row_of_alloc[pa]
    same_row = own_row == prow
    same = same_row & (pday == r.alloc_day[pa])
    stock_ok = fr.stock_free[prow] + np.where(same_row, q[pa], 0) >= q[pa]
    lines = qf[pa] * line_ratio[grp[pa]]
    # a pick moved within its warehouse's day frees the lines it takes
    same_hand = ~made[pa] & (r.alloc_site[pa] == wh) & (r.alloc_day[pa] == pday)
    hand_ok = fr.handling_free[wh, pday] + np.where(same_hand, lines, 0.0) + _EPS >= lines
    ok = ~same & stock_ok & hand_ok
    pa, prow, pday, wh, lines = pa[ok], prow[ok], pday[ok], wh[ok], lines[ok]
    pick_cost = np.round(lines * p.warehouse_handling_fen[wh]) + late_fen * qf[pa] * np.maximum(
        pday - due[pa], 0
    )

    # --- candidate making: qualified workshops on a day of the making window ------------------------------
    by_style = np.argsort(p.qual_style, kind="stable")
    q_start = np.searchsorted(p.qual_style[by_style], np.arange(p.n_styles + 1))
    b_of, rank = _expand(q_start[style + 1] - q_start[style])
    qual = by_style[q_start[style[b_of]] + rank]
    lo, hi = np.full(b_of.shape[0], p.first_day), p.last_day(due[b_of])
    pair, off = _expand(hi - lo + 1)
    ma, mq, mday = b_of[pair], qual[pair], lo[pair] + off
    mw = p.qual_workshop[mq]
    same = made[ma] & (r.alloc_site[ma] == mw) & (r.alloc_day[ma] == mday)
    ma, mq, mday, mw = ma[~same], mq[~same], mday[~same], mw[~same]
    at = _lot_at(fr, _lot_key(p, mw, style[ma], mday))
    has_lot = at >= 0
    at0 = np.maximum(at, 0)
    lot_owner = fr.lot_open_owner[at0] if fr.lot_key.size else np.full(at.shape[0], -1)
    # spare of an earlier lot is its owner's; a lot of this plan gives its surplus to any cell (as the model)
    free_ok = has_lot & ((lot_owner < 0) | _owner_ok(p, owner[ma], lot_owner))
    free_pieces = np.where(free_ok, fr.lot_free[at0] if fr.lot_key.size else 0, 0)
    smin = p.style_min_lot[style[ma]]
    make_n = np.where(has_lot, np.maximum(q[ma] - free_pieces, 0), np.maximum(q[ma], smin))
    minutes = make_n * mpu[ma]
    mf = fam[ma]
    fits = minutes <= fr.free_total[mw, mf, mday] + 1e-6
    overtime = np.maximum(minutes - fr.free_regular[mw, mf, mday], 0.0)
    make_cost = (
        p.qual_unit_cost_fen[mq] * make_n
        + overtime * p.overtime_fen_per_minute[mw, mf, mday]
        + np.where(has_lot, 0, p.style_changeover_fen[style[ma]])
        + late_fen * qf[ma] * np.maximum(mday - due[ma], 0)
    )
    ma, mday, mw, make_cost, new_lot = ma[fits], mday[fits], mw[fits], make_cost[fits], ~has_lot[fits]

    # --- the cheapest of all candidates, per allocation ----------------------------------------------------
    c_a = np.concatenate((pa, ma))
    c_kind = np.concatenate(
        (np.full(pa.shape[0], int(SiteKind.WAREHOUSE)), np.full(ma.shape[0], int(SiteKind.WORKSHOP)))
    )
    c_site = np.concatenate((wh, mw))
    c_owner = np.concatenate((p.stock_owner[prow], np.full(ma.shape[0], -1)))
    c_day = np.concatenate((pday, mday))
    c_new = np.concatenate((np.zeros(pa.shape[0], np.bool_), new_lot))
    c_extra = (np.concatenate((pick_cost, make_cost)) - saving[c_a]) / np.maximum(qf[c_a], 1.0)
    # cheapest first; ties: stock, then the lower site and day, so the answer does not depend on array order
    order = np.lexsort((c_day, c_site, c_kind, c_extra, c_a))
    first = (
        np.concatenate(([True], c_a[order][1:] != c_a[order][:-1])) if order.size else np.empty(0, np.bool_)
    )
    best = order[first]
    out_kind = np.full(n, -1, np.int64)
    out_site = np.full(n, -1, np.int64)
    out_owner = np.full(n, -1, np.int64)
    out_day = np.full(n, -1, np.int64)
    out_new = np.zeros(n, np.bool_)
    out_extra = np.full(n, np.nan)
    a = c_a[best]
    out_kind[a], out_site[a], out_owner[a] = c_kind[best], c_site[best], c_owner[best]
    out_day[a], out_new[a], out_extra[a] = c_day[best], c_new[best], c_extra[best]
    return {
        "runner_kind": out_kind,
        "runner_site": out_site,
        "runner_owner": out_owner,
        "runner_day": out_day,
        "runner_new_lot": out_new,
        "runner_extra_fen_per_piece": out_extra,
    }


# --- shadow prices ------------------------------------------------------------------------------------------


def shadow_prices(
    p: AllocationProblem, r: AllocationResult, model: Model | None = None, *, seconds: float = 10.0
) -> tuple[F64, F64, float]:
    """Per workshop × family × day: what one more minute of capacity would save, in fen, given the plan's
    lots.

    The LP is the model with every ``open`` variable fixed to the plan's choice (1 for the plan's lots and
    for lots planned earlier, 0 for the rest), so the prices describe the plan actually chosen, not the
    relaxation: production, picks and the flow of pieces stay continuous. The rows that cap a lot at
    ``floor(minutes / minutes-per-piece)`` (``lot_max``, ``link`` and the matching variable bounds) are
    lifted for open lots — with the lots fixed they only restate the minutes row rounded down, and left in
    they would take the dual of a full day away from the capacity row that is really binding.

    Sign: the minutes row is ``minutes made − overtime <= regular minutes``; its dual y (change of the optimum
    per unit more right-hand side) is <= 0 in a minimisation, and ``shadow_regular = −y >= 0``: fen saved
    by one more regular minute. Overtime is a bounded variable, not a row: one more overtime minute is worth
    ``max(shadow_regular − premium, 0)`` (the overtime variable's reduced cost, sign flipped, when it is at
    its bound; 0 when overtime is left). A workshop-day no open lot can use has no row and a price of 0. On a
    degenerate optimum the dual is one of several valid ones (the saving of one more minute may differ from
    the loss of one minute less); HiGHS's is reported.

    Returns (shadow_regular, shadow_overtime, LP objective); raises :class:`~solvers.allocation.lp.LpError`.
    """
    m = model or build_model(p, group_cells(p, p.province_shipping_fen[p.cell_province] >= 0))
    # the plan's new lots, by (workshop, style, day); lots planned earlier are open in the model already
    new = (r.lot_open < 0) & (r.lot_quantity > 0)
    plan_keys = np.unique(_lot_key(p, r.lot_workshop[new], r.lot_style[new], r.lot_day[new]))
    model_keys = _lot_key(p, m.lot_workshop, m.lot_style, m.lot_day)
    chosen = np.isin(model_keys, plan_keys) | (m.lot_open >= 0)
    missing = np.setdiff1d(plan_keys, model_keys)
    if missing.size:
        k = int(missing[0])
        raise ExplainError(
            f"the plan makes a lot the model cannot: workshop {k // p.days // max(p.n_styles, 1)}, "
            f"style {k // p.days % max(p.n_styles, 1)}, day {k % p.days}"
        )
    lb, ub = m.lb.copy(), m.ub.copy()
    olo, ohi = m.var_at["open"]
    lb[olo:ohi] = ub[olo:ohi] = chosen.astype(np.float64)
    plo, phi = m.var_at["prod"]
    ub[plo:phi] = np.where(chosen, np.inf, 0.0)
    alo, ahi = m.var_at["arc"]
    ub[alo:ahi] = np.where(chosen[m.arc_lot], m.groups.h_quantity[m.arc_h], 0.0)
    row_ub = m.row_ub.copy()
    for block in ("lot_max", "link"):
        if block in m.row_at:
            lo_, hi_ = m.row_at[block]
            row_ub[lo_:hi_] = np.inf
    lp = solve_lp(replace(m, row_ub=row_ub), lb=lb, ub=ub, seconds=seconds, solver="glop")
    y = m.row_block(lp.duals, "minutes")
    price = np.maximum(-y, 0.0)
    price[price < 1e-7] = 0.0
    regular = np.zeros(p.regular_minutes.shape)
    overtime = np.zeros(p.regular_minutes.shape)
    at = (m.res_workshop, m.res_family, m.res_day)
    regular[at] = price
    ot = np.maximum(price - m.res_premium, 0.0)
    ot[ot < 1e-7] = 0.0
    overtime[at] = ot
    return regular, overtime, lp.objective


# --- binding constraints ------------------------------------------------------------------------------------


def _bindings(p: AllocationProblem, r: AllocationResult, m: Model, parts: dict[str, Any]) -> dict[str, Any]:
    late_q = np.bincount(
        r.alloc_cell[r.alloc_late], weights=r.alloc_quantity[r.alloc_late], minlength=p.n_cells
    )
    un_q = np.bincount(r.unfilled_cell, weights=r.unfilled_quantity, minlength=p.n_cells)
    cells = np.flatnonzero((late_q > 0) | (un_q > 0))
    k = cells.shape[0]
    late_n, un_n = late_q[cells].astype(np.int64), un_q[cells].astype(np.int64)
    due = p.due_day()[cells]
    window_end = p.last_day(due)
    # the day that would have done: the due day for late pieces, the window's last for unfilled ones
    horizon = np.where(un_n > 0, window_end, np.minimum(due, p.days - 1))
    owner, style, sku = p.cell_owner[cells], p.cell_style[cells], p.cell_sku[cells]
    fam = p.style_family[style]
    mpu = p.style_minutes_per_unit[style]
    smin = np.maximum(p.style_min_lot[style], 1)
    pieces = np.where(un_n > 0, un_n, late_n)
    code = np.full(k, -1, np.int64)
    fr = _free(p, r)
    g = m.groups
    line_ratio = g.g_lines / np.maximum(g.g_quantity, 1)
    ratio = np.where(g.cell_group[cells] >= 0, line_ratio[np.maximum(g.cell_group[cells], 0)], 1.0)

    no_courier = p.province_shipping_fen[p.cell_province[cells]] < 0
    past = (un_n == 0) & (due < p.first_day)

    # stock the owner may take: any at all, any left free, any a warehouse can still pick in time
    c_of, row = stock_rows(p, sku)
    okr = _owner_ok(p, owner[c_of], p.stock_owner[row]) & (p.stock_available[row] > 0)
    c_of, row = c_of[okr], row[okr]
    stock_any = np.zeros(k, np.bool_)
    stock_any[c_of] = True
    free_row = fr.stock_free[row] > 0
    stock_free = np.zeros(k, np.bool_)
    stock_free[c_of[free_row]] = True
    c_of, row = c_of[free_row], row[free_row]
    lo = p.first_pick_day(due[c_of])
    hi = np.minimum(horizon[c_of], p.days - 1)
    span = np.maximum(hi - lo + 1, 0)
    pair, off = _expand(span)
    sc, srow, sday = c_of[pair], row[pair], lo[pair] + off
    swh = p.stock_warehouse[srow]
    pickable = fr.handling_free[swh, sday] + _EPS >= ratio[sc]
    sc, swh, sday = sc[pickable], swh[pickable], sday[pickable]
    s_cost = ratio[sc] * p.warehouse_handling_fen[swh]  # per piece; on time: no lateness

    # workshops qualified for the style, on the days up to the horizon
    by_style = np.argsort(p.qual_style, kind="stable")
    q_start = np.searchsorted(p.qual_style[by_style], np.arange(p.n_styles + 1))
    qual_any = (q_start[style + 1] - q_start[style]) > 0
    b_of, rank = _expand(q_start[style + 1] - q_start[style])
    qual = by_style[q_start[style[b_of]] + rank]
    lo = np.full(b_of.shape[0], p.first_day)
    span = np.maximum(horizon[b_of] - lo + 1, 0)
    pair, off = _expand(span)
    wc, wq, wday = b_of[pair], qual[pair], lo[pair] + off
    ww = p.qual_workshop[wq]
    wf = fam[wc]
    free_min = fr.free_total[ww, wf, wday]
    at = _lot_at(fr, _lot_key(p, ww, style[wc], wday))
    has_lot = at >= 0
    lot_owner = fr.lot_open_owner[np.maximum(at, 0)] if fr.lot_key.size else np.full(at.shape[0], -1)
    free_ok = has_lot & ((lot_owner < 0) | _owner_ok(p, owner[wc], lot_owner))
    free_pieces = np.where(free_ok, fr.lot_free[np.maximum(at, 0)] if fr.lot_key.size else 0, 0)
    one_piece = free_min + 1e-6 >= mpu[wc]
    surplus = free_pieces > 0
    grow = has_lot & one_piece
    new_lot = ~has_lot & (free_min + 1e-6 >= smin[wc] * mpu[wc])
    possible = surplus | grow | new_lot
    # the cost per piece of serving the cell's pieces there on time (what fits of them)
    n_here = np.where(
        surplus & ~grow,
        np.minimum(free_pieces, pieces[wc]),
        np.minimum(pieces[wc], free_pieces + np.floor(free_min / mpu[wc] + 1e-9).astype(np.int64)),
    )
    n_here = np.maximum(n_here, 1)
    made_n = np.where(has_lot, np.maximum(n_here - free_pieces, 0), np.maximum(n_here, smin[wc]))
    overtime = np.maximum(made_n * mpu[wc] - fr.free_regular[ww, wf, wday], 0.0)
    w_cost = (
        p.qual_unit_cost_fen[wq] * made_n
        + overtime * p.overtime_fen_per_minute[ww, wf, wday]
        + np.where(has_lot, 0, p.style_changeover_fen[style[wc]])
    ) / n_here
    pieces_fit = np.zeros(k, np.bool_)
    pieces_fit[wc[one_piece & ~has_lot]] = True

    # the cheapest possible on-time way, per cell
    o_c = np.concatenate((sc, wc[possible]))
    o_kind = np.concatenate(
        (np.full(sc.shape[0], int(SiteKind.WAREHOUSE)), np.full(int(possible.sum()), int(SiteKind.WORKSHOP)))
    )
    o_site = np.concatenate((swh, ww[possible]))
    o_day = np.concatenate((sday, wday[possible]))
    o_cost = np.concatenate((s_cost, w_cost[possible]))
    o_new_min = np.concatenate(
        (np.zeros(sc.shape[0], np.bool_), (~has_lot & (smin[wc] > pieces[wc]))[possible])
    )
    order = np.lexsort((o_day, o_site, o_kind, o_cost, o_c))
    first = (
        np.concatenate(([True], o_c[order][1:] != o_c[order][:-1])) if order.size else np.empty(0, np.bool_)
    )
    best = order[first]
    site_kind = np.full(k, -1, np.int64)
    site = np.full(k, -1, np.int64)
    site_day = np.full(k, -1, np.int64)
    extra = np.full(k, np.nan)
    best_new_min = np.zeros(k, np.bool_)
    cb = o_c[best]
    site_kind[cb], site[cb], site_day[cb], best_new_min[cb] = (
        o_kind[best],
        o_site[best],
        o_day[best],
        o_new_min[best],
    )
    # what the plan pays a piece instead: for late pieces all but shipping (the same everywhere) of their
    # allocations, per piece; for unfilled ones the penalty
    own = np.flatnonzero(r.alloc_late)
    cell_pos = np.searchsorted(cells, r.alloc_cell[own])
    paid = (parts["total_fen"] - parts["shipping_fen"])[own]
    late_paid = np.bincount(cell_pos, weights=paid, minlength=k)
    plan_cost = np.where(un_n > 0, float(p.unfilled_fen_per_unit), late_paid / np.maximum(late_n, 1))
    extra[cb] = o_cost[best] - plan_cost[cb]

    # --- the verdict, in order ----------------------------------------------------------------------------
    no_source = ~stock_any & ~qual_any
    possible_c = site_kind >= 0
    code = np.select(
        [no_courier, past, no_source, possible_c & best_new_min, possible_c],
        [Binding.NO_COURIER, Binding.PAST_DUE, Binding.NO_SOURCE, Binding.MIN_LOT_COSTLIER, Binding.COSTLIER],
        default=-1,
    ).astype(np.int64)
    stock_state = np.where(
        ~stock_any, StockState.NONE, np.where(~stock_free, StockState.SHORT, StockState.HANDLING_FULL)
    )
    make_state = np.where(
        ~qual_any, MakeState.NO_WORKSHOP, np.where(pieces_fit, MakeState.MIN_LOT, MakeState.FULL)
    )
    rest = code < 0
    cap_code = np.select(
        [
            stock_state == StockState.HANDLING_FULL,
            make_state == MakeState.MIN_LOT,
            make_state == MakeState.FULL,
        ],
        [Binding.HANDLING_FULL, Binding.MIN_LOT, Binding.CAPACITY_FULL],
        default=Binding.STOCK_SHORT,
    )
    code = np.where(rest, cap_code, code).astype(np.int64)
    checked = code >= Binding.COSTLIER
    costlier = (code == Binding.COSTLIER) | (code == Binding.MIN_LOT_COSTLIER)
    return {
        "binding_cell": cells.astype(np.int64),
        "binding_late": late_n,
        "binding_unfilled": un_n,
        "binding_code": code,
        "binding_stock": np.where(checked & ~costlier, stock_state, -1).astype(np.int64),
        "binding_make": np.where(checked & ~costlier, make_state, -1).astype(np.int64),
        "binding_family": fam.astype(np.int64),
        "binding_day": np.where(code == Binding.PAST_DUE, due, horizon).astype(np.int64),
        "binding_min_lot": smin.astype(np.int64),
        "binding_site_kind": np.where(costlier, site_kind, -1).astype(np.int64),
        "binding_site": np.where(costlier, site, -1).astype(np.int64),
        "binding_site_day": np.where(costlier, site_day, -1).astype(np.int64),
        "binding_extra_fen_per_piece": np.where(costlier, extra, np.nan),
    }
