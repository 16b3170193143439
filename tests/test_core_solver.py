"""The core solver against brute force and an independent MIP, its determinism, and its checker."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from ortools.linear_solver import pywraplp

from solvers.allocation.core import CoreInfeasible, CoreProblem, CoreResult, check_feasible
from solvers.allocation.core_lns import (
    Prep,
    Transport,
    _cover,
    _knapsack,
    assignment_lagrangian,
    assignment_lagrangian_applies,
    lagrangian,
    objective_of,
)
from solvers.allocation.core_solve import solve_core
from solvers.allocation.data import ProblemError
from solvers.allocation.orlib import CflpInstance, read_gap, to_cflp_problem
from tests.shared_bench import BENCH


def random_problem(seed: int, demands: int, sites: int, resources: int, qmax: int) -> CoreProblem:
    """Whole and splittable demands, fixed costs, minimums, resources with paid extra, unmet costs."""
    rng = np.random.default_rng(seed)
    q = rng.integers(1, qmax + 1, demands)
    whole = rng.random(demands) < 0.5
    unmet = np.where(rng.random(demands) < 0.4, np.inf, rng.uniform(5, 30, demands).round(2))
    fixed = np.where(rng.random(sites) < 0.6, rng.uniform(1, 20, sites).round(1), 0.0)
    smin = np.where(rng.random(sites) < 0.4, rng.integers(1, qmax + 2, sites), 0).astype(np.int64)
    smax = np.maximum(rng.integers(2, 2 * qmax + 2, sites), smin).astype(np.int64)
    site_res = np.where(rng.random(sites) < 0.5, rng.integers(0, resources, sites), -1).astype(np.int64)
    arc_d, arc_s = [], []
    for j in range(demands):
        for k in rng.choice(sites, size=int(rng.integers(1, min(3, sites) + 1)), replace=False):
            arc_d.append(j)
            arc_s.append(int(k))
    n = len(arc_d)
    return CoreProblem(
        demand_quantity=q.astype(np.int64),
        demand_whole=whole,
        demand_unmet_cost=unmet,
        site_fixed_cost=fixed,
        site_min=smin,
        site_max=smax,
        site_unit_cost=rng.uniform(0, 3, sites).round(2),
        site_resource=site_res,
        site_unit_use=rng.uniform(0.5, 2, sites).round(1),
        arc_demand=np.array(arc_d, dtype=np.int64),
        arc_site=np.array(arc_s, dtype=np.int64),
        arc_cost=rng.uniform(0, 10, n).round(2),
        arc_resource=np.where(rng.random(n) < 0.6, rng.integers(0, resources, n), -1).astype(np.int64),
        arc_use=rng.uniform(0.5, 3, n).round(1),
        resource_capacity=rng.uniform(2, 3 * qmax, resources).round(1),
        resource_extra=rng.uniform(0, 3, resources).round(1),
        resource_extra_cost=rng.uniform(1, 5, resources).round(2),
    )


def brute_force(p: CoreProblem) -> float:
    """The optimum by enumerating every flow (everything else at its cheapest); inf when infeasible."""
    options = []
    for j in range(p.n_demands):
        arcs = np.flatnonzero(p.arc_demand == j)
        q = int(p.demand_quantity[j])
        must = math.isinf(p.demand_unmet_cost[j])
        rows = []
        if p.demand_whole[j]:
            if not must:
                rows.append({})
            rows.extend({int(a): q} for a in arcs)
        else:
            for xs in itertools.product(range(q + 1), repeat=arcs.size):
                if sum(xs) == q or (not must and sum(xs) < q):
                    rows.append({int(a): x for a, x in zip(arcs, xs, strict=True)})
        options.append(rows)
    combos = []
    for choice in itertools.product(*options):
        x = np.zeros(p.n_arcs)
        for part in choice:
            for a, v in part.items():
                x[a] = v
        combos.append(x)
    X = np.array(combos)  # [combo, arc]
    to_site = np.zeros((p.n_arcs, p.n_sites))
    to_site[np.arange(p.n_arcs), p.arc_site] = 1
    inflow = X @ to_site
    z = np.where(inflow > 0, np.maximum(inflow, p.site_min), 0)
    use = np.zeros((X.shape[0], p.n_resources))
    for a in range(p.n_arcs):
        if p.arc_resource[a] >= 0:
            use[:, p.arc_resource[a]] += p.arc_use[a] * X[:, a]
    for k in range(p.n_sites):
        if p.site_resource[k] >= 0:
            use[:, p.site_resource[k]] += p.site_unit_use[k] * z[:, k]
    over = np.maximum(use - p.resource_capacity, 0)
    to_demand = np.zeros((p.n_arcs, p.n_demands))
    to_demand[np.arange(p.n_arcs), p.arc_demand] = 1
    unmet = p.demand_quantity - X @ to_demand
    unmet_cost = np.where(unmet > 0, np.where(np.isinf(p.demand_unmet_cost), 0, p.demand_unmet_cost), 0)
    cost = (
        X @ p.arc_cost
        + z @ p.site_unit_cost
        + (z > 0) @ p.site_fixed_cost
        + over @ p.resource_extra_cost
        + (unmet * unmet_cost).sum(axis=1)
    )
    ok = (z <= p.site_max).all(axis=1) & (over <= p.resource_extra + 1e-9).all(axis=1)
    return float(cost[ok].min()) if ok.any() else math.inf


def scip_reference(p: CoreProblem) -> float:
    """The model as written in the docstring, built row by row with pywraplp (SCIP); inf when infeasible."""
    s = pywraplp.Solver.CreateSolver("SCIP")
    inf = s.infinity()
    x = [s.IntVar(0, int(p.demand_quantity[p.arc_demand[a]]), f"x{a}") for a in range(p.n_arcs)]
    w = [s.BoolVar(f"w{a}") for a in range(p.n_arcs)]
    y = [s.BoolVar(f"y{k}") for k in range(p.n_sites)]
    z = [s.IntVar(0, int(p.site_max[k]), f"z{k}") for k in range(p.n_sites)]
    u = [s.IntVar(0, int(p.demand_quantity[j]), f"u{j}") for j in range(p.n_demands)]
    e = [s.NumVar(0, float(p.resource_extra[r]), f"e{r}") for r in range(p.n_resources)]
    for j in range(p.n_demands):
        arcs = np.flatnonzero(p.arc_demand == j).tolist()
        q = int(p.demand_quantity[j])
        s.Add(sum(x[a] for a in arcs) + u[j] == q)
        if math.isinf(p.demand_unmet_cost[j]):
            s.Add(u[j] == 0)
        if p.demand_whole[j]:
            for a in arcs:
                s.Add(x[a] == q * w[a])
            s.Add(sum(w[a] for a in arcs) <= 1)
    for k in range(p.n_sites):
        arcs = np.flatnonzero(p.arc_site == k).tolist()
        s.Add(z[k] >= sum(x[a] for a in arcs))
        s.Add(z[k] <= int(p.site_max[k]) * y[k])
        s.Add(z[k] >= int(p.site_min[k]) * y[k])
    for r in range(p.n_resources):
        s.Add(
            sum(float(p.arc_use[a]) * x[a] for a in np.flatnonzero(p.arc_resource == r).tolist())
            + sum(float(p.site_unit_use[k]) * z[k] for k in np.flatnonzero(p.site_resource == r).tolist())
            <= float(p.resource_capacity[r]) + e[r]
        )
    obj = s.Objective()
    for a in range(p.n_arcs):
        obj.SetCoefficient(x[a], float(p.arc_cost[a]))
    for k in range(p.n_sites):
        obj.SetCoefficient(z[k], float(p.site_unit_cost[k]))
        obj.SetCoefficient(y[k], float(p.site_fixed_cost[k]))
    for r in range(p.n_resources):
        obj.SetCoefficient(e[r], float(p.resource_extra_cost[r]))
    for j in range(p.n_demands):
        if not math.isinf(p.demand_unmet_cost[j]):
            obj.SetCoefficient(u[j], float(p.demand_unmet_cost[j]))
    obj.SetMinimization()
    s.SetSolverSpecificParametersAsString("limits/gap = 0\n")
    _ = inf
    status = s.Solve()
    if status == pywraplp.Solver.INFEASIBLE:
        return math.inf
    assert status == pywraplp.Solver.OPTIMAL
    return float(obj.Value())


def _agrees(p: CoreProblem, optimum: float, seed: int = 0) -> CoreResult | None:
    if math.isinf(optimum):
        with pytest.raises(CoreInfeasible):
            solve_core(p, seconds=5, seed=seed)
        return None
    r = solve_core(p, seconds=5, seed=seed)
    assert check_feasible(p, r) == []
    assert r.objective == pytest.approx(optimum, abs=1e-6)
    assert r.bound <= optimum + 1e-6
    assert r.status == "optimal" and r.bound == pytest.approx(optimum, abs=1e-6)
    return r


@pytest.mark.parametrize("seed", range(24))
def test_optimal_against_brute_force(seed: int) -> None:
    p = random_problem(seed, demands=4, sites=3, resources=2, qmax=2)
    _agrees(p, brute_force(p), seed)


@pytest.mark.parametrize("seed", range(100, 110))
def test_optimal_against_a_mip(seed: int) -> None:
    p = random_problem(seed, demands=10, sites=4, resources=3, qmax=6)
    _agrees(p, scip_reference(p), seed)


def test_unrounded_costs_still_optimal() -> None:
    """Costs with no finite decimal scale: CP-SAT cannot be exact, the MIP must carry the proof."""
    base = random_problem(7, demands=10, sites=4, resources=3, qmax=6)
    rng = np.random.default_rng(7)
    p = dataclasses.replace(
        base,
        arc_cost=rng.uniform(0, 10, base.n_arcs) / 3.0,
        demand_whole=np.ones(base.n_demands, dtype=np.bool_),
    )
    _agrees(p, scip_reference(p))


def test_instances_the_brute_force_covers_are_varied() -> None:
    """The random instances exercise every feature (guards the generator against drifting to trivia)."""
    ps = [random_problem(s, demands=4, sites=3, resources=2, qmax=2) for s in range(24)]
    results = [solve_core(p, seconds=5) for p in ps if math.isfinite(brute_force(p))]
    assert any(p.demand_whole.any() and (~p.demand_whole).any() for p in ps)
    assert any((r.unmet > 0).any() for r in results)
    assert any((r.extra > 0).any() for r in results)
    assert any(
        (r.production > np.bincount(p.arc_site, r.flow, p.n_sites)).any()
        for p, r in zip([p for p in ps if math.isfinite(brute_force(p))], results, strict=True)
    )
    assert any(r.opened.sum() < r.opened.size for r in results)


def test_same_seed_same_result() -> None:
    p = read_gap(BENCH / "gap" / "d05100")
    # ``work`` stops the search deterministically, long before the (generous) time limit.
    a = solve_core(p, seconds=60, seed=3, work=2.0)
    b = solve_core(p, seconds=60, seed=3, work=2.0)
    assert a.stopped_by == "work"
    assert np.array_equal(a.flow, b.flow)
    assert a.objective == b.objective and a.bound == b.bound
    assert a.iterations == b.iterations > 0


def test_a_binding_time_limit_still_gives_a_feasible_solution_and_a_valid_bound() -> None:
    p = read_gap(BENCH / "gap" / "d20100")
    r = solve_core(p, seconds=3)
    assert r.stopped_by == "time" and r.status == "feasible"
    assert check_feasible(p, r) == []
    assert r.bound <= 6190 <= r.objective  # the best known lies between
    assert 0 < r.gap < 0.05


def test_the_search_on_a_larger_mixed_problem() -> None:
    """Hundreds of demands: with little work the search does the job, every sub-solution it proposes holds
    once checked against the real capacities, and a full run proves the optimum."""
    p = random_problem(5, demands=400, sites=60, resources=20, qmax=8)
    p = dataclasses.replace(p, demand_unmet_cost=np.where(p.must_serve, 60.0, p.demand_unmet_cost))
    short = solve_core(p, seconds=30, seed=1, work=0.3)
    assert check_feasible(p, short) == []
    assert short.iterations > 0 and short.stopped_by == "work"
    assert short.counters["lns_rejected"] == 0
    full = solve_core(p, seconds=30, seed=1)
    assert full.status == "optimal" and check_feasible(p, full) == []
    assert short.bound <= full.objective <= short.objective
    assert short.objective <= 1.1 * full.objective


def test_a_hint_is_kept_when_feasible() -> None:
    p = read_gap(BENCH / "gap" / "c0515_1")
    r = solve_core(p, seconds=5)
    again = solve_core(p, seconds=5, hint=r)
    assert again.objective == r.objective == 261


def test_must_serve_without_a_way_raises() -> None:
    p = random_problem(1, demands=4, sites=3, resources=2, qmax=2)
    q = p.demand_quantity.copy()
    q[0] = 10**6
    p = dataclasses.replace(p, demand_quantity=q, demand_unmet_cost=np.full(p.n_demands, np.inf))
    with pytest.raises(CoreInfeasible, match="demand 0 must be served"):
        solve_core(p, seconds=2)


def test_problem_errors_name_the_array() -> None:
    p = random_problem(1, demands=4, sites=3, resources=2, qmax=2)
    with pytest.raises(ProblemError, match="arc_site"):
        dataclasses.replace(p, arc_site=p.arc_site + 10)
    with pytest.raises(ProblemError, match="demand_quantity"):
        dataclasses.replace(p, demand_quantity=np.zeros(p.n_demands, dtype=np.int64))
    with pytest.raises(ProblemError, match="site_min"):
        dataclasses.replace(p, site_min=p.site_max + 1)
    with pytest.raises(ProblemError, match="resource_extra"):
        dataclasses.replace(p, resource_extra=np.zeros(p.n_resources + 1))
    with pytest.raises(ProblemError, match="arc_cost"):
        dataclasses.replace(p, arc_cost=p.arc_cost.astype(np.float32))


# --- the checker ------------------------------------------------------------------------------------------
def _solved() -> tuple[CoreProblem, CoreResult]:
    for seed in range(50):
        p = random_problem(seed, demands=10, sites=4, resources=3, qmax=6)
        if math.isinf(scip_reference(p)):
            continue
        r = solve_core(p, seconds=5)
        if (r.flow > 0).sum() >= 3 and p.demand_whole.any():
            return p, r
    raise AssertionError("no suitable instance")


def test_checker_accepts_the_solution_and_catches_each_violation() -> None:
    p, r = _solved()
    assert check_feasible(p, r) == []

    def broken(**changes: object) -> list[str]:
        return check_feasible(p, dataclasses.replace(r, **changes))

    assert any("objective" in m for m in broken(objective=r.objective + 1))
    # a must-serve demand left unmet
    must = np.flatnonzero(p.must_serve)
    if must.size:
        flow = r.flow.copy()
        flow[p.arc_demand == must[0]] = 0
        unmet = r.unmet.copy()
        unmet[must[0]] = p.demand_quantity[must[0]]
        assert any("must be served" in m for m in broken(flow=flow, unmet=unmet))
    # served + unmet must add up
    unmet = r.unmet.copy()
    unmet[0] += 1
    assert any("demand 0" in m for m in broken(unmet=unmet))
    # production over the maximum, and a site producing while closed
    k = int(np.argmax(r.production))
    production = r.production.copy()
    production[k] = p.site_max[k] + 1
    assert any(f"site {k}" in m and "maximum" in m for m in broken(production=production))
    opened = r.opened.copy()
    opened[k] = False
    assert any("not opened" in m for m in broken(opened=opened))
    # production below its flow
    production = r.production.copy()
    production[k] -= 1
    assert any("below the flow" in m or "minimum" in m for m in broken(production=production))
    # a resource over capacity with no extra claimed
    used = np.flatnonzero(r.extra > 0)
    if used.size:
        assert any("resource" in m for m in broken(extra=np.zeros(p.n_resources)))
    assert any("shape" in m for m in broken(flow=r.flow[:-1]))


def test_checker_catches_a_split_whole_demand_and_overfull_agents() -> None:
    p = read_gap(BENCH / "gap" / "c0515_1")
    r = solve_core(p, seconds=5)
    j = 0
    arcs = np.flatnonzero(p.arc_demand == j)
    flow = r.flow.copy()
    flow[arcs] = 0
    flow[arcs[:2]] = 1  # one unit on two arcs: a whole job split (and over-served)
    problems = check_feasible(p, dataclasses.replace(r, flow=flow))
    assert any("served on 2 arcs" in m for m in problems)
    # every job on agent 0: its capacity is exceeded
    flow = np.where(p.arc_site == 0, 1, 0).astype(np.int64)
    problems = check_feasible(p, dataclasses.replace(r, flow=flow))
    assert any(m.startswith("resource 0: usage") for m in problems)


# --- the facility-location and assignment relaxations -----------------------------------------------------
def _cover_brute(value: np.ndarray, cap: np.ndarray, need: int, force: int = -1) -> float:
    best = math.inf
    for mask in itertools.product([False, True], repeat=value.shape[0]):
        y = np.array(mask)
        if force >= 0 and not y[force]:
            continue
        if int(cap[y].sum()) >= need or int(cap.sum()) < need:
            best = min(best, float(value[y].sum()))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_cover_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    value = rng.uniform(-5, 20, n).round(2)
    equal = seed % 2 == 0
    cap = np.full(n, 7, dtype=np.int64) if equal else rng.integers(0, 15, n).astype(np.int64)
    need = int(rng.integers(1, max(2, int(cap.sum()) + 3)))
    for force in (-1, int(rng.integers(n))):
        got, chosen = _cover(value, cap, need, force=force)
        if int(cap.sum()) >= need:
            assert int(cap[chosen].sum()) >= need
        assert got == pytest.approx(float(value[chosen].sum()))
        assert got == pytest.approx(_cover_brute(value, cap, need, force))


def test_cover_with_many_buckets_is_a_relaxation() -> None:
    """Above the buckets' count the capacities are rounded up: never above the exact optimum."""
    rng = np.random.default_rng(5)
    value = rng.uniform(1, 10, 8)
    cap = rng.integers(10_000, 30_000, 8).astype(np.int64)
    need = int(cap.sum() * 0.6)
    got, _ = _cover(value, cap, need)
    assert got <= _cover_brute(value, cap, need) + 1e-9


@pytest.mark.parametrize("seed", range(8))
def test_knapsack_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 10))
    weight = rng.integers(0, 9, n).astype(np.int64)
    profit = rng.uniform(0.1, 10, n)
    capacity = int(rng.integers(0, 25))
    got, chosen = _knapsack(weight, profit, capacity)
    assert int(weight[chosen].sum()) <= capacity
    assert got == pytest.approx(float(profit[chosen].sum()))
    best = max(
        float(profit[np.array(m)].sum())
        for m in itertools.product([False, True], repeat=n)
        if int(weight[np.array(m)].sum()) <= capacity
    )
    assert got == pytest.approx(best)


def _small_cflp(seed: int, equal: bool) -> CoreProblem:
    rng = np.random.default_rng(seed)
    m, n = 6, 14
    demand = rng.integers(1, 30, n).astype(np.float64)
    cap = np.full(m, 80.0) if equal else rng.integers(40, 140, m).astype(np.float64)
    cost = rng.uniform(1, 60, (m, n)).round(3) * demand[None, :]
    return to_cflp_problem(CflpInstance(cap, rng.uniform(100, 400, m).round(1), demand, cost))


def _mip_optimum(p: CoreProblem) -> float:
    """An independent MIP of a facility-location core problem (SCIP, strong links)."""
    s = pywraplp.Solver.CreateSolver("SCIP")
    y = [s.BoolVar(f"y{k}") for k in range(p.n_sites)]
    x = [s.NumVar(0, float(p.demand_quantity[p.arc_demand[a]]), f"x{a}") for a in range(p.n_arcs)]
    for j in range(p.n_demands):
        s.Add(sum(x[a] for a in np.flatnonzero(p.arc_demand == j)) == float(p.demand_quantity[j]))
    for k in range(p.n_sites):
        arcs = np.flatnonzero(p.arc_site == k)
        s.Add(sum(x[a] for a in arcs) <= float(p.site_max[k]) * y[k])
    s.Minimize(
        sum(float(p.arc_cost[a]) * x[a] for a in range(p.n_arcs))
        + sum(float(p.site_fixed_cost[k]) * y[k] for k in range(p.n_sites))
    )
    assert s.Solve() == pywraplp.Solver.OPTIMAL
    return float(s.Objective().Value())


@pytest.mark.parametrize("seed", range(4))
def test_facility_lagrangian_bound_and_search(seed: int) -> None:
    """The cover-strengthened Lagrangian stays below the optimum; the exact routing of an open set matches
    the objective recomputed from its flows; the solver reaches the optimum of an independent MIP."""
    p = _small_cflp(seed, equal=seed % 2 == 0)
    optimum = _mip_optimum(p)
    prep = Prep(p)
    lag = lagrangian(prep, seconds=5, seed=seed)
    assert lag.bound <= optimum + 1e-6 * optimum
    assert (lag.site_value >= 0).all()
    routed = Transport(prep).route(np.ones(p.n_sites, dtype=np.bool_))
    assert routed is not None
    flow, estimate = routed
    objective, ok = objective_of(prep, flow)
    assert ok and objective == pytest.approx(estimate, abs=Transport(prep).slack + 1e-6)
    r = solve_core(p, seconds=10, seed=seed)
    assert r.objective == pytest.approx(optimum, rel=1e-7)
    assert check_feasible(p, r) == []


def test_transport_with_huge_costs_does_not_overflow() -> None:
    """Costs scaled for the int64 min-cost flow: huge ones get a small scale, never a wrapped-around cost."""
    p = _small_cflp(1, equal=False)
    p = dataclasses.replace(p, arc_cost=p.arc_cost * 1e13)
    prep = Prep(p)
    routed = Transport(prep).route(np.ones(p.n_sites, dtype=np.bool_))
    assert routed is not None
    flow, estimate = routed
    objective, ok = objective_of(prep, flow)
    assert ok and objective == pytest.approx(estimate, rel=1e-9)


def test_assignment_lagrangian_bounds_real_instances() -> None:
    """The knapsack Lagrangian of a generalised assignment instance: below the optimum, above the LP."""
    for name, optimum in (("c0515_1", 261), ("c0824_1", 403)):
        p = read_gap(BENCH / "gap" / name)
        prep = Prep(p)
        assert assignment_lagrangian_applies(prep)
        lag = assignment_lagrangian(prep, seconds=10, upper=float(optimum))
        assert lag.bound <= optimum + 1e-9
        assert lag.bound >= 0.98 * optimum
        assert lag.wish.any()
