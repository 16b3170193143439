"""Allocation of a batch's demand to stock in shared warehouses and to workshop capacity.

Pure: numpy arrays and frozen dataclasses in, a result out; no database, no clock but the solve's own timing.
"""

from solvers.allocation.core import CoreInfeasible, CoreProblem, CoreResult, check_feasible
from solvers.allocation.core_solve import solve_core
from solvers.allocation.data import AllocationProblem, ProblemError
from solvers.allocation.greedy import allocate
from solvers.allocation.orlib import read_cflp, read_gap
from solvers.allocation.result import (
    UNFILLED_TEXT,
    WHY_TEXT,
    Allocation,
    AllocationResult,
    SiteKind,
    Unfilled,
    Why,
)
from solvers.allocation.solve import solve

__all__ = [
    "UNFILLED_TEXT",
    "WHY_TEXT",
    "Allocation",
    "AllocationProblem",
    "AllocationResult",
    "CoreInfeasible",
    "CoreProblem",
    "CoreResult",
    "ProblemError",
    "SiteKind",
    "Unfilled",
    "Why",
    "allocate",
    "check_feasible",
    "read_cflp",
    "read_gap",
    "solve",
    "solve_core",
]
