"""Solve a model's linear relaxation with OR-Tools' own LP solvers (GLOP or the bundled HiGHS).

The whole LP is handed over as one sparse matrix (``fill_model_from_sparse_data``): no Python object per
variable. Only OR-Tools' solvers are used: ortools bundles HiGHS 1.12, and another ``highspy`` in the same
process clashes with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh

from solvers.allocation.data import F64
from solvers.allocation.model import Model

# ModelBuilder's status codes (mbh.SolveStatus)
_OPTIMAL = mbh.SolveStatus.OPTIMAL


class LpError(RuntimeError):
    """The LP solver did not return an optimal solution."""


@dataclass(frozen=True, eq=False)
class LpSolution:
    values: F64
    duals: F64  # per row: the change of the objective per unit more of the row's right-hand side (GLOP only;
    # NaN from HiGHS, whose duals OR-Tools does not pass on)
    objective: float
    seconds: float
    solver: str


def fill(helper: mbh.ModelBuilderHelper, model: Model, lb: F64, ub: F64) -> None:
    """Hand ``model`` to ``helper`` with the bounds ``lb``/``ub``, as one sparse matrix."""
    # the bundled stubs type these arrays wrongly (ndarray[float64, ...]); the extension takes float64 vectors
    any_helper: Any = helper
    any_helper.fill_model_from_sparse_data(lb, ub, model.cost, model.row_lb, model.row_ub, model.rows)


def solve_lp(
    model: Model,
    *,
    lb: F64 | None = None,
    ub: F64 | None = None,
    seconds: float = 60.0,
    solver: str = "glop",
) -> LpSolution:
    """Solve the relaxation of ``model`` (with variable bounds ``lb``/``ub`` overriding the model's)."""
    t0 = time.perf_counter()
    helper = mbh.ModelBuilderHelper()
    fill(helper, model, model.lb if lb is None else lb, model.ub if ub is None else ub)
    engine = mbh.ModelSolverHelper(solver)
    engine.set_time_limit_in_seconds(seconds)
    if solver.startswith("highs"):
        # HiGHS prints a banner on stdout otherwise, where benchmarks print their JSON lines
        engine.set_solver_specific_parameters("output_flag=false\nlog_to_console=false")
    engine.solve(helper)
    status = engine.status()
    if status != _OPTIMAL or not engine.has_solution():
        raise LpError(f"the {solver} LP of {model.n_vars} variables ended {status}")
    values = np.asarray(engine.variable_values(), dtype=np.float64)
    duals = np.asarray(engine.dual_values(), dtype=np.float64)
    if solver.startswith("highs"):
        # OR-Tools' model builder hands back HiGHS's row activities here, not its duals (ortools 9.x, checked
        # against GLOP's on the same LP): no dual at all is better than a wrong one
        duals = np.full(duals.shape[0], np.nan)
    return LpSolution(
        values=values,
        duals=duals,
        objective=float(engine.objective_value()),
        seconds=time.perf_counter() - t0,
        solver=solver,
    )
