"""OR-Tools' routing library (guided local search) as a routing engine, for measuring against PyVRP.

Time is a dimension whose transit ``i → j`` is the service at ``i`` plus the drive, so a stop's cumul is the
start of its service; slack up to the whole horizon lets a van wait for a window to open. Matrices are handed
over whole (``RegisterTransitMatrix``) so no Python callback runs in the search.
"""

from __future__ import annotations

from collections.abc import Sequence

from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from solvers.routing.data import RoutingProblem


def route(
    problem: RoutingProblem,
    seconds: float,
    seed: int,
    iterations: int | None = None,
    initial: Sequence[Sequence[int]] | None = None,
) -> list[list[int]]:
    """Routes (location indices) from OR-Tools within ``seconds``; ``iterations`` caps improving solutions.

    OR-Tools' routing search takes no seed: it is deterministic but for its clock, so ``seed`` is unused and
    a run is repeatable only under ``iterations``.
    """
    del seed
    n = problem.n_locations
    manager = pywrapcp.RoutingIndexManager(n, problem.vehicles, problem.depot)
    model = pywrapcp.RoutingModel(manager)
    cost = model.RegisterTransitMatrix(problem.distance.tolist())
    model.SetArcCostEvaluatorOfAllVehicles(cost)

    horizon = int(problem.due[problem.depot])
    timed = problem.duration + problem.service[:, None]
    travel = model.RegisterTransitMatrix(timed.tolist())
    model.AddDimension(travel, horizon, horizon, False, "time")
    time = model.GetDimensionOrDie("time")
    for s in problem.customers().tolist():
        time.CumulVar(manager.NodeToIndex(s)).SetRange(int(problem.ready[s]), int(problem.due[s]))
    early = int(problem.ready[problem.depot])
    for v in range(problem.vehicles):
        time.CumulVar(model.Start(v)).SetRange(early, horizon)
        time.CumulVar(model.End(v)).SetRange(early, horizon)
    load = model.RegisterUnaryTransitVector(problem.demand.tolist())
    model.AddDimensionWithVehicleCapacity(load, 0, [problem.capacity] * problem.vehicles, True, "load")

    params = pywrapcp.DefaultRoutingSearchParameters()
    # the cheapest-arc start finds no plan at all on tight windows (R101, RC101); insertion always did
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(1, int(seconds * 1000)))
    if iterations is not None:
        params.solution_limit = iterations
    if initial:
        model.CloseModelWithParameters(params)
        start = model.ReadAssignmentFromRoutes([[int(s) for s in r] for r in initial if len(r)], True)
        solution = model.SolveFromAssignmentWithParameters(start, params) if start else None
    else:
        solution = model.SolveWithParameters(params)
    if solution is None:
        return []
    routes = []
    for v in range(problem.vehicles):
        index = solution.Value(model.NextVar(model.Start(v)))
        stops = []
        while not model.IsEnd(index):
            stops.append(manager.IndexToNode(index))
            index = solution.Value(model.NextVar(index))
        if stops:
            routes.append(stops)
    return routes
