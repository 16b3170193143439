"""``solve_core``: the core problem solved to a proven bound within a time limit.

The recipe, the same for every shape of problem:

1. the LP relaxation (GLOP), with the strong links ``x_a ≤ min(q_j, site_max)·y_k`` when they are not too
   many: a lower bound, and reduced costs that rank each demand's arcs;
2. an exact attempt on the whole problem with a hint (the caller's, if feasible): CP-SAT when most demands
   are whole (assignment-shaped: CP-SAT's clause learning is strong there), a MIP (SCIP) when they are
   splittable (facility-location-shaped: fractional costs, strong LP). Small problems end here, proven;
   For fixed-charge transportation (splittable demands, no resources on them, no minimums: facility
   location) a Lagrangian relaxation of the demand rows follows: the strong bound the LP without its links
   lacks, a start, prices that rank arcs, and sites it rules out;
3. reduced-cost fixing with the LP against the incumbent, then large-neighbourhood search
   (``core_lns.Search``) with the same engine on sub-problems, until the time (or the ``work`` budget) runs
   out — or, for CP-SAT, until sub-problems of most of the problem solve to optimality within their small
   limit, when the time left goes to
4. a last whole-problem run hinted with the best solution, which may prove it optimal.

Every sub-solve runs single-threaded with a seed and a deterministic limit (CP-SAT's deterministic time,
SCIP's node count); wall time only stops the whole. So a run that ends before its time limit is repeatable.
With ``workers > 1`` (CP-SAT only: SCIP holds the GIL) the whole-problem runs become a portfolio of seeds
and the search runs one lane per worker, the lanes meeting after a fixed number of steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import numpy as np

from solvers.allocation.core import CoreInfeasible, CoreProblem, CoreResult, evaluate, normalised
from solvers.allocation.core_lns import (
    LagrangianResult,
    LpResult,
    Prep,
    Search,
    Spec,
    SubResult,
    assignment_lagrangian,
    assignment_lagrangian_applies,
    facility_search,
    full_spec,
    lagrangian,
    lagrangian_applies,
    make_spec,
    objective_of,
    solve_cpsat,
    solve_lp,
    solve_mip,
)
from solvers.allocation.data import F64, I64

__all__ = ["solve_core"]

# The strong links make the LP large; above this many the LP keeps only the aggregate capacity rows.
_MAX_LINKS = 20_000
# A whole-problem MIP above this many arcs spends the time limit in its root LP: go straight to the search.
_MAX_FULL_MIP_ARCS = 20_000
# Facility location, once the Lagrangian has closed sites and the search over open sites is done: the whole
# MIP gets the rest of the time up to this many arcs (with a strong bound and a good start it often proves).
_MAX_HANDOVER_ARCS = 30_000
_OPT_TOL = 1e-7
# Share of the time the first whole-problem run may take; the search gets the rest.
_EXACT_SHARE = 0.15
# Share of the time left the Lagrangian relaxation may take (fixed-charge transportation shapes).
_LAGRANGIAN_SHARE = 0.3
# Share of the time left the knapsack Lagrangian may take (assignment shapes).
_ASSIGNMENT_SHARE = 0.1
# Share of the time left the search over open sites may take (fixed-charge transportation shapes).
_FACILITY_SHARE = 0.5

T = TypeVar("T")


def _parallel(tasks: list[Callable[[], T]]) -> list[T]:
    """Run the tasks in threads (the solvers release the GIL), results in task order."""
    if len(tasks) == 1:
        return [tasks[0]()]
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(task) for task in tasks]
        return [f.result() for f in futures]


def _reachable(prep: Prep) -> None:
    """Raise :class:`CoreInfeasible` naming the first must-serve demand no arc can serve in full."""
    p = prep.p
    cap = np.bincount(p.arc_demand[prep.live], weights=(prep.vub * prep.fq)[prep.live], minlength=p.n_demands)
    short = p.must_serve & (cap < p.demand_quantity)
    if short.any():
        j = int(np.flatnonzero(short)[0])
        raise CoreInfeasible(
            f"demand {j} must be served ({p.demand_quantity[j]} units"
            f"{', whole' if p.demand_whole[j] else ''}) but its arcs can carry at most {int(cap[j])}"
        )


class _Best:
    def __init__(self, prep: Prep) -> None:
        self.prep = prep
        self.flow: I64 | None = None
        self.objective = math.inf
        self.bound = -math.inf
        self.bound_lp = -math.inf

    def offer(self, flow: I64) -> bool:
        objective, ok = objective_of(self.prep, flow)
        if ok and objective < self.objective - 1e-9 * max(1.0, abs(objective)):
            self.flow, self.objective = flow, objective
            return True
        return False

    def offer_sub(self, spec: Spec, r: SubResult) -> None:
        if r.flow is not None:
            flow = np.zeros(self.prep.p.n_arcs, dtype=np.int64)
            flow[spec.arcs] = r.flow
            self.offer(flow)
        # Only a run on the whole problem bounds it (after reduced-cost fixing too: no better solution uses
        # a pruned arc, and the incumbent is in the model).
        if spec.full and r.exact_bound and math.isfinite(r.bound):
            self.raise_bound(r.bound + self.prep.constant)

    def raise_bound(self, bound: float) -> None:
        self.bound = max(self.bound, bound)

    def closed(self) -> bool:
        return self.flow is not None and self.objective - self.bound <= _OPT_TOL * max(
            1.0, abs(self.objective)
        )


def _prune(prep: Prep, lp: LpResult, best: _Best) -> int:
    """Reduced-cost fixing: an arc (or a site's opening) whose LP reduced cost alone lifts the LP bound to
    the incumbent cannot be in a better solution. The incumbent's own arcs stay. Returns how many arcs are
    out."""
    assert best.flow is not None
    p = prep.p
    slack = best.objective - best.bound_lp
    if not math.isfinite(slack) or slack < 0:
        return 0
    tol = 1e-6 * max(1.0, abs(best.objective))
    keep = np.ones(p.n_arcs, dtype=np.bool_)
    keep[lp.arcs[lp.reduced > slack + tol]] = False
    closed = np.zeros(p.n_sites, dtype=np.bool_)
    closed[lp.sites[lp.site_reduced > slack + tol]] = True
    keep &= ~closed[p.arc_site]
    keep |= best.flow > 0
    before = prep.live.shape[0]
    prep.restrict(keep)
    return before - int(prep.live.shape[0])


def _lagrangian_shut(prep: Prep, lag: LagrangianResult, best: _Best, counters: dict[str, float]) -> bool:
    """Close every site whose opening alone lifts the Lagrangian bound past the incumbent: it is closed in
    anything better. The incumbent's own arcs stay. Returns whether any arc went."""
    assert best.flow is not None
    p = prep.p
    slack = best.objective - lag.bound
    used = np.bincount(p.arc_site, weights=best.flow > 0, minlength=p.n_sites).astype(np.bool_)
    shut = (lag.site_value > slack + 1e-6 * max(1.0, abs(best.objective))) & ~used
    keep = ~shut[p.arc_site] | (best.flow > 0)
    before = prep.live.shape[0]
    if not (prep.alive & ~keep).any():
        return False
    prep.restrict(keep)
    counters["lagrangian_closed_sites"] = int(shut.sum())
    counters["lagrangian_pruned_arcs"] = (
        counters.get("lagrangian_pruned_arcs", 0) + before - int(prep.live.shape[0])
    )
    return True


def _kernel(prep: Prep, lp: LpResult | None, score: F64, top: int) -> tuple[I64, I64]:
    """Every demand on its ``top`` best-ranked arcs (and those the LP uses): a restricted whole problem."""
    p = prep.p
    live = prep.live
    order = np.lexsort((live, score[live], p.arc_demand[live]))
    ranked = live[order]
    start = np.searchsorted(p.arc_demand[ranked], np.arange(p.n_demands + 1))
    rank = np.arange(ranked.shape[0]) - start[p.arc_demand[ranked]]
    keep = rank < top
    if lp is not None:
        used = np.zeros(p.n_arcs, dtype=np.bool_)
        used[lp.arcs[lp.value > 1e-9]] = True
        keep |= used[ranked]
    return np.arange(p.n_demands, dtype=np.int64), np.sort(ranked[keep])


def solve_core(
    problem: CoreProblem,
    *,
    seconds: float,
    seed: int = 0,
    hint: CoreResult | None = None,
    workers: int = 1,
    work: float | None = None,
) -> CoreResult:
    """Solve ``problem`` within ``seconds``: a feasible solution and a proven lower bound.

    ``workers`` threads go to the whole-problem CP-SAT runs (deterministic interleaved search); sub-solves
    are single-threaded. ``work`` caps the deterministic work of the search (CP-SAT deterministic seconds
    plus SCIP seconds); a run stopped by it instead of the clock is repeatable.

    Raises :class:`CoreInfeasible` when a must-serve demand cannot be served, or when no solution serving
    every must-serve demand was found in time.
    """
    t0 = time.perf_counter()
    deadline = t0 + max(float(seconds), 0.0)
    p = problem
    prep = Prep(p)
    _reachable(prep)
    best = _Best(prep)
    counters: dict[str, float] = {"live_arcs": float(prep.live.shape[0])}
    rng = np.random.default_rng(seed)

    def left() -> float:
        return deadline - time.perf_counter()

    def sub_seed() -> int:
        return int(rng.integers(0, 2**31 - 1))

    hinted = hint is not None and hint.flow.shape == (p.n_arcs,)
    if hint is not None and (not hinted or not best.offer(np.asarray(hint.flow, dtype=np.int64).copy())):
        counters["hint_rejected"] = 1.0
    if best.flow is None and not p.must_serve.any():
        best.offer(np.zeros(p.n_arcs, dtype=np.int64))

    whole_share = float(p.demand_whole.mean()) if p.n_demands else 1.0
    # CP-SAT for assignment-shaped problems whose coefficients scale to integers exactly (its bound is then
    # a bound of this problem); a MIP for the rest (splittable flows, fractional costs).
    engine = "cpsat" if whole_share >= 0.5 and prep.obj_exact and prep.res_exact else "mip"
    full = full_spec(prep)
    n_links = int(prep.switch[p.arc_site[prep.live]].sum())

    # 1. the LP relaxation
    lp = None
    if p.n_demands and prep.live.size:
        tl = time.perf_counter()
        lp = solve_lp(prep, full, seconds=max(0.05, 0.25 * left()), link=n_links <= _MAX_LINKS)
        counters["lp_seconds"] = round(time.perf_counter() - tl, 3)
        if lp is not None:
            best.raise_bound(lp.bound + prep.constant)
            best.bound_lp = lp.bound + prep.constant
            counters["lp_bound"] = best.bound_lp
    elif p.n_demands == 0 or prep.live.size == 0:
        best.raise_bound(prep.constant)
    score = np.zeros(p.n_arcs)
    if lp is not None:
        score[lp.arcs] = lp.reduced
    else:
        score = prep.arc_obj / prep.fq

    # 2. the exact attempt; with several workers, a portfolio of seeds (each run single-threaded and
    # deterministic, unlike CP-SAT's own parallel search)
    # (SCIP holds the GIL through a solve: MIP lanes would only take turns)
    lanes = max(1, int(workers)) if engine == "cpsat" else 1
    work_done = 0.0
    work_cap = math.inf if work is None else float(work)
    if not best.closed() and left() > 0:
        hint_flow = None if best.flow is None else best.flow[full.arcs]
        budget = _EXACT_SHARE * max(left(), 0.0)
        if engine == "cpsat":
            seeds = [sub_seed() for _ in range(lanes)]
            runs = _parallel(
                [
                    partial(
                        solve_cpsat,
                        prep,
                        full,
                        hint_flow,
                        work_limit=min(budget, 0.3 * work_cap),
                        wall_limit=budget,
                        seed=sd,
                    )
                    for sd in seeds
                ]
            )
        elif full.arcs.shape[0] <= _MAX_FULL_MIP_ARCS:
            runs = [solve_mip(prep, full, hint_flow, seconds=min(budget, 0.3 * work_cap), seed=sub_seed())]
        else:
            runs = []
        for r in runs:
            best.offer_sub(full, r)
            work_done += r.work
        counters["exact_seconds"] = round(time.perf_counter() - t0, 3)

    site_weight = None
    lag: LagrangianResult | None = None
    # fixed-charge transportation (facility location): a Lagrangian relaxation gives the strong bound
    # that the LP (without its links) cannot, a start, and prices that rank each demand's arcs
    if engine == "mip" and not best.closed() and lagrangian_applies(prep) and left() > 0:
        tl = time.perf_counter()
        lag = lagrangian(prep, seconds=_LAGRANGIAN_SHARE * left(), seed=sub_seed())
        counters["lagrangian_seconds"] = round(time.perf_counter() - tl, 3)
        counters["lagrangian_bound"] = lag.bound
        counters["lagrangian_iterations"] = lag.iterations
        best.raise_bound(lag.bound)
        if lag.flow is not None:
            best.offer(lag.flow)
        score = p.arc_cost + p.site_unit_cost[p.arc_site] - lag.price[p.arc_demand]
        # Sites the prices nearly open are where better solutions differ: seed neighbourhoods there.
        gap = best.objective - lag.bound if best.flow is not None else 0.01 * abs(lag.bound)
        near = 1.0 / (1.0 + lag.site_value / max(gap, 1e-9))
        near[np.bincount(p.arc_site[prep.live], minlength=p.n_sites) == 0] = 0.0
        site_weight = near / near.sum() if near.sum() > 0 else None
        if best.flow is not None:
            full = full_spec(prep) if _lagrangian_shut(prep, lag, best, counters) else full
            # Which sites are open decides most of the cost: search that directly, each set routed exactly,
            # closing what the bound rules out as the incumbent improves.
            lag_now = lag

            def better(flow: I64, objective: float) -> bool:
                best.offer(flow)
                return _lagrangian_shut(prep, lag_now, best, counters)

            tf = time.perf_counter()
            flow, objective, fs = facility_search(
                prep,
                best.flow,
                best.objective,
                rank=lag.site_value,
                deadline=time.perf_counter() + _FACILITY_SHARE * left(),
                seed=sub_seed(),
                on_better=better,
                enough=lambda: prep.live.shape[0] <= _MAX_HANDOVER_ARCS,
            )
            best.offer(flow)
            full = full_spec(prep)
            counters.update(
                facility_seconds=round(time.perf_counter() - tf, 3),
                facility_routes=fs.routes,
                facility_improvements=fs.improvements,
                facility_local_optimum=float(fs.local_optimum),
                facility_kicks=fs.kicks,
            )
    # a start for the search, when there is none yet: the restricted whole problem, widening
    top = 3
    while best.flow is None and left() > 0:
        demands, arcs = _kernel(prep, lp, score, top)
        spec = make_spec(prep, np.zeros(p.n_arcs, dtype=np.int64), demands, arcs)
        if engine == "cpsat":
            r = solve_cpsat(prep, spec, None, work_limit=left(), wall_limit=left(), seed=sub_seed())
        else:
            r = solve_mip(prep, spec, None, seconds=max(left(), 0.01), seed=sub_seed())
        work_done += r.work
        best.offer_sub(spec, r)
        if best.flow is None and arcs.shape[0] >= prep.live.shape[0]:
            break
        top *= 2
    pruned = 0
    if lp is not None and best.flow is not None:
        pruned = _prune(prep, lp, best)
        full = full_spec(prep)
    if best.flow is None:
        raise CoreInfeasible(
            f"no solution serving every must-serve demand found in {seconds:g} s "
            f"({int(p.must_serve.sum())} must-serve demands, {prep.live.shape[0]} usable arcs)"
        )

    # assignment shapes (generalised assignment): the knapsack Lagrangian, a bound far stronger than the LP
    # on tight instances, and prices that say which sites to re-pack
    assignment = None
    if engine == "cpsat" and not best.closed() and left() > 0 and assignment_lagrangian_applies(prep):
        tl = time.perf_counter()
        assignment = assignment_lagrangian(
            prep, seconds=_ASSIGNMENT_SHARE * left(), upper=best.objective - prep.constant
        )
        best.raise_bound(assignment.bound + prep.constant)
        counters.update(
            assignment_seconds=round(time.perf_counter() - tl, 3),
            assignment_bound=assignment.bound + prep.constant,
            assignment_iterations=assignment.iterations,
        )

    # 3. large-neighbourhood search: one search per worker, each on its own seed, meeting after every
    # round to continue from the best (rounds have a fixed number of steps: the meeting points do not
    # depend on the clock)
    searches: list[Search] = []
    stopped_by = "time"

    def mip_reach() -> bool:
        """Facility location: once the Lagrangian has closed enough sites, the whole MIP is within reach
        (and the time is better spent there than on the search)."""
        return lag is not None and full.arcs.shape[0] <= _MAX_HANDOVER_ARCS

    handover = mip_reach()
    if not best.closed():
        start_flow, start_objective = best.flow, best.objective
        searches = [
            Search(
                prep,
                start_flow,
                start_objective,
                engine=engine,
                seed=sub_seed(),
                score=score,
                price=None if lp is None else lp.resource_dual,
            )
            for _ in range(lanes)
        ]
        # Lanes differ in more than their seed: the second and later vary their neighbourhoods' size.
        for i, sr in enumerate(searches):
            sr.spread = 0.0 if i == 0 else 0.5
            sr.site_weight = site_weight
            if assignment is not None:
                sr.use_assignment(assignment)
        steps = 1 if lanes == 1 else 8
        n = p.n_demands

        def round_of(search: Search) -> tuple[list[SubResult], bool]:
            done: list[SubResult] = []
            for _ in range(steps):
                r = search.step(deadline=deadline, seed=int(search.rng.integers(0, 2**31 - 1)))
                if r is None:
                    break
                done.append(r)
                # Most of the problem solves to optimality within a sub-solve's small limit: the whole
                # problem is within CP-SAT's reach, and the remaining time is better spent proving it.
                big = max(search.last_target, search.target) >= max(0.8 * n, 8)
                if engine == "cpsat" and r.optimal and big:
                    return done, True
            return done, False

        while not best.closed() and not handover:
            if left() <= 0.02:
                break
            if work_done >= work_cap:
                stopped_by = "work"
                break
            rounds = _parallel([partial(round_of, sr) for sr in searches])
            if not any(done for done, _ in rounds):
                break
            improved = False
            for sr, (done, over) in zip(searches, rounds, strict=True):
                handover |= over
                for r in done:
                    work_done += r.work
                if sr.stats.proven and done and math.isfinite(done[-1].bound):
                    best.raise_bound(done[-1].bound + prep.constant)
                if sr.best_objective < best.objective:
                    best.flow, best.objective = sr.best_flow, sr.best_objective
                    improved = True
            if improved and lag is not None:
                if _lagrangian_shut(prep, lag, best, counters):
                    full = full_spec(prep)
                handover |= mip_reach()
            for sr in searches:
                if sr.objective > best.objective:
                    sr.adopt(best.flow, best.objective)
        counters.update(
            lns_iterations=sum(sr.stats.iterations for sr in searches),
            lns_improvements=sum(sr.stats.improvements for sr in searches),
            lns_sideways=sum(sr.stats.sideways for sr in searches),
            lns_failures=sum(sr.stats.failures for sr in searches),
            lns_rejected=sum(sr.stats.rejected for sr in searches),
            lns_target=max(sr.target for sr in searches),
            lns_handover=float(handover),
        )

    # 4. the whole problem once more, hinted with the best and with the arcs the LP rules out pruned
    if lp is not None and best.flow is not None:
        pruned += _prune(prep, lp, best)
        full = full_spec(prep)
    counters["pruned_arcs"] = pruned
    if engine == "cpsat" and not best.closed() and left() > 0.05 and work_done < work_cap:
        assert best.flow is not None
        hint_flow = best.flow[full.arcs]
        runs = _parallel(
            [
                partial(
                    solve_cpsat,
                    prep,
                    full,
                    hint_flow,
                    work_limit=min(left(), work_cap - work_done),
                    wall_limit=left(),
                    seed=sd,
                )
                for sd in [sub_seed() for _ in range(lanes)]
            ]
        )
        for r in runs:
            work_done += r.work
            best.offer_sub(full, r)
    elif (
        engine == "mip"
        and not best.closed()
        and full.arcs.shape[0] <= (_MAX_FULL_MIP_ARCS if lag is None else _MAX_HANDOVER_ARCS)
        and left() > 0.5
    ):
        assert best.flow is not None
        counters["full_mip_start"] = round(time.perf_counter() - t0, 3)
        counters["full_mip_arcs"] = int(full.arcs.shape[0])
        r = solve_mip(prep, full, best.flow[full.arcs], seconds=left(), seed=sub_seed())
        work_done += r.work
        best.offer_sub(full, r)
        counters["full_mip_seconds"] = round(r.work, 3)

    assert best.flow is not None
    flow = best.flow
    production, opened, unmet, extra = normalised(p, flow)
    objective = evaluate(p, flow, production, opened, unmet, extra)
    bound = min(best.bound, objective)
    optimal = best.closed()
    if optimal:
        bound = objective
        stopped_by = "optimal"
    elif work_done >= work_cap:
        stopped_by = "work"
    counters["work"] = round(work_done, 3)
    return CoreResult(
        flow=flow,
        production=production,
        opened=opened,
        unmet=unmet,
        extra=extra,
        objective=objective,
        bound=bound,
        status="optimal" if optimal else "feasible",
        seconds=time.perf_counter() - t0,
        stopped_by=stopped_by,
        engine=engine,
        iterations=sum(sr.stats.iterations for sr in searches),
        improvements=sum(sr.stats.improvements for sr in searches),
        counters=counters,
    )
