"""Milk runs: vans collecting from many small workshops to a consolidation point, with capacities and windows.

Pure: integer matrices and frozen dataclasses in, a checked result out. ``solve`` routes a problem whole with
PyVRP (default) or OR-Tools; ``decompose`` routes a large wave by sectors; ``check`` costs and verifies any
plan independently of the engines; ``read`` takes Solomon and VRPLIB files under the DIMACS convention.
"""

from solvers.routing.check import Check, check
from solvers.routing.data import RoutingProblem, RoutingProblemError, dimacs_matrix
from solvers.routing.decompose import decompose
from solvers.routing.read import FormatError, KnownSolution, read, read_solution, to_locations
from solvers.routing.result import RoutingResult
from solvers.routing.solve import ENGINES, solve
from solvers.routing.wave import wave

__all__ = [
    "ENGINES",
    "Check",
    "FormatError",
    "KnownSolution",
    "RoutingProblem",
    "RoutingProblemError",
    "RoutingResult",
    "check",
    "decompose",
    "dimacs_matrix",
    "read",
    "read_solution",
    "solve",
    "to_locations",
    "wave",
]
