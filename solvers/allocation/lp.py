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
    duals: F64  # per row: the change of the objective per unit more of the row's right-hand side (GLOP and
    # PDLP; NaN from HiGHS, whose duals OR-Tools does not pass on)
    objective: float
    seconds: float
    solver: str
    # a proven lower bound of the LP's optimum: the optimum itself from GLOP and HiGHS, and from PDLP (whose
    # optimum is only approximate) the dual bound of its row prices
    bound: float


def dual_bound(model: Model, duals: F64, lb: F64 | None = None, ub: F64 | None = None) -> float:
    """A lower bound of the LP's optimum from any row prices ``duals`` (weak duality).

    For prices y, every x within its bounds with row activities A x in [row_lb, row_ub] costs
    c x >= y·(A x) + min over the bounds of (c - Aᵀ y) x >= Σ_i (y_i row_lb_i if y_i > 0 else y_i row_ub_i)
    + Σ_j min(d_j lb_j, d_j ub_j) with d = c - Aᵀ y. A price on a row side that is infinite is dropped (set
    to 0), so the bound stays finite wherever the variables are bounded. Exact prices give the optimum;
    approximate ones (a first-order method stopped early) still give a valid, weaker bound.
    """
    lo = model.lb if lb is None else lb
    hi = model.ub if ub is None else ub
    y = np.nan_to_num(duals, nan=0.0)
    y = np.where((y > 0) & ~np.isfinite(model.row_lb), 0.0, y)
    y = np.where((y < 0) & ~np.isfinite(model.row_ub), 0.0, y)
    d = model.cost - model.rows.T @ y
    rows = np.where(y > 0, y * np.where(y > 0, model.row_lb, 0.0), y * np.where(y < 0, model.row_ub, 0.0))
    with np.errstate(invalid="ignore"):
        columns = np.where(d >= 0, d * np.where(d >= 0, lo, 0.0), d * np.where(d < 0, hi, 0.0))
    return float(rows.sum() + columns.sum())


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
    tolerance: float = 1e-3,
) -> LpSolution:
    """Solve the relaxation of ``model`` (with variable bounds ``lb``/``ub`` overriding the model's).

    ``solver``: ``glop`` (simplex), ``highs_lp`` (HiGHS; no duals) or ``pdlp`` (first-order, to ``tolerance``
    relative; for LPs too large for the others in the time, with a bound from its prices).
    """
    t0 = time.perf_counter()
    helper = mbh.ModelBuilderHelper()
    fill(helper, model, model.lb if lb is None else lb, model.ub if ub is None else ub)
    engine = mbh.ModelSolverHelper(solver)
    engine.set_time_limit_in_seconds(seconds)
    if solver == "pdlp":
        # one thread: the same prices for the same model, so the bound is reproducible
        engine.set_solver_specific_parameters(
            "termination_criteria { simple_optimality_criteria { "
            f"eps_optimal_relative: {tolerance} eps_optimal_absolute: 0 }} }} num_threads: 1"
        )
    if solver.startswith("highs"):
        # HiGHS prints a banner on stdout otherwise, where benchmarks print their JSON lines
        engine.set_solver_specific_parameters("output_flag=false\nlog_to_console=false")
    engine.solve(helper)
    status = engine.status()
    if solver == "pdlp":
        # a looser tolerance converges sooner and the prices still bound the optimum; stopped by its time
        # limit, PDLP hands nothing back through OR-Tools' model builder
        if not engine.has_solution():
            raise LpError(f"the pdlp LP of {model.n_vars} variables ended {status} with no solution")
    elif status != _OPTIMAL or not engine.has_solution():
        raise LpError(f"the {solver} LP of {model.n_vars} variables ended {status}")
    values = np.asarray(engine.variable_values(), dtype=np.float64)
    duals = np.asarray(engine.dual_values(), dtype=np.float64)
    if solver.startswith("highs"):
        # OR-Tools' model builder hands back HiGHS's row activities here, not its duals (ortools 9.x, checked
        # against GLOP's on the same LP): no dual at all is better than a wrong one
        duals = np.full(duals.shape[0], np.nan)
    objective = float(engine.objective_value())
    bound = objective
    if solver == "pdlp":
        if duals.shape[0] != model.rows.shape[0]:
            raise LpError(f"pdlp returned {duals.shape[0]} prices for {model.rows.shape[0]} rows")
        bound = dual_bound(model, duals, model.lb if lb is None else lb, model.ub if ub is None else ub)
    return LpSolution(
        values=values,
        duals=duals,
        objective=objective,
        seconds=time.perf_counter() - t0,
        solver=solver,
        bound=bound,
    )
