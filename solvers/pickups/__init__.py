"""Pickup windows (揽收) per site and courier point, before the courier's cut-off, sized in parcels and vans.

Pure: numpy arrays and frozen dataclasses in, a result out; columnar, and direct (no search), so it takes
no time limit.
"""

from solvers.pickups.data import PickupProblem, build_problem
from solvers.pickups.result import ROLLED_TEXT, PickupPlan, Rolled
from solvers.pickups.solve import solve

__all__ = ["ROLLED_TEXT", "PickupPlan", "PickupProblem", "Rolled", "build_problem", "solve"]
