"""Orders in a plan of cells: which site serves each listed order line, the split-shipment penalty, churn.

A plan allocates demand cells (SKU × owner × province × due day); the lines of one order sit in several cells,
and the order ships one parcel per site (warehouse or workshop) its pieces come from. :func:`assign_lines`
cuts a plan's cell allocations into the problem's listed order lines (orders of more than one piece) so that
each order's lines share sites where the cells' allocations allow it, all columnar:

1. per cell, its *slots*: the sites serving it (the allocations of one cell at one site, any day) and its
   unfilled pieces;
2. a few rounds in which every line not yet placed asks for one slot of its cell that still holds all its
   pieces: the site where its order already has a parcel, else the site that could take most of its order's
   remaining pieces (ties to the lower site); a slot takes its requests while they fit whole, those joining
   a parcel of their order first, then the smaller lines, then the better-scored orders;
3. the lines left are cut along what their cells' slots still hold (served sites first, then unfilled), and
   the cells' unlisted lines (single pieces, which cannot split) take the rest, unfilled pieces included;
4. each slot's lines are cut along its allocations, earliest day first.

The penalty is counted exactly on that cut: per listed order, the distinct sites of its served pieces less
one. Unfilled pieces ship nothing and count no parcel.

Churn (:func:`churn_pieces`) compares sites per cell: every piece of the previous plan whose cell has fewer
pieces at that site (kind and index) now is a piece moved.

Both are part of a result's objective through :func:`finish`, which every engine (the optimiser, the
cascade, the sharded merge) calls on its plan, so their objectives compare.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from solvers.allocation.data import F64, I64, AllocationProblem
from solvers.allocation.model import MAX_SITE_PAIRS, Model, servable_pair_count, servable_sites
from solvers.allocation.result import AllocationResult
from solvers.allocation.segments import cut

ROUNDS = 4  # rounds of whole-line requests before the lines left are cut


SLOTS_PER_LINE = 8  # the sites (of its cell's largest slots) a listed line may ask for in the rounds


def n_site_keys(p: AllocationProblem) -> int:
    """Sites are keyed ``kind * n + site`` (kind 0 warehouse, 1 workshop); ``2 * n`` is unfilled."""
    return max(p.n_workshops, p.n_warehouses, 1)


def assign_lines(p: AllocationProblem, r: AllocationResult, rounds: int = ROUNDS) -> tuple[I64, I64, I64]:
    """The listed order lines' pieces of plan ``r``: (line, source, quantity), sorted by line; a source is an
    allocation's index, or -1 - an unfilled entry's index (see the module docstring)."""
    n_lines = p.n_order_lines
    e = np.empty(0, np.int64)
    if n_lines == 0:
        return e, e, e
    n = n_site_keys(p)
    unfilled_key = 2 * n
    n_alloc = r.n_allocations
    src_cell = np.concatenate((r.alloc_cell, r.unfilled_cell)).astype(np.int64)
    src_key = np.concatenate(
        (r.alloc_kind * n + r.alloc_site, np.full(r.unfilled_cell.shape[0], unfilled_key, np.int64))
    ).astype(np.int64)
    src_qty = np.concatenate((r.alloc_quantity, r.unfilled_quantity)).astype(np.int64)
    src_day = np.concatenate((r.alloc_day, np.full(r.unfilled_cell.shape[0], p.days, np.int64)))
    held = np.bincount(src_cell, weights=src_qty, minlength=p.n_cells).astype(np.int64)
    if not np.array_equal(held, p.cell_quantity):
        c = int(np.flatnonzero(held != p.cell_quantity)[0])
        raise ValueError(
            f"assign_lines: the plan places {int(held[c])} pieces of cell {c}, "
            f"it holds {int(p.cell_quantity[c])}"
        )

    # --- slots: a cell's pieces at one site (or unfilled), sorted by cell, then site key (unfilled last) ----
    slot_of, src_slot = np.unique(src_cell * (unfilled_key + 1) + src_key, return_inverse=True)
    src_slot = src_slot.reshape(-1).astype(np.int64)
    slot_cell = slot_of // (unfilled_key + 1)
    slot_key = slot_of % (unfilled_key + 1)
    slot_total = np.bincount(src_slot, weights=src_qty, minlength=slot_of.shape[0]).astype(np.int64)
    cap = slot_total.copy()

    line_cell, q = p.order_line_cell, p.order_line_quantity
    line_order = p.order_line_order()
    # (line, served slot of its cell) pairs, for each line its cell's SLOTS_PER_LINE largest slots: a hit's
    # cell is made at a hundred workshops, and every slot of every line was 8 GB and minutes at 12 million
    # orders; what the rounds leave is cut along whatever its cell's slots still hold
    served = np.flatnonzero(slot_key < unfilled_key)
    ranked = served[np.lexsort((served, -slot_total[served], slot_cell[served]))]
    r_start = np.searchsorted(slot_cell[ranked], np.arange(p.n_cells + 1))
    lo = r_start[line_cell]
    count = np.minimum(r_start[line_cell + 1] - lo, SLOTS_PER_LINE)
    pl = np.repeat(np.arange(n_lines, dtype=np.int64), count)
    ps = ranked[lo[pl] + np.arange(pl.shape[0], dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)]

    slot_of_line = np.full(n_lines, -1, np.int64)
    used = np.empty(0, np.int64)  # order * (unfilled_key + 1) + site key of every parcel already made
    big = float(q.sum() + 1)
    for _ in range(rounds):
        open_pair = slot_of_line[pl] < 0
        pl, ps = pl[open_pair], ps[open_pair]
        live = cap[ps] >= q[pl]
        if not live.any():
            break
        a_l, a_s = pl[live], ps[live]
        key = slot_key[a_s]
        order_site = line_order[a_l] * (unfilled_key + 1) + key
        uniq, inv = np.unique(order_site, return_inverse=True)
        inv = inv.reshape(-1)
        weight = np.bincount(inv, weights=q[a_l], minlength=uniq.shape[0])
        score = weight[inv] + big * np.isin(order_site, used)
        # each line's best slot: the highest score, ties to the lower site key
        best = np.lexsort((key, -score, a_l))
        head = np.concatenate(([True], a_l[best][1:] != a_l[best][:-1]))
        pick = best[head]
        req_l, req_s, req_score = a_l[pick], a_s[pick], score[pick]
        # a slot takes its requests while they fit whole: lines joining a parcel their order already has
        # first, then the smaller lines (more of them fit whole), then the better-scored orders
        by_slot = np.lexsort((req_l, line_order[req_l], -req_score, q[req_l], req_score < big, req_s))
        req_l, req_s = req_l[by_slot], req_s[by_slot]
        cum = np.cumsum(q[req_l])
        head = np.concatenate(([True], req_s[1:] != req_s[:-1]))
        before = np.maximum.accumulate(np.where(head, cum - q[req_l], 0))
        fits = cum - before <= cap[req_s]
        acc_l, acc_s = req_l[fits], req_s[fits]
        cap -= np.bincount(acc_s, weights=q[acc_l], minlength=cap.shape[0]).astype(np.int64)
        slot_of_line[acc_l] = acc_s
        used = np.union1d(used, line_order[acc_l] * (unfilled_key + 1) + slot_key[acc_s])

    # --- the lines left, then each cell's unlisted pieces, cut along what its slots still hold --------------
    left = np.flatnonzero(slot_of_line < 0)
    left = left[np.lexsort((left, line_order[left], line_cell[left]))]
    listed_q = np.bincount(line_cell, weights=q, minlength=p.n_cells).astype(np.int64)
    d_cell = np.concatenate((line_cell[left], np.arange(p.n_cells, dtype=np.int64)))
    d_qty = np.concatenate((q[left], p.cell_quantity - listed_q))
    d_item = np.concatenate((left, np.full(p.n_cells, -1, np.int64)))
    d_sort = np.lexsort((np.arange(d_cell.shape[0]), d_cell))
    di, si, cq = cut(d_qty[d_sort], cap)  # slots are sorted by cell, served before unfilled
    line_of = d_item[d_sort][di]
    keep = line_of >= 0
    placed = np.flatnonzero(slot_of_line >= 0)
    as_line = np.concatenate((placed, line_of[keep]))
    as_slot = np.concatenate((slot_of_line[placed], si[keep]))
    as_qty = np.concatenate((q[placed], cq[keep]))

    # --- each slot's lines (then the unlisted rest) cut along its sources, earliest day first -------------
    taken = np.bincount(as_slot, weights=as_qty, minlength=slot_total.shape[0]).astype(np.int64)
    n_slots = slot_total.shape[0]
    t_slot = np.concatenate((as_slot, np.arange(n_slots, dtype=np.int64)))
    t_qty = np.concatenate((as_qty, slot_total - taken))
    t_line = np.concatenate((as_line, np.full(n_slots, -1, np.int64)))
    t_sort = np.lexsort((t_line < 0, t_slot))
    s_sort = np.lexsort((np.arange(src_slot.shape[0]), src_day, src_slot))
    di, si, cq = cut(t_qty[t_sort], src_qty[s_sort])
    piece_line = t_line[t_sort][di]
    src = s_sort[si]
    keep = piece_line >= 0
    piece_line, src, cq = piece_line[keep], src[keep], cq[keep]
    piece_source = np.where(src < n_alloc, src, -1 - (src - n_alloc))
    out = np.lexsort((piece_source, piece_line))
    return piece_line[out], piece_source[out].astype(np.int64), cq[out]


def extra_parcels(p: AllocationProblem, r: AllocationResult, piece_line: I64, piece_source: I64) -> int:
    """Parcels past each listed order's first: per order, the distinct sites its served pieces come from,
    less one."""
    served = piece_source >= 0
    if not served.any():
        return 0
    n = n_site_keys(p)
    src = piece_source[served]
    order = p.order_line_order()[piece_line[served]]
    parcels = np.unique(order * (2 * n) + r.alloc_kind[src] * n + r.alloc_site[src])
    return int(parcels.shape[0] - np.unique(parcels // (2 * n)).shape[0])


def churn_pieces(p: AllocationProblem, cell: I64, kind: I64, site: I64, quantity: I64) -> int:
    """Pieces of the previous plan whose cell has fewer pieces at their site (kind and index) in this one."""
    if p.prev_cell.size == 0:
        return 0
    n = n_site_keys(p)
    prev_key = p.prev_cell * (2 * n) + p.prev_kind * n + p.prev_site
    keys, prev_q = np.unique(prev_key, return_inverse=True)
    prev_q = np.bincount(prev_q.reshape(-1), weights=p.prev_quantity, minlength=keys.shape[0])
    new_key = cell * (2 * n) + kind * n + site
    pos = np.minimum(np.searchsorted(keys, new_key), keys.shape[0] - 1)
    hit = keys[pos] == new_key
    new_q = np.bincount(pos[hit], weights=quantity[hit], minlength=keys.shape[0])
    return int(p.prev_quantity.sum() - np.minimum(prev_q, new_q).sum())


def finish(p: AllocationProblem, r: AllocationResult) -> AllocationResult:
    """``r`` with its listed order lines' pieces, its split-shipment penalty and its churn."""
    line, source, qty = assign_lines(p, r)
    split = extra_parcels(p, r, line, source) * p.split_fen_per_parcel
    churn = churn_pieces(p, r.alloc_cell, r.alloc_kind, r.alloc_site, r.alloc_quantity)
    return replace(
        r,
        piece_line=line,
        piece_source=source,
        piece_quantity=qty,
        split_fen=int(split),
        churn_fen=int(churn) * p.churn_fen_per_unit,
    )


def split_steer(p: AllocationProblem, m: Model) -> F64:
    """Per variable of ``m``, a cost per piece that steers a plan toward fewer split orders (a heuristic,
    never part of a bound): a SKU group's pick at a warehouse, or a style group's pieces from a workshop,
    costs ``split_fen_per_parcel`` times the share of its pieces on listed lines whose order has another
    line that site cannot serve at all (no stock the owner may take there; the workshop not qualified)."""
    out = np.zeros(m.n_vars)
    if p.split_fen_per_parcel == 0 or p.n_order_lines == 0:
        return out
    n = n_site_keys(p)
    line_cell = p.order_line_cell
    line_order = p.order_line_order()
    lines = np.flatnonzero(m.groups.cell_group[line_cell] >= 0)
    if lines.size == 0 or servable_pair_count(p, lines) > MAX_SITE_PAIRS:
        return out
    pair_line, pair_key = servable_sites(p, lines)
    # one (line, site) per pair; per (order, site), how many of the order's lines the site could serve
    order_site = line_order[pair_line] * (2 * n) + pair_key
    uniq, inv = np.unique(order_site, return_inverse=True)
    servable = np.bincount(inv.reshape(-1), minlength=uniq.shape[0])[inv.reshape(-1)]
    odd = servable < np.diff(p.order_start)[line_order[pair_line]]  # some other line cannot go there
    odd_line, odd_key = pair_line[odd], pair_key[odd]
    g = m.groups
    fen = float(p.split_fen_per_parcel)
    # picks: per (SKU group, warehouse)
    wh = odd_key < n
    gw = np.unique(g.cell_group[line_cell[odd_line[wh]]] * n + odd_key[wh], return_counts=True)
    pick_key = m.pick_g * n + p.stock_warehouse[m.pick_row]
    lo, _ = m.var_at["pick"]
    out[lo : lo + pick_key.shape[0]] = _lookup(gw, pick_key) * fen / g.g_quantity[m.pick_g]
    # made: per (style group, workshop), for arcs to new lots and spares of earlier ones
    hw = np.unique(g.g_h[g.cell_group[line_cell[odd_line[~wh]]]] * n + odd_key[~wh] - n, return_counts=True)
    arc_key = m.arc_h * n + m.lot_workshop[m.arc_lot]
    lo, _ = m.var_at["arc"]
    out[lo : lo + arc_key.shape[0]] = _lookup(hw, arc_key) * fen / g.h_quantity[m.arc_h]
    spare_key = m.spare_h * n + p.open_lot_workshop[m.spare_open]
    lo, _ = m.var_at["spare"]
    out[lo : lo + spare_key.shape[0]] = _lookup(hw, spare_key) * fen / g.h_quantity[m.spare_h]
    return out


def _lookup(table: tuple[I64, I64], keys: I64) -> F64:
    """The count of each key in ``table`` (sorted keys, counts), 0 where absent."""
    known, counts = table
    if known.size == 0:
        return np.zeros(keys.shape[0])
    pos = np.minimum(np.searchsorted(known, keys), known.shape[0] - 1)
    return np.where(known[pos] == keys, counts[pos], 0).astype(np.float64)


def line_pieces(
    p: AllocationProblem, r: AllocationResult, other_cell: I64, other_quantity: I64
) -> tuple[I64, I64, I64, I64]:
    """Every order line's pieces of plan ``r``: the listed lines' as ``r`` cut them (lines ``0 ..
    n_order_lines - 1``), then the other lines (``other_cell``/``other_quantity``, sorted by cell; line
    ``n_order_lines + i`` is other line ``i``) cut along what each cell's allocations have left, earliest day
    first, unfilled pieces last. Per piece: line, source (an allocation's index, or -1 - an unfilled entry's),
    quantity, and where in its source it starts (a source's pieces tile it from 0)."""
    line, source, qty = r.piece_line, r.piece_source, r.piece_quantity
    if int(qty.sum()) != int(p.order_line_quantity.sum()):
        line, source, qty = assign_lines(p, r)  # a result without its cut (or of other listed orders)
    n_alloc = r.n_allocations
    src_qty = np.concatenate((r.alloc_quantity, r.unfilled_quantity)).astype(np.int64)
    src_cell = np.concatenate((r.alloc_cell, r.unfilled_cell)).astype(np.int64)
    src_day = np.concatenate((r.alloc_day, np.full(r.unfilled_cell.shape[0], p.days, np.int64)))
    src_of = np.where(source >= 0, source, n_alloc - 1 - source)
    # the listed pieces start each source, in their order
    by_src = np.lexsort((np.arange(src_of.shape[0]), src_of))
    cum = np.cumsum(qty[by_src])
    head = np.concatenate(([True], src_of[by_src][1:] != src_of[by_src][:-1]))
    start = cum - qty[by_src] - np.maximum.accumulate(np.where(head, cum - qty[by_src], 0))
    offset = np.empty_like(qty)
    offset[by_src] = start
    drawn = np.bincount(src_of, weights=qty, minlength=src_qty.shape[0]).astype(np.int64)
    # the other lines along the rest, per cell
    rest = src_qty - drawn
    order = np.lexsort((np.arange(src_qty.shape[0]), src_day, src_cell))
    di, si, cq = cut(other_quantity.astype(np.int64), rest[order])
    o_src = order[si]
    if cq.size and not np.array_equal(other_cell[di], src_cell[o_src]):
        raise ValueError("line_pieces: the other lines' pieces do not match their cells' rest")
    # where each of those pieces starts in its source: after the listed ones, in cut order
    seg_end = np.cumsum(cq)
    src_first = np.concatenate(([0], np.cumsum(rest[order])))[np.argsort(order)]
    o_off = drawn[o_src] + (seg_end - cq) - src_first[o_src]
    return (
        np.concatenate((line, p.n_order_lines + di)).astype(np.int64),
        np.concatenate((source, np.where(o_src < n_alloc, o_src, n_alloc - 1 - o_src))).astype(np.int64),
        np.concatenate((qty, cq)).astype(np.int64),
        np.concatenate((offset, o_off)).astype(np.int64),
    )
