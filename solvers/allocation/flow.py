"""The allocation model's network relaxation: a lower bound and a fractional plan in seconds at belt scale.

The model (``model.py``) becomes a pure min-cost flow once three things are let go, each a relaxation:

- *minimum lots*: a lot may make any quantity up to what its day's minutes allow;
- *changeover and minimum-lot surplus* are charged per piece a lot gives, spread over at most the demand that
  can reach the lot (its style's groups whose window covers its day): ``open >= given / C`` and ``made >=
  min lot x open`` hold in every plan, so a piece costs at least ``unit x max(1, min / C) + changeover / C``;
- *warehouse handling* (lines per warehouse and day) enters the costs at a price per line (Lagrangian: any
  non-negative prices give a bound; :func:`relax` searches them by bisection).

What keeps it a network is the unit of flow: every SKU group belongs to one style, and every piece of a style
takes the same minutes, so flow is measured in *minutes of making* (in ``1/k`` minutes, integral): a SKU
group supplies ``pieces x minutes-per-piece``, a stock row holds ``pieces x minutes-per-piece`` of its SKU,
and a workshop × family × day takes minutes from lots of many styles, regular time first, then overtime at
its premium. A style group reaches the lots of its style through one hub per style and day, so a hit made at
hundreds of workshops costs days + lots arcs, not days × lots. OR-Tools' ``SimpleMinCostFlow`` (cost scaling)
solves it exactly in integers.

Costs are rounded *down* to integers after scaling and capacities rounded *up*, so the flow's optimum is at
most the relaxation's, which is at most every plan's: the bound is valid as computed. The cost scale is
chosen so that neither an arc's cost nor the total can overflow int64 (OR-Tools reports OPTIMAL with a cost of
2^63-1 when it does, and rejects arc costs too large for its scaling); the solve is checked for both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from solvers.allocation.data import F64, I64, AllocationProblem
from solvers.allocation.model import Model
from solvers.allocation.segments import cut

_INT64_HEADROOM = float(2**60)
_OVERFLOW = 2**63 - 1
_FIRST_PRICE = 500.0  # fen per line: the first price of a warehouse-day whose lines overflow


class FlowError(RuntimeError):
    """The network could not be solved exactly (scales out of range, or the solver refused it)."""


@dataclass(frozen=True, eq=False)
class FlowSolution:
    """Pieces (fractional) per model variable, and the bound they prove."""

    values: F64  # the model's variable vector in pieces (``open`` as prod / lot_max, as the LP relaxation)
    bound: float  # at most every plan's objective under the model (fen)
    solves: int


def minute_scale(minutes_per_unit: F64) -> int:
    """Units of flow per minute: the smallest of a few scales that makes every minutes-per-piece whole, else
    one fine enough that every piece counts at least one unit (pieces then count their minutes rounded down,
    which only loosens the relaxation)."""
    for k in (1, 2, 4, 5, 10, 20, 50, 100):
        scaled = minutes_per_unit * k
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-9):
            return k
    smallest = float(minutes_per_unit.min(initial=1.0))
    return max(100, int(np.ceil(1.0 / smallest)))


def _units(minutes_per_unit: F64, k: int) -> I64:
    """Whole units of flow per piece, rounded down (exact where ``k`` makes them whole)."""
    units: I64 = np.maximum(np.floor(minutes_per_unit * k + 1e-9), 1).astype(np.int64)
    return units


def pick_handling(p: AllocationProblem, m: Model) -> I64:
    """Per model pick, its handling row within the handling block (the rows are keyed warehouse × day)."""
    key = p.stock_warehouse[m.pick_row] * p.days + m.pick_day
    return np.searchsorted(m.hand_warehouse * p.days + m.hand_day, key).astype(np.int64)


class _Network:
    """Everything of the network but the picks' costs, which move with the handling prices."""

    def __init__(self, p: AllocationProblem, m: Model) -> None:
        k = minute_scale(p.style_minutes_per_unit)
        self.m, self.k = m, k
        g = m.groups
        n_g, n_h = g.n_g, g.n_h
        mpu = p.style_minutes_per_unit
        self.units_g = _units(mpu[g.g_style], k)
        self.units_h = _units(mpu[g.h_style], k)
        self.line_ratio = g.g_lines / g.g_quantity
        self.pick_hand = pick_handling(p, m)
        self.hand_cap = m.row_block(m.row_ub, "handling")
        days = p.days

        # hubs: one per style and day that has lots; style groups reach them on the days their arcs reach
        n_res = m.res_workshop.shape[0]
        hub_key, lot_hub = np.unique(m.lot_style * days + m.lot_day, return_inverse=True)
        lot_hub = lot_hub.reshape(-1)
        reach = np.unique(m.arc_h * max(hub_key.shape[0], 1) + lot_hub[m.arc_lot])
        self.reach_h = reach // max(hub_key.shape[0], 1)
        self.reach_hub = reach % max(hub_key.shape[0], 1)
        self.lot_hub = lot_hub
        hub_day = hub_key % days

        self.rows_used = np.unique(m.pick_row)
        self.pick_rownode = np.searchsorted(self.rows_used, m.pick_row)
        self.spare_lots, spare_of = np.unique(m.spare_open, return_inverse=True)
        spare_of = spare_of.reshape(-1)
        sizes = [
            n_g,
            n_h,
            self.rows_used.shape[0],
            self.spare_lots.shape[0],
            hub_key.shape[0],
            n_res,
            1,
        ]
        at = np.cumsum([0, *sizes])
        self.G, H, R, P, D, S, T = (int(x) for x in at[:7])
        self.R, self.T = R, T
        self.n_nodes = T + 1
        self.big = int(g.g_quantity @ self.units_g) if n_g else 1

        tails: list[I64] = []
        heads: list[I64] = []
        caps: list[I64] = []
        costs: list[F64] = []
        n_arcs = 0

        def arcs(tail: I64, head: I64 | int, cap: I64 | int, cost: F64 | float) -> I64:
            nonlocal n_arcs
            n = tail.shape[0]
            tails.append(tail.astype(np.int64))
            heads.append(np.broadcast_to(head, (n,)).astype(np.int64))
            caps.append(np.minimum(np.broadcast_to(cap, (n,)), self.big).astype(np.int64))
            costs.append(np.broadcast_to(np.asarray(cost, np.float64), (n,)).copy())
            n_arcs += n
            return np.arange(n_arcs - n, n_arcs, dtype=np.int64)

        rows = self.rows_used
        row_units = _units(mpu[p.sku_style[p.stock_sku[rows]]], k)
        arcs(R + np.arange(rows.shape[0]), T, p.stock_available[rows] * row_units, 0.0)
        g_idx = np.arange(n_g, dtype=np.int64)
        self.make_arc = arcs(self.G + g_idx, H + g.g_h, self.big, g.g_ship / self.units_g)
        self.unmet_arc = arcs(self.G + g_idx, T, self.big, float(p.unfilled_fen_per_unit) / self.units_g)
        spare_units = _units(mpu[p.open_lot_style[self.spare_lots]], k)
        self.spare_arc = arcs(
            H + m.spare_h, P + spare_of, self.big, m.block(m.cost, "spare") / self.units_h[m.spare_h]
        )
        arcs(P + np.arange(self.spare_lots.shape[0]), T, p.open_lot_spare[self.spare_lots] * spare_units, 0.0)
        late = p.late_fen_per_unit_day * np.maximum(hub_day[self.reach_hub] - g.h_due[self.reach_h], 0)
        self.reach_arc = arcs(
            H + self.reach_h, D + self.reach_hub, self.big, late / self.units_h[self.reach_h]
        )
        self.lot_units = _units(mpu[m.lot_style], k)
        # a lot's own limit (its day's minutes, in its style's pieces) is its resource's, which the
        # resource's arcs to the sink keep: a lot is an arc from its hub to its resource. It gives no more
        # than the demand that reaches its hub, nor than its limit (C), and pays per piece what the module
        # docstring says: a style wanting ten pieces pays for a whole minimum lot
        hub_demand = np.bincount(
            self.reach_hub, weights=g.h_quantity[self.reach_h], minlength=hub_key.shape[0]
        )
        most = np.maximum(np.minimum(hub_demand[lot_hub], m.lot_max), 1.0)
        per_piece = m.lot_unit_cost * np.maximum(1.0, m.lot_min / most) + m.lot_changeover / most
        self.lot_arc = arcs(D + lot_hub, S + m.lot_resource, self.big, per_piece / self.lot_units)
        res = np.arange(n_res, dtype=np.int64)
        arcs(S + res, T, np.ceil(m.res_regular * k - 1e-9).astype(np.int64), 0.0)
        self.overtime_arc = arcs(
            S + res, T, np.ceil(m.res_overtime * k - 1e-9).astype(np.int64), m.res_premium / k
        )
        self.tail, self.head = np.concatenate(tails), np.concatenate(heads)
        self.cap, self.cost = np.concatenate(caps), np.concatenate(costs)
        self.supply = (g.g_quantity * self.units_g).astype(np.int64)

    def solve(self, price: F64) -> tuple[F64, float, F64]:
        """At handling prices ``price`` (fen per line, per handling row): the model's values in pieces, the
        Lagrangian bound, and the lines each handling row takes."""
        m = self.m
        g = m.groups
        # the cheapest day of each (group, stock row) pair: its days differ only in lateness and handling
        priced = m.block(m.cost, "pick") + price[self.pick_hand] * self.line_ratio[m.pick_g]
        pair = m.pick_g * max(self.rows_used.shape[0], 1) + self.pick_rownode
        order = np.lexsort((m.pick_day, priced, pair))
        first = np.ones(order.shape[0], np.bool_)
        first[1:] = pair[order][1:] != pair[order][:-1]
        best = order[first]
        pg = m.pick_g[best]
        tail = np.concatenate((self.G + pg, self.tail))
        head = np.concatenate((self.R + self.pick_rownode[best], self.head))
        cap = np.concatenate((np.full(best.shape[0], self.big, np.int64), self.cap))
        cost = np.concatenate((priced[best] / self.units_g[pg], self.cost))
        n_best = best.shape[0]

        total_units = float(self.supply.sum())
        max_cost = float(cost.max(initial=0.0))
        scale = 100.0
        if max_cost > 0:
            scale = min(scale, _INT64_HEADROOM / (max_cost * max(total_units, float(self.n_nodes))))
        icost = np.floor(cost * scale).astype(np.int64)
        mcf = min_cost_flow.SimpleMinCostFlow()
        mcf.add_arcs_with_capacity_and_unit_cost(tail, head, cap, icost)
        nodes = np.concatenate((self.G + np.arange(g.n_g), [self.T]))
        mcf.set_nodes_supplies(nodes, np.concatenate((self.supply, [-int(self.supply.sum())])))
        status = mcf.solve()
        if status != mcf.OPTIMAL:
            raise FlowError(f"min-cost flow ended with status {status}")
        total = mcf.optimal_cost()
        if total >= _OVERFLOW:
            raise FlowError("min-cost flow's cost overflowed int64")
        flow = mcf.flows(np.arange(tail.shape[0], dtype=np.int64))
        bound = float(total) / scale - float(price @ self.hand_cap)

        values = np.zeros(m.n_vars)

        def put(name: str, idx: I64 | slice, v: F64) -> None:
            lo, _ = m.var_at[name]
            if isinstance(idx, slice):
                values[lo : lo + v.shape[0]] = v
            else:
                values[lo + idx] = v

        put("pick", best, flow[:n_best] / self.units_g[pg])
        f = flow[n_best:]
        put("make", slice(None), f[self.make_arc] / self.units_g)
        put("unmet", slice(None), f[self.unmet_arc] / self.units_g)
        put("spare", slice(None), f[self.spare_arc] / self.units_h[m.spare_h])
        # through each hub, the style groups' minutes are laid along its lots' (any split costs the same)
        into = f[self.reach_arc]
        used = into > 0
        by_hub = np.lexsort((self.reach_h[used], self.reach_hub[used]))
        lot_in = f[self.lot_arc]
        lots = np.flatnonzero(lot_in > 0)
        lots = lots[np.lexsort((lots, self.lot_hub[lots]))]
        d_i, s_i, q = cut(into[used][by_hub], lot_in[lots])
        seg_h = self.reach_h[used][by_hub][d_i]
        seg_lot = lots[s_i]
        n_lot = m.lot_workshop.shape[0]
        arc_key = m.arc_h * n_lot + m.arc_lot
        arc_order = np.argsort(arc_key, kind="stable")
        at = arc_order[np.searchsorted(arc_key[arc_order], seg_h * n_lot + seg_lot)]
        arc_vals = np.zeros(m.arc_h.shape[0])
        np.add.at(arc_vals, at, q / self.lot_units[seg_lot])
        put("arc", slice(None), arc_vals)
        prod = lot_in / self.lot_units
        put("prod", slice(None), prod)
        put("open", slice(None), np.maximum(prod / np.maximum(m.lot_max, 1), m.block(m.lb, "open")))
        put("extra", slice(None), f[self.overtime_arc] / self.k)
        lines: F64 = np.bincount(
            self.pick_hand,
            weights=m.block(values, "pick") * self.line_ratio[m.pick_g],
            minlength=price.shape[0],
        ).astype(np.float64)
        return values, bound, lines


def relax(p: AllocationProblem, m: Model, *, solves: int = 4, deadline: float | None = None) -> FlowSolution:
    """The network relaxation of ``m``: its bound, and fractional pieces to build a plan from.

    Handling is priced per line and warehouse-day, by bisection on each: a warehouse-day the flow overfills
    gets a higher price (doubling from a first guess until it no longer overflows), one priced earlier that
    it leaves with lines to spare a lower. Up to ``solves`` flows are solved, not past ``deadline`` (a
    ``time.perf_counter()`` instant); every one gives a Lagrangian bound, and the best is the bound. The
    pieces returned are those of the solve that overfilled least."""
    net = _Network(p, m)
    n_rows = net.hand_cap.shape[0]
    lo = np.zeros(n_rows)
    hi = np.full(n_rows, np.inf)
    mu = np.zeros(n_rows)
    best_bound = -np.inf
    values = np.zeros(m.n_vars)
    least = np.inf
    done = 0
    last = 0.0
    while done < solves:
        t = time.perf_counter()
        if deadline is not None and done and t + last > deadline:
            break
        got, bound, lines = net.solve(mu)
        last = time.perf_counter() - t
        done += 1
        best_bound = max(best_bound, bound)
        excess = lines - net.hand_cap
        overfilled = float(np.maximum(excess, 0.0).sum())
        if overfilled < least:
            least, values = overfilled, got
        if overfilled <= 1e-6:
            break
        over = excess > 1e-6
        lo = np.where(over, mu, lo)
        hi = np.where(~over & (mu > 0), np.minimum(hi, mu), hi)
        up = np.where(np.isfinite(hi), (lo + hi) / 2.0, np.maximum(2.0 * lo, _FIRST_PRICE))
        down = np.where(mu > 0, (lo + mu) / 2.0, 0.0)
        mu = np.where(over, up, down)
    return FlowSolution(values=values, bound=float(best_bound), solves=done)
