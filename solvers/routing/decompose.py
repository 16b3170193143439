"""Cluster first, route second: a wave too large to route whole within its time, split into sectors.

Stops are swept by their angle around the depot (ties by their window, so a sector's stops are also close in
time) into ``k = ceil(n / cluster_size)`` sectors of equal count, the sweep starting at the widest empty
angle so that no dense town is cut in two. Each sector is routed on its own as a smaller problem (the same
depot and window, its share of the vans by load and count) with the chosen engine and a share of the time
proportional to its stops; the sectors' routes together are a plan for the whole wave. What time is left
(``polish`` of it, by default) goes to PyVRP over the whole wave, warm-started from that plan, which mends
the seams between sectors; its plan is kept only if the checker finds it feasible and no longer.

OR-Tools' maintainers advise decomposing beyond about 1,000 stops; PyVRP also slows per iteration as the
neighbourhoods of a big instance grow, and a sector search converges in a fraction of the time.
"""

from __future__ import annotations

import math
import time

import numpy as np

from solvers.routing.data import I64, RoutingProblem, RoutingProblemError
from solvers.routing.result import RoutingResult, checked
from solvers.routing.solve import solve

# building models and the checks between engine runs take a little of the budget each
_OVERHEAD_SECONDS = 0.3


def sweep(problem: RoutingProblem, clusters: int) -> list[I64]:
    """The stops (location indices) cut into ``clusters`` sectors of equal count by angle around the depot."""
    if problem.x is None or problem.y is None:
        raise RoutingProblemError("x, y: decomposition sweeps by angle, so it needs the stops' coordinates")
    stops = problem.customers()
    angle = np.arctan2(
        problem.y[stops] - problem.y[problem.depot], problem.x[stops] - problem.x[problem.depot]
    )
    order = np.lexsort((problem.due[stops], angle))
    sorted_angle = angle[order]
    # start the sweep after the widest gap between neighbouring angles (wrapping round)
    gaps = np.diff(np.concatenate((sorted_angle, [sorted_angle[0] + 2 * math.pi])))
    start = (int(np.argmax(gaps)) + 1) % stops.size
    order = np.roll(order, -start)
    return [stops[part] for part in np.array_split(order, clusters) if part.size]


def vans_for(problem: RoutingProblem, parts: list[I64]) -> list[int]:
    """The fleet shared among the sectors, by the larger of their shares of load and of stops.

    Each sector gets at least what its load needs at full vans, plus one; what remains is handed out in
    proportion. The shares add up to no more than the fleet, so the merged plan never uses too many vans.
    """
    load = np.array([int(problem.demand[p].sum()) for p in parts], dtype=np.float64)
    count = np.array([p.size for p in parts], dtype=np.float64)
    need = np.ceil(load / problem.capacity).astype(np.int64) + 1
    if int(need.sum()) > problem.vehicles:
        need = np.maximum(1, np.floor(problem.vehicles * load / load.sum()).astype(np.int64))
    weight = np.maximum(load / max(load.sum(), 1.0), count / count.sum())
    spare = problem.vehicles - int(need.sum())
    extra = np.floor(spare * weight / weight.sum()).astype(np.int64) if spare > 0 else np.zeros_like(need)
    return [int(v) for v in need + extra]


def subproblem(problem: RoutingProblem, stops: I64, vehicles: int) -> tuple[RoutingProblem, I64]:
    """The depot and ``stops`` as a problem of their own, and its locations' indices in ``problem``."""
    keep = np.concatenate(([problem.depot], stops)).astype(np.int64)
    grid = np.ix_(keep, keep)
    distance = problem.distance[grid]
    sub = RoutingProblem(
        distance=distance,
        duration=distance if problem.duration is problem.distance else problem.duration[grid],
        demand=problem.demand[keep],
        ready=problem.ready[keep],
        due=problem.due[keep],
        service=problem.service[keep],
        capacity=problem.capacity,
        vehicles=vehicles,
        depot=0,
        x=None if problem.x is None else problem.x[keep],
        y=None if problem.y is None else problem.y[keep],
        scale=problem.scale,
        name=f"{problem.name}/{stops.size}",
    )
    return sub, keep


def decompose(
    problem: RoutingProblem,
    seconds: float,
    seed: int = 0,
    engine: str = "pyvrp",
    cluster_size: int = 700,
    polish: float = 0.25,
) -> RoutingResult:
    """Route ``problem`` by sectors of at most ``cluster_size`` stops within ``seconds`` in all.

    ``polish`` is the share of the time kept for the whole-wave PyVRP search after the sectors (0: none).
    """
    started = time.perf_counter()
    deadline = started + seconds
    clusters = max(1, math.ceil(problem.n_customers / cluster_size))
    if clusters == 1:
        return solve(problem, max(seconds - _OVERHEAD_SECONDS, 0.0), seed=seed, engine=engine)
    parts = sweep(problem, clusters)
    vans = vans_for(problem, parts)
    sector_deadline = started + seconds * (1.0 - polish)
    left = problem.n_customers
    routes: list[tuple[int, ...]] = []
    for k, (part, v) in enumerate(zip(parts, vans, strict=True)):
        sub, keep = subproblem(problem, part, v)
        share = (sector_deadline - time.perf_counter()) * part.size / left - _OVERHEAD_SECONDS
        result = solve(sub, max(share, 0.1), seed=seed + k, engine=engine)
        routes.extend(tuple(int(keep[s]) for s in r) for r in result.routes)
        left -= part.size
    label = f"{engine}+sweep{clusters}"
    merged = checked(problem, routes, time.perf_counter() - started, label)
    # PyVRP builds its neighbourhoods (quadratic in the stops) before its clock starts
    setup = 2 * _OVERHEAD_SECONDS + problem.n_customers**2 * 1e-7
    remaining = deadline - time.perf_counter() - setup
    if polish <= 0 or remaining <= 0.5 or not merged.feasible:
        return merged
    polished = solve(problem, remaining, seed=seed, engine="pyvrp", initial=merged.routes)
    if polished.feasible and polished.distance <= merged.distance:
        return checked(problem, polished.routes, time.perf_counter() - started, label + "+pyvrp")
    return checked(problem, merged.routes, time.perf_counter() - started, label)
