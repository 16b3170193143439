"""PyVRP (iterated local search in 0.14, hybrid genetic search before it; MIT) as a routing engine.

The problem goes in as PyVRP's own ``ProblemData`` with explicit matrices, so PyVRP optimises exactly the
integer distances the checker counts. PyVRP's ``Solution`` and activity indices count clients from 0 in
the order they were given, which here is :meth:`RoutingProblem.customers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyvrp
from pyvrp import Client, Depot, Location, ProblemData, VehicleType
from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria, StoppingCriterion

from solvers.routing.data import RoutingProblem


def to_pyvrp(problem: RoutingProblem) -> ProblemData:
    """The problem as PyVRP data: the depot is location 0, then the stops in ``customers()`` order."""
    stops = problem.customers()
    order = np.concatenate(([problem.depot], stops))
    xs = problem.x if problem.x is not None else np.zeros(problem.n_locations)
    ys = problem.y if problem.y is not None else np.zeros(problem.n_locations)
    locations = [Location(float(xs[i]), float(ys[i])) for i in order.tolist()]
    # collected at the stops and brought back: a pickup load, which peaks at the depot like a delivery's
    clients = [
        Client(
            location=p,
            pickup=[int(problem.demand[s])],
            service_duration=int(problem.service[s]),
            tw_early=int(problem.ready[s]),
            tw_late=int(problem.due[s]),
        )
        for p, s in enumerate(stops.tolist(), start=1)
    ]
    early = int(problem.ready[problem.depot])
    late = int(problem.due[problem.depot])
    depots = [Depot(location=0, tw_early=early, tw_late=late)]
    vans = [
        VehicleType(num_available=problem.vehicles, capacity=[problem.capacity], tw_early=early, tw_late=late)
    ]
    grid = np.ix_(order, order)
    distance = np.ascontiguousarray(problem.distance[grid])
    duration = (
        distance if problem.duration is problem.distance else np.ascontiguousarray(problem.duration[grid])
    )
    # PyVRP's stubs type a matrix as ``ndarray[int]``, which numpy's own shape typing never matches
    matrices: list[Any] = [distance, duration]
    return ProblemData(locations, clients, depots, vans, matrices[:1], matrices[1:])


def route(
    problem: RoutingProblem,
    seconds: float,
    seed: int,
    iterations: int | None = None,
    initial: Sequence[Sequence[int]] | None = None,
) -> list[list[int]]:
    """Routes (location indices) from PyVRP within ``seconds`` (and ``iterations``, when given)."""
    data = to_pyvrp(problem)
    stop: StoppingCriterion = MaxRuntime(max(seconds, 0.0))
    if iterations is not None:
        stop = MultipleCriteria([MaxIterations(iterations), stop])
    warm = None
    if initial:
        client_of = np.full(problem.n_locations, -1, dtype=np.int64)
        client_of[problem.customers()] = np.arange(problem.n_customers)
        warm = pyvrp.Solution(data, [[int(client_of[s]) for s in r] for r in initial if len(r)])
    result = pyvrp.solve(data, stop, seed=seed, collect_stats=False, display=False, initial_solution=warm)
    stops = problem.customers()
    return [[int(stops[a.idx]) for a in r if a.is_client()] for r in result.best.routes()]
