"""One interface over the routing engines: ``solve(problem, seconds, seed, engine) -> RoutingResult``.

PyVRP is the default because it measured better (see ``fulfil bench vrptw`` and ``docs/bench/vrptw-*``);
OR-Tools stays selectable so that the comparison can be re-run on the same problems. Whatever an engine
returns is costed and checked by :mod:`solvers.routing.check`, never taken on its word.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal

from solvers.routing import ortools_engine, pyvrp_engine
from solvers.routing.data import RoutingProblem
from solvers.routing.result import RoutingResult, checked

EngineName = Literal["pyvrp", "ortools"]
Engine = Callable[[RoutingProblem, float, int, int | None, Sequence[Sequence[int]] | None], list[list[int]]]

ENGINES: dict[str, Engine] = {"pyvrp": pyvrp_engine.route, "ortools": ortools_engine.route}


def solve(
    problem: RoutingProblem,
    seconds: float,
    seed: int = 0,
    engine: str = "pyvrp",
    iterations: int | None = None,
    initial: Sequence[Sequence[int]] | None = None,
) -> RoutingResult:
    """Route ``problem`` with ``engine`` for at most ``seconds`` of search.

    ``iterations`` (PyVRP: local-search iterations; OR-Tools: improving solutions) stops earlier and makes
    a run repeatable for its seed, whatever the machine's speed. ``initial`` (routes of location indices)
    warm-starts the search.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r}, expected one of {sorted(ENGINES)}")
    started = time.perf_counter()
    routes = ENGINES[engine](problem, seconds, seed, iterations, initial)
    return checked(problem, routes, time.perf_counter() - started, engine)
