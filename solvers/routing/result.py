"""What a routing solve returns: the routes as location indices, their checked cost and feasibility."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solvers.routing.check import check
from solvers.routing.data import RoutingProblem

Routes = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class RoutingResult:
    routes: Routes  # per van used, its stops' location indices in visiting order (depot left out)
    distance: int  # in the problem's unit, recomputed by :func:`solvers.routing.check.check`
    vehicles: int
    feasible: bool  # by the independent checker, not the engine's word
    problems: tuple[str, ...]  # what the checker found wrong (empty when feasible)
    seconds: float
    engine: str

    def reported_distance(self, problem: RoutingProblem) -> float:
        return problem.reported(self.distance)

    def customer_routes(self, problem: RoutingProblem) -> list[list[int]]:
        """Routes as 1-based customer numbers, as the benchmark files count them."""
        numbers = problem.customer_numbers()
        return [[int(numbers[s]) for s in route] for route in self.routes]


def checked(
    problem: RoutingProblem, routes: Sequence[Sequence[int]], seconds: float, engine: str
) -> RoutingResult:
    """A result whose cost and feasibility come from the checker; empty routes are dropped."""
    kept: Routes = tuple(tuple(int(s) for s in r) for r in routes if len(r))
    verdict = check(problem, kept)
    return RoutingResult(
        routes=kept,
        distance=verdict.distance,
        vehicles=verdict.vehicles,
        feasible=verdict.feasible,
        problems=verdict.problems,
        seconds=seconds,
        engine=engine,
    )
