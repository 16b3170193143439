"""The allocation model as a sparse linear program: what may serve what, at what cost, under which capacity.

Demand is aggregated exactly. Shipping is priced from the belt to the destination province, the same from
every site of one belt, so cells that differ only in province cost the same whichever site serves them: they
form one *SKU group* (SKU × owner × due day). Stock serves SKU groups; a workshop lot makes a style, so the
SKU groups of one style, owner and due day form a *style group* that lots serve.

Variables, in this order (each block is a slice of :class:`Model`):

- ``pick``   a SKU group takes an owner's stock row, picked on a day (handling per line, shipping, lateness);
- ``spare``  a style group takes the spare pieces of a lot planned earlier (lateness);
- ``make``   a SKU group's pieces handed to its style group to be made (shipping);
- ``unmet``  a SKU group's pieces that fit nowhere (the unfilled penalty);
- ``arc``    a style group takes pieces of a lot (workshop × style × day) (lateness);
- ``prod``   a lot's production, including a minimum lot's surplus (unit cost; minutes of capacity);
- ``open``   a lot is made at all (changeover; 0/1, relaxed to [0, 1] in the LP);
- ``extra``  overtime minutes of a workshop, process family and day (premium per minute);
- ``keep``   pieces of the previous plan kept at their site, when the batch is planned again: per SKU group
  and warehouse (at most its cells' previous pieces there, at most its picks there) and per style group and
  workshop (likewise, at most its pieces from that workshop's lots and spares); each earns back the churn
  penalty, which :func:`constant_fen` charges for every previous piece up front.

Picks happen at most ``problem.pick_early_days`` days before a group's due day; lots may be made on any
earlier plan day, because one minimum lot made early often serves a style's orders of several due days. At
most ``problem.max_late_days`` days after the due day, late; what fits nowhere by then is unfilled. The
cascade and the plan checker keep the same window, so the model's relaxation bounds every plan they accept.

Shipping is charged per piece served at its SKU group's average (its cells' lines at their provinces'
cheapest price, over its pieces), so the model's objective and the plan's agree exactly.

The LP relaxation (``open`` continuous) with the strong linking rows ``arc <= min(group, lot max) * open`` is
the lower bound the solver reports. It stays one with the two costs the groups cannot see exactly: churn is
counted per cell, and a cell keeps no more pieces at a site than its group (or style group) could, so the
model's churn is at most any plan's. Of the split-shipment penalty the model counts only what no plan can
avoid: one variable ``split`` at least the number of listed orders no one site could serve whole, less the
pieces their SKU groups leave unfilled (an order with an unfilled piece may ship the rest from one site;
one piece excuses one order at most), so it never counts more than a plan pays; the rest is left out (a cost
of at least 0 left out of a relaxation leaves it a relaxation; :func:`solvers.allocation.orders.split_steer`
steers a second MIP toward fewer splits, and its bound is never reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from solvers.allocation.data import F64, I64, AllocationProblem
from solvers.allocation.segments import positions

T = TypeVar("T", bound=np.generic)


@dataclass(frozen=True, eq=False)
class Groups:
    """Cells aggregated into SKU groups (g) and style groups (h)."""

    cell_group: I64
    g_sku: I64
    g_owner: I64
    g_due: I64
    g_style: I64
    g_quantity: I64
    g_lines: I64
    g_ship: F64  # shipping per piece: the group's cells' lines at their provinces' prices, over its pieces
    g_h: I64
    h_style: I64
    h_owner: I64
    h_due: I64
    h_quantity: I64

    @property
    def n_g(self) -> int:
        return int(self.g_sku.shape[0])

    @property
    def n_h(self) -> int:
        return int(self.h_style.shape[0])


def group_cells(p: AllocationProblem, served: np.ndarray | None = None) -> Groups:
    """SKU groups and style groups of the cells (of the ``served`` cells only, when given)."""
    cells = np.arange(p.n_cells) if served is None else np.flatnonzero(served)
    due = p.due_day()[cells]
    due_lo = int(due.min()) if due.size else 0
    span = int(due.max()) - due_lo + 1 if due.size else 1
    n_own = max(p.n_merchants, 1)
    key = (p.cell_sku[cells] * n_own + p.cell_owner[cells]) * span + (due - due_lo)
    g_key, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64)
    cell_group = np.full(p.n_cells, -1, np.int64)
    cell_group[cells] = inv
    n_g = g_key.shape[0]
    g_due = g_key % span + due_lo
    g_owner = (g_key // span) % n_own
    g_sku = g_key // span // n_own
    g_style = p.sku_style[g_sku]
    g_q = np.bincount(inv, weights=p.cell_quantity[cells], minlength=n_g).astype(np.int64)
    g_lines = np.bincount(inv, weights=p.cell_lines[cells], minlength=n_g).astype(np.int64)
    price = np.maximum(p.province_shipping_fen[p.cell_province[cells]], 0)
    g_ship = np.bincount(inv, weights=p.cell_lines[cells] * price, minlength=n_g) / np.maximum(g_q, 1)
    h_key_of_g = (g_style * n_own + g_owner) * span + (g_due - due_lo)
    h_key, g_h = np.unique(h_key_of_g, return_inverse=True)
    g_h = g_h.reshape(-1).astype(np.int64)
    return Groups(
        cell_group=cell_group,
        g_sku=g_sku,
        g_owner=g_owner,
        g_due=g_due,
        g_style=g_style,
        g_quantity=g_q,
        g_lines=g_lines,
        g_ship=g_ship,
        g_h=g_h,
        h_style=h_key // span // n_own,
        h_owner=(h_key // span) % n_own,
        h_due=h_key % span + due_lo,
        h_quantity=np.bincount(g_h, weights=g_q, minlength=h_key.shape[0]).astype(np.int64),
    )


def _expand(counts: I64) -> tuple[I64, I64]:
    """For items with ``counts[i]`` children each: the parent and the 0-based rank of every child."""
    parent = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    return parent, np.arange(parent.shape[0], dtype=np.int64) - first[parent]


def stock_rows(p: AllocationProblem, sku: I64) -> tuple[I64, I64]:
    """Every stock row of each item's SKU: pairs (item, row), item by item."""
    by_sku = np.argsort(p.stock_sku, kind="stable")
    start = np.searchsorted(p.stock_sku[by_sku], np.arange(p.n_skus + 1))
    item, rank = _expand(start[sku + 1] - start[sku])
    return item, by_sku[start[sku[item]] + rank]


# Listing every (order line, site) pair that could serve it is what finding unavoidable splits costs; a hit
# made at hundreds of workshops makes that tens of millions of pairs at a million orders (8 GB seen), so
# above this many the splits are not looked for (the bound leaves them out, as it may; no steering either)
MAX_SITE_PAIRS = 4_000_000


def servable_pair_count(p: AllocationProblem, lines: I64) -> int:
    """How many (line, site) pairs :func:`servable_sites` would list at most (before the owner rule)."""
    cell = p.order_line_cell[lines]
    stock_per_sku = np.bincount(p.stock_sku, minlength=p.n_skus)
    quals_per_style = np.bincount(p.qual_style, minlength=p.n_styles)
    return int(stock_per_sku[p.cell_sku[cell]].sum() + quals_per_style[p.cell_style[cell]].sum())


def servable_sites(p: AllocationProblem, lines: I64) -> tuple[I64, I64]:
    """Every (listed order line, site) where the site could serve the line at all, one pair each: a warehouse
    holding stock of its SKU its owner may take (key ``warehouse``), a workshop qualified for its style (key
    ``n + workshop``, ``n = max(workshops, warehouses, 1)``)."""
    n = max(p.n_workshops, p.n_warehouses, 1)
    cell = p.order_line_cell[lines]
    item, row = stock_rows(p, p.cell_sku[cell])
    ok = p.may_take(p.cell_owner[cell[item]], p.stock_owner[row]) & (p.stock_available[row] > 0)
    by_style = np.argsort(p.qual_style, kind="stable")
    q_start = np.searchsorted(p.qual_style[by_style], np.arange(p.n_styles + 1))
    style = p.cell_style[cell]
    q_item, rank = _expand(q_start[style + 1] - q_start[style])
    pair_line = np.concatenate((lines[item[ok]], lines[q_item]))
    pair_key = np.concatenate(
        (p.stock_warehouse[row[ok]], n + p.qual_workshop[by_style[q_start[style[q_item]] + rank]])
    )
    pk = np.unique(pair_line * (2 * n) + pair_key)
    return pk // (2 * n), pk % (2 * n)


def forced_splits(p: AllocationProblem, cell_group: I64) -> tuple[int, I64]:
    """Listed orders that no one site could serve whole (all their cells served by a courier): how many, and
    the SKU groups of their lines. Each ships at least two parcels unless a piece of it is unfilled."""
    if p.split_fen_per_parcel == 0 or p.n_order_lines == 0:
        return 0, np.empty(0, np.int64)
    if servable_pair_count(p, np.arange(p.n_order_lines, dtype=np.int64)) > MAX_SITE_PAIRS:
        return 0, np.empty(0, np.int64)
    line_order = p.order_line_order()
    n_lines = np.diff(p.order_start)
    served_line = cell_group[p.order_line_cell] >= 0
    all_served = np.bincount(line_order, weights=~served_line, minlength=p.n_orders) == 0
    pair_line, pair_key = servable_sites(p, np.arange(p.n_order_lines, dtype=np.int64))
    n = max(p.n_workshops, p.n_warehouses, 1)
    key = line_order[pair_line] * (2 * n) + pair_key
    uniq, counts = np.unique(key, return_counts=True)
    best = np.zeros(p.n_orders, np.int64)
    np.maximum.at(best, uniq // (2 * n), counts)
    forced = all_served & (best < n_lines)
    groups = np.unique(cell_group[p.order_line_cell[forced[line_order]]])
    return int(forced.sum()), groups.astype(np.int64)


def constant_fen(p: AllocationProblem, served: np.ndarray) -> float:
    """What every plan pays that the model of the ``served`` cells leaves out: the unfilled penalty of the
    cells no courier serves, and the churn of every previous piece (keeps earn it back)."""
    unserved = float(p.cell_quantity[~served].sum()) * p.unfilled_fen_per_unit
    return unserved + float(p.prev_quantity.sum()) * p.churn_fen_per_unit


@dataclass(frozen=True, eq=False)
class Model:
    """The LP/MIP of one allocation problem. Every array of a block is indexed by that block's items."""

    groups: Groups
    # pick: SKU group g takes stock row on day d
    pick_g: I64
    pick_row: I64
    pick_day: I64
    # spare: style group h takes the spare of open lot (problem index) on its day
    spare_h: I64
    spare_open: I64
    # arc: style group h takes from lot k
    arc_h: I64
    arc_lot: I64
    # lots: workshop × style × day
    lot_workshop: I64
    lot_style: I64
    lot_family: I64
    lot_day: I64
    lot_unit_cost: I64
    lot_min: I64
    lot_max: I64
    lot_changeover: I64
    lot_open: I64  # index of the problem's open lot this lot grows, else -1
    lot_resource: I64
    # resources: workshop × family × day with minutes
    res_workshop: I64
    res_family: I64
    res_day: I64
    res_regular: F64
    res_overtime: F64
    res_premium: I64
    # handling resources: warehouse × day
    hand_warehouse: I64
    hand_day: I64
    # keeps of the previous plan: SKU group × warehouse, style group × workshop
    keep_g: I64
    keep_warehouse: I64
    keep_h: I64
    keep_workshop: I64
    # the LP
    cost: F64
    lb: F64
    ub: F64
    rows: sp.csr_matrix
    row_lb: F64
    row_ub: F64
    # offsets of the variable blocks and of the row blocks
    var_at: dict[str, tuple[int, int]]
    row_at: dict[str, tuple[int, int]]

    def integer(self) -> np.ndarray:
        """Which variables are integral in the MIP: everything but overtime minutes and keeps (a keep is
        at most integral quantities, and the churn it earns back makes it as large as they allow)."""
        mask = np.ones(self.n_vars, np.bool_)
        for name in ("extra", "keep_pick", "keep_made", "split"):
            lo, hi = self.var_at[name]
            mask[lo:hi] = False
        return mask

    def block(self, values: npt.NDArray[T], name: str) -> npt.NDArray[T]:
        lo, hi = self.var_at[name]
        return values[lo:hi]

    def row_block(self, values: npt.NDArray[T], name: str) -> npt.NDArray[T]:
        lo, hi = self.row_at[name]
        return values[lo:hi]

    @property
    def n_vars(self) -> int:
        return int(self.cost.shape[0])


def build_model(p: AllocationProblem, groups: Groups | None = None, *, strong: bool = True) -> Model:
    """The model of ``p``; ``strong`` adds the per-arc linking rows that tighten the bound."""
    gr = group_cells(p) if groups is None else groups
    days = p.days
    late_fen = p.late_fen_per_unit_day
    n_g, n_h = gr.n_g, gr.n_h

    # --- pick: stock rows of the group's SKU that its owner may take, on each day of its window ----------
    g_of, row = stock_rows(p, gr.g_sku)
    ok = p.may_take(gr.g_owner[g_of], p.stock_owner[row]) & (p.stock_available[row] > 0)
    g_of, row = g_of[ok], row[ok]
    lo, hi = p.first_pick_day(gr.g_due[g_of]), p.last_day(gr.g_due[g_of])
    pair, off = _expand(hi - lo + 1)
    pick_g, pick_row, pick_day = g_of[pair], row[pair], lo[pair] + off
    wh = p.stock_warehouse[pick_row]
    line_ratio = gr.g_lines / gr.g_quantity
    pick_cost = (
        p.warehouse_handling_fen[wh] * line_ratio[pick_g]
        + gr.g_ship[pick_g]
        + late_fen * np.maximum(pick_day - gr.g_due[pick_g], 0)
    )

    # --- lots: each qualification of a style that has demand, on each day some group's window reaches -----
    by_style = np.argsort(p.qual_style, kind="stable")
    q_start = np.searchsorted(p.qual_style[by_style], np.arange(p.n_styles + 1))
    qcnt = q_start[gr.h_style + 1] - q_start[gr.h_style]
    h_of, rank = _expand(qcnt)
    qual = by_style[q_start[gr.h_style[h_of]] + rank]
    lo, hi = np.full(h_of.shape[0], p.first_day), p.last_day(gr.h_due[h_of])  # lots: any earlier day
    pair, off = _expand(hi - lo + 1)
    arc_h, arc_qual, arc_day = h_of[pair], qual[pair], lo[pair] + off
    lot_key_of_arc = arc_qual * days + arc_day
    lot_key, arc_lot = np.unique(lot_key_of_arc, return_inverse=True)
    arc_lot = arc_lot.reshape(-1).astype(np.int64)
    lot_qual, lot_day = lot_key // days, lot_key % days
    lot_w, lot_s = p.qual_workshop[lot_qual], p.qual_style[lot_qual]
    lot_f = p.style_family[lot_s]
    mpu = p.style_minutes_per_unit[lot_s]
    minutes = p.regular_minutes[lot_w, lot_f, lot_day] + p.overtime_minutes[lot_w, lot_f, lot_day]
    lot_max = np.floor(minutes / mpu + 1e-9).astype(np.int64)
    lot_min = np.maximum(p.style_min_lot[lot_s], 1)
    lot_change = p.style_changeover_fen[lot_s].copy()
    # lots planned earlier: they grow without a minimum or a changeover
    lot_open = np.full(lot_key.shape[0], -1, np.int64)
    spare_h = np.empty(0, np.int64)
    spare_open = np.empty(0, np.int64)
    if p.open_lot_workshop.size:
        n_s = max(p.n_styles, 1)
        open_ws_key = (p.open_lot_workshop * n_s + p.open_lot_style) * days + p.open_lot_day
        lot_ws_key = (lot_w * n_s + lot_s) * days + lot_day
        order = np.argsort(open_ws_key)
        at = np.searchsorted(open_ws_key[order], lot_ws_key)
        at = np.minimum(at, order.shape[0] - 1)
        hit = open_ws_key[order][at] == lot_ws_key
        lot_open[hit] = order[at[hit]]
        # spare pieces: arcs from the style groups of the open lot's style whose owner may take them
        has_spare = np.flatnonzero(p.open_lot_spare > 0)
        h_by_style = np.argsort(gr.h_style, kind="stable")
        h_start = np.searchsorted(gr.h_style[h_by_style], np.arange(p.n_styles + 1))
        o_style = p.open_lot_style[has_spare]
        o_of, rank = _expand(h_start[o_style + 1] - h_start[o_style])
        sh = h_by_style[h_start[o_style[o_of]] + rank]
        so = has_spare[o_of]
        own_h, own_o = gr.h_owner[sh], p.open_lot_owner[so]
        qualified = np.isin(
            p.open_lot_workshop[so] * n_s + p.open_lot_style[so], p.qual_workshop * n_s + p.qual_style
        )
        ok = p.may_take(own_h, own_o) & qualified
        ok &= (p.open_lot_day[so] >= p.first_day) & (p.open_lot_day[so] <= p.last_day(gr.h_due[sh]))
        spare_h, spare_open = sh[ok], so[ok]
    is_open = lot_open >= 0
    lot_min = np.where(is_open, 0, lot_min)
    lot_change = np.where(is_open, 0, lot_change)
    # a new lot whose minimum does not fit the day's minutes can never be made
    usable = is_open | (lot_max >= lot_min)
    keep_arc = usable[arc_lot]
    remap = np.cumsum(usable) - 1
    arc_h, arc_day, arc_lot = arc_h[keep_arc], arc_day[keep_arc], remap[arc_lot[keep_arc]]
    lot_w, lot_s, lot_f, lot_day = lot_w[usable], lot_s[usable], lot_f[usable], lot_day[usable]
    lot_qual, mpu, lot_max = lot_qual[usable], mpu[usable], lot_max[usable]
    lot_min, lot_change, lot_open = lot_min[usable], lot_change[usable], lot_open[usable]
    n_lot = int(lot_w.shape[0])
    arc_cost = late_fen * np.maximum(arc_day - gr.h_due[arc_h], 0).astype(np.float64)
    spare_day = p.open_lot_day[spare_open]
    spare_cost = late_fen * np.maximum(spare_day - gr.h_due[spare_h], 0).astype(np.float64)

    # --- resources: minutes of a workshop × family × day that some lot uses -----------------------------
    n_f = max(p.n_families, 1)
    res_key_of_lot = (lot_w * n_f + lot_f) * days + lot_day
    res_key, lot_res = np.unique(res_key_of_lot, return_inverse=True)
    lot_res = lot_res.reshape(-1).astype(np.int64)
    res_d = res_key % days
    res_f = (res_key // days) % n_f
    res_w = res_key // days // n_f
    res_reg = p.regular_minutes[res_w, res_f, res_d].astype(np.float64)
    res_ot = p.overtime_minutes[res_w, res_f, res_d].astype(np.float64)
    res_prem = p.overtime_fen_per_minute[res_w, res_f, res_d].astype(np.int64)
    n_res = int(res_key.shape[0])

    # --- handling: warehouse × day that some pick uses ------------------------------------------------
    hand_key_of_pick = wh * days + pick_day
    hand_key, pick_hand = np.unique(hand_key_of_pick, return_inverse=True)
    pick_hand = pick_hand.reshape(-1).astype(np.int64)
    hand_w, hand_d = hand_key // days, hand_key % days
    n_hand = int(hand_key.shape[0])

    # --- keeps: the previous plan's pieces per SKU group × warehouse and style group × workshop ------------
    n_site = max(p.n_workshops, p.n_warehouses, 1)
    prev_g = gr.cell_group[p.prev_cell] if p.prev_cell.size else np.empty(0, np.int64)
    prev_ok = prev_g >= 0
    at_wh = prev_ok & (p.prev_kind == 0)
    kp_key, kp_inv = np.unique(prev_g[at_wh] * n_site + p.prev_site[at_wh], return_inverse=True)
    kp_prev = np.bincount(kp_inv.reshape(-1), weights=p.prev_quantity[at_wh], minlength=kp_key.shape[0])
    keep_g, keep_wh = kp_key // n_site, kp_key % n_site
    at_ws = prev_ok & (p.prev_kind == 1)
    km_key, km_inv = np.unique(gr.g_h[prev_g[at_ws]] * n_site + p.prev_site[at_ws], return_inverse=True)
    km_prev = np.bincount(km_inv.reshape(-1), weights=p.prev_quantity[at_ws], minlength=km_key.shape[0])
    keep_h, keep_ws = km_key // n_site, km_key % n_site

    # --- forced splits: orders no one site can serve whole ship two parcels, or leave a piece unfilled -----
    n_forced, forced_g = forced_splits(p, gr.cell_group)

    # --- variables ----------------------------------------------------------------------------------------
    n_pick, n_spare, n_arc = pick_g.shape[0], spare_h.shape[0], arc_h.shape[0]
    sizes = {
        "pick": n_pick,
        "spare": n_spare,
        "make": n_g,
        "unmet": n_g,
        "arc": n_arc,
        "prod": n_lot,
        "open": n_lot,
        "extra": n_res,
        "keep_pick": int(keep_g.shape[0]),
        "keep_made": int(keep_h.shape[0]),
        "split": 1 if n_forced else 0,
    }
    var_at: dict[str, tuple[int, int]] = {}
    at = 0
    for name, n in sizes.items():
        var_at[name] = (at, at + n)
        at += n
    n_var = at
    cost = np.zeros(n_var)
    lb = np.zeros(n_var)
    ub = np.full(n_var, np.inf)

    def put(name: str, c: F64 | float, upper: F64 | float, lower: F64 | float = 0.0) -> None:
        lo_, hi_ = var_at[name]
        cost[lo_:hi_], ub[lo_:hi_], lb[lo_:hi_] = c, upper, lower

    put("pick", pick_cost, p.stock_available[pick_row].astype(np.float64))
    put("spare", spare_cost, p.open_lot_spare[spare_open].astype(np.float64))
    put("make", gr.g_ship, gr.g_quantity.astype(np.float64))
    put("unmet", float(p.unfilled_fen_per_unit), gr.g_quantity.astype(np.float64))
    put("arc", arc_cost, np.minimum(gr.h_quantity[arc_h], lot_max[arc_lot]).astype(np.float64))
    put("prod", p.qual_unit_cost_fen[lot_qual].astype(np.float64), lot_max.astype(np.float64))
    put("open", lot_change.astype(np.float64), 1.0, np.where(lot_open >= 0, 1.0, 0.0))
    put("extra", res_prem.astype(np.float64), res_ot)
    churn = -float(p.churn_fen_per_unit)
    put("keep_pick", churn, kp_prev.astype(np.float64))
    put("keep_made", churn, km_prev.astype(np.float64))
    put("split", float(p.split_fen_per_parcel), np.inf)

    # --- rows ---------------------------------------------------------------------------------------------
    r_i: list[I64] = []
    r_j: list[I64] = []
    r_v: list[F64] = []
    r_lb: list[F64] = []
    r_ub: list[F64] = []
    row_at: dict[str, tuple[int, int]] = {}
    n_rows = 0

    def v(name: str, idx: I64 | None = None) -> I64:
        lo_, hi_ = var_at[name]
        return np.arange(lo_, hi_, dtype=np.int64) if idx is None else lo_ + idx

    def rows(
        name: str, n: int, lower: F64 | float, upper: F64 | float, terms: list[tuple[I64, I64, F64 | float]]
    ) -> None:
        nonlocal n_rows
        for r, c, val in terms:
            r_i.append(n_rows + r)
            r_j.append(c)
            r_v.append(np.broadcast_to(np.asarray(val, np.float64), r.shape).astype(np.float64))
        r_lb.append(np.broadcast_to(np.asarray(lower, np.float64), (n,)).astype(np.float64))
        r_ub.append(np.broadcast_to(np.asarray(upper, np.float64), (n,)).astype(np.float64))
        row_at[name] = (n_rows, n_rows + n)
        n_rows += n

    g_idx = np.arange(n_g, dtype=np.int64)
    lot_idx = np.arange(n_lot, dtype=np.int64)
    qg = gr.g_quantity.astype(np.float64)
    # every SKU group's pieces are picked, made or unmet
    rows("group", n_g, qg, qg, [(pick_g, v("pick"), 1.0), (g_idx, v("make"), 1.0), (g_idx, v("unmet"), 1.0)])
    # what a style group's SKU groups hand over to be made, its lots and earlier spares give
    rows(
        "style",
        n_h,
        0.0,
        0.0,
        [(gr.g_h, v("make"), 1.0), (arc_h, v("arc"), -1.0), (spare_h, v("spare"), -1.0)],
    )
    # a lot gives no more than it makes
    rows("lot", n_lot, -np.inf, 0.0, [(arc_lot, v("arc"), 1.0), (lot_idx, v("prod"), -1.0)])
    # a lot is made in 0 or at least its minimum, at most what the day's minutes allow
    rows(
        "lot_max",
        n_lot,
        -np.inf,
        0.0,
        [(lot_idx, v("prod"), 1.0), (lot_idx, v("open"), -lot_max.astype(np.float64))],
    )
    rows(
        "lot_min",
        n_lot,
        0.0,
        np.inf,
        [(lot_idx, v("prod"), 1.0), (lot_idx, v("open"), -lot_min.astype(np.float64))],
    )
    # minutes: regular, then overtime at a premium
    rows(
        "minutes",
        n_res,
        -np.inf,
        res_reg,
        [(lot_res, v("prod"), mpu), (np.arange(n_res, dtype=np.int64), v("extra"), -1.0)],
    )
    # each stock row gives no more than it holds (across days)
    picked_rows, pick_stock = np.unique(pick_row, return_inverse=True)
    pick_stock = pick_stock.reshape(-1).astype(np.int64)
    rows(
        "stock",
        picked_rows.shape[0],
        -np.inf,
        p.stock_available[picked_rows].astype(np.float64),
        [(pick_stock, v("pick"), 1.0)],
    )
    # handling lines of a warehouse on a day
    rows(
        "handling",
        n_hand,
        -np.inf,
        p.warehouse_handling[hand_w, hand_d].astype(np.float64),
        [(pick_hand, v("pick"), line_ratio[pick_g])],
    )
    # spare pieces of each earlier lot
    spare_lots, spare_of = np.unique(spare_open, return_inverse=True)
    spare_of = spare_of.reshape(-1).astype(np.int64)
    rows(
        "spare",
        spare_lots.shape[0],
        -np.inf,
        p.open_lot_spare[spare_lots].astype(np.float64),
        [(spare_of, v("spare"), 1.0)],
    )
    # a keep is at most the pieces its group takes at that site (the rows are there even when empty)
    kp_idx = np.arange(keep_g.shape[0], dtype=np.int64)
    pick_at = positions(kp_key, pick_g * n_site + wh)
    rows(
        "keep_pick",
        kp_idx.shape[0],
        -np.inf,
        0.0,
        [
            (kp_idx, v("keep_pick"), 1.0),
            (pick_at[pick_at >= 0], v("pick", np.flatnonzero(pick_at >= 0)), -1.0),
        ],
    )
    km_idx = np.arange(keep_h.shape[0], dtype=np.int64)
    arc_at = positions(km_key, arc_h * n_site + lot_w[arc_lot])
    spare_at = positions(km_key, spare_h * n_site + p.open_lot_workshop[spare_open])
    rows(
        "keep_made",
        km_idx.shape[0],
        -np.inf,
        0.0,
        [
            (km_idx, v("keep_made"), 1.0),
            (arc_at[arc_at >= 0], v("arc", np.flatnonzero(arc_at >= 0)), -1.0),
            (spare_at[spare_at >= 0], v("spare", np.flatnonzero(spare_at >= 0)), -1.0),
        ],
    )
    # at least one parcel past the first per forced order, but for those a piece of which is unfilled (each
    # unfilled piece excuses at most one order)
    if n_forced:
        rows(
            "split",
            1,
            float(n_forced),
            np.inf,
            [
                (np.zeros(1, np.int64), v("split"), 1.0),
                (np.zeros(forced_g.shape[0], np.int64), v("unmet", forced_g), 1.0),
            ],
        )
    if strong:
        arc_idx = np.arange(n_arc, dtype=np.int64)
        cap = np.minimum(gr.h_quantity[arc_h], lot_max[arc_lot]).astype(np.float64)
        rows("link", n_arc, -np.inf, 0.0, [(arc_idx, v("arc"), 1.0), (arc_idx, v("open", arc_lot), -cap)])

    matrix = sp.csr_matrix(
        (np.concatenate(r_v), (np.concatenate(r_i), np.concatenate(r_j))), shape=(n_rows, n_var)
    )
    return Model(
        groups=gr,
        pick_g=pick_g,
        pick_row=pick_row,
        pick_day=pick_day,
        spare_h=spare_h,
        spare_open=spare_open,
        arc_h=arc_h,
        arc_lot=arc_lot,
        lot_workshop=lot_w,
        lot_style=lot_s,
        lot_family=lot_f,
        lot_day=lot_day,
        lot_unit_cost=p.qual_unit_cost_fen[lot_qual].astype(np.int64),
        lot_min=lot_min,
        lot_max=lot_max,
        lot_changeover=lot_change,
        lot_open=lot_open,
        lot_resource=lot_res,
        res_workshop=res_w,
        res_family=res_f,
        res_day=res_d,
        res_regular=res_reg,
        res_overtime=res_ot,
        res_premium=res_prem,
        hand_warehouse=hand_w,
        hand_day=hand_d,
        keep_g=keep_g,
        keep_warehouse=keep_wh,
        keep_h=keep_h,
        keep_workshop=keep_ws,
        cost=cost,
        lb=lb,
        ub=ub,
        rows=matrix,
        row_lb=np.concatenate(r_lb),
        row_ub=np.concatenate(r_ub),
        var_at=var_at,
        row_at=row_at,
    )
