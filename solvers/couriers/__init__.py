"""Courier assignment: ready parcels to courier points under price tables, daily quotas and restrictions.

Pure: numpy arrays and frozen dataclasses in, a result out. Exact (one min-cost flow over aggregated groups),
so it takes no time limit: at belt scale it runs in seconds.
"""

from solvers.couriers.data import MAX_FEN, CourierProblem, build_problem
from solvers.couriers.result import UNASSIGNED_TEXT, CourierAssignment, Unassigned
from solvers.couriers.solve import CourierFlowError, solve

__all__ = [
    "MAX_FEN",
    "UNASSIGNED_TEXT",
    "CourierAssignment",
    "CourierFlowError",
    "CourierProblem",
    "Unassigned",
    "build_problem",
    "solve",
]
