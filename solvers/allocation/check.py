"""An independent check of a plan against its problem: every constraint, recomputed from the arrays.

It shares no code with the solvers, so a test that runs it catches a solver that breaks a rule rather than
re-stating the solver's own arithmetic.
"""

from __future__ import annotations

import numpy as np

from solvers.allocation.data import AllocationProblem
from solvers.allocation.result import AllocationResult, SiteKind

_TOL = 1e-6


def check_plan(p: AllocationProblem, r: AllocationResult) -> list[str]:
    """Every broken constraint of ``r`` as a sentence; empty when the plan is feasible."""
    errors: list[str] = []
    kind, site, day, qty = r.alloc_kind, r.alloc_site, r.alloc_day, r.alloc_quantity
    cell = r.alloc_cell
    if np.any(qty <= 0):
        errors.append("an allocation has no pieces")
    if np.any((day < p.first_day) | (day >= p.days)):
        errors.append("an allocation falls outside the plan days")
    # the service window: not later than max_late_days after the due day, stock not picked too early
    due = p.due_day()[cell] if cell.size else np.empty(0, np.int64)
    if np.any(day > np.maximum(due, p.first_day) + p.max_late_days):
        errors.append(f"an allocation is served more than {p.max_late_days} days after its due day")
    if np.any((kind == SiteKind.WAREHOUSE) & (day < due - p.pick_early_days)):
        errors.append(f"stock is picked more than {p.pick_early_days} days before its due day")
    # every cell's pieces are placed or unfilled, exactly
    placed = np.bincount(cell, weights=qty, minlength=p.n_cells) + np.bincount(
        r.unfilled_cell, weights=r.unfilled_quantity, minlength=p.n_cells
    )
    wrong = np.flatnonzero(placed != p.cell_quantity)
    if wrong.size:
        c = int(wrong[0])
        errors.append(
            f"cell {c}: {int(placed[c])} pieces placed or unfilled, it holds {int(p.cell_quantity[c])}"
        )
    # no courier, nothing shipped
    unserved = p.province_shipping_fen[p.cell_province[cell]] < 0
    if np.any(unserved):
        errors.append(f"cell {int(cell[unserved][0])} ships to a province no courier serves")

    stock = kind == SiteKind.WAREHOUSE
    # stock: the owner's own, or pooled between two pooling merchants; within what the row holds
    key = (p.stock_warehouse * max(p.n_merchants, 1) + p.stock_owner) * max(p.n_skus, 1) + p.stock_sku
    want = (site[stock] * max(p.n_merchants, 1) + r.alloc_owner[stock]) * max(p.n_skus, 1) + p.cell_sku[
        cell[stock]
    ]
    order = np.argsort(key)
    pos = np.minimum(np.searchsorted(key[order], want), max(key.shape[0] - 1, 0))
    found = key.shape[0] > 0 and np.all(key[order][pos] == want) if want.size else True
    if not found:
        errors.append("a pick takes stock that does not exist")
    else:
        rows = order[pos]
        taken = np.bincount(rows, weights=qty[stock], minlength=key.shape[0])
        if np.any(taken > p.stock_available + _TOL):
            errors.append(f"stock row {int(np.argmax(taken - p.stock_available))} gives more than it holds")
        owner, stock_owner = p.cell_owner[cell[stock]], r.alloc_owner[stock]
        ok = (owner == stock_owner) | (p.merchant_pools[owner] & p.merchant_pools[stock_owner])
        if not np.all(ok):
            errors.append("a pick takes another merchant's stock without a pooling agreement")
    # handling lines per warehouse and day (a pick's lines: its share of the cell's, rounded up at most)
    if stock.any():
        lines = qty[stock] * p.cell_lines[cell[stock]] / p.cell_quantity[cell[stock]]
        used = np.zeros(p.warehouse_handling.shape)
        np.add.at(used, (site[stock], day[stock]), lines)
        if np.any(used > p.warehouse_handling + 1 + _TOL):
            errors.append("a warehouse picks more lines on a day than it can handle")

    made = ~stock
    # made at a workshop qualified for the style, in a lot of that workshop, style and day
    quals = set(zip(p.qual_workshop.tolist(), p.qual_style.tolist(), strict=True))
    for w, s in set(zip(site[made].tolist(), p.cell_style[cell[made]].tolist(), strict=True)):
        if (w, s) not in quals:
            errors.append(f"workshop {w} makes style {s} without a qualification")
    lot = r.alloc_lot[made]
    if np.any(lot < 0):
        errors.append("a made allocation belongs to no lot")
    else:
        same = (
            (r.lot_workshop[lot] == site[made])
            & (r.lot_style[lot] == p.cell_style[cell[made]])
            & (r.lot_day[lot] == day[made])
        )
        if not np.all(same):
            errors.append("a made allocation is not of its lot's workshop, style and day")
        taken = np.bincount(lot, weights=qty[made], minlength=r.lot_workshop.shape[0])
        if np.any(taken > r.lot_quantity + _TOL):
            errors.append("a lot gives more pieces than it holds")
    # minimum lots: a new lot is 0 or at least its style's minimum
    new = r.lot_open < 0
    short = new & (r.lot_quantity < p.style_min_lot[r.lot_style])
    if np.any(short):
        i = int(np.flatnonzero(short)[0])
        errors.append(
            f"lot {i} makes {int(r.lot_quantity[i])}, "
            f"under its minimum {int(p.style_min_lot[r.lot_style[i]])}"
        )
    # minutes: what the lots make, within regular plus overtime, per workshop, family and day
    spare = np.where(
        r.lot_open >= 0, p.open_lot_spare[np.maximum(r.lot_open, 0)] if p.open_lot_spare.size else 0, 0
    )
    minutes = (r.lot_quantity - spare) * p.style_minutes_per_unit[r.lot_style]
    used = np.zeros(p.regular_minutes.shape)
    np.add.at(used, (r.lot_workshop, p.style_family[r.lot_style], r.lot_day), minutes)
    over = used - (p.regular_minutes + p.overtime_minutes)
    if np.any(over > 1e-6 * np.maximum(used, 1)):
        w, f, d = np.unravel_index(int(np.argmax(over)), over.shape)
        errors.append(
            f"workshop {w}, family {f}, day {d}: {used[w, f, d]:.1f} minutes made, more than it has"
        )
    errors += _check_orders(p, r)
    errors += _check_churn(p, r)
    # the costs the plan reports add up to its objective
    if r.objective_fen != sum(r.costs().values()):
        errors.append("the cost parts do not add up to the objective")
    return errors


def _check_orders(p: AllocationProblem, r: AllocationResult) -> list[str]:
    """The listed order lines' pieces: each line whole, each from its own cell, no source over-drawn, the
    unlisted lines' pieces left in every cell; and the split-shipment penalty recounted from them."""
    errors: list[str] = []
    n_lines = p.order_line_cell.shape[0]
    line, src, qty = r.piece_line, r.piece_source, r.piece_quantity
    if np.any(qty <= 0) or np.any((line < 0) | (line >= n_lines)):
        return ["a listed order line's piece is empty or names no listed line"]
    n_alloc, n_unf = r.alloc_cell.shape[0], r.unfilled_cell.shape[0]
    if np.any((src >= n_alloc) | (src < -n_unf)):
        return ["a listed order line's piece names no allocation or unfilled entry"]
    is_alloc = src >= 0
    unf = -1 - src
    src_cell = np.where(is_alloc, r.alloc_cell[np.where(is_alloc, src, 0)] if n_alloc else -1, -1)
    src_cell = np.where(is_alloc, src_cell, r.unfilled_cell[np.where(is_alloc, 0, unf)] if n_unf else -1)
    if np.any(src_cell != p.order_line_cell[line]):
        errors.append("a listed order line takes pieces of another cell")
    whole = np.bincount(line, weights=qty, minlength=n_lines)
    if np.any(whole != p.order_line_quantity):
        i = int(np.flatnonzero(whole != p.order_line_quantity)[0])
        errors.append(
            f"listed order line {i}: {int(whole[i])} pieces cut, it holds {int(p.order_line_quantity[i])}"
        )
    drawn_alloc = np.bincount(src[is_alloc], weights=qty[is_alloc], minlength=n_alloc)
    drawn_unf = np.bincount(unf[~is_alloc], weights=qty[~is_alloc], minlength=n_unf)
    if np.any(drawn_alloc > r.alloc_quantity) or np.any(drawn_unf > r.unfilled_quantity):
        errors.append("listed order lines take more pieces from an allocation than it has")
    # what the cells' unlisted lines (a piece each at least) are left
    listed_n = np.bincount(p.order_line_cell, minlength=p.n_cells)
    left = np.bincount(
        r.alloc_cell, weights=r.alloc_quantity - drawn_alloc, minlength=p.n_cells
    ) + np.bincount(r.unfilled_cell, weights=r.unfilled_quantity - drawn_unf, minlength=p.n_cells)
    if np.any(left < p.cell_lines - listed_n):
        errors.append("a cell's unlisted order lines are left fewer pieces than they hold")
    # the penalty: per listed order, the sites (kind and index) of its served pieces, less one
    order_of_line = np.searchsorted(p.order_start, np.arange(n_lines), side="right") - 1
    o = order_of_line[line[is_alloc]]
    k, st = r.alloc_kind[src[is_alloc]], r.alloc_site[src[is_alloc]]
    by = np.lexsort((st, k, o))
    o, k, st = o[by], k[by], st[by]
    new_site = np.ones(o.shape[0], np.bool_)
    new_site[1:] = (o[1:] != o[:-1]) | (k[1:] != k[:-1]) | (st[1:] != st[:-1])
    new_order = np.ones(o.shape[0], np.bool_)
    new_order[1:] = o[1:] != o[:-1]
    extra = int(new_site.sum() - new_order.sum())
    if r.split_fen != extra * p.split_fen_per_parcel:
        errors.append(
            f"split_fen is {r.split_fen}; {extra} parcels past the orders' first cost "
            f"{extra * p.split_fen_per_parcel}"
        )
    return errors


def _check_churn(p: AllocationProblem, r: AllocationResult) -> list[str]:
    """Churn recounted: per cell and site, the previous plan's pieces the new plan does not have there."""
    if p.prev_cell.size == 0:
        return [] if r.churn_fen == 0 else [f"churn_fen is {r.churn_fen} with no previous plan"]
    # previous and new pieces in one table of (cell, kind, site, previous, new), summed per (cell, kind, site)
    cell = np.concatenate((p.prev_cell, r.alloc_cell))
    kind = np.concatenate((p.prev_kind, r.alloc_kind))
    site = np.concatenate((p.prev_site, r.alloc_site))
    before = np.concatenate((p.prev_quantity, np.zeros(r.alloc_cell.shape[0], np.int64)))
    after = np.concatenate((np.zeros(p.prev_cell.shape[0], np.int64), r.alloc_quantity))
    by = np.lexsort((site, kind, cell))
    cell, kind, site, before, after = cell[by], kind[by], site[by], before[by], after[by]
    start = np.ones(cell.shape[0], np.bool_)
    start[1:] = (cell[1:] != cell[:-1]) | (kind[1:] != kind[:-1]) | (site[1:] != site[:-1])
    at = np.flatnonzero(start)
    moved = int(np.maximum(np.add.reduceat(before, at) - np.add.reduceat(after, at), 0).sum())
    if r.churn_fen != moved * p.churn_fen_per_unit:
        return [f"churn_fen is {r.churn_fen}; {moved} pieces moved cost {moved * p.churn_fen_per_unit}"]
    return []
