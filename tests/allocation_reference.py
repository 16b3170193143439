"""A reference optimum of an allocation problem: one plain MIP per order line, written from the problem's
definition (``solvers/allocation/data.py`` and ``result.py``), sharing no code with the optimiser's model.

Units of demand are the listed order lines and, per cell, the rest of its pieces (its unlisted lines, which
cannot split). Every unit takes pieces from stock rows on days, from new production of a workshop × style
× day, or from the spare pieces of a lot planned earlier; what it does not take is unfilled. Costs are the
ones a plan reports:

- a piece picked: its warehouse's handling per line at its SKU group's lines per piece (SKU group: the
  served cells of one SKU, owner and due day), shipping at the group's price per piece, lateness per day
  after the due day;
- a piece made or taken from a spare: shipping and lateness likewise; production at the unit cost, the lot's
  surplus included; changeover per new lot; overtime minutes at their premium;
- unfilled pieces (every piece of a cell no courier serves, too); each listed order's parcels past its first
  (one per site its served pieces come from); each previous piece not at its cell's previous site.

Constraints: stock per row and only the owner's or pooled; warehouse lines per day at the group's lines per
piece; workshop minutes per family and day within regular plus overtime; a new lot 0 or at least its
minimum; lots only at qualified workshops; the service window (picks from ``pick_early_days`` before the due
day, nothing after ``max_late_days`` past it, nothing before ``first_day``).

Solved by SCIP through OR-Tools' pywraplp; meant for instances of a few cells.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp

from solvers.allocation.data import MINUTES_PER_DAY, AllocationProblem


@dataclass(frozen=True)
class Reference:
    objective: float
    optimal: bool


def reference_optimum(p: AllocationProblem, seconds: float = 30.0) -> Reference:
    solver = pywraplp.Solver.CreateSolver("SCIP")
    assert solver is not None
    solver.SetTimeLimit(int(seconds * 1000))
    inf = solver.infinity()
    cost: list[tuple[float, pywraplp.Variable]] = []
    constant = 0.0

    n_cells = p.n_cells
    due = [int((int(p.cell_ship_by[c]) - p.ready_minute) // MINUTES_PER_DAY) for c in range(n_cells)]
    price = [int(p.province_shipping_fen[p.cell_province[c]]) for c in range(n_cells)]
    served = [price[c] >= 0 for c in range(n_cells)]
    # SKU groups of the served cells: lines and shipping per piece
    g_lines: dict[tuple[int, int, int], int] = defaultdict(int)
    g_qty: dict[tuple[int, int, int], int] = defaultdict(int)
    g_ship: dict[tuple[int, int, int], int] = defaultdict(int)
    group = [(int(p.cell_sku[c]), int(p.cell_owner[c]), due[c]) for c in range(n_cells)]
    for c in range(n_cells):
        if served[c]:
            g_lines[group[c]] += int(p.cell_lines[c])
            g_qty[group[c]] += int(p.cell_quantity[c])
            g_ship[group[c]] += int(p.cell_lines[c]) * price[c]

    def pools(a: int, b: int) -> bool:
        return a == b or (bool(p.merchant_pools[a]) and bool(p.merchant_pools[b]))

    # units: listed order lines, then each cell's rest
    units: list[tuple[int, int, int]] = []  # (cell, quantity, listed order or -1)
    listed_q = [0] * n_cells
    for o in range(p.n_orders):
        for i in range(int(p.order_start[o]), int(p.order_start[o + 1])):
            c, q = int(p.order_line_cell[i]), int(p.order_line_quantity[i])
            units.append((c, q, o))
            listed_q[c] += q
    for c in range(n_cells):
        if p.cell_quantity[c] > listed_q[c]:
            units.append((c, int(p.cell_quantity[c]) - listed_q[c], -1))

    quals = {
        (int(w), int(s)): int(u)
        for w, s, u in zip(p.qual_workshop, p.qual_style, p.qual_unit_cost_fen, strict=True)
    }
    open_lot = {
        (int(p.open_lot_workshop[k]), int(p.open_lot_style[k]), int(p.open_lot_day[k])): k
        for k in range(p.open_lot_workshop.shape[0])
    }

    stock_use: dict[int, list[pywraplp.Variable]] = defaultdict(list)
    lines_at: dict[tuple[int, int], list[tuple[float, pywraplp.Variable]]] = defaultdict(list)
    made_at: dict[tuple[int, int, int], list[pywraplp.Variable]] = defaultdict(list)
    spare_use: dict[int, list[pywraplp.Variable]] = defaultdict(list)
    # pieces per (unit, site kind, site), for parcels and churn
    at_site: dict[tuple[int, int, int], list[pywraplp.Variable]] = defaultdict(list)
    fill: dict[int, list[pywraplp.Variable]] = defaultdict(list)
    for u, (c, q, _) in enumerate(units):
        if not served[c]:
            constant += q * p.unfilled_fen_per_unit
            continue
        g = group[c]
        ratio = g_lines[g] / g_qty[g]
        ship = g_ship[g] / g_qty[g]
        d_due = due[c]
        last = min(max(d_due, p.first_day) + p.max_late_days, p.days - 1)
        first_pick = min(max(d_due - p.pick_early_days, p.first_day), p.days - 1)
        sku, owner, style = int(p.cell_sku[c]), int(p.cell_owner[c]), int(p.cell_style[c])
        for r in range(p.stock_sku.shape[0]):
            if int(p.stock_sku[r]) != sku or p.stock_available[r] <= 0:
                continue
            if not pools(owner, int(p.stock_owner[r])):
                continue
            h = int(p.stock_warehouse[r])
            for d in range(first_pick, last + 1):
                x = solver.IntVar(0, q, f"x{u}_{r}_{d}")
                cost.append(
                    (
                        float(p.warehouse_handling_fen[h]) * ratio
                        + ship
                        + p.late_fen_per_unit_day * max(d - d_due, 0),
                        x,
                    )
                )
                stock_use[r].append(x)
                lines_at[(h, d)].append((ratio, x))
                at_site[(u, 0, h)].append(x)
                fill[u].append(x)
        for (w, s), _unit_cost in quals.items():
            if s != style:
                continue
            for d in range(p.first_day, last + 1):
                y = solver.IntVar(0, q, f"y{u}_{w}_{d}")
                cost.append((ship + p.late_fen_per_unit_day * max(d - d_due, 0), y))
                made_at[(w, s, d)].append(y)
                at_site[(u, 1, w)].append(y)
                fill[u].append(y)
        for (w, s, d), k in open_lot.items():
            if s != style or (w, s) not in quals or not p.first_day <= d <= last:
                continue
            if p.open_lot_spare[k] <= 0 or not pools(owner, int(p.open_lot_owner[k])):
                continue
            z = solver.IntVar(0, q, f"z{u}_{k}")
            cost.append((ship + p.late_fen_per_unit_day * max(d - d_due, 0), z))
            spare_use[k].append(z)
            at_site[(u, 1, w)].append(z)
            fill[u].append(z)
        unfilled = solver.IntVar(0, q, f"unfilled{u}")
        cost.append((float(p.unfilled_fen_per_unit), unfilled))
        solver.Add(solver.Sum([*fill[u], unfilled]) == q)

    for r, xs in stock_use.items():
        solver.Add(solver.Sum(xs) <= int(p.stock_available[r]))
    for (h, d), terms in lines_at.items():
        solver.Add(solver.Sum([a * x for a, x in terms]) <= int(p.warehouse_handling[h, d]))
    for k, zs in spare_use.items():
        solver.Add(solver.Sum(zs) <= int(p.open_lot_spare[k]))

    # lots and minutes
    minutes: dict[tuple[int, int, int], list[tuple[float, pywraplp.Variable]]] = defaultdict(list)
    for (w, s, d), ys in made_at.items():
        mpu = float(p.style_minutes_per_unit[s])
        f = int(p.style_family[s])
        room = float(p.regular_minutes[w, f, d] + p.overtime_minutes[w, f, d])
        most = int(np.floor(room / mpu + 1e-9))
        made = solver.IntVar(0, most, f"made{w}_{s}_{d}")
        solver.Add(solver.Sum(ys) <= made)
        cost.append((float(quals[(w, s)]), made))
        minutes[(w, f, d)].append((mpu, made))
        if (w, s, d) not in open_lot:
            run = solver.BoolVar(f"run{w}_{s}_{d}")
            solver.Add(made <= most * run)
            solver.Add(made >= max(int(p.style_min_lot[s]), 1) * run)
            cost.append((float(p.style_changeover_fen[s]), run))
    for (w, f, d), terms in minutes.items():
        over = solver.NumVar(0, float(p.overtime_minutes[w, f, d]), f"ot{w}_{f}_{d}")
        solver.Add(solver.Sum([a * m for a, m in terms]) <= float(p.regular_minutes[w, f, d]) + over)
        cost.append((float(p.overtime_fen_per_minute[w, f, d]), over))

    # parcels past each listed order's first
    if p.split_fen_per_parcel:
        sites_of: dict[int, dict[tuple[int, int], list[pywraplp.Variable]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for (u, kind, site), xs in at_site.items():
            o = units[u][2]
            if o >= 0:
                sites_of[o][(kind, site)].extend(xs)
        for o, by_site in sites_of.items():
            pieces = sum(units[u][1] for u in range(len(units)) if units[u][2] == o)
            flags = []
            for (kind, site), xs in by_site.items():
                flag = solver.BoolVar(f"parcel{o}_{kind}_{site}")
                solver.Add(solver.Sum(xs) <= pieces * flag)
                flags.append(flag)
            extra = solver.NumVar(0, inf, f"extra{o}")
            solver.Add(extra >= solver.Sum(flags) - 1)
            cost.append((float(p.split_fen_per_parcel), extra))

    # churn: every previous piece, less those kept at their cell's site
    if p.prev_cell.size and p.churn_fen_per_unit:
        before: dict[tuple[int, int, int], int] = defaultdict(int)
        for c, k, s, q in zip(p.prev_cell, p.prev_kind, p.prev_site, p.prev_quantity, strict=True):
            before[(int(c), int(k), int(s))] += int(q)
        for (c, kind, site), q in before.items():
            constant += q * p.churn_fen_per_unit
            now = [
                x for u, (cu, _, _) in enumerate(units) if cu == c for x in at_site.get((u, kind, site), [])
            ]
            if not now:
                continue
            keep = solver.NumVar(0, q, f"keep{c}_{kind}_{site}")
            solver.Add(keep <= solver.Sum(now))
            cost.append((-float(p.churn_fen_per_unit), keep))

    solver.Minimize(solver.Sum([a * v for a, v in cost]))
    status = solver.Solve()
    assert status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE), status
    return Reference(solver.Objective().Value() + constant, status == pywraplp.Solver.OPTIMAL)
