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
    # the costs the plan reports add up to its objective
    if r.objective_fen != sum(r.costs().values()):
        errors.append("the cost parts do not add up to the objective")
    return errors
