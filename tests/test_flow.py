"""The network relaxation (flow.py) and the plan built from it (integral.py): bounds no plan beats, plans
that keep every constraint, and the path solve() takes for large models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from solvers.allocation import solve
from solvers.allocation.check import check_plan
from solvers.allocation.data import AllocationProblem
from solvers.allocation.flow import relax
from solvers.allocation.integral import integral_plan
from solvers.allocation.model import Model, build_model, group_cells
from solvers.allocation.plan import to_result
from solvers.allocation.solve import _mip, feasible
from tests.test_greedy import SHIP_DAY1, problem
from tests.test_greedy import random_problem as greedy_random_problem
from tests.test_optimiser import _random_problem


def _model(p: AllocationProblem) -> Model:
    served = p.province_shipping_fen[p.cell_province] >= 0
    return build_model(p, group_cells(p, served))


def _problems() -> list[AllocationProblem]:
    return [_random_problem(s) for s in range(12)] + [greedy_random_problem(s, cells=40) for s in range(8)]


@pytest.mark.parametrize("k", range(20))
def test_the_flow_bound_is_at_most_the_models_proven_optimum(k: int) -> None:
    p = _problems()[k]
    m = _model(p)
    flow = relax(p, m)
    run = _mip(m, lb=m.lb, ub=m.ub, seconds=20, seed=0)
    assert run.optimal and run.values is not None
    optimum = float(m.cost @ run.values)
    # integer costs are floored after scaling by at least 1/100 fen per unit of flow: the flow is at most
    # the relaxation, never above
    assert flow.bound <= optimum + 1e-6 * max(1.0, abs(optimum))


@pytest.mark.parametrize("k", range(20))
def test_the_plan_from_the_flow_keeps_every_constraint(k: int) -> None:
    p = _problems()[k]
    m = _model(p)
    values = integral_plan(p, m, relax(p, m).values)
    assert feasible(m, values)
    r = to_result(p, m, values, solver="optimiser/flow", seed=0)
    assert check_plan(p, r) == []


def test_a_style_wanting_ten_pieces_pays_for_a_whole_minimum_lot_in_the_bound() -> None:
    # 10 pieces due on day 1, nothing in stock; a lot is at least 50 pieces at 900 fen plus 5,000 fen of
    # changeover: every plan pays 50 x 900 + 5,000 + 10 x 500 shipping, and so does the flow's bound
    p = problem(
        style_min_lot=[50],
        style_changeover_fen=[5_000],
        qual_workshop=[1],
        qual_style=[0],
        qual_unit_cost_fen=[900],
        cell_ship_by=[SHIP_DAY1],
    )
    m = _model(p)
    flow = relax(p, m)
    exact = 50 * 900 + 5_000 + 10 * 500
    assert flow.bound == pytest.approx(exact, abs=0.5)
    r = to_result(p, m, integral_plan(p, m, flow.values), solver="optimiser/flow", seed=0)
    assert check_plan(p, r) == []
    assert r.objective_fen == exact
    assert r.lot_quantity.tolist() == [50]


def test_stock_beyond_a_warehouse_days_lines_is_made_instead() -> None:
    # 30 pieces in stock at warehouse 0, which picks 10 lines a day: 20 picked on the due day and the day
    # before, 10 made on time (picking them a day late would cost 20,000 fen a piece)
    p = problem(
        late_fen_per_unit_day=20_000,
        cell_quantity=[30],
        cell_lines=[30],
        stock_warehouse=[0],
        stock_owner=[0],
        stock_sku=[0],
        stock_available=[30],
        warehouse_handling=np.array([[10, 10, 10], [0, 0, 0]]),
    )
    m = _model(p)
    flow = relax(p, m)
    r = to_result(p, m, integral_plan(p, m, flow.values), solver="optimiser/flow", seed=0)
    assert check_plan(p, r) == []
    picked = int(r.alloc_quantity[r.alloc_kind == 0].sum())
    assert picked == 20 and int(r.alloc_quantity.sum()) == 30
    assert r.costs()["late_fen"] == 0
    assert flow.bound <= r.objective_fen


def test_solve_takes_the_flow_path_for_a_large_model_and_keeps_its_bound() -> None:
    for p in _problems()[:6]:
        r = solve(p, seconds=20, mip_vars=0)  # every model counts as large
        assert check_plan(p, r) == []
        assert r.bound_fen is not None and r.bound_fen <= r.objective_fen


def test_minutes_that_are_not_whole_units_still_give_a_bound_and_a_plan() -> None:
    # a third of a minute a piece: pieces count their minutes rounded down, which only loosens the bound
    p = dataclasses.replace(_random_problem(1), style_minutes_per_unit=np.array([1 / 3, 1.0, 2.0, 0.5]))
    m = _model(p)
    flow = relax(p, m)
    run = _mip(m, lb=m.lb, ub=m.ub, seconds=20, seed=0)
    assert run.optimal and run.values is not None
    assert flow.bound <= float(m.cost @ run.values) + 1e-6
    values = integral_plan(p, m, flow.values)
    assert feasible(m, values)
    assert check_plan(p, to_result(p, m, values, solver="optimiser/flow", seed=0)) == []


def test_a_belt_with_too_many_line_site_pairs_plans_without_the_split_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # listing (line, site) pairs is what finding unavoidable splits and steering away from splits cost: past
    # the limit neither is done, and the plan and its bound stay valid (the penalty is still counted)
    from solvers.allocation import model as model_module
    from solvers.allocation import orders as orders_module
    from tests.test_orders_churn import random_orders_problem

    p = random_orders_problem(0, split=2_000, churn=0)
    assert model_module.servable_pair_count(p, np.arange(p.n_order_lines)) > 0
    m = _model(p)
    assert m.var_at["split"][1] > m.var_at["split"][0]  # forced splits are found under the limit
    monkeypatch.setattr(model_module, "MAX_SITE_PAIRS", 0)
    monkeypatch.setattr(orders_module, "MAX_SITE_PAIRS", 0)
    m = _model(p)
    assert m.var_at["split"][1] == m.var_at["split"][0]
    assert not orders_module.split_steer(p, m).any()
    r = solve(p, seconds=10)
    assert check_plan(p, r) == []
    assert r.bound_fen is not None and r.bound_fen <= r.objective_fen


@pytest.mark.parametrize("seed", range(4))
def test_lines_asking_fewer_sites_still_cut_whole_and_count_their_splits(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # at belt scale each listed line asks only its cell's largest slots; with one each, every plan's cut
    # still gives each line its pieces whole, and the checker's recount of splits agrees
    from solvers.allocation import orders as orders_module
    from tests.test_orders_churn import random_orders_problem

    monkeypatch.setattr(orders_module, "SLOTS_PER_LINE", 1)
    p = random_orders_problem(seed, split=2_000, churn=0)
    r = solve(p, seconds=10)
    assert check_plan(p, r) == []
