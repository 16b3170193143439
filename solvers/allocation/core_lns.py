"""Models of the core problem and the large-neighbourhood search over them.

A *spec* is a sub-problem: some demands are freed (their flows become variables, on a chosen subset of their
arcs) and everything else stays as in the incumbent, entering as constants — a site's inflow from fixed
demands (which also forces it open), a resource's usage outside the spec. The whole problem is the spec that
frees every demand on every live arc. Each spec becomes either a CP-SAT model (integer coefficients: costs and
resource uses are scaled, exactly where the data allow) or an MPModelProto for SCIP (GLOP for LPs),
so one search serves assignment-shaped problems (whole demands: CP-SAT) and splittable ones with fixed
charges (MIP).

Unmet demand needs no variable: ``u_j = q_j - Σ x`` turns its cost into a constant plus a negative cost on
the demand's flows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ortools.linear_solver.linear_solver_pb2 as linear_solver_pb2
import ortools.linear_solver.pywraplp as pywraplp
from ortools.graph.python import min_cost_flow
from ortools.sat.python import cp_model

from solvers.allocation.core import (
    CoreProblem,
    evaluate,
    normalised,
    resource_usage,
    site_inflow,
    violations,
)
from solvers.allocation.data import F64, I64, B
from solvers.allocation.segments import runs

# Integer models keep every objective and constraint sum below this: exact in float64, far from int64 limits.
_INT_LIMIT = float(2**53)
_TINY = 1e-9


def _integer_scale(values: F64, mass: float) -> tuple[float, bool]:
    """A scale making ``values`` integers: the smallest power of ten that does it exactly (True), else the
    largest power of two keeping ``mass · scale`` (the largest sum a model can form) within the limit."""
    v = np.abs(values[np.isfinite(values) & (values != 0)])
    if v.size == 0:
        return 1.0, True
    for digits in range(10):
        scale = 10.0**digits
        if mass * scale > _INT_LIMIT:
            break
        scaled = v * scale
        if np.all(np.abs(scaled - np.round(scaled)) <= _TINY * np.maximum(1.0, scaled)):
            return scale, True
    scale = 2.0 ** math.floor(math.log2(_INT_LIMIT / max(mass, 1.0)))
    return scale, False


class Prep:
    """What every model of one problem shares: the live arcs and their bounds, groupings, integer scales."""

    def __init__(self, p: CoreProblem) -> None:
        self.p = p
        q = p.demand_quantity
        j, k = p.arc_demand, p.arc_site
        room = p.resource_capacity + p.resource_extra
        # The most a site can make: its maximum, less whatever its own resource cannot carry.
        site_cap = p.site_max.astype(np.float64)
        sr = p.site_resource
        per = (sr >= 0) & (p.site_unit_use > 0)
        site_cap[per] = np.minimum(site_cap[per], np.floor(room[sr[per]] / p.site_unit_use[per] + 1e-9))
        self.site_cap: I64 = site_cap.astype(np.int64)
        # A site whose minimum is out of reach can never open.
        self.site_cap[p.site_min > self.site_cap] = 0
        ub = np.minimum(q[j], self.site_cap[k]).astype(np.float64)
        ar = p.arc_resource
        per_arc = (ar >= 0) & (p.arc_use > 0)
        unit = p.arc_use.copy()
        shared = per_arc & (sr[k] == ar)
        unit[shared] += p.site_unit_use[k[shared]]
        ub[per_arc] = np.minimum(ub[per_arc], np.floor(room[ar[per_arc]] / unit[per_arc] + 1e-9))
        self.whole_arc: B = p.demand_whole[j]
        alive = (ub >= 1) & (~self.whole_arc | (ub >= q[j]))
        self.alive: B = alive
        self.restrict(np.ones(p.n_arcs, dtype=np.bool_))
        # With no resource on a splittable flow (nor on its site's production), fixing the binaries leaves a
        # network flow with integer data: its vertices are integral, so a MIP may keep those flows
        # continuous, which it solves far faster.
        split = ~self.whole_arc
        on_arc = split & (p.arc_resource >= 0) & (p.arc_use > 0)
        site_used = (p.site_resource >= 0) & (p.site_unit_use > 0)
        self.network = not on_arc.any() and not (split & site_used[k]).any()
        self.fq: I64 = np.where(self.whole_arc, q[j], 1).astype(np.int64)  # flow per unit of the arc variable
        self.vub: I64 = np.where(self.whole_arc, 1, np.maximum(ub, 0)).astype(np.int64)
        self.switch: B = p.needs_switch()
        self.finite_unmet: B = ~np.isinf(p.demand_unmet_cost)
        # Objective per unit of an arc variable: flow and production cost, less the unmet cost it avoids.
        unmet = p.demand_unmet_cost[j]
        avoided = np.where(np.isfinite(unmet), unmet, 0.0)
        self.arc_obj: F64 = (p.arc_cost + p.site_unit_cost[k] - avoided) * self.fq
        self.constant = float(
            math.fsum((p.demand_unmet_cost[self.finite_unmet] * q[self.finite_unmet]).tolist())
        )

        # Resource scale: uses per arc variable and per unit of surplus, capacities and extra, all integral.
        use_arc = np.where(per_arc, p.arc_use * self.fq, 0.0)
        use_site_arc = np.where(sr[k] >= 0, p.site_unit_use[k] * self.fq, 0.0)
        res_values = np.concatenate(
            [use_arc, use_site_arc, p.site_unit_use, p.resource_capacity, p.resource_extra]
        )
        res_mass = float(
            (np.abs(use_arc) + np.abs(use_site_arc)) @ self.vub.astype(np.float64)
            + np.abs(p.site_unit_use) @ p.site_max.astype(np.float64)
            + np.abs(p.resource_capacity).sum()
            + np.abs(p.resource_extra).sum()
        )
        self.res_scale, self.res_exact = _integer_scale(res_values, max(res_mass, 1.0))
        # Objective scale, over every coefficient a model can carry.
        extra_obj = p.resource_extra_cost / self.res_scale
        obj_values = np.concatenate([self.arc_obj, p.site_unit_cost, p.site_fixed_cost, extra_obj])
        obj_mass = float(
            np.abs(self.arc_obj) @ self.vub.astype(np.float64)
            + np.abs(p.site_unit_cost) @ p.site_max.astype(np.float64)
            + np.abs(p.site_fixed_cost).sum()
            + np.abs(p.resource_extra_cost * p.resource_extra).sum()
        )
        self.obj_scale, self.obj_exact = _integer_scale(obj_values, max(obj_mass, 1.0))

    def restrict(self, keep: B) -> None:
        """Use only the arcs in ``keep`` (of those alive) from now on: reduced-cost fixing prunes arcs no
        better solution can use."""
        p = self.p
        self.alive = self.alive & keep
        self.live = np.flatnonzero(self.alive).astype(np.int64)
        self.by_demand = runs(p.arc_demand[self.live], p.n_demands)
        self.by_site = runs(p.arc_site[self.live], p.n_sites)

    def live_arcs_of(self, demands: I64) -> I64:
        order, start = self.by_demand
        if demands.size == 0:
            return np.zeros(0, dtype=np.int64)
        parts = [order[start[d] : start[d + 1]] for d in demands.tolist()]
        out: I64 = self.live[np.concatenate(parts)] if parts else np.zeros(0, dtype=np.int64)
        return out


@dataclass(frozen=True, eq=False)
class Spec:
    """A sub-problem: freed demands on some of their live arcs, the rest fixed as in the incumbent."""

    demands: I64
    arcs: I64
    sites: I64  # every site an arc of the spec reaches
    base_inflow: I64  # per spec site: inflow from demands outside the spec
    resources: I64  # every resource the spec's arcs or sites use
    base_use: F64  # per spec resource: usage by everything outside the spec
    full: bool = False


def make_spec(prep: Prep, flow: I64, demands: I64, arcs: I64, *, full: bool = False) -> Spec:
    p = prep.p
    demands = np.unique(demands)
    arcs = np.unique(arcs)
    freed = np.zeros(p.n_demands, dtype=np.bool_)
    freed[demands] = True
    outside = np.where(freed[p.arc_demand], 0, flow)
    inflow_out = site_inflow(p, outside)
    sites = np.unique(p.arc_site[arcs])
    in_spec = np.zeros(p.n_sites, dtype=np.bool_)
    in_spec[sites] = True
    production, _, _, _ = normalised(p, flow)
    fixed_production = np.where(in_spec, inflow_out, production)
    use = resource_usage(p, outside, fixed_production)
    res = np.concatenate([p.arc_resource[arcs], p.site_resource[sites]])
    resources = np.unique(res[res >= 0]).astype(np.int64)
    return Spec(
        demands=demands.astype(np.int64),
        arcs=arcs.astype(np.int64),
        sites=sites.astype(np.int64),
        base_inflow=inflow_out[sites].astype(np.int64),
        resources=resources,
        base_use=use[resources],
        full=full,
    )


def full_spec(prep: Prep) -> Spec:
    p = prep.p
    return make_spec(prep, np.zeros(p.n_arcs, dtype=np.int64), np.arange(p.n_demands), prep.live, full=True)


@dataclass(eq=False)
class _Layout:
    """A spec's variables and rows in local indices, shared by both model builders."""

    arc_d: I64  # local demand of each spec arc
    arc_k: I64  # local site
    fq: I64
    vub: I64
    obj: F64
    d_order: I64
    d_start: I64
    k_order: I64
    k_start: I64
    need_y: B  # per spec site: an open/closed variable
    forced: B  # per spec site: open because fixed demands use it
    cap_free: I64  # per spec site: room left for the spec's flows (and surplus)
    min_free: I64  # per spec site: minimum the spec's flows and surplus must reach (times y if need_y)
    res_terms: list[tuple[I64, I64, F64]] = field(default_factory=list)  # per resource: arc idx, coefs


def _layout(prep: Prep, spec: Spec) -> _Layout:
    p = prep.p
    a = spec.arcs
    arc_d = np.searchsorted(spec.demands, p.arc_demand[a]).astype(np.int64)
    arc_k = np.searchsorted(spec.sites, p.arc_site[a]).astype(np.int64)
    d_order, d_start = runs(arc_d, spec.demands.shape[0])
    k_order, k_start = runs(arc_k, spec.sites.shape[0])
    base = spec.base_inflow
    switch = prep.switch[spec.sites]
    forced = switch & (base > 0)
    need_y = switch & ~forced
    cap_free = np.maximum(prep.site_cap[spec.sites] - base, 0).astype(np.int64)
    smin = p.site_min[spec.sites]
    min_free = np.where(forced, np.maximum(smin - base, 0), np.where(need_y, smin, 0)).astype(np.int64)
    vub = prep.vub[a].copy()
    split = ~prep.whole_arc[a]
    vub[split] = np.minimum(vub[split], cap_free[arc_k[split]])
    return _Layout(
        arc_d=arc_d,
        arc_k=arc_k,
        fq=prep.fq[a],
        vub=vub,
        obj=prep.arc_obj[a],
        d_order=d_order,
        d_start=d_start,
        k_order=k_order,
        k_start=k_start,
        need_y=need_y,
        forced=forced,
        cap_free=cap_free,
        min_free=min_free,
    )


def _resource_terms(prep: Prep, spec: Spec, lay: _Layout) -> list[tuple[I64, F64, I64, F64]]:
    """Per spec resource: (spec arc positions, use per arc variable, spec site positions, use per surplus)."""
    p = prep.p
    a = spec.arcs
    out = []
    r_arc = p.arc_resource[a]
    r_site_of_arc = p.site_resource[p.arc_site[a]]
    site_use_of_arc = p.site_unit_use[p.arc_site[a]] * lay.fq
    arc_use = p.arc_use[a] * lay.fq
    r_site = p.site_resource[spec.sites]
    for r in spec.resources.tolist():
        own = r_arc == r
        via = r_site_of_arc == r
        pos = np.flatnonzero(own | via).astype(np.int64)
        coef = np.where(own[pos], arc_use[pos], 0.0) + np.where(via[pos], site_use_of_arc[pos], 0.0)
        spos = np.flatnonzero((r_site == r) & (lay.min_free > 0)).astype(np.int64)
        out.append((pos, coef, spos, p.site_unit_use[spec.sites[spos]]))
    return out


@dataclass
class SubResult:
    flow: I64 | None  # per spec arc, None when no solution
    optimal: bool
    bound: float  # on the spec's own objective (the constant excluded); -inf when unknown
    exact_bound: bool
    work: float  # deterministic time (CP-SAT) or seconds (MIP)
    status: str = ""


# --- CP-SAT -----------------------------------------------------------------------------------------------
def solve_cpsat(
    prep: Prep,
    spec: Spec,
    hint: I64 | None,
    *,
    work_limit: float,
    wall_limit: float,
    seed: int,
    workers: int = 1,
    cutoff: float | None = None,
) -> SubResult:
    """Solve ``spec`` with CP-SAT; ``hint`` is the incumbent's flow per spec arc (feasible for the spec)."""
    p = prep.p
    lay = _layout(prep, spec)
    m = cp_model.CpModel()
    n_a = spec.arcs.shape[0]
    whole = prep.whole_arc[spec.arcs]
    v: list[Any] = [
        m.new_bool_var("") if whole[i] else m.new_int_var(0, int(lay.vub[i]), "") for i in range(n_a)
    ]
    hv = None if hint is None else (hint // lay.fq).astype(np.int64)

    # demands
    for d in range(spec.demands.shape[0]):
        idx = lay.d_order[lay.d_start[d] : lay.d_start[d + 1]].tolist()
        j = int(spec.demands[d])
        must = not prep.finite_unmet[j]
        if p.demand_whole[j]:
            lits = [v[i] for i in idx]
            if must:
                m.add_exactly_one(lits)
            elif len(lits) > 1:
                m.add_at_most_one(lits)
        else:
            q = int(p.demand_quantity[j])
            expr = cp_model.LinearExpr.sum([v[i] for i in idx])
            if must:
                m.add(expr == q)
            elif int(lay.vub[idx].sum()) > q:
                m.add(expr <= q)

    # sites
    n_k = spec.sites.shape[0]
    y: dict[int, Any] = {}
    s: dict[int, Any] = {}
    inflow_hint = (
        np.bincount(lay.arc_k, weights=hint, minlength=n_k).astype(np.int64) if hint is not None else None
    )
    for kk in range(n_k):
        idx = lay.k_order[lay.k_start[kk] : lay.k_start[kk + 1]]
        fq = lay.fq[idx]
        terms = [v[i] for i in idx.tolist()]
        coefs = fq.tolist()
        if lay.min_free[kk] > 0:
            s[kk] = m.new_int_var(0, int(lay.min_free[kk]), "")
            terms.append(s[kk])
            coefs.append(1)
        expr = cp_model.LinearExpr.weighted_sum(terms, coefs)
        top = int(lay.cap_free[kk])
        if lay.need_y[kk]:
            y[kk] = m.new_bool_var("")
            m.add(expr <= top * y[kk])
            if lay.min_free[kk] > 0:
                m.add(expr >= int(lay.min_free[kk]) * y[kk])
            for i in idx.tolist():
                if whole[i]:
                    m.add_implication(v[i], y[kk])
                else:
                    m.add(v[i] <= int(lay.vub[i]) * y[kk])
        else:
            if int((lay.vub[idx] * fq).sum()) + int(lay.min_free[kk]) > top:
                m.add(expr <= top)
            if lay.min_free[kk] > 0:
                m.add(expr >= int(lay.min_free[kk]))

    # resources
    S = prep.res_scale
    e: dict[int, Any] = {}
    for ri, (pos, coef, spos, scoef) in enumerate(_resource_terms(prep, spec, lay)):
        r = int(spec.resources[ri])
        ic = np.ceil(coef * S - _TINY * np.maximum(1.0, coef * S)).astype(np.int64)
        isc = np.ceil(scoef * S - _TINY * np.maximum(1.0, scoef * S)).astype(np.int64)
        rhs_f = (p.resource_capacity[r] - spec.base_use[ri]) * S
        rhs = math.floor(rhs_f + _TINY * max(1.0, abs(rhs_f)))
        e_ub = math.floor(p.resource_extra[r] * S + _TINY * max(1.0, p.resource_extra[r] * S))
        if hv is not None and inflow_hint is not None and not prep.res_exact:
            # Uses rounded up may put the (feasible) incumbent over the scaled capacity: widen to it, so
            # the hint stays a solution; what comes back is checked against the true capacities.
            lhs = int(ic @ hv[pos])
            if spos.size:
                opened = (inflow_hint[spos] > 0) | lay.forced[spos]
                lhs += int(isc @ np.where(opened, np.maximum(lay.min_free[spos] - inflow_hint[spos], 0), 0))
            rhs = max(rhs, lhs - e_ub)
        hi = int(ic @ lay.vub[pos]) + int(isc @ lay.min_free[spos])
        if hi <= rhs:
            continue
        terms = [v[i] for i in pos.tolist()] + [s[int(k)] for k in spos.tolist()]
        coefs = ic.tolist() + isc.tolist()
        if e_ub > 0:
            e[ri] = m.new_int_var(0, min(e_ub, hi - rhs), "")
            terms.append(e[ri])
            coefs.append(-1)
        m.add(cp_model.LinearExpr.weighted_sum(terms, coefs) <= rhs)

    # objective
    T = prep.obj_scale
    o_terms: list[Any] = list(v)
    o_coefs = np.round(lay.obj * T).astype(np.int64).tolist()
    for kk, var in y.items():
        o_terms.append(var)
        o_coefs.append(round(float(p.site_fixed_cost[spec.sites[kk]]) * T))
    for kk, var in s.items():
        o_terms.append(var)
        o_coefs.append(round(float(p.site_unit_cost[spec.sites[kk]]) * T))
    for ri, var in e.items():
        o_terms.append(var)
        o_coefs.append(round(float(p.resource_extra_cost[spec.resources[ri]]) / S * T))
    objective = cp_model.LinearExpr.weighted_sum(o_terms, o_coefs)
    m.minimize(objective)
    if cutoff is not None:
        m.add(objective <= math.floor(cutoff * T + 0.5))

    if hv is not None and inflow_hint is not None:
        for i in range(n_a):
            m.add_hint(v[i], int(hv[i]))
        for kk, var in y.items():
            m.add_hint(var, int(inflow_hint[kk] > 0))
        for kk, var in s.items():
            opened = inflow_hint[kk] > 0 or lay.forced[kk]
            m.add_hint(var, int(max(lay.min_free[kk] - inflow_hint[kk], 0)) if opened else 0)

    solver = cp_model.CpSolver()
    prm = solver.parameters
    prm.num_workers = max(1, workers)
    prm.random_seed = int(seed) % (2**31)
    prm.max_deterministic_time = max(work_limit, 1e-3)
    prm.max_time_in_seconds = max(wall_limit, 1e-3)
    prm.log_search_progress = False
    prm.linearization_level = 2
    if workers > 1:
        prm.interleave_search = True
    status = solver.solve(m)
    work = float(solver.deterministic_time)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return SubResult(None, False, -math.inf, False, work, solver.status_name(status))
    vals = np.array(solver.values(v), dtype=np.int64) if n_a else np.zeros(0, dtype=np.int64)
    exact = prep.obj_exact and prep.res_exact
    bound = float(solver.best_objective_bound) / T
    return SubResult(
        vals * lay.fq, status == cp_model.OPTIMAL, bound, exact, work, solver.status_name(status)
    )


# --- MIP (SCIP / HiGHS) and LP (GLOP) ---------------------------------------------------------------------
_SOLVER_TYPES = {
    "scip": linear_solver_pb2.MPModelRequest.SCIP_MIXED_INTEGER_PROGRAMMING,
    "highs": linear_solver_pb2.MPModelRequest.HIGHS_MIXED_INTEGER_PROGRAMMING,
    "glop": linear_solver_pb2.MPModelRequest.GLOP_LINEAR_PROGRAMMING,
}


@dataclass
class LpResult:
    value: F64  # per spec arc: the arc variable's value
    reduced: F64  # per spec arc: its reduced cost
    objective: float  # of the spec's model, the constant excluded
    bound: float
    optimal: bool
    seconds: float
    arcs: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # the spec's arcs
    sites: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # sites with a y variable
    site_reduced: F64 = field(default_factory=lambda: np.zeros(0))  # their y's reduced costs
    resource_dual: F64 = field(default_factory=lambda: np.zeros(0))  # per resource: its capacity's price


def _mip_proto(
    prep: Prep, spec: Spec, lay: _Layout, *, relax: bool, link: bool, hint: I64 | None
) -> tuple[Any, int, I64, I64]:
    """The spec as an MPModelProto, the number of arc variables (they come first), per spec site the index
    of its y variable and per spec resource the index of its row (-1: none)."""
    p = prep.p
    model = linear_solver_pb2.MPModelProto()
    V = model.variable
    n_a = spec.arcs.shape[0]
    integer = not relax
    flows_integer = (prep.whole_arc[spec.arcs] | (not prep.network)) & integer
    for ub, c, is_int in zip(lay.vub.tolist(), lay.obj.tolist(), flows_integer.tolist(), strict=True):
        var = V.add()
        var.lower_bound = 0.0
        var.upper_bound = float(ub)
        var.objective_coefficient = c
        var.is_integer = is_int
    n_k = spec.sites.shape[0]
    y_index = np.full(n_k, -1, dtype=np.int64)
    s_index = np.full(n_k, -1, dtype=np.int64)
    nxt = n_a
    for kk in np.flatnonzero(lay.need_y).tolist():
        var = V.add()
        var.lower_bound = 0.0
        var.upper_bound = 1.0
        var.objective_coefficient = float(p.site_fixed_cost[spec.sites[kk]])
        var.is_integer = integer
        y_index[kk] = nxt
        nxt += 1
    for kk in np.flatnonzero(lay.min_free > 0).tolist():
        var = V.add()
        var.lower_bound = 0.0
        var.upper_bound = float(lay.min_free[kk])
        var.objective_coefficient = float(p.site_unit_cost[spec.sites[kk]])
        var.is_integer = integer and not prep.network
        s_index[kk] = nxt
        nxt += 1
    C = model.constraint
    for d in range(spec.demands.shape[0]):
        idx = lay.d_order[lay.d_start[d] : lay.d_start[d + 1]]
        j = int(spec.demands[d])
        q = float(p.demand_quantity[j])
        must = not prep.finite_unmet[j]
        row = C.add()
        row.var_index.extend(idx.tolist())
        row.coefficient.extend(lay.fq[idx].astype(np.float64).tolist())
        row.upper_bound = q
        row.lower_bound = q if must else 0.0
    for kk in range(n_k):
        idx = lay.k_order[lay.k_start[kk] : lay.k_start[kk + 1]]
        fq = lay.fq[idx].astype(np.float64)
        cols = idx.tolist()
        coefs = fq.tolist()
        if s_index[kk] >= 0:
            cols.append(int(s_index[kk]))
            coefs.append(1.0)
        top = float(lay.cap_free[kk])
        lo = float(lay.min_free[kk])
        if y_index[kk] >= 0:
            row = C.add()
            row.var_index.extend([*cols, int(y_index[kk])])
            row.coefficient.extend([*coefs, -top])
            row.lower_bound = -math.inf
            row.upper_bound = 0.0
            if lo > 0:
                row = C.add()
                row.var_index.extend([*cols, int(y_index[kk])])
                row.coefficient.extend([*coefs, -lo])
                row.lower_bound = 0.0
                row.upper_bound = math.inf
            if link:
                yi = int(y_index[kk])
                for i, ub in zip(cols[: idx.shape[0]], lay.vub[idx].tolist(), strict=True):
                    row = C.add()
                    row.var_index.extend((i, yi))
                    row.coefficient.extend((1.0, -float(ub)))
                    row.lower_bound = -math.inf
                    row.upper_bound = 0.0
        elif lo > 0 or float(fq @ lay.vub[idx]) > top:
            row = C.add()
            row.var_index.extend(cols)
            row.coefficient.extend(coefs)
            row.lower_bound = lo
            row.upper_bound = top
    if spec.full and (y_index >= 0).any():
        # The sites open must hold the must-serve demand between them (a cover row: valid for every
        # solution, and it cuts off the LP's many barely-open sites).
        units = np.bincount(lay.arc_k, weights=lay.vub * lay.fq, minlength=n_k)
        reach = np.minimum(lay.cap_free, units)
        need = float(p.demand_quantity[p.must_serve].sum()) - float(reach[y_index < 0].sum())
        if need > 0:
            has_y = np.flatnonzero(y_index >= 0)
            row = C.add()
            row.var_index.extend(y_index[has_y].tolist())
            row.coefficient.extend(reach[has_y].astype(np.float64).tolist())
            row.lower_bound = need
            row.upper_bound = math.inf
    res_row = np.full(spec.resources.shape[0], -1, dtype=np.int64)
    for ri, (pos, coef, spos, scoef) in enumerate(_resource_terms(prep, spec, lay)):
        r = int(spec.resources[ri])
        rhs = float(p.resource_capacity[r] - spec.base_use[ri])
        hi = float(coef @ lay.vub[pos]) + float(scoef @ lay.min_free[spos])
        if hi <= rhs:
            continue
        res_row[ri] = len(C)
        row = C.add()
        row.var_index.extend(pos.tolist() + s_index[spos].tolist())
        row.coefficient.extend(coef.tolist() + scoef.tolist())
        if p.resource_extra[r] > 0:
            var = V.add()
            var.lower_bound = 0.0
            var.upper_bound = float(p.resource_extra[r])
            var.objective_coefficient = float(p.resource_extra_cost[r])
            row.var_index.append(nxt)
            row.coefficient.append(-1.0)
            nxt += 1
        row.lower_bound = -math.inf
        row.upper_bound = rhs
    if hint is not None:
        hv = hint // lay.fq
        model.solution_hint.var_index.extend(range(n_a))
        model.solution_hint.var_value.extend(hv.astype(np.float64).tolist())
        inflow = np.bincount(lay.arc_k, weights=hint, minlength=n_k)
        for kk in np.flatnonzero(y_index >= 0).tolist():
            model.solution_hint.var_index.append(int(y_index[kk]))
            model.solution_hint.var_value.append(float(inflow[kk] > 0))
    return model, n_a, y_index, res_row


def _run(model: Any, solver: str, seconds: float, params: str = "") -> Any:
    request = linear_solver_pb2.MPModelRequest()
    request.model.CopyFrom(model)
    request.solver_type = _SOLVER_TYPES[solver]
    request.solver_time_limit_seconds = max(seconds, 0.01)
    if params:
        request.solver_specific_parameters = params
    response = linear_solver_pb2.MPSolutionResponse()
    pywraplp.Solver.SolveWithProto(request, response)
    return response


_OPTIMAL = linear_solver_pb2.MPSOLVER_OPTIMAL
_FEASIBLE = linear_solver_pb2.MPSOLVER_FEASIBLE


def solve_lp(prep: Prep, spec: Spec, *, seconds: float, link: bool) -> LpResult | None:
    lay = _layout(prep, spec)
    model, n_a, y_index, res_row = _mip_proto(prep, spec, lay, relax=True, link=link, hint=None)
    t0 = time.perf_counter()
    response = _run(model, "glop", seconds)
    took = time.perf_counter() - t0
    if response.status != _OPTIMAL:
        return None
    values = np.array(response.variable_value, dtype=np.float64)
    reduced = np.array(response.reduced_cost, dtype=np.float64)
    if reduced.shape[0] != values.shape[0]:
        reduced = np.zeros_like(values)
    duals = np.array(response.dual_value, dtype=np.float64)
    resource_dual = np.zeros(prep.p.n_resources)
    has_row = res_row >= 0
    if duals.shape[0] == len(model.constraint):
        # a ≤ row of a minimisation has a non-positive dual: its price is the negation
        resource_dual[spec.resources[has_row]] = np.maximum(-duals[res_row[has_row]], 0.0)
    return LpResult(
        value=values[:n_a],
        reduced=reduced[:n_a],
        objective=float(response.objective_value),
        bound=float(response.objective_value),
        optimal=True,
        seconds=took,
        arcs=spec.arcs,
        sites=spec.sites[y_index >= 0],
        site_reduced=reduced[y_index[y_index >= 0]],
        resource_dual=resource_dual,
    )


def solve_mip(
    prep: Prep,
    spec: Spec,
    hint: I64 | None,
    *,
    seconds: float,
    seed: int = 0,
    nodes: int | None = None,
    solver: str = "scip",
) -> SubResult:
    """Solve ``spec`` as a MIP; flows come back integral (a fractional answer is re-solved with the
    switches fixed, which leaves a network-like problem)."""
    lay = _layout(prep, spec)
    model, n_a, _, _ = _mip_proto(prep, spec, lay, relax=False, link=True, hint=hint)
    if solver == "scip":
        params = [
            f"randomization/randomseedshift = {int(seed) % 1000}",
            "limits/gap = 0",
            "limits/absgap = 1e-7",
        ]
        if nodes is not None:
            params.append(f"limits/totalnodes = {int(nodes)}")
    else:
        # (HiGHS 1.12 through OR-Tools crashes on a solution hint: it gets none.)
        model.ClearField("solution_hint")
        params = [
            "output_flag = false",
            f"random_seed = {int(seed) % 1000}",
            "threads = 1",
            "mip_rel_gap = 0",
            "mip_abs_gap = 1e-7",
        ]
        if nodes is not None:
            params.append(f"mip_max_nodes = {int(nodes)}")
    t0 = time.perf_counter()
    response = _run(model, solver, seconds, "\n".join(params))
    took = time.perf_counter() - t0
    if response.status not in (_OPTIMAL, _FEASIBLE) or len(response.variable_value) < n_a:
        return SubResult(None, False, -math.inf, False, took, str(response.status))
    all_values = np.array(response.variable_value, dtype=np.float64)
    values = all_values[:n_a]
    if np.abs(values - np.round(values)).max(initial=0.0) > 1e-6:
        # Continuous flows off a vertex: fix the binaries and take the LP's vertex, which is integral.
        fixed = linear_solver_pb2.MPModelProto()
        fixed.CopyFrom(model)
        fixed.ClearField("solution_hint")
        for i, var in enumerate(fixed.variable):
            if var.is_integer:
                var.is_integer = False
                var.lower_bound = var.upper_bound = float(round(all_values[i]))
        repaired = _run(fixed, "glop", max(seconds, 1.0))
        if repaired.status != _OPTIMAL:
            return SubResult(None, False, -math.inf, False, time.perf_counter() - t0, "repair failed")
        values = np.array(repaired.variable_value[:n_a], dtype=np.float64)
    units = np.clip(np.round(values).astype(np.int64), 0, lay.vub)
    took = time.perf_counter() - t0
    bound = float(response.best_objective_bound)
    if not math.isfinite(bound):
        bound = -math.inf
    return SubResult(units * lay.fq, response.status == _OPTIMAL, bound, True, took, str(response.status))


# --- the search -------------------------------------------------------------------------------------------
def objective_of(prep: Prep, flow: I64) -> tuple[float, bool]:
    """The exact objective of a flow (everything else at its cheapest) and whether it is feasible."""
    p = prep.p
    production, opened, unmet, extra = normalised(p, flow)
    ok = not violations(p, flow, production, opened, unmet, extra, limit=1)
    return evaluate(p, flow, production, opened, unmet, extra), ok


@dataclass
class SearchStats:
    iterations: int = 0
    improvements: int = 0
    sideways: int = 0
    failures: int = 0  # sub-solves with no solution in their limit
    rejected: int = 0  # sub-solutions infeasible once unscaled
    work: float = 0.0
    proven: bool = False


class Search:
    """Large-neighbourhood search: free the demands of a few related sites, re-solve them, keep what is
    no worse.

    Sites are related through the LP: each demand's arcs are ranked by reduced cost, and a neighbourhood
    grows from a random site to the sites the freed demands rank best. It also frees demands that rank a
    chosen site among their best (so a closed site can open and an unmet demand can be served).
    """

    def __init__(
        self,
        prep: Prep,
        flow: I64,
        objective: float,
        *,
        engine: str,
        seed: int,
        score: F64,
        price: F64 | None = None,
        top: int = 4,
    ) -> None:
        p = prep.p
        self.prep = prep
        self.flow = flow  # the current solution (may be worse than the best, within the threshold)
        self.objective = objective
        self.best_flow = flow
        self.best_objective = objective
        self.threshold = 0.0  # accept a solution up to this much worse than the current
        self.engine = engine
        self.rng = np.random.default_rng(seed)
        self.top = top
        self.stats = SearchStats()
        live = prep.live
        order = np.lexsort((live, score[live], p.arc_demand[live]))
        self.cand: I64 = live[order]
        self.cand_start: I64 = np.searchsorted(p.arc_demand[self.cand], np.arange(p.n_demands + 1)).astype(
            np.int64
        )
        self.rank = np.full(p.n_arcs, np.iinfo(np.int64).max, dtype=np.int64)
        self.rank[self.cand] = np.arange(self.cand.shape[0]) - self.cand_start[p.arc_demand[self.cand]]
        top_arcs = self.cand[self.rank[self.cand] < top]
        rev_order, self.rev_start = runs(p.arc_site[top_arcs], p.n_sites)
        self.rev_demands: I64 = p.arc_demand[top_arcs][rev_order]
        self.sites_live: I64 = np.unique(p.arc_site[live]).astype(np.int64)
        # Resources whose capacity has an LP price: idle capacity there is where a solution loses against
        # the bound, so neighbourhoods often start at a site drawing on one.
        self.price: F64 = np.zeros(p.n_resources) if price is None else price
        ar = p.arc_resource[live]
        sr = p.site_resource
        pairs = np.concatenate(
            [
                np.stack([ar[ar >= 0], p.arc_site[live][ar >= 0]], axis=1),
                np.stack([sr[sr >= 0], np.flatnonzero(sr >= 0)], axis=1),
            ]
        ).astype(np.int64)
        pairs = np.unique(pairs, axis=0) if pairs.size else np.zeros((0, 2), dtype=np.int64)
        self.res_sites: I64 = pairs[:, 1].copy()
        self.res_start: I64 = np.searchsorted(pairs[:, 0], np.arange(p.n_resources + 1)).astype(np.int64)
        self.size = float(min(p.n_demands, 24))
        self.work_limit = 0.3
        self.wanting = 0.25
        self.spread = 0.0
        self.site_weight: F64 | None = None  # a distribution to draw seed sites from (None: by use)
        self.mip_fast = 0.3  # seconds: a MIP sub-solve this quick lets the neighbourhoods grow
        # Assignment shapes: the knapsack Lagrangian, and how often (and how wide) to re-pack a few sites
        self.assignment: AssignmentLagrangian | None = None
        self.wish_sites = False
        self.agent_share = 0.7
        self.agents_max = 6
        self.last_target = 0
        self.arc_top = top

    def adopt(self, flow: I64, objective: float) -> None:
        """Continue from another search's solution."""
        self.flow, self.objective = flow, objective
        if objective < self.best_objective:
            self.best_flow, self.best_objective = flow, objective

    def neighbourhood(self, kind: str, target: int) -> tuple[I64, I64, bool]:
        """Freed demands, their arcs in the spec, and whether that is the whole problem.

        ``sites`` frees every demand served at a few related sites; ``scatter`` frees a part of those at
        twice as many sites (long chains of moves, each site trading a few demands); ``random`` frees
        demands anywhere. Each also frees demands that rank a chosen site among their best arcs.
        """
        p = self.prep.p
        rng = self.rng
        if target >= p.n_demands:
            return np.arange(p.n_demands, dtype=np.int64), self.prep.live, True
        flow = self.flow
        used = np.flatnonzero(flow > 0)
        order, start = runs(p.arc_site[used], p.n_sites)
        used_d = p.arc_demand[used][order]
        used_sites = np.flatnonzero(np.diff(start) > 0)
        chosen = np.zeros(p.n_sites, dtype=np.bool_)
        served: list[int] = []
        wanting: list[int] = []
        freed_set: set[int] = set()
        share = 1.0 if kind == "sites" else 0.5

        def add(k: int) -> None:
            chosen[k] = True
            here = used_d[start[k] : start[k + 1]]
            if share < 1.0 and here.size > 1:
                here = rng.choice(here, size=max(1, round(share * here.size)), replace=False)
            for j in here.tolist():
                if j not in freed_set:
                    freed_set.add(j)
                    served.append(j)
            extra = self.rev_demands[self.rev_start[k] : self.rev_start[k + 1]]
            if extra.size:
                take = min(extra.size, math.ceil(target * self.wanting))
                for j in rng.choice(extra, size=take, replace=False).tolist():
                    if j not in freed_set:
                        freed_set.add(j)
                        wanting.append(j)

        def seed_site() -> int:
            if self.assignment is not None and self.wish_sites and rng.random() < 0.5:
                return int(rng.choice(p.n_sites, p=self.site_loss()))
            if self.site_weight is not None and rng.random() < 0.5:
                return int(rng.choice(p.n_sites, p=self.site_weight))
            if self.price.any() and rng.random() < 0.5:
                production, _, _, _ = normalised(p, flow)
                idle = np.maximum(p.resource_capacity - resource_usage(p, flow, production), 0.0)
                weight = self.price * idle
                total = float(weight.sum())
                if total > 0:
                    r = int(rng.choice(p.n_resources, p=weight / total))
                    sites = self.res_sites[self.res_start[r] : self.res_start[r + 1]]
                    if sites.size:
                        return int(rng.choice(sites))
            if used_sites.size and rng.random() < 0.8:
                return int(rng.choice(used_sites))
            return int(rng.choice(self.sites_live))

        if kind == "agents":
            return self.agents_neighbourhood()
        if kind == "random":
            pool_d = p.arc_demand[used] if used.size and rng.random() < 0.8 else np.arange(p.n_demands)
            pool_d = np.unique(pool_d)
            freed = rng.choice(pool_d, size=min(target, pool_d.size), replace=False).astype(np.int64)
            chosen[p.arc_site[used[np.isin(p.arc_demand[used], freed)]]] = True
        else:
            add(seed_site())
            tries = 0
            while len(served) + len(wanting) < target and tries < 4 * target:
                tries += 1
                pool = served or wanting
                if pool and rng.random() < 0.85:
                    j = pool[int(rng.integers(len(pool)))]
                    lo, hi = int(self.cand_start[j]), int(self.cand_start[j + 1])
                    if hi <= lo:
                        continue
                    k = int(p.arc_site[self.cand[lo + int(rng.integers(min(hi - lo, self.top + 1)))]])
                else:
                    k = int(rng.choice(self.sites_live))
                if not chosen[k]:
                    add(k)
            room = max(target - len(served), 0)
            freed = np.array(served + wanting[:room], dtype=np.int64)
        arcs = self.prep.live_arcs_of(freed)
        keep = chosen[p.arc_site[arcs]] | (self.rank[arcs] < self.arc_top) | (flow[arcs] > 0)
        if self.engine == "mip":
            # Splittable demands mostly move to sites already open: offer the nearer of those too.
            is_open = np.zeros(p.n_sites, dtype=np.bool_)
            is_open[used_sites] = True
            keep |= is_open[p.arc_site[arcs]] & (self.rank[arcs] < 6 * self.arc_top)
        return freed, arcs[keep], False

    def agents_neighbourhood(self) -> tuple[I64, I64, bool]:
        """Re-pack a few sites: every demand they serve, on their arcs only. The first site is drawn by how
        far its arcs fall short of its best knapsack at the Lagrangian prices (the gap to the bound splits
        exactly so); each next one holds a demand that a chosen site's best knapsack wants (an ejection
        chain), or is drawn like the first."""
        lag = self.assignment
        assert lag is not None
        p = self.prep.p
        rng = self.rng
        used = np.flatnonzero(self.flow > 0)
        site_of = np.full(p.n_demands, -1, dtype=np.int64)
        site_of[p.arc_demand[used]] = p.arc_site[used]
        weights = self.site_loss()
        k = int(rng.integers(2, self.agents_max + 1))
        chosen = [int(rng.choice(p.n_sites, p=weights))]
        tries = 0
        while len(chosen) < min(k, self.sites_live.shape[0]) and tries < 8 * k:
            tries += 1
            src = chosen[int(rng.integers(len(chosen)))]
            wants = self.wish_demands[self.wish_start[src] : self.wish_start[src + 1]]
            holders = site_of[wants]
            holders = holders[(holders >= 0) & ~np.isin(holders, chosen)]
            nxt = (
                int(rng.choice(holders))
                if holders.size and rng.random() < 0.8
                else int(rng.choice(p.n_sites, p=weights))
            )
            if nxt not in chosen:
                chosen.append(nxt)
        at = np.zeros(p.n_sites, dtype=np.bool_)
        at[chosen] = True
        freed = np.unique(p.arc_demand[used[at[p.arc_site[used]]]]).astype(np.int64)
        arcs = self.prep.live_arcs_of(freed)
        return freed, arcs[at[p.arc_site[arcs]]], False

    def site_loss(self) -> F64:
        """Per site, as a distribution: how far its arcs fall short of its best knapsack at the Lagrangian
        prices (the incumbent's gap to the bound is the sum of these)."""
        lag = self.assignment
        assert lag is not None
        p = self.prep.p
        used = np.flatnonzero(self.flow > 0)
        held = np.bincount(p.arc_site[used], weights=lag.profit[used], minlength=p.n_sites)
        loss = np.maximum(lag.site_best - held, 0.0)
        loss[self.sites_live] += 1e-6 * (1.0 + float(loss.max(initial=0.0)))
        mask = np.zeros(p.n_sites, dtype=np.bool_)
        mask[self.sites_live] = True
        loss = np.where(mask, loss, 0.0)
        out: F64 = loss / loss.sum()
        return out

    def use_assignment(self, lag: AssignmentLagrangian, *, wanting: bool = True) -> None:
        """Guide the search by the knapsack Lagrangian: re-pack sites by their loss, and (``wanting``) let a
        chosen site's freed demands be those its best knapsack holds."""
        p = self.prep.p
        self.assignment = lag
        wished = np.flatnonzero(lag.wish)
        order, self.wish_start = runs(p.arc_site[wished], p.n_sites)
        self.wish_demands: I64 = p.arc_demand[wished][order]
        self.wish_sites = wanting
        # Re-pack about 40 demands at a time: fewer sites where each serves many.
        per_site = p.n_demands / max(1, self.sites_live.shape[0])
        self.agents_max = int(min(6, max(3, round(40 / max(per_site, 1.0)))))
        if wanting:
            self.rev_demands, self.rev_start = self.wish_demands, self.wish_start

    def step(self, *, deadline: float, seed: int, workers: int = 1, kind: str = "sites") -> SubResult | None:
        prep = self.prep
        remaining = deadline - time.perf_counter()
        if remaining <= 0.01:
            return None
        if self.assignment is not None and kind == "sites" and self.rng.random() < self.agent_share:
            kind = "agents"
        target = self.target
        if self.spread > 0:
            # Vary the size around the adapted one: some moves need more room than the typical one.
            target = max(2, round(self.size * math.exp(self.spread * float(self.rng.standard_normal()))))
        self.last_target = target
        freed, arcs, whole_problem = self.neighbourhood(kind, target)
        if freed.size == 0:
            return None
        spec = make_spec(prep, self.flow, freed, arcs, full=whole_problem)
        hint = self.flow[spec.arcs]
        if self.engine == "cpsat":
            r = solve_cpsat(
                prep,
                spec,
                hint,
                work_limit=self.work_limit,
                wall_limit=min(remaining, 10 * self.work_limit + 1.0),
                seed=seed,
                workers=workers,
            )
        else:
            r = solve_mip(prep, spec, hint, seconds=min(remaining, 5.0), seed=seed, nodes=200)
        self.stats.iterations += 1
        self.stats.work += r.work
        if r.flow is None:
            self.stats.failures += 1
            self.size = max(4.0, self.size * 0.8)
            return r
        new = self.flow.copy()
        new[prep.live_arcs_of(freed)] = 0
        new[spec.arcs] = r.flow
        objective, ok = objective_of(prep, new)
        if not ok:
            self.stats.rejected += 1
        else:
            tol = 1e-9 * max(1.0, abs(self.objective))
            if objective < self.best_objective - tol:
                self.stats.improvements += 1
                self.best_flow, self.best_objective = new, objective
            if objective <= self.objective + tol + self.threshold:
                self.stats.sideways += objective >= self.objective - tol
                self.flow, self.objective = new, objective
        if whole_problem and r.optimal and r.exact_bound:
            self.stats.proven = True
        # Grow while sub-problems are solved to optimality with time to spare; shrink slowly when they are
        # not: large neighbourhoods solved only in part still find most of the improvements.
        fast = r.work < 0.5 * self.work_limit if self.engine == "cpsat" else r.work < self.mip_fast
        if kind == "agents":
            pass
        elif r.optimal and fast:
            self.size = min(float(prep.p.n_demands), self.size * 1.1 + 0.5)
        elif not r.optimal:
            self.size = max(8.0, self.size * 0.97)
        return r

    @property
    def target(self) -> int:
        return round(self.size)

    @target.setter
    def target(self, value: int) -> None:
        self.size = float(value)


# --- Lagrangian relaxation for fixed-charge transportation ------------------------------------------------
def lagrangian_applies(prep: Prep) -> bool:
    """Splittable demands only, no resources on them, no minimums: each site's sub-problem is then a
    continuous knapsack, solved exactly by sorting."""
    p = prep.p
    return bool(
        prep.network and not p.demand_whole.any() and not (p.site_min[p.arc_site[prep.live]] > 0).any()
    )


@dataclass
class LagrangianResult:
    bound: float  # a valid lower bound (the best dual value seen)
    price: F64  # per demand: the multipliers at the best bound
    site_value: F64  # per site, at those prices: what opening it adds to the bound (0 when it is open)
    flow: I64 | None  # the best solution the heuristic found
    objective: float
    iterations: int
    repairs: int
    opened: B = field(
        default_factory=lambda: np.zeros(0, dtype=np.bool_)
    )  # the relaxation's sites at the bound


# The cover's dynamic programme works on capacities scaled to at most this many buckets.
_COVER_BUCKETS = 20_000


def _cover(value: F64, cap: I64, need: int, force: int = -1) -> tuple[float, B]:
    """``min Σ value_i·y_i`` over ``y ∈ {0,1}`` with ``Σ cap_i·y_i ≥ need`` (and ``y_force = 1``): the sites
    a relaxation opens when they must hold the must-serve demand between them. Every site of negative value
    is taken; the rest is a covering knapsack, solved exactly when the capacities are equal (the cheapest
    that suffice) and otherwise by a dynamic programme over capacities rounded up to ``_COVER_BUCKETS``
    buckets, whose optimum is at most the true one (rounding up only makes covering easier): a valid
    relaxation either way. An unreachable ``need`` drops the constraint."""
    chosen: B = value < 0
    if force >= 0:
        chosen[force] = True
    total = float(value[chosen].sum())
    rest = int(need) - int(cap[chosen].sum())
    cand = np.flatnonzero(~chosen & (cap > 0))
    if rest <= 0 or int(cap[cand].sum()) < rest:
        return total, chosen
    v, c = value[cand], cap[cand]
    if int(c.max()) == int(c.min()):
        k = -(-rest // int(c[0]))
        pick = cand[np.argsort(v, kind="stable")[:k]]
    else:
        scale = max(1, -(-rest // _COVER_BUCKETS))
        cs = -(-c // scale)
        r = -(-rest // scale)
        g = np.full(r + 1, np.inf)
        g[0] = 0.0
        took = np.zeros((cand.shape[0], r + 1), dtype=np.bool_)
        idx = np.arange(r + 1)
        for t in range(cand.shape[0]):
            via = v[t] + g[np.maximum(idx - int(cs[t]), 0)]
            took[t] = via < g
            g = np.where(took[t], via, g)
        at = r
        sel = []
        for t in range(cand.shape[0] - 1, -1, -1):
            if at > 0 and took[t, at]:
                sel.append(t)
                at = max(at - int(cs[t]), 0)
        pick = cand[np.array(sel, dtype=np.int64)]
    chosen[pick] = True
    return float(value[chosen].sum()), chosen


def lagrangian(prep: Prep, *, seconds: float, seed: int, max_iterations: int = 400) -> LagrangianResult:
    """Relax the demand rows with prices λ: each site's value is its fixed cost plus its best continuous
    knapsack of arcs (per-unit value ``cost - λ_j``, up to its capacity), and the sites opened are the
    cheapest set whose capacities cover the must-serve demand (``Σ cap_k·y_k ≥ Σ q_j``, valid for every
    solution, and what makes the bound strong when few sites must open). Subgradient steps on λ; every few
    steps the sites the relaxation opens are handed, with all their arcs, to a transportation LP for a
    feasible solution (which also sharpens the step size)."""
    p = prep.p
    t0 = time.perf_counter()
    live = prep.live
    j = p.arc_demand[live]
    k = p.arc_site[live]
    cost = p.arc_cost[live] + p.site_unit_cost[k]
    ub = prep.vub[live].astype(np.float64)
    cap = prep.site_cap.astype(np.float64)
    fixed = p.site_fixed_cost
    q = p.demand_quantity.astype(np.float64)
    unmet = p.demand_unmet_cost
    # What each site could carry at most (its capacity, and no more than its arcs reach), and what the
    # sites must carry between them.
    reach = np.minimum(prep.site_cap, np.bincount(k, weights=ub, minlength=p.n_sites).astype(np.int64))
    need = int(p.demand_quantity[p.must_serve].sum())
    # start: the cheapest way to serve a unit, fixed costs spread over capacity
    spread = cost + fixed[k] / np.maximum(cap[k], 1.0)
    lam = np.full(p.n_demands, np.inf)
    np.minimum.at(lam, j, spread)
    lam[~np.isfinite(lam)] = 0.0
    lam = np.minimum(lam, np.where(np.isfinite(unmet), unmet, np.inf))
    best_bound, best_lam, best_site_v = -math.inf, lam.copy(), np.zeros(p.n_sites)
    best_open = np.zeros(p.n_sites, dtype=np.bool_)
    best_flow: I64 | None = None
    best_obj = math.inf
    theta = 2.0
    stall = 0
    tried: set[bytes] = set()
    repairs = 0
    it = 0
    for it in range(1, max_iterations + 1):
        if time.perf_counter() - t0 > seconds:
            break
        w = cost - lam[j]
        # Only arcs of negative value enter a knapsack: sort those, by site and then value.
        order = np.flatnonzero(w < 0)
        order = order[np.lexsort((w[order], k[order]))]
        ks, ws, us = k[order], w[order], ub[order]
        cum = np.cumsum(us)
        first = np.searchsorted(ks, ks)  # where each arc's site starts in the sorted run
        before = cum - us - np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
        take = np.clip(cap[ks] - before, 0.0, us)
        value = np.bincount(ks, weights=ws * take, minlength=p.n_sites)
        site_v = fixed + value
        open_v, opened = _cover(site_v, reach, need)
        u = np.where(np.isfinite(unmet) & (unmet - lam < 0), q, 0.0)
        unserved = (np.minimum(unmet - lam, 0.0) * q)[u > 0].sum()
        dual = float(lam @ q + open_v + unserved)
        if dual > best_bound + 1e-9 * max(1.0, abs(dual)):
            best_bound, best_lam, best_site_v, best_open = dual, lam.copy(), site_v.copy(), opened.copy()
            stall = 0
        else:
            stall += 1
            if stall >= 15:
                theta, stall = theta / 2, 0
        x = np.zeros(live.shape[0])
        x[order] = np.where(opened[ks], take, 0.0)
        g = q - np.bincount(j, weights=x, minlength=p.n_demands) - u
        # a primal solution from the sites the relaxation opens (once per distinct set)
        if it % 10 == 1 or it == max_iterations:
            key = np.packbits(opened).tobytes()
            if key not in tried:
                tried.add(key)
                flow = _open_and_route(prep, opened, site_v, seconds=max(0.5, seconds / 10))
                repairs += 1
                if flow is not None:
                    obj, ok = objective_of(prep, flow)
                    if ok and obj < best_obj:
                        best_obj, best_flow = obj, flow
        norm = float(g @ g)
        if norm <= 1e-12 or theta < 1e-4:
            break
        target = best_obj if math.isfinite(best_obj) else dual + 0.05 * max(1.0, abs(dual))
        step = theta * max(target - dual, 1e-9 * max(1.0, abs(dual))) / norm
        lam = lam + step * g
        lam = np.minimum(lam, np.where(np.isfinite(unmet), unmet, np.inf))
    # what opening a site adds to the bound: the cover's optimum with the site forced in, less the optimum
    base, _ = _cover(best_site_v, reach, need)
    added = np.zeros(p.n_sites)
    for s in np.flatnonzero(~best_open).tolist():
        forced, _ = _cover(best_site_v, reach, need, force=s)
        added[s] = max(forced - base, 0.0)
    return LagrangianResult(best_bound, best_lam, added, best_flow, best_obj, it, repairs, best_open)


def _open_and_route(prep: Prep, opened: B, site_value: F64, *, seconds: float) -> I64 | None:
    """Route every demand over the opened sites (adding the next best until they can hold the must-serve
    demand): with the sites fixed open, a transportation LP whose vertex is integral."""
    p = prep.p
    opened = opened.copy()
    need = float(p.demand_quantity[p.must_serve].sum())
    for s in np.argsort(site_value, kind="stable").tolist():
        if float(prep.site_cap[opened].sum()) >= 1.05 * need:
            break
        opened[s] = True
    arcs = prep.live[opened[p.arc_site[prep.live]]]
    spec = make_spec(prep, np.zeros(p.n_arcs, dtype=np.int64), np.arange(p.n_demands, dtype=np.int64), arcs)
    lay = _layout(prep, spec)
    model, n_a, y_index, _ = _mip_proto(prep, spec, lay, relax=True, link=False, hint=None)
    for yi in y_index[y_index >= 0].tolist():
        model.variable[yi].lower_bound = 1.0
    response = _run(model, "glop", seconds)
    if response.status != _OPTIMAL:
        return None
    values = np.array(response.variable_value[:n_a], dtype=np.float64)
    if np.abs(values - np.round(values)).max(initial=0.0) > 1e-6:
        return None
    flow = np.zeros(p.n_arcs, dtype=np.int64)
    flow[spec.arcs] = np.clip(np.round(values).astype(np.int64), 0, lay.vub) * lay.fq
    return flow


# --- facility search: open/close moves, each routed exactly ------------------------------------------------
# Min-cost flow works in int64: costs are scaled so that no sum it can form comes near 2^63.
_FLOW_LIMIT = float(2**60)


class Transport:
    """The best flows for a fixed set of open sites (fixed-charge transportation shapes only): a min-cost
    flow from the demands through the open sites' arcs to a sink, with an arc straight to the sink for
    demand that may go unmet. Costs are scaled to integers; a result is then re-priced exactly."""

    def __init__(self, prep: Prep) -> None:
        p = prep.p
        self.prep = prep
        live = prep.live
        self.cost = p.arc_cost[live] + p.site_unit_cost[p.arc_site[live]]
        unmet = np.where(prep.finite_unmet, p.demand_unmet_cost, 0.0)
        top = max(float(np.abs(self.cost).max(initial=0.0)), float(unmet.max(initial=0.0)), 1e-9)
        mass = top * max(float(p.demand_quantity.sum()), 1.0)
        self.scale = 10.0 ** math.floor(math.log10(_FLOW_LIMIT / mass)) if mass > 0 else 1.0
        self.scale = min(self.scale, 1e9)
        self.unit = np.round(self.cost * self.scale).astype(np.int64)
        self.unmet_unit = np.round(unmet * self.scale).astype(np.int64)
        # How far a routed objective may be from its estimate: half a scaled unit on every unit of flow.
        self.slack = float(p.demand_quantity.sum()) / self.scale + 1e-9

    def route(self, opened: B) -> tuple[I64, float] | None:
        """The flow over the open sites and its objective up to the rounding of the scaled costs (within
        ``slack``); None when they cannot serve the must-serve demand."""
        prep, p = self.prep, self.prep.p
        live = prep.live
        k = p.arc_site[live]
        use = opened[k]
        arcs = live[use]
        n, m = p.n_demands, p.n_sites
        sink = n + m
        soft = np.flatnonzero(prep.finite_unmet)
        tails = np.concatenate([p.arc_demand[arcs], n + np.flatnonzero(opened), soft])
        heads = np.concatenate(
            [n + p.arc_site[arcs], np.full(int(opened.sum()), sink), np.full(soft.size, sink)]
        )
        caps = np.concatenate([prep.vub[arcs], prep.site_cap[opened], p.demand_quantity[soft]]).astype(
            np.int64
        )
        costs = np.concatenate(
            [self.unit[use], np.zeros(int(opened.sum()), dtype=np.int64), self.unmet_unit[soft]]
        )
        flow_solver = min_cost_flow.SimpleMinCostFlow()
        flow_solver.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
        supply = np.zeros(n + m + 1, dtype=np.int64)
        supply[:n] = p.demand_quantity
        supply[sink] = -int(p.demand_quantity.sum())
        flow_solver.set_nodes_supplies(np.arange(n + m + 1), supply)
        if flow_solver.solve() != flow_solver.OPTIMAL:
            return None
        # An int64 overflow inside the solver still reports OPTIMAL, with a cost near 2^63: distrust it.
        if abs(flow_solver.optimal_cost()) >= _FLOW_LIMIT * 4:
            return None
        flows = flow_solver.flows(np.arange(arcs.shape[0]))
        out = np.zeros(p.n_arcs, dtype=np.int64)
        out[arcs] = flows
        used = np.bincount(p.arc_site[arcs], weights=flows, minlength=m) > 0
        estimate = flow_solver.optimal_cost() / self.scale + float(p.site_fixed_cost[used].sum())
        return out, estimate


@dataclass
class FacilityStats:
    routes: int = 0
    improvements: int = 0
    sweeps: int = 0
    kicks: int = 0
    local_optimum: bool = False


def facility_search(
    prep: Prep,
    flow: I64,
    objective: float,
    *,
    rank: F64,
    deadline: float,
    seed: int,
    on_better: Any = None,
    enough: Any = None,
) -> tuple[I64, float, FacilityStats]:
    """Iterated local search over which sites are open: close one, open one, or swap one open for one
    closed, each candidate set routed exactly (:class:`Transport`), first improvement until no move
    improves (a local optimum); then a kick (two random swaps from the best set) and again, until the
    deadline. Sites are tried in ``rank`` order (lowest first: the Lagrangian's cost of opening them).
    ``on_better(flow, objective)`` is told of each new best and returns whether the candidates changed
    (sites ruled out since are no longer tried); ``enough()``, asked at each local optimum, ends the
    search early."""
    p = prep.p
    rng = np.random.default_rng(seed)
    transport = Transport(prep)
    stats = FacilityStats()
    best_flow, best_obj = flow, objective

    def open_of(f: I64) -> B:
        out: B = np.bincount(p.arc_site, weights=f > 0, minlength=p.n_sites) > 0
        return out

    def candidates() -> I64:
        has = np.bincount(p.arc_site[prep.live], minlength=p.n_sites) > 0
        return np.flatnonzero(has & prep.switch)

    def route(trial: B, bar: float) -> tuple[I64, float] | None:
        """The trial's flow and objective when it is feasible and below ``bar``."""
        answer = transport.route(trial)
        stats.routes += 1
        if answer is None:
            return None
        routed, estimate = answer
        if estimate >= bar + transport.slack:
            return None
        obj, ok = objective_of(prep, routed)
        return (routed, obj) if ok and obj < bar else None

    def offer(f: I64, obj: float) -> None:
        nonlocal best_flow, best_obj, transport
        if obj < best_obj - 1e-9 * max(1.0, abs(best_obj)):
            best_flow, best_obj = f, obj
            stats.improvements += 1
            if on_better is not None and on_better(f, obj):
                transport = Transport(prep)

    def descend(f: I64, obj: float) -> tuple[I64, float]:
        """First improvement from ``f`` until a local optimum (or the deadline)."""
        while time.perf_counter() < deadline:
            stats.sweeps += 1
            opened = open_of(f)
            cand = candidates()
            closed = cand[~opened[cand]]
            closed = closed[np.argsort(rank[closed], kind="stable")]
            open_now = np.flatnonzero(opened & prep.switch)
            moves: list[tuple[int, int]] = [(int(i), -1) for i in rng.permutation(open_now)]
            moves += [(-1, int(k)) for k in closed]
            for k in closed.tolist():
                moves += [(int(i), k) for i in rng.permutation(open_now)]
            bar = obj - 1e-9 * max(1.0, abs(obj))
            found = None
            for out, into in moves:
                if time.perf_counter() >= deadline:
                    break
                trial = opened.copy()
                if out >= 0:
                    trial[out] = False
                if into >= 0:
                    if opened[into]:
                        continue
                    trial[into] = True
                found = route(trial, bar)
                if found is not None:
                    break
            if found is None:
                stats.local_optimum = time.perf_counter() < deadline
                return f, obj
            f, obj = found
            offer(f, obj)
        return f, obj

    descend(best_flow, best_obj)
    while time.perf_counter() < deadline and not (enough is not None and enough()):
        # a kick: two swaps from the best set, each a random open site for a closed one of low rank
        trial = open_of(best_flow)
        cand = candidates()
        for _ in range(2):
            open_now = np.flatnonzero(trial & prep.switch)
            closed = cand[~trial[cand]]
            if open_now.size == 0 or closed.size == 0:
                break
            closed = closed[np.argsort(rank[closed], kind="stable")][: max(4, closed.size // 4)]
            trial[int(rng.choice(open_now))] = False
            trial[int(rng.choice(closed))] = True
        stats.kicks += 1
        kicked = route(trial, math.inf)
        if kicked is None:
            continue
        offer(*kicked)
        descend(*kicked)
    return best_flow, best_obj, stats


# --- Lagrangian relaxation for assignment shapes (generalised assignment) --------------------------------
# A site's knapsack is solved by a dynamic programme over its capacity: above this many units, not at all.
_KNAPSACK_CAPACITY = 100_000


def assignment_lagrangian_applies(prep: Prep) -> bool:
    """Whole must-serve demands, no fixed costs, minimums or production uses, and each resource used by
    the arcs of one site only (its capacity): relaxing the demand rows leaves one 0-1 knapsack per site."""
    p = prep.p
    if p.n_demands == 0 or not p.demand_whole.all() or not p.must_serve.all():
        return False
    if prep.switch.any() or (p.site_unit_use[p.site_resource >= 0] > 0).any() or (p.resource_extra > 0).any():
        return False
    live = prep.live
    r = p.arc_resource[live]
    on = (r >= 0) & (p.arc_use[live] > 0)
    if not on.any():
        return False
    owner = np.full(p.n_resources, -1, dtype=np.int64)
    owner[r[on]] = p.arc_site[live][on]
    if (owner[r[on]] != p.arc_site[live][on]).any():
        return False
    # one resource per site
    per_site = np.zeros(p.n_sites, dtype=np.int64)
    np.add.at(per_site, owner[owner >= 0], 1)
    if (per_site > 1).any():
        return False
    cap = np.floor(p.resource_capacity * prep.res_scale + 1e-9)
    return bool(cap[owner >= 0].max(initial=0.0) <= _KNAPSACK_CAPACITY)


@dataclass
class AssignmentLagrangian:
    bound: float  # a valid lower bound
    price: F64  # per demand: the multipliers at the best bound
    profit: F64  # per arc (0 off the live ones): price of its demand less its cost
    site_best: F64  # per site: its best knapsack's profit at those prices
    wish: B  # per arc: in its site's best knapsack
    iterations: int


def _knapsack(weight: I64, profit: F64, capacity: int) -> tuple[float, B]:
    """0-1 knapsack (maximise profit), exactly, by a dynamic programme over the capacity."""
    n = weight.shape[0]
    chosen = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return 0.0, chosen
    f = np.zeros(capacity + 1)
    take = np.zeros((n, capacity + 1), dtype=np.bool_)
    for t in range(n):
        w = int(weight[t])
        if w == 0:
            f += profit[t]
            take[t] = True
            continue
        via = f[: capacity + 1 - w] + profit[t]
        better = via > f[w:]
        take[t, w:] = better
        f[w:] = np.where(better, via, f[w:])
    at = capacity
    for t in range(n - 1, -1, -1):
        if take[t, at]:
            chosen[t] = True
            at -= int(weight[t])
    return float(f[capacity]), chosen


def assignment_lagrangian(
    prep: Prep, *, seconds: float, upper: float, max_iterations: int = 300
) -> AssignmentLagrangian:
    """Relax each demand's 'exactly one arc' row with a price λ_j: every site then keeps its most
    profitable knapsack of arcs (profit ``λ_j - cost``, weights its resource's uses, rounded down, which
    only relaxes further), and ``Σ λ - Σ best profits`` bounds the optimum. Subgradient steps towards
    ``upper`` (the incumbent's objective, the constant excluded). Far stronger than the LP on tight
    generalised assignment instances; the gap to a solution splits exactly into what each site's arcs
    fall short of its best knapsack, which is where the search looks."""
    p = prep.p
    t0 = time.perf_counter()
    live = prep.live
    j = p.arc_demand[live]
    k = p.arc_site[live]
    cost = prep.arc_obj[live]
    r = p.arc_resource[live]
    S = prep.res_scale
    weight = np.where(r >= 0, np.floor(p.arc_use[live] * prep.fq[live] * S + 1e-9), 0.0).astype(np.int64)
    site_res = np.full(p.n_sites, -1, dtype=np.int64)
    site_res[k[r >= 0]] = r[r >= 0]
    capacity = np.where(
        site_res >= 0, np.floor(p.resource_capacity[np.maximum(site_res, 0)] * S + 1e-9), np.inf
    )
    order, start = runs(k, p.n_sites)
    lam = np.full(p.n_demands, np.inf)
    np.minimum.at(lam, j, cost)
    lam[~np.isfinite(lam)] = 0.0
    best_bound, best_lam = -math.inf, lam.copy()
    best_site = np.zeros(p.n_sites)
    best_wish = np.zeros(live.shape[0], dtype=np.bool_)
    theta, stall, iterations = 1.0, 0, 0
    for _ in range(max_iterations):
        if time.perf_counter() - t0 > seconds:
            break
        iterations += 1
        profit = lam[j] - cost
        x = np.zeros(live.shape[0], dtype=np.bool_)
        site_best = np.zeros(p.n_sites)
        for s in range(p.n_sites):
            pos = order[start[s] : start[s + 1]]
            pos = pos[profit[pos] > 0]
            if math.isinf(capacity[s]):
                x[pos] = True
                site_best[s] = float(profit[pos].sum())
                continue
            cap = int(capacity[s])
            pos = pos[weight[pos] <= cap]
            site_best[s], chosen = _knapsack(weight[pos], profit[pos], cap)
            x[pos[chosen]] = True
        dual = float(lam.sum() - site_best.sum())
        if dual > best_bound + 1e-9 * max(1.0, abs(dual)):
            best_bound, best_lam, best_site, best_wish = dual, lam.copy(), site_best, x
            stall = 0
        else:
            stall += 1
            if stall >= 10:
                theta, stall = theta / 2, 0
        g = 1.0 - np.bincount(j, weights=x, minlength=p.n_demands)
        norm = float(g @ g)
        if norm <= 1e-12 or theta < 1e-3:
            break
        target = upper if math.isfinite(upper) else dual + 0.05 * max(1.0, abs(dual))
        lam = lam + theta * max(target - dual, 1e-6 * max(1.0, abs(dual))) / norm * g
    profit_all = np.zeros(p.n_arcs)
    profit_all[live] = best_lam[j] - cost
    wish = np.zeros(p.n_arcs, dtype=np.bool_)
    wish[live[best_wish]] = True
    return AssignmentLagrangian(best_bound, best_lam, profit_all, best_site, wish, iterations)
