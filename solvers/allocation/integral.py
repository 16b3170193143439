"""From the network relaxation's fractional pieces to an integral plan that meets every row of the model.

Four steps, the first three columnar:

1. *Round*: each SKU group's picks, pieces to make and unmet pieces are rounded by largest remainder so they
   still add up to the group; then each style group's arcs and spares so they add up to what its groups
   hand over to be made.
2. *Shed* whatever rounding put over a limit — a stock row, a warehouse's handling lines on a day, a lot's
   day, a workshop's minutes — from the items rounded up most: those pieces are left to place.
3. *Minimum lots*: a new lot below its minimum is closed and its pieces are left to place, so that they
   join a lot of their style that is made anyway rather than each opening its own.
4. *Place* what is left, group by group in a fixed order (by style, then due day): the cheapest stock with
   pieces and lines left; else a lot of the style already made (it grows without a new minimum), the cheapest
   first; else the cheapest lot whose day still has minutes for a whole minimum lot (the surplus goes to the
   owner's stock); else unmet.

The result is a vector of the model's variables that :func:`solvers.allocation.solve.feasible` accepts.
"""

from __future__ import annotations

import numpy as np

from solvers.allocation.data import F64, I64, AllocationProblem
from solvers.allocation.flow import pick_handling
from solvers.allocation.model import Model
from solvers.allocation.segments import runs

_EPS = 1e-6


def _largest_remainder(owner: I64, value: F64, target: I64, n: int) -> I64:
    """Round ``value`` to integers so that the items of each owner add up to ``target[owner]``.

    Items keep their floor; each owner's shortfall goes, one piece each, to its items with the largest
    fractional parts. Where the floors already exceed the target (only through float noise), items lose
    pieces from the smallest fractional part up."""
    base = np.floor(value + _EPS)
    frac = value - base
    base = base.astype(np.int64)
    short = target - np.bincount(owner, weights=base, minlength=n).astype(np.int64)
    order = np.lexsort((-frac, owner))
    start = np.searchsorted(owner[order], np.arange(n + 1))
    rank = np.arange(order.shape[0]) - start[owner[order]]
    gets = rank < short[owner[order]]
    out = base.copy()
    out[order[gets]] += 1
    # floors above target (negative shortfall): take back from the last-ranked items
    over = np.flatnonzero(short < 0)
    for o in over.tolist():
        items = order[start[o] : start[o + 1]][::-1]
        left = int(-short[o])
        for i in items.tolist():
            if left == 0:
                break
            take = min(left, int(out[i]))
            out[i] -= take
            left -= take
    return out


def _sum_by(keys: I64, weights: F64 | I64, n: int) -> F64:
    """Per key 0..n-1, the sum of the weights of its items."""
    out: F64 = np.bincount(keys, weights=weights, minlength=n).astype(np.float64)
    return out


def _shed(load: F64, limit: F64, item_node: I64, item_qty: I64, item_weight: F64, item_rank: F64) -> I64:
    """Pieces to take off items (per item) so that each node's load of weighted pieces fits its limit.

    Items are taken from highest ``item_rank`` first, whole pieces at a time."""
    over = load - limit
    take = np.zeros(item_qty.shape[0], np.int64)
    bad = np.flatnonzero(over > _EPS)
    if bad.size == 0:
        return take
    order, start = runs(item_node, limit.shape[0], -item_rank)
    for node in bad.tolist():
        excess = float(over[node])
        for i in order[start[node] : start[node + 1]].tolist():
            if excess <= _EPS:
                break
            q = int(item_qty[i] - take[i])
            if q <= 0 or item_weight[i] <= 0:
                continue
            n = min(q, int(np.ceil(excess / item_weight[i] - _EPS)))
            take[i] += n
            excess -= n * item_weight[i]
    return take


def integral_plan(p: AllocationProblem, m: Model, fractional: F64) -> F64:
    """An integral, feasible vector of ``m``'s variables near ``fractional`` (see the module docstring)."""
    g = m.groups
    n_g, n_h = g.n_g, g.n_h
    mpu_lot = p.style_minutes_per_unit[m.lot_style]
    line_ratio = g.g_lines / g.g_quantity
    n_pick, n_arc, n_spare = m.pick_g.shape[0], m.arc_h.shape[0], m.spare_h.shape[0]
    n_lot, n_res = m.lot_workshop.shape[0], m.res_workshop.shape[0]

    # --- 1. round ---------------------------------------------------------------------------------------
    pick_f, make_f, unmet_f = (m.block(fractional, b) for b in ("pick", "make", "unmet"))
    owner = np.concatenate((m.pick_g, np.arange(n_g), np.arange(n_g)))
    rounded = _largest_remainder(owner, np.concatenate((pick_f, make_f, unmet_f)), g.g_quantity, n_g)
    pick = rounded[:n_pick].copy()
    make = rounded[n_pick : n_pick + n_g].copy()
    unmet = rounded[n_pick + n_g :].copy()
    h_make = np.bincount(g.g_h, weights=make, minlength=n_h).astype(np.int64)
    arc_f, spare_f = m.block(fractional, "arc"), m.block(fractional, "spare")
    h_f = np.bincount(m.arc_h, weights=arc_f, minlength=n_h) + np.bincount(
        m.spare_h, weights=spare_f, minlength=n_h
    )
    scale = np.divide(h_make, h_f, out=np.zeros(n_h), where=h_f > _EPS)
    supply = _largest_remainder(
        np.concatenate((m.arc_h, m.spare_h)),
        np.concatenate((arc_f * scale[m.arc_h], spare_f * scale[m.spare_h])),
        np.where(h_f > _EPS, h_make, 0),
        n_h,
    )
    arc = supply[:n_arc].copy()
    spare = supply[n_arc:].copy()
    # a style group whose arcs carried nothing (its making came from rounding alone) is placed in step 4
    h_left = np.where(h_f > _EPS, 0, h_make).astype(np.int64)

    # --- 2. shed what rounding put over a limit ------------------------------------------------------------
    pick_frac = pick - pick_f
    stock_rows = np.unique(m.pick_row)
    pick_stock = np.searchsorted(stock_rows, m.pick_row)
    load = _sum_by(pick_stock, pick, stock_rows.shape[0])
    off = _shed(
        load, p.stock_available[stock_rows].astype(np.float64), pick_stock, pick, np.ones(n_pick), pick_frac
    )
    pick -= off
    hand_lo, hand_hi = m.row_at["handling"]
    hand_cap = m.row_ub[hand_lo:hand_hi]
    pick_hand = pick_handling(p, m)
    w = line_ratio[m.pick_g]
    load = _sum_by(pick_hand, pick * w, hand_cap.shape[0])
    # an overfilled warehouse-day sheds the picks of groups due latest first: they can still be picked on a
    # later day on time, where a group due that day could only go late or be made
    off2 = _shed(load, hand_cap, pick_hand, pick, w, g.g_due[m.pick_g] - m.pick_day + pick_frac / 2)
    pick -= off2
    g_left = np.bincount(m.pick_g, weights=off + off2, minlength=n_g).astype(np.int64)

    spare_lots, spare_of = np.unique(m.spare_open, return_inverse=True)
    spare_of = spare_of.reshape(-1)
    load = _sum_by(spare_of, spare, spare_lots.shape[0])
    off = _shed(
        load,
        p.open_lot_spare[spare_lots].astype(np.float64),
        spare_of,
        spare,
        np.ones(n_spare),
        spare - spare_f,
    )
    spare -= off
    h_left += np.bincount(m.spare_h, weights=off, minlength=n_h).astype(np.int64)

    arc_frac = arc - arc_f * scale[m.arc_h]
    load = _sum_by(m.arc_lot, arc, n_lot)
    off = _shed(load, m.lot_max.astype(np.float64), m.arc_lot, arc, np.ones(n_arc), arc_frac)
    arc -= off
    h_left += np.bincount(m.arc_h, weights=off, minlength=n_h).astype(np.int64)
    arc_res = m.lot_resource[m.arc_lot]
    res_cap = m.res_regular + m.res_overtime
    load = _sum_by(arc_res, arc * mpu_lot[m.arc_lot], n_res)
    off = _shed(load, res_cap, arc_res, arc, mpu_lot[m.arc_lot], arc_frac)
    arc -= off
    h_left += np.bincount(m.arc_h, weights=off, minlength=n_h).astype(np.int64)

    # --- 3. new lots below their minimum close ------------------------------------------------------------
    prod = np.bincount(m.arc_lot, weights=arc, minlength=n_lot).astype(np.int64)
    is_open = m.lot_open >= 0
    small = ~is_open & (prod > 0) & (prod < m.lot_min)
    closing = small[m.arc_lot] & (arc > 0)
    h_left += np.bincount(m.arc_h[closing], weights=arc[closing], minlength=n_h).astype(np.int64)
    arc[closing] = 0
    prod[small] = 0

    # --- 4. place what is left -----------------------------------------------------------------------------
    stock_left = p.stock_available[stock_rows] - np.bincount(
        pick_stock, weights=pick, minlength=stock_rows.shape[0]
    )
    hand_left = hand_cap - np.bincount(pick_hand, weights=pick * w, minlength=hand_cap.shape[0])
    res_left = res_cap - np.bincount(m.lot_resource, weights=prod * mpu_lot, minlength=n_res)
    pick_cost = m.block(m.cost, "pick")
    pick_order, pick_start = runs(m.pick_g, n_g, pick_cost)
    arc_cost = m.block(m.cost, "arc") + m.lot_unit_cost[m.arc_lot]
    arc_order, arc_start = runs(m.arc_h, n_h, arc_cost)
    made = prod > 0  # lots made in this plan (earlier lots may always grow)

    # what making a piece of each SKU group costs at best (shipping, then the cheapest lot's unit cost and
    # lateness): stock dearer than that (picked late, or far) is taken only when nothing can be made
    arc_min = np.full(n_h, np.inf)
    np.minimum.at(arc_min, m.arc_h, arc_cost)
    make_at_best = g.g_ship + arc_min[g.g_h]

    def place_picks(gi: int, want: int, limit: float = np.inf) -> int:
        for j in pick_order[pick_start[gi] : pick_start[gi + 1]].tolist():
            if want == 0 or pick_cost[j] > limit:
                break
            s, hnd = int(pick_stock[j]), int(pick_hand[j])
            room = min(int(stock_left[s]), int(np.floor(hand_left[hnd] / w[j] + _EPS)))
            take = min(room, want)
            if take > 0:
                pick[j] += take
                stock_left[s] -= take
                hand_left[hnd] -= take * w[j]
                want -= take
        return want

    def place_lots(hi: int, want: int) -> int:
        arcs_h = arc_order[arc_start[hi] : arc_start[hi + 1]].tolist()
        for j in arcs_h:  # lots made anyway, and earlier lots, grow
            if want == 0:
                return 0
            k = int(m.arc_lot[j])
            if not (made[k] or is_open[k]):
                continue
            r = int(m.lot_resource[k])
            room = min(int(m.lot_max[k] - prod[k]), int(np.floor(res_left[r] / mpu_lot[k] + _EPS)))
            take = min(room, want)
            if take > 0:
                arc[j] += take
                prod[k] += take
                res_left[r] -= take * mpu_lot[k]
                want -= take
        for j in arcs_h:  # a new lot, of at least its minimum
            if want == 0:
                return 0
            k = int(m.arc_lot[j])
            if made[k] or is_open[k]:
                continue
            r = int(m.lot_resource[k])
            size = min(max(int(m.lot_min[k]), want), int(m.lot_max[k]))
            size = min(size, int(np.floor(res_left[r] / mpu_lot[k] + _EPS)))
            if size < m.lot_min[k] or size <= 0:
                continue
            take = min(size, want)
            arc[j] += take
            prod[k] = size
            made[k] = True
            res_left[r] -= size * mpu_lot[k]
            want -= take
        return want

    # SKU groups shed from stock try other stock, then to be made
    for gi in np.flatnonzero(g_left > 0).tolist():
        left = place_picks(gi, int(g_left[gi]), float(make_at_best[gi]))
        make[gi] += left
        h_left[g.g_h[gi]] += left
    # style groups: lots in cost order; what finds none goes back to its SKU groups, to stock or unmet
    h_order = np.lexsort((g.h_due, g.h_style))
    g_of_h_order, g_of_h_start = runs(g.g_h, n_h)
    for hi in h_order[h_left[h_order] > 0].tolist():
        left = place_lots(hi, int(h_left[hi]))
        for gi in g_of_h_order[g_of_h_start[hi] : g_of_h_start[hi + 1]].tolist():
            if left == 0:
                break
            back = min(left, int(make[gi]))
            make[gi] -= back
            left -= back
            rest = place_picks(gi, back)
            unmet[gi] += rest

    # --- the vector ---------------------------------------------------------------------------------------
    values = np.zeros(m.n_vars)

    def put(name: str, v: F64 | I64) -> None:
        lo, hi = m.var_at[name]
        values[lo:hi] = v

    prod = np.maximum(prod, np.bincount(m.arc_lot, weights=arc, minlength=n_lot).astype(np.int64))
    put("pick", pick)
    put("spare", spare)
    put("make", make)
    put("unmet", unmet)
    put("arc", arc)
    put("prod", prod)
    put("open", np.where((prod > 0) | is_open, 1.0, 0.0))
    used = _sum_by(m.lot_resource, prod * mpu_lot, n_res)
    put("extra", np.clip(used - m.res_regular, 0.0, m.res_overtime))
    lo, hi = m.var_at.get("split", (0, 0))
    if hi > lo:
        # the orders no one site can serve whole split, but for those excused by an unmet piece
        r_lo, _ = m.row_at["split"]
        values[lo] = max(0.0, float(m.row_lb[r_lo] - (m.rows[r_lo] @ values)[0]))
    return values
