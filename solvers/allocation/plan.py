"""From an integral solution of the model back to the cells: allocations, lots and unfilled pieces.

Two cuts, both columnar. A style group's pieces to make are cut along what its lots (and earlier lots'
spares) give, earliest day first, into its SKU groups. Then each SKU group's cells (all due the same day),
fewest lines per piece first, are cut along its supply: stock picks by day, then made pieces by day, what fits
nowhere last. Costs are priced as the
model prices them (per piece at the group's rates), so the plan's objective is the model's, rounded to fen.
"""

from __future__ import annotations

import numpy as np

from solvers.allocation.data import F64, I64, AllocationProblem, as_f64, as_i64
from solvers.allocation.model import Model
from solvers.allocation.orders import finish
from solvers.allocation.result import AllocationResult, SiteKind, Unfilled, Why
from solvers.allocation.segments import cut


def matched_cut(
    d_qty: I64,
    d_order: I64,
    d_group: I64,
    s_qty: I64,
    s_order: I64,
    s_group: I64,
    s_site: I64,
    f_item: I64,
    f_site: I64,
    f_qty: I64,
) -> tuple[I64, I64, I64]:
    """Cut demand items along supply items group by group (equal totals per group), honouring preferences
    first: a preference (demand item, site, quantity) takes from its group's supply at that site, in
    ``d_order`` and within the item's quantity, while the site has any; what is left is cut in ``d_order``
    along ``s_order`` (both sorted by group). Per segment: the demand item, the supply item, the quantity."""
    d_left, s_left = d_qty.astype(np.int64).copy(), s_qty.astype(np.int64).copy()
    parts: list[tuple[I64, I64, I64]] = []
    if f_item.size and s_qty.size:
        # an item's preferences, capped at its quantity
        o = np.lexsort((f_site, f_item))
        f_item, f_site, f_qty = f_item[o], f_site[o], f_qty[o].astype(np.int64)
        cum = np.cumsum(f_qty)
        head = np.concatenate(([True], f_item[1:] != f_item[:-1]))
        before = cum - f_qty - np.maximum.accumulate(np.where(head, cum - f_qty, 0))
        f_qty = np.clip(d_qty[f_item] - before, 0, f_qty)
        # per bucket (group × site): preferences in ``d_order`` while the bucket's supply lasts
        n_site = int(max(int(s_site.max()), int(f_site.max()))) + 1
        s_bucket = s_group * n_site + s_site
        buckets, s_b = np.unique(s_bucket, return_inverse=True)
        s_b = s_b.reshape(-1).astype(np.int64)
        total = np.bincount(s_b, weights=s_qty, minlength=buckets.shape[0]).astype(np.int64)
        key = d_group[f_item] * n_site + f_site
        pos = np.minimum(np.searchsorted(buckets, key), max(buckets.shape[0] - 1, 0))
        has = (buckets[pos] == key) & (f_qty > 0)
        rank = np.zeros(d_qty.shape[0], np.int64)
        rank[d_order] = np.arange(d_order.shape[0])
        f_item, f_b, f_qty = f_item[has], pos[has], f_qty[has]
        o = np.lexsort((rank[f_item], f_b))
        f_item, f_b, f_qty = f_item[o], f_b[o], f_qty[o]
        cum = np.cumsum(f_qty)
        head = np.concatenate(([True], f_b[1:] != f_b[:-1]))
        before = cum - f_qty - np.maximum.accumulate(np.where(head, cum - f_qty, 0))
        take = np.clip(total[f_b] - before, 0, f_qty)
        # the takes, then each bucket's rest, cut along the bucket's supply in ``s_order``
        taken = np.bincount(f_b, weights=take, minlength=buckets.shape[0]).astype(np.int64)
        t_b = np.concatenate((f_b, np.arange(buckets.shape[0], dtype=np.int64)))
        t_qty = np.concatenate((take, total - taken))
        t_item = np.concatenate((f_item, np.full(buckets.shape[0], -1, np.int64)))
        t_o = np.lexsort((t_item < 0, t_b))
        s_rank = np.empty(s_order.shape[0], np.int64)
        s_rank[s_order] = np.arange(s_order.shape[0])
        s_o = np.lexsort((s_rank, s_b))
        di, si, q = cut(t_qty[t_o], s_qty[s_o])
        item, sup = t_item[t_o][di], s_o[si]
        mine = item >= 0
        parts.append((item[mine], sup[mine], q[mine]))
        d_left -= np.bincount(item[mine], weights=q[mine], minlength=d_left.shape[0]).astype(np.int64)
        s_left -= np.bincount(sup[mine], weights=q[mine], minlength=s_left.shape[0]).astype(np.int64)
    di, si, q = cut(d_left[d_order], s_left[s_order])
    parts.append((d_order[di], s_order[si], q))
    return (
        np.concatenate([x[0] for x in parts]).astype(np.int64),
        np.concatenate([x[1] for x in parts]).astype(np.int64),
        np.concatenate([x[2] for x in parts]).astype(np.int64),
    )


def _take(a: np.ndarray, idx: I64, default: int = 0) -> np.ndarray:
    """``a[idx]``, or ``default`` everywhere when ``a`` is empty (where ``idx`` is only a placeholder)."""
    return a[idx] if a.size else np.full(idx.shape[0], default, dtype=a.dtype)


def to_result(p: AllocationProblem, m: Model, values: F64, *, solver: str, seed: int) -> AllocationResult:
    g = m.groups
    iv = np.round(values).astype(np.int64)
    pick, spare, make = m.block(iv, "pick"), m.block(iv, "spare"), m.block(iv, "make")
    unmet, arc, prod = m.block(iv, "unmet"), m.block(iv, "arc"), m.block(iv, "prod")
    extra = m.block(values, "extra")

    # --- lots: the minutes each uses and the overtime share of its workshop-day ---------------------------
    mpu = p.style_minutes_per_unit[m.lot_style]
    lot_minutes = prod * mpu
    res_used = np.bincount(m.lot_resource, weights=lot_minutes, minlength=m.res_regular.shape[0])
    ot_share = np.divide(extra, res_used, out=np.zeros_like(extra), where=res_used > 0)
    lot_ot = lot_minutes * ot_share[m.lot_resource]
    lot_reg = lot_minutes - lot_ot
    lot_ot_fen = np.round(lot_ot * m.res_premium[m.lot_resource]).astype(np.int64)

    # --- style level: make pieces of SKU groups cut along the style group's lot and spare supply ----------
    s_h = np.concatenate((m.arc_h, m.spare_h))
    s_day = np.concatenate((m.lot_day[m.arc_lot], p.open_lot_day[m.spare_open]))
    s_qty = np.concatenate((arc, spare))
    s_is_spare = np.concatenate((np.zeros(arc.shape[0], np.bool_), np.ones(spare.shape[0], np.bool_)))
    s_src = np.concatenate((np.arange(arc.shape[0]), np.arange(spare.shape[0])))
    s_order = np.lexsort((s_src, ~s_is_spare, s_day, s_h))  # a day's spares before its new making
    g_order = np.lexsort((np.arange(g.n_g), g.g_h))
    s_workshop = np.concatenate((m.lot_workshop[m.arc_lot], p.open_lot_workshop[m.spare_open]))
    # re-planned: a SKU group's made pieces come first from the workshops its cells' pieces came from
    prev_g = g.cell_group[p.prev_cell] if p.prev_cell.size else np.empty(0, np.int64)
    was_made = (prev_g >= 0) & (p.prev_kind == int(SiteKind.WORKSHOP))
    mk_g, mk_src, mk_qty = matched_cut(
        make,
        g_order,
        g.g_h,
        s_qty,
        s_order,
        s_h,
        s_workshop,
        prev_g[was_made],
        p.prev_site[was_made],
        p.prev_quantity[was_made],
    )
    mk_day = s_day[mk_src]

    # --- SKU group level: cells cut along picks, made pieces and unmet ----------------------------------
    n_pick = pick.shape[0]
    sup_g = np.concatenate((m.pick_g, mk_g, np.arange(g.n_g)))
    sup_day = np.concatenate((m.pick_day, mk_day, np.full(g.n_g, p.days, np.int64)))
    sup_qty = np.concatenate((pick, mk_qty, unmet))
    sup_kind = np.concatenate(
        (np.zeros(n_pick, np.int64), np.ones(mk_g.shape[0], np.int64), np.full(g.n_g, 2, np.int64))
    )
    sup_ref = np.concatenate((np.arange(n_pick), mk_src, np.arange(g.n_g)))
    sup_order = np.lexsort((np.arange(sup_g.shape[0]), sup_day, sup_kind, sup_g))
    # Within a SKU group every cell has the same due day, so which cell takes which supply changes no cost;
    # it does change handling: the model counts a pick's lines at the group's average lines per piece, the
    # warehouse picks the cells' own. Cells with the fewest lines per piece go first, to the picks (which lead
    # the supply), so the picks' lines stay at or under the average the model counted.
    cells = np.flatnonzero(m.groups.cell_group >= 0)
    ratio = p.cell_lines[cells] / p.cell_quantity[cells]
    c_order = cells[np.lexsort((cells, p.cell_ship_by[cells], ratio, g.cell_group[cells]))]
    # Re-planned: a cell's pieces come first from the sites its previous plan had them at, where its group's
    # supply allows, but only in groups whose cells all have the same lines per piece (any cut keeps their
    # picks' lines at the group's average, the count the model used)
    n_site = max(p.n_workshops, p.n_warehouses, 1)
    sup_site = np.concatenate(
        (
            p.stock_warehouse[m.pick_row],
            n_site + _take(s_workshop, mk_src),
            np.full(g.n_g, 2 * n_site, np.int64),
        )
    )
    cg = g.cell_group[cells]
    mixed = np.zeros(g.n_g, np.bool_)
    same = p.cell_lines[cells] * g.g_quantity[cg] == g.g_lines[cg] * p.cell_quantity[cells]
    np.logical_or.at(mixed, cg, ~same)
    prev_ok = (
        (g.cell_group[p.prev_cell] >= 0) & ~mixed[np.maximum(g.cell_group[p.prev_cell], 0)]
        if p.prev_cell.size
        else np.zeros(0, np.bool_)
    )
    seg_cell, seg_sup, q = matched_cut(
        p.cell_quantity,
        c_order,
        g.cell_group,
        sup_qty,
        sup_order,
        sup_g,
        sup_site,
        p.prev_cell[prev_ok],
        p.prev_kind[prev_ok] * n_site + p.prev_site[prev_ok],
        p.prev_quantity[prev_ok],
    )
    sup_rank = np.empty(sup_order.shape[0], np.int64)
    sup_rank[sup_order] = np.arange(sup_order.shape[0])
    c_rank = np.zeros(p.n_cells, np.int64)
    c_rank[c_order] = np.arange(c_order.shape[0])
    by_cell = np.lexsort((sup_rank[seg_sup], c_rank[seg_cell]))  # each cell's pieces together, in order
    seg_cell, seg_sup, q = seg_cell[by_cell], seg_sup[by_cell], q[by_cell]
    seg_kind, seg_ref, seg_day = sup_kind[seg_sup], sup_ref[seg_sup], sup_day[seg_sup]

    # --- unfilled: what fits nowhere, and the cells no courier serves ---------------------------------------
    un = seg_kind == 2
    has_source = np.zeros(g.n_g, np.bool_)
    np.logical_or.at(has_source, m.pick_g, True)
    h_source = np.zeros(g.n_h, np.bool_)
    np.logical_or.at(h_source, m.arc_h, True)
    np.logical_or.at(h_source, m.spare_h, True)
    has_source |= h_source[g.g_h]
    un_reason = np.where(has_source[seg_ref[un]], Unfilled.NO_CAPACITY, Unfilled.NO_SOURCE)
    no_courier = np.flatnonzero(m.groups.cell_group < 0)
    unfilled_cell = np.concatenate((seg_cell[un], no_courier))
    unfilled_qty = np.concatenate((q[un], p.cell_quantity[no_courier]))
    unfilled_reason = np.concatenate((un_reason, np.full(no_courier.shape[0], Unfilled.NO_COURIER)))

    # --- allocations ----------------------------------------------------------------------------------------
    keep = ~un
    a_cell, a_kind_src, a_ref, a_day, a_qty = (
        seg_cell[keep],
        seg_kind[keep],
        seg_ref[keep],
        seg_day[keep],
        q[keep],
    )
    is_pick = a_kind_src == 0
    pick_i = np.where(is_pick, a_ref, 0)
    # made: which arc or spare each piece came from
    # (nothing is made when no style group has a source: the arrays are empty, the indices placeholders)
    made_ref = np.where(is_pick, 0, a_ref)
    made_arc = ~is_pick & ~_take(s_is_spare, made_ref, default=False)
    made_spare = ~is_pick & ~made_arc
    arc_i = np.where(made_arc, _take(s_src, made_ref), 0)
    spare_i = np.where(made_spare, _take(s_src, made_ref), 0)
    a_group = g.cell_group[a_cell]
    due = p.due_day()[a_cell]
    row = _take(m.pick_row, pick_i)
    wh = _take(p.stock_warehouse, row)
    lot_of_arc = _take(m.arc_lot, arc_i)
    open_of_spare = _take(m.spare_open, spare_i)

    # result lots: model lots that make anything, and earlier lots whose spare pieces are taken
    used_lot = np.flatnonzero(prod > 0)
    lot_open_of_used = m.lot_open[used_lot]
    spare_lots = np.unique(open_of_spare[made_spare])
    extra_open = np.setdiff1d(spare_lots, lot_open_of_used[lot_open_of_used >= 0])
    n_res_lots = used_lot.shape[0] + extra_open.shape[0]
    result_of_model_lot = np.full(max(m.lot_workshop.shape[0], 1), -1, np.int64)
    result_of_model_lot[used_lot] = np.arange(used_lot.shape[0])
    result_of_open = np.full(max(p.open_lot_workshop.shape[0], 1), -1, np.int64)
    result_of_open[lot_open_of_used[lot_open_of_used >= 0]] = np.flatnonzero(lot_open_of_used >= 0)
    result_of_open[extra_open] = used_lot.shape[0] + np.arange(extra_open.shape[0])

    a_lot = np.where(
        is_pick, -1, np.where(made_arc, result_of_model_lot[lot_of_arc], result_of_open[open_of_spare])
    )
    a_kind = np.where(is_pick, int(SiteKind.WAREHOUSE), int(SiteKind.WORKSHOP))
    a_site = np.where(
        is_pick,
        wh,
        np.where(made_arc, _take(m.lot_workshop, lot_of_arc), _take(p.open_lot_workshop, open_of_spare)),
    )
    a_owner = np.where(is_pick, _take(p.stock_owner, row, -1), -1)
    line_ratio = g.g_lines / g.g_quantity
    a_goods = np.where(
        is_pick,
        np.round(a_qty * line_ratio[a_group] * _take(p.warehouse_handling_fen, wh)),
        np.where(made_arc, a_qty * _take(m.lot_unit_cost, lot_of_arc), 0),
    ).astype(np.int64)
    a_ship = np.round(a_qty * g.g_ship[a_group]).astype(np.int64)
    late_days = np.maximum(a_day - due, 0)
    a_late_fen = (late_days * a_qty * p.late_fen_per_unit_day).astype(np.int64)
    owner = p.cell_owner[a_cell]
    a_why = np.where(
        is_pick,
        np.where(a_owner == owner, int(Why.OWN_STOCK), int(Why.POOLED_STOCK)),
        np.where(made_spare, int(Why.LOT_SURPLUS), int(Why.MADE_REGULAR)),
    )
    overtime_lot = lot_ot > 1e-9
    a_why = np.where(made_arc & _take(overtime_lot, lot_of_arc), int(Why.MADE_OVERTIME), a_why)

    # lot-level costs (surplus, changeover, overtime) and minutes go on each lot's first allocation
    a_reg = np.zeros(a_cell.shape[0])
    a_ot = np.zeros(a_cell.shape[0])
    a_overtime = np.zeros(a_cell.shape[0], np.int64)
    a_change = np.zeros(a_cell.shape[0], np.int64)
    taken = np.bincount(lot_of_arc[made_arc], weights=a_qty[made_arc], minlength=m.lot_workshop.shape[0])
    idx_made = np.flatnonzero(made_arc)
    first_of_lot = np.full(m.lot_workshop.shape[0], -1, np.int64)
    if idx_made.size:
        order = idx_made[np.lexsort((idx_made, lot_of_arc[idx_made]))]
        lots_sorted = lot_of_arc[order]
        starts = np.concatenate(([True], lots_sorted[1:] != lots_sorted[:-1]))
        first_of_lot[lots_sorted[starts]] = order[starts]
    lonely = used_lot[first_of_lot[used_lot] < 0]
    if lonely.size:
        raise ValueError(f"lot {int(lonely[0])} makes {int(prod[lonely[0]])} pieces no cell takes")
    f = first_of_lot[used_lot]
    surplus = prod[used_lot] - taken[used_lot].astype(np.int64)
    np.add.at(a_goods, f, surplus * m.lot_unit_cost[used_lot])
    is_new = m.lot_open[used_lot] < 0
    np.add.at(a_change, f, np.where(is_new, m.lot_changeover[used_lot], 0))
    np.add.at(a_overtime, f, lot_ot_fen[used_lot])
    np.add.at(a_reg, f, lot_reg[used_lot])
    np.add.at(a_ot, f, lot_ot[used_lot])

    # --- result lot arrays ---------------------------------------------------------------------------------
    n_used = used_lot.shape[0]
    lw = np.concatenate((m.lot_workshop[used_lot], p.open_lot_workshop[extra_open]))
    ls = np.concatenate((m.lot_style[used_lot], p.open_lot_style[extra_open]))
    ld = np.concatenate((m.lot_day[used_lot], p.open_lot_day[extra_open]))
    lopen = np.concatenate((m.lot_open[used_lot], extra_open))
    spare_taken = np.bincount(
        open_of_spare[made_spare], weights=a_qty[made_spare], minlength=max(p.open_lot_workshop.shape[0], 1)
    )
    l_spare = np.where(lopen >= 0, p.open_lot_spare[np.maximum(lopen, 0)] if p.open_lot_spare.size else 0, 0)
    l_made = np.concatenate((prod[used_lot], np.zeros(extra_open.shape[0], np.int64)))
    l_quantity = l_made + l_spare
    l_alloc = np.concatenate((taken[used_lot], np.zeros(extra_open.shape[0]))).astype(np.int64)
    l_alloc = l_alloc + np.where(lopen >= 0, spare_taken[np.maximum(lopen, 0)], 0).astype(np.int64)
    first_cell = np.where(f >= 0, a_cell[np.maximum(f, 0)], 0) if a_cell.size else np.zeros(n_used, np.int64)
    l_sku = np.concatenate((np.where(is_new, p.cell_sku[first_cell], -1), np.full(extra_open.shape[0], -1)))
    open_owner = (
        p.open_lot_owner[np.maximum(lopen, 0)] if p.open_lot_owner.size else np.zeros(n_res_lots, np.int64)
    )
    l_owner = np.where(
        lopen >= 0,
        open_owner,
        np.concatenate((p.cell_owner[first_cell], np.zeros(extra_open.shape[0], np.int64))),
    )

    # --- capacity used -------------------------------------------------------------------------------------
    used_reg = np.zeros_like(p.regular_minutes, dtype=np.float64)
    used_ot = np.zeros_like(p.overtime_minutes, dtype=np.float64)
    at = (m.lot_workshop, m.lot_family, m.lot_day)
    np.add.at(used_reg, at, lot_reg)
    np.add.at(used_ot, at, lot_ot)
    used_hand = np.zeros_like(p.warehouse_handling, dtype=np.float64)
    if n_pick:
        np.add.at(used_hand, (p.stock_warehouse[m.pick_row], m.pick_day), pick * line_ratio[m.pick_g])

    result = AllocationResult(
        solver=solver,
        status="feasible",
        seconds=0.0,
        alloc_cell=as_i64(a_cell),
        alloc_kind=as_i64(a_kind),
        alloc_site=as_i64(a_site),
        alloc_owner=as_i64(a_owner),
        alloc_day=as_i64(a_day),
        alloc_quantity=as_i64(a_qty),
        alloc_regular_minutes=as_f64(a_reg),
        alloc_overtime_minutes=as_f64(a_ot),
        alloc_goods_fen=as_i64(a_goods),
        alloc_overtime_fen=as_i64(a_overtime),
        alloc_changeover_fen=as_i64(a_change),
        alloc_shipping_fen=as_i64(a_ship),
        alloc_late_fen=as_i64(a_late_fen),
        alloc_late=late_days > 0,
        alloc_why=as_i64(a_why),
        alloc_lot=as_i64(a_lot),
        lot_workshop=as_i64(lw),
        lot_style=as_i64(ls),
        lot_family=as_i64(p.style_family[ls]),
        lot_day=as_i64(ld),
        lot_quantity=as_i64(l_quantity),
        lot_allocated=as_i64(l_alloc),
        lot_surplus_sku=as_i64(l_sku),
        lot_owner=as_i64(l_owner),
        lot_regular_minutes=as_f64(np.concatenate((lot_reg[used_lot], np.zeros(extra_open.shape[0])))),
        lot_overtime_minutes=as_f64(np.concatenate((lot_ot[used_lot], np.zeros(extra_open.shape[0])))),
        lot_open=as_i64(lopen),
        unfilled_cell=as_i64(unfilled_cell),
        unfilled_quantity=as_i64(unfilled_qty),
        unfilled_reason=as_i64(unfilled_reason),
        used_regular=used_reg,
        used_overtime=used_ot,
        used_handling=np.round(used_hand).astype(np.int64),
        unfilled_fen=int(unfilled_qty.sum()) * p.unfilled_fen_per_unit,
        seed=seed,
    )
    return finish(p, result)
