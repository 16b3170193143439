"""Allocation of a batch's demand to stock in shared warehouses and to workshop capacity.

Pure: numpy arrays and frozen dataclasses in, a result out; no database, no clock but the solve's own timing.
"""

from solvers.allocation.data import AllocationProblem, ProblemError
from solvers.allocation.greedy import allocate
from solvers.allocation.result import (
    UNFILLED_TEXT,
    WHY_TEXT,
    Allocation,
    AllocationResult,
    SiteKind,
    Unfilled,
    Why,
)

__all__ = [
    "UNFILLED_TEXT",
    "WHY_TEXT",
    "Allocation",
    "AllocationProblem",
    "AllocationResult",
    "ProblemError",
    "SiteKind",
    "Unfilled",
    "Why",
    "allocate",
]
