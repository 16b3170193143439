"""The allocation optimiser: model → MIP or LP-and-round → integral plan → cell allocations, with a bound.

- A problem whose model has at most ``mip_vars`` variables is first solved as a MIP (OR-Tools' bundled
  HiGHS) with most of the time: if HiGHS proves optimality, that is the plan and its bound.
- Otherwise the LP relaxation is solved (its optimum is a bound; above ``pdlp_vars`` columns by PDLP, whose
  row prices bound it by weak duality), every lot the LP does not touch is closed, and the MIP is solved over
  the lots left — a much smaller decision — where it is small enough to finish.
- A model the MIP did not solve to optimality (or, above ``mip_vars``, did not try) is relaxed to a
  min-cost flow (:mod:`solvers.allocation.flow`: seconds at a million orders, where the LP takes minutes):
  its optimum is a bound, and its pieces, rounded and repaired (:mod:`solvers.allocation.integral`), a
  plan. Then the LP as above, in the time left.
- Every engine's plan is checked against the model's rows; the rule cascade's plan is always a candidate, so
  every run ends with a feasible plan no worse than the cascade's, and the best candidate is returned with
  the best proven bound.
- Listed orders and a split-shipment penalty: the model leaves the penalty out (its bound stays one), each
  plan counts it exactly on its cut into order lines (:func:`solvers.allocation.orders.finish`), and where a
  plan splits orders a second MIP with :func:`~solvers.allocation.orders.split_steer`'s costs added (a
  heuristic; its own bound is dropped) offers a plan that splits fewer, if it costs less all told.
- "optimal" is claimed only when HiGHS proved the model's optimum and the plan costs no more than it (no
  split and all the churn the model counted kept): the model relaxes the problem, so that plan is optimal.

Deterministic for a seed while the time limit does not bind: HiGHS runs on one thread with the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh

from solvers.allocation.data import F64, AllocationProblem
from solvers.allocation.flow import FlowError, relax
from solvers.allocation.greedy import allocate
from solvers.allocation.integral import integral_plan
from solvers.allocation.lp import LpError, fill, solve_lp
from solvers.allocation.model import Model, build_model, constant_fen, group_cells
from solvers.allocation.orders import split_steer
from solvers.allocation.plan import to_result
from solvers.allocation.result import AllocationResult

_TOL = 1e-6
STEER_NODES = 200  # branch-and-bound nodes of the MIP steered toward fewer split orders
FIXED_MIP_FACTOR = 4  # the MIP over the LP's lots is tried up to this many times ``mip_vars`` free variables


@dataclass(frozen=True)
class Engine:
    """What a MIP run returned: values (None if none), its proven bound and whether it proved optimality."""

    values: F64 | None
    bound: float
    optimal: bool


def _mip(
    model: Model, *, lb: F64, ub: F64, seconds: float, seed: int, gap: float = 1e-6, nodes: int = 0
) -> Engine:
    helper = mbh.ModelBuilderHelper()
    fill(helper, model, lb, ub)
    for j in np.flatnonzero(model.integer() & (ub > lb)).tolist():
        helper.set_var_integrality(j, True)
    engine = mbh.ModelSolverHelper("highs")
    engine.set_time_limit_in_seconds(max(seconds, 0.1))
    engine.set_solver_specific_parameters(
        f"random_seed={seed % 2**31}\nthreads=1\nmip_rel_gap={gap}\noutput_flag=false\nlog_to_console=false"
        + (f"\nmip_max_nodes={nodes}" if nodes else "")
    )
    engine.solve(helper)
    status = engine.status()
    # HiGHS stopped by its time limit with a solution reports an unknown status: the solution stands (every
    # plan is checked against the model's rows), and so does its bound
    has = engine.has_solution() and status in (
        mbh.SolveStatus.OPTIMAL,
        mbh.SolveStatus.FEASIBLE,
        mbh.SolveStatus.UNKNOWN_STATUS,
    )
    values = np.asarray(engine.variable_values(), dtype=np.float64) if has else None
    bound = float(engine.best_objective_bound()) if has or status == mbh.SolveStatus.OPTIMAL else -np.inf
    return Engine(values, bound, status == mbh.SolveStatus.OPTIMAL)


def feasible(model: Model, values: F64, tol: float = 1e-5) -> bool:
    """Whether ``values`` meet every bound and row of ``model`` and are integral where they must be."""
    if np.any(values < model.lb - tol) or np.any(values > model.ub + tol):
        return False
    ints = values[model.integer()]
    if np.any(np.abs(ints - np.round(ints)) > tol):
        return False
    activity = model.rows @ values
    scale = 1.0 + np.abs(activity)
    return bool(
        np.all(activity >= model.row_lb - tol * scale) and np.all(activity <= model.row_ub + tol * scale)
    )


def _round(model: Model, values: F64) -> F64:
    out = values.copy()
    mask = model.integer()
    out[mask] = np.round(out[mask])
    return out


def _fix_lots(model: Model, lp: F64) -> tuple[F64, F64]:
    """Bounds that close every lot the LP does not use at all; the MIP then chooses among the rest."""
    lb, ub = model.lb.copy(), model.ub.copy()
    open_ = model.block(lp, "open")
    chosen = (open_ > _TOL) | (model.lot_open >= 0)
    lo, hi = model.var_at["open"]
    ub[lo:hi] = np.where(chosen, ub[lo:hi], 0.0)
    # closed lots make nothing and take no arcs
    plo, phi = model.var_at["prod"]
    ub[plo:phi] = np.where(chosen, ub[plo:phi], 0.0)
    alo, ahi = model.var_at["arc"]
    ub[alo:ahi] = np.where(chosen[model.arc_lot], ub[alo:ahi], 0.0)
    return lb, ub


def solve(
    problem: AllocationProblem,
    *,
    seconds: float = 60.0,
    seed: int = 0,
    mip_vars: int = 60_000,
    pdlp_vars: int = 300_000,
) -> AllocationResult:
    """Allocate ``problem`` optimally or near it, with a proven lower bound (see the module docstring)."""
    t0 = time.perf_counter()
    deadline = t0 + seconds
    served = problem.province_shipping_fen[problem.cell_province] >= 0
    model = build_model(problem, group_cells(problem, served))
    # cells no courier serves are unfilled in every plan: their penalty is part of every objective; so is the
    # churn of every previous piece, which the model's keeps earn back
    constant = constant_fen(problem, served)
    steer = split_steer(problem, model)
    steered = replace(model, cost=model.cost + steer) if np.any(steer > 0) else None

    def left() -> float:
        return deadline - time.perf_counter()

    # the rule cascade first: it is the plan when nothing better comes in time, and its own seconds (15 s at
    # 12 million orders) count against the limit
    started = time.perf_counter()
    cascade = replace(allocate(problem), solver="optimiser/cascade")
    # making a plan of a solution (cut into cells, then into order lines) costs about what the cascade took,
    # much of the limit at 12 million orders: the flow leaves room for it
    plan_seconds = time.perf_counter() - started
    bound = -np.inf
    candidates: list[AllocationResult] = []
    optimal = False
    model_optimal = False  # HiGHS proved the model's optimum: no LP can bound it better
    if model.n_vars <= mip_vars:
        run = _mip(model, lb=model.lb, ub=model.ub, seconds=left() * 0.6, seed=seed)
        bound, model_optimal = run.bound, run.optimal
        plans = _plans(problem, model, run.values, "mip", seed)
        candidates += plans
        if run.optimal and plans and run.values is not None:
            # the plan reaches the model's optimum (to the rounding of its fen) only without a split or a
            # piece of churn the model did not count
            reached = float(model.cost @ _round(model, run.values))
            optimal = plans[0].objective_fen - constant <= reached + 0.5 * _pieces(plans[0]) + 1e-6
        if steered is not None and not optimal and left() > 0:
            # a heuristic: to a 0.5% gap and at most STEER_NODES branch-and-bound nodes (a limit of work, not
            # of time, so the plan is the same for a seed however busy the machine)
            run = _mip(
                steered,
                lb=model.lb,
                ub=model.ub,
                seconds=left() * 0.5,
                seed=seed,
                gap=5e-3,
                nodes=STEER_NODES,
            )
            candidates += _plans(problem, model, run.values, "mip-steered", seed)
    flow_failed = False
    room = left() - 1.5 * plan_seconds
    if not optimal and not model_optimal and room > 0 and not problem.prev_quantity.any():
        # the flow leaves out the keeps of a previous plan, which earn churn back: with one it would not
        # relax the model, so a re-plan goes straight to the LP
        try:
            flow = relax(problem, model, deadline=time.perf_counter() + room * 0.6)
        except FlowError:
            flow_failed = True
        else:
            bound = max(bound, flow.bound)
            if left() > plan_seconds:  # else the flow's one solve took the time: its bound stands, not a plan
                plan = integral_plan(problem, model, flow.values)
                candidates += _plans(problem, model, plan, "flow", seed)
    # past pdlp_vars the LP finishes in no limit a batch can wait for (HiGHS 61 s at 1.09 million columns)
    # and PDLP's bound within it was below the flow's (45.9 against 54.0 billion fen at a million orders): it
    # runs there only where the flow could not (it failed, or a previous plan's keeps rule it out); where the
    # limit left no room for the flow either, the cascade's plan stands and the batch is done in time
    lp_worth = model.n_vars <= pdlp_vars or flow_failed or bool(problem.prev_quantity.any())
    if not optimal and not model_optimal and left() > 0 and lp_worth:
        # HiGHS's simplex is exact but slow past a few hundred thousand columns (61 s at 1.09 million): a
        # large model is first bounded by PDLP's prices (30 s there, 3% below the optimum), then HiGHS has
        # the time left
        lp = None
        for engine in ("pdlp", "highs_lp") if model.n_vars > pdlp_vars else ("highs_lp",):
            if left() <= 0:
                break
            try:
                lp = solve_lp(model, seconds=max(left(), 0.1), solver=engine)
            except LpError:
                continue
            bound = max(bound, lp.bound)
        if lp is not None:
            lb, ub = _fix_lots(model, lp.values)
            # HiGHS does not look at its time limit during presolve: a MIP far above the size it solves in
            # time would overrun the limit by minutes, so it is tried only where it fits
            if int(np.count_nonzero(ub > lb)) <= FIXED_MIP_FACTOR * mip_vars and left() > 1.0:
                run = _mip(steered or model, lb=lb, ub=ub, seconds=left(), seed=seed)
                candidates += _plans(problem, model, run.values, "lp-support", seed)
    best = min([*candidates, cascade], key=lambda r: r.objective_fen)  # a tie goes to the optimiser's plan
    proven: float | None = None
    if np.isfinite(bound):
        # allocation costs are rounded to whole fen, each by at most half a fen; the LP's optimum is exact
        # only to its feasibility tolerance (1e-7, relative): both are taken off, and nothing else — a bound
        # above the plan would mean the model does not relax the problem, and the tests look for that
        allowance = 0.5 * _pieces(best) + 1e-7 * abs(bound)
        proven = bound + constant - allowance
    stopped = "optimal" if optimal else "time" if left() <= 0 else "work"
    return _with_bound(best, proven, stopped, seed, time.perf_counter() - t0)


def _pieces(result: AllocationResult) -> int:
    """How many amounts a plan rounds to whole fen: one per allocation and one per lot."""
    return result.n_allocations + int(result.lot_workshop.shape[0])


def _plans(
    problem: AllocationProblem, model: Model, values: F64 | None, method: str, seed: int
) -> list[AllocationResult]:
    """The plan of an engine's solution, if it gave one that meets every row."""
    if values is None:
        return []
    values = _without_idle_lots(model, _round(model, values))
    if not feasible(model, values):
        return []
    return [to_result(problem, model, values, solver=f"optimiser/{method}", seed=seed)]


def _without_idle_lots(model: Model, values: F64) -> F64:
    """``values`` with every lot that no cell takes a piece of made not at all (and a new one closed).

    A MIP cut short may leave such a lot, its whole run surplus: dropping it only saves its cost and minutes.
    Where a lot cannot close (a lot already open must stay open), its making is kept if its row demands it.
    """
    prod, arc = model.block(values, "prod"), model.block(values, "arc")
    taken = np.bincount(model.arc_lot, weights=arc, minlength=prod.shape[0])
    idle = (prod > _TOL) & (taken <= _TOL)
    if not idle.any():
        return values
    out = values.copy()
    model.block(out, "prod")[idle] = 0.0
    model.block(out, "open")[idle & (model.lot_open < 0)] = 0.0
    return out if feasible(model, out) else values


def _with_bound(
    result: AllocationResult, bound: float | None, stopped: str, seed: int, seconds: float
) -> AllocationResult:
    b = None if bound is None or not np.isfinite(bound) else float(bound)
    return replace(result, bound_fen=b, stopped_by=stopped, seed=seed, seconds=seconds)
