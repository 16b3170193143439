"""The baseline allocation: the rule cascade order-management systems use.

Cells are taken in order of ship-by (ties by index, so the result is deterministic). For each cell:

1. on time from stock: the owner's stock at the shared warehouse nearest the merchant that holds it, on the
   earliest day with handling capacity; then, if the merchant pools, pooled stock of other pooling merchants;
2. on time from the surplus of a minimum lot already planned (nearest workshop first);
3. on time, made in regular time at the nearest qualified workshop with free capacity, earliest day first;
4. on time, made with overtime (regular minutes left on the day first), same order;
5. late: day by day after ship-by, the earliest day on which stock, regular time or overtime has room, at
   most the problem's ``max_late_days`` after it;
6. whatever is left is unfilled, with the reason.

Stock is picked at most ``pick_early_days`` before the due day (the problem's service window, which the
optimiser's model and the plan checker keep too).

Lots planned by earlier batches (the problem's open lots) are known from the start: their spare pieces count
as surplus (step 2) and they grow piece by piece. A new lot (workshop × style × day) is opened only where its
minimum lot fits; it is made in at least that many
pieces and the surplus above the cells' demand goes to the owner's stock (its minutes and unit cost count).
Overtime is used only once no qualified workshop has regular time before ship-by: it costs a premium.

The loop runs over cells, never over orders; everything per-cell is a handful of array look-ups. The cascade
ignores orders and the previous plan while it places pieces; its plan is then cut into the listed orders'
lines and its split-shipment penalty and churn counted exactly as for the optimiser's
(:func:`solvers.allocation.orders.finish`), so the two objectives compare.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from solvers.allocation.data import F64, I64, AllocationProblem, as_bool, as_f64, as_i64
from solvers.allocation.orders import finish
from solvers.allocation.result import AllocationResult, SiteKind, Unfilled, Why

_EPS = 1e-9
_EARTH_KM_PER_DEG = 111.32


def _distances(lon: float, lat: float, to_lon: F64, to_lat: F64) -> F64:
    """Equirectangular distance in km: exact enough to rank sites a few tens of km apart."""
    dx = (to_lon - lon) * math.cos(math.radians(lat)) * _EARTH_KM_PER_DEG
    dy = (to_lat - lat) * _EARTH_KM_PER_DEG
    out: F64 = np.sqrt(dx * dx + dy * dy)
    return out


class _Greedy:
    def __init__(self, p: AllocationProblem) -> None:
        self.p = p
        self.reg = p.regular_minutes.astype(np.float64, copy=True)
        self.ot = p.overtime_minutes.astype(np.float64, copy=True)
        self.handling = p.warehouse_handling.astype(np.int64, copy=True)
        self.avail = p.stock_available.astype(np.int64, copy=True)
        self.premium = p.overtime_fen_per_minute
        self.due = p.due_day()
        self.last_day = p.last_day(self.due)
        self.pools = p.merchant_pools

        # qualifications grouped by style
        order = np.argsort(p.qual_style, kind="stable")
        self.q_ws = p.qual_workshop[order]
        self.q_cost = p.qual_unit_cost_fen[order]
        self.q_start = np.searchsorted(p.qual_style[order], np.arange(p.n_styles + 1))
        # stock rows grouped by SKU
        order = np.argsort(p.stock_sku, kind="stable")
        self.s_rows = order
        self.s_start = np.searchsorted(p.stock_sku[order], np.arange(p.n_skus + 1))

        self._cands: dict[tuple[int, int], tuple[I64, I64, dict[int, int], F64]] = {}
        self._stock: dict[tuple[int, int], list[tuple[int, bool]]] = {}

        # lots
        self.lot_key: dict[tuple[int, int, int], int] = {}
        self.style_lots: dict[int, list[int]] = {}
        self.lot_w: list[int] = []
        self.lot_s: list[int] = []
        self.lot_f: list[int] = []
        self.lot_d: list[int] = []
        self.lot_q: list[int] = []
        self.lot_alloc: list[int] = []
        self.lot_sku: list[int] = []
        self.lot_owner: list[int] = []
        self.lot_reg: list[float] = []
        self.lot_ot: list[float] = []
        self.lot_open: list[int] = []
        for i in range(p.open_lot_workshop.shape[0]):
            style = int(p.open_lot_style[i])
            lot = self.open_lot(
                int(p.open_lot_workshop[i]),
                style,
                int(p.style_family[style]),
                int(p.open_lot_day[i]),
                -1,
                int(p.open_lot_owner[i]),
            )
            self.lot_q[lot] = int(p.open_lot_spare[i])
            self.lot_open[lot] = i

        # allocation columns
        self.a: dict[str, list[Any]] = {
            k: []
            for k in (
                "cell",
                "kind",
                "site",
                "owner",
                "day",
                "quantity",
                "reg",
                "ot",
                "goods",
                "overtime",
                "changeover",
                "shipping",
                "late_fen",
                "late",
                "why",
                "lot",
            )
        }
        self.unfilled: list[tuple[int, int, int]] = []

    # --- look-ups, cached per (merchant, style) and (merchant, SKU) ---------------------------------------
    def candidates(self, owner: int, style: int) -> tuple[I64, I64, dict[int, int], F64]:
        """Qualified workshops for ``style``, nearest to ``owner`` first, their unit costs and ranks."""
        key = (owner, style)
        hit = self._cands.get(key)
        if hit is None:
            lo, hi = int(self.q_start[style]), int(self.q_start[style + 1])
            ws, cost = self.q_ws[lo:hi], self.q_cost[lo:hi]
            p = self.p
            dist = _distances(
                float(p.merchant_lon[owner]),
                float(p.merchant_lat[owner]),
                p.workshop_lon[ws],
                p.workshop_lat[ws],
            )
            order = np.lexsort((ws, dist))  # ties: lower index first
            ws, cost, dist = ws[order], cost[order], dist[order]
            hit = (ws, cost, {int(w): i for i, w in enumerate(ws)}, dist)
            self._cands[key] = hit
        return hit

    def stock_rows(self, owner: int, sku: int) -> list[tuple[int, bool]]:
        """Stock rows ``owner`` may take for ``sku``: its own nearest first, then pooled nearest first."""
        key = (owner, sku)
        hit = self._stock.get(key)
        if hit is None:
            p = self.p
            rows = self.s_rows[int(self.s_start[sku]) : int(self.s_start[sku + 1])]
            owners = p.stock_owner[rows]
            own = rows[owners == owner]
            pooled = rows[(owners != owner) & self.pools[owners]] if self.pools[owner] else rows[:0]
            hit = []
            for group, is_pooled in ((own, False), (pooled, True)):
                wh = p.stock_warehouse[group]
                dist = _distances(
                    float(p.merchant_lon[owner]),
                    float(p.merchant_lat[owner]),
                    p.warehouse_lon[wh],
                    p.warehouse_lat[wh],
                )
                hit.extend((int(r), is_pooled) for r in group[np.lexsort((group, dist))])
            self._stock[key] = hit
        return hit

    # --- recording ----------------------------------------------------------------------------------------
    def record(
        self,
        cell: int,
        kind: SiteKind,
        site: int,
        owner: int,
        day: int,
        q: int,
        reg: float,
        ot: float,
        goods: int,
        overtime: int,
        changeover: int,
        why: Why,
        lot: int,
    ) -> None:
        p = self.p
        lines_total, qty_total = int(p.cell_lines[cell]), int(p.cell_quantity[cell])
        lines = -(-q * lines_total // qty_total)  # the share of the cell's lines, rounded up
        late_days = max(0, day - int(self.due[cell]))
        a = self.a
        a["cell"].append(cell)
        a["kind"].append(int(kind))
        a["site"].append(site)
        a["owner"].append(owner)
        a["day"].append(day)
        a["quantity"].append(q)
        a["reg"].append(reg)
        a["ot"].append(ot)
        a["goods"].append(goods)
        a["overtime"].append(overtime)
        a["changeover"].append(changeover)
        a["shipping"].append(lines * int(p.province_shipping_fen[p.cell_province[cell]]))
        a["late_fen"].append(late_days * q * p.late_fen_per_unit_day)
        a["late"].append(late_days > 0)
        a["why"].append(int(why))
        a["lot"].append(lot)

    # --- the tiers ----------------------------------------------------------------------------------------
    def take_stock(self, cell: int, need: int, d0: int, d1: int) -> int:
        p = self.p
        owner, sku = int(p.cell_owner[cell]), int(p.cell_sku[cell])
        lines_total, qty_total = int(p.cell_lines[cell]), int(p.cell_quantity[cell])
        for row, pooled in self.stock_rows(owner, sku):
            if self.avail[row] <= 0:
                continue
            wh = int(p.stock_warehouse[row])
            for d in range(d0, d1 + 1):
                cap = int(self.handling[wh, d])
                if cap <= 0:
                    continue
                q = min(need, int(self.avail[row]), cap * qty_total // lines_total)
                if q <= 0:
                    continue
                lines = -(-q * lines_total // qty_total)
                self.handling[wh, d] -= lines
                self.avail[row] -= q
                need -= q
                self.record(
                    cell,
                    SiteKind.WAREHOUSE,
                    wh,
                    int(p.stock_owner[row]),
                    d,
                    q,
                    0.0,
                    0.0,
                    lines * int(p.warehouse_handling_fen[wh]),
                    0,
                    0,
                    Why.POOLED_STOCK if pooled else Why.OWN_STOCK,
                    -1,
                )
                if need == 0:
                    return 0
                if self.avail[row] <= 0:
                    break
        return need

    def surplus_ok(self, lot: int, owner: int) -> bool:
        lot_owner = self.lot_owner[lot]
        return lot_owner == owner or bool(self.pools[owner] and self.pools[lot_owner])

    def take_surplus(self, cell: int, need: int, d0: int, d1: int) -> int:
        p = self.p
        style, owner = int(p.cell_style[cell]), int(p.cell_owner[cell])
        lots = self.style_lots.get(style)
        if not lots:
            return need
        _, _, rank, _ = self.candidates(owner, style)
        usable = [
            (rank[self.lot_w[lot]], self.lot_d[lot], lot)
            for lot in lots
            if d0 <= self.lot_d[lot] <= d1
            and self.lot_q[lot] > self.lot_alloc[lot]
            and self.lot_w[lot] in rank  # an earlier lot at a workshop no longer qualified: not used
            and self.surplus_ok(lot, owner)
        ]
        for _, d, lot in sorted(usable):
            q = min(need, self.lot_q[lot] - self.lot_alloc[lot])
            self.lot_alloc[lot] += q
            need -= q
            self.record(
                cell, SiteKind.WORKSHOP, self.lot_w[lot], -1, d, q, 0.0, 0.0, 0, 0, 0, Why.LOT_SURPLUS, lot
            )
            if need == 0:
                return 0
        return need

    def make(self, cell: int, need: int, d0: int, d1: int, overtime: bool) -> int:
        p = self.p
        style, owner = int(p.cell_style[cell]), int(p.cell_owner[cell])
        ws, cost, rank, _ = self.candidates(owner, style)
        if ws.shape[0] == 0:
            return need
        fam = int(p.style_family[style])
        mpu = float(p.style_minutes_per_unit[style])
        min_lot = int(p.style_min_lot[style])
        room = self.reg[ws, fam, d0 : d1 + 1]
        if overtime:
            room = room + self.ot[ws, fam, d0 : d1 + 1]
        ok = room >= max(min_lot, 1) * mpu - _EPS  # where a new lot fits
        for lot in self.style_lots.get(style, ()):
            d = self.lot_d[lot]
            if d0 <= d <= d1 and self.lot_w[lot] in rank:
                i, j = rank[self.lot_w[lot]], d - d0
                # an open lot grows piece by piece: no minimum applies
                if room[i, j] >= mpu - _EPS:
                    ok[i, j] = True
        span = d1 - d0 + 1
        for pos in np.flatnonzero(ok):
            i, j = divmod(int(pos), span)
            need = self.place(cell, need, int(ws[i]), d0 + j, int(cost[i]), fam, mpu, min_lot, overtime)
            if need == 0:
                break
        return need

    def place(
        self,
        cell: int,
        need: int,
        w: int,
        d: int,
        unit_cost: int,
        fam: int,
        mpu: float,
        min_lot: int,
        overtime: bool,
    ) -> int:
        p = self.p
        style, owner = int(p.cell_style[cell]), int(p.cell_owner[cell])
        lot = self.lot_key.get((w, style, d))
        took = 0
        if lot is not None and self.lot_q[lot] > self.lot_alloc[lot] and self.surplus_ok(lot, owner):
            took = min(need, self.lot_q[lot] - self.lot_alloc[lot])
            self.lot_alloc[lot] += took
        reg_room = float(self.reg[w, fam, d])
        ot_room = float(self.ot[w, fam, d]) if overtime else 0.0
        fit = int((reg_room + ot_room) / mpu + _EPS)
        want = need - took
        new, made, changeover = 0, 0, 0
        if want > 0:
            if lot is None:
                if fit >= max(min_lot, 1):
                    new = min(want, fit)
                    made = max(new, min_lot)
                    changeover = int(p.style_changeover_fen[style])
                    lot = self.open_lot(w, style, fam, d, int(p.cell_sku[cell]), owner)
            else:
                new = made = min(want, fit)
        q = took + new
        if q == 0:
            return need
        assert lot is not None
        minutes = made * mpu
        reg_used = min(minutes, reg_room)
        ot_used = max(0.0, min(minutes - reg_used, ot_room))
        self.reg[w, fam, d] = max(0.0, reg_room - reg_used)
        self.ot[w, fam, d] = max(0.0, float(self.ot[w, fam, d]) - ot_used)
        self.lot_q[lot] += made
        self.lot_alloc[lot] += new
        self.lot_reg[lot] += reg_used
        self.lot_ot[lot] += ot_used
        why = Why.LOT_SURPLUS if new == 0 else (Why.MADE_OVERTIME if ot_used > 0 else Why.MADE_REGULAR)
        self.record(
            cell,
            SiteKind.WORKSHOP,
            w,
            -1,
            d,
            q,
            reg_used,
            ot_used,
            unit_cost * made,
            round(ot_used * int(self.premium[w, fam, d])),
            changeover,
            why,
            lot,
        )
        return need - q

    def open_lot(self, w: int, style: int, fam: int, d: int, sku: int, owner: int) -> int:
        lot = len(self.lot_w)
        self.lot_key[(w, style, d)] = lot
        self.style_lots.setdefault(style, []).append(lot)
        self.lot_w.append(w)
        self.lot_s.append(style)
        self.lot_f.append(fam)
        self.lot_d.append(d)
        self.lot_q.append(0)
        self.lot_alloc.append(0)
        self.lot_sku.append(sku)
        self.lot_owner.append(owner)
        self.lot_reg.append(0.0)
        self.lot_ot.append(0.0)
        self.lot_open.append(-1)
        return lot

    # --- the cascade --------------------------------------------------------------------------------------
    def run(self) -> None:
        p = self.p
        days, first = p.days, p.first_day
        order = np.lexsort((np.arange(p.n_cells), p.cell_ship_by))
        for c in order.tolist():
            need = int(p.cell_quantity[c])
            if p.province_shipping_fen[p.cell_province[c]] < 0:
                self.unfilled.append((c, need, int(Unfilled.NO_COURIER)))
                continue
            due = int(self.due[c])
            hi = min(due, days - 1)
            if hi >= first:
                need = self.take_stock(c, need, max(first, due - p.pick_early_days), hi)
                if need:
                    need = self.take_surplus(c, need, first, hi)
                if need:
                    need = self.make(c, need, first, hi, overtime=False)
                if need:
                    need = self.make(c, need, first, hi, overtime=True)
            d = max(first, due + 1)
            last = int(self.last_day[c])
            while need and d <= last:
                need = self.take_stock(c, need, d, d)
                if need:
                    need = self.take_surplus(c, need, d, d)
                if need:
                    need = self.make(c, need, d, d, overtime=False)
                if need:
                    need = self.make(c, need, d, d, overtime=True)
                d += 1
            if need:
                style = int(p.cell_style[c])
                no_workshop = self.candidates(int(p.cell_owner[c]), style)[0].shape[0] == 0
                no_stock = not self.stock_rows(int(p.cell_owner[c]), int(p.cell_sku[c]))
                reason = Unfilled.NO_SOURCE if no_workshop and no_stock else Unfilled.NO_CAPACITY
                self.unfilled.append((c, need, int(reason)))

    def result(self, seconds: float) -> AllocationResult:
        p, a = self.p, self.a
        unfilled = np.array(self.unfilled, dtype=np.int64).reshape(-1, 3)
        return AllocationResult(
            solver="greedy",
            status="feasible",
            seconds=seconds,
            alloc_cell=as_i64(a["cell"]),
            alloc_kind=as_i64(a["kind"]),
            alloc_site=as_i64(a["site"]),
            alloc_owner=as_i64(a["owner"]),
            alloc_day=as_i64(a["day"]),
            alloc_quantity=as_i64(a["quantity"]),
            alloc_regular_minutes=as_f64(a["reg"]),
            alloc_overtime_minutes=as_f64(a["ot"]),
            alloc_goods_fen=as_i64(a["goods"]),
            alloc_overtime_fen=as_i64(a["overtime"]),
            alloc_changeover_fen=as_i64(a["changeover"]),
            alloc_shipping_fen=as_i64(a["shipping"]),
            alloc_late_fen=as_i64(a["late_fen"]),
            alloc_late=as_bool(a["late"]),
            alloc_why=as_i64(a["why"]),
            alloc_lot=as_i64(a["lot"]),
            lot_workshop=as_i64(self.lot_w),
            lot_style=as_i64(self.lot_s),
            lot_family=as_i64(self.lot_f),
            lot_day=as_i64(self.lot_d),
            lot_quantity=as_i64(self.lot_q),
            lot_allocated=as_i64(self.lot_alloc),
            lot_surplus_sku=as_i64(self.lot_sku),
            lot_owner=as_i64(self.lot_owner),
            lot_regular_minutes=as_f64(self.lot_reg),
            lot_overtime_minutes=as_f64(self.lot_ot),
            lot_open=as_i64(self.lot_open),
            unfilled_cell=unfilled[:, 0].copy(),
            unfilled_quantity=unfilled[:, 1].copy(),
            unfilled_reason=unfilled[:, 2].copy(),
            used_regular=p.regular_minutes - self.reg,
            used_overtime=p.overtime_minutes - self.ot,
            used_handling=p.warehouse_handling - self.handling,
            unfilled_fen=int(unfilled[:, 1].sum()) * p.unfilled_fen_per_unit,
        )


def allocate(problem: AllocationProblem) -> AllocationResult:
    """Allocate every cell of ``problem`` by the rule cascade (see the module's docstring)."""
    t0 = time.perf_counter()
    g = _Greedy(problem)
    g.run()
    # the listed orders' lines, their split-shipment penalty and churn, counted as for the optimiser's plans
    result = finish(problem, g.result(0.0))
    return replace(result, seconds=time.perf_counter() - t0)
