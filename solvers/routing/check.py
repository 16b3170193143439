"""An independent check of a plan of milk runs: written from the problem's definition, sharing nothing
with the engines, so an engine's claim of feasibility or cost never stands on its own word.

A plan is a list of routes, each the location indices of its stops in visiting order (the depot left out at
both ends). It is feasible when every stop is visited exactly once, no route carries more than a van's
capacity, there are no more routes than vans, and, simulating each route from the depot's opening, every
service starts by its stop's due time (waiting when early) and the van is back by the depot's closing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solvers.routing.data import RoutingProblem


@dataclass(frozen=True)
class Check:
    distance: int  # in the problem's unit
    vehicles: int  # routes with at least one stop
    problems: tuple[str, ...]  # empty when feasible

    @property
    def feasible(self) -> bool:
        return not self.problems


def check(problem: RoutingProblem, routes: Sequence[Sequence[int]], limit: int = 20) -> Check:
    """Cost and feasibility of ``routes`` for ``problem``; at most ``limit`` problems are listed."""
    problems: list[str] = []
    numbers = problem.customer_numbers()
    depot = problem.depot
    n = problem.n_locations
    seen = np.zeros(n, dtype=np.int64)
    total = 0
    used = 0
    for k, route in enumerate(routes):
        stops = [int(s) for s in route]
        if not stops:
            continue
        used += 1
        bad = [s for s in stops if not 0 <= s < n or s == depot]
        if bad:
            problems.append(f"route {k + 1}: {bad[0]} is not a stop")
            continue
        for s in stops:
            seen[s] += 1
        load = int(problem.demand[stops].sum())
        if load > problem.capacity:
            problems.append(f"route {k + 1}: load {load} above capacity {problem.capacity}")
        t = int(problem.ready[depot])
        prev = depot
        for s in stops:
            total += int(problem.distance[prev, s])
            t = max(t + int(problem.duration[prev, s]), int(problem.ready[s]))
            if t > problem.due[s]:
                problems.append(
                    f"route {k + 1}: customer {int(numbers[s])} served at {t}, after its due time "
                    f"{int(problem.due[s])}"
                )
            t += int(problem.service[s])
            prev = s
        total += int(problem.distance[prev, depot])
        t += int(problem.duration[prev, depot])
        if t > problem.due[depot]:
            problems.append(
                f"route {k + 1}: back at the depot at {t}, after it closes at {int(problem.due[depot])}"
            )
    if used > problem.vehicles:
        problems.append(f"{used} routes for {problem.vehicles} vans")
    for s in problem.customers()[seen[problem.customers()] == 0].tolist():
        problems.append(f"customer {int(numbers[s])}: not visited")
    for s in np.flatnonzero(seen > 1).tolist():
        problems.append(f"customer {int(numbers[s])}: visited {int(seen[s])} times")
    more = len(problems) - limit
    listed = problems[:limit] + ([f"... and {more} more"] if more > 0 else [])
    return Check(distance=total, vehicles=used, problems=tuple(listed))
