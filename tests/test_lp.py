"""The LP layer: weak-duality bounds from row prices, and PDLP's bound against the simplex optimum."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.allocation import solve
from solvers.allocation.check import check_plan
from solvers.allocation.lp import dual_bound, solve_lp
from solvers.allocation.model import build_model
from tests.test_optimiser import _random_problem


@pytest.mark.parametrize("seed", range(4))
def test_exact_prices_bound_the_lp_at_its_optimum_and_any_prices_below_it(seed: int) -> None:
    model = build_model(_random_problem(seed))
    glop = solve_lp(model, solver="glop")
    assert glop.bound == glop.objective
    # strong duality: the simplex's own prices give back its optimum
    assert dual_bound(model, glop.duals) == pytest.approx(glop.objective, rel=1e-9, abs=1e-6)
    rng = np.random.default_rng(seed)
    for _ in range(5):  # weak duality: any other prices give less
        shaken = glop.duals + rng.normal(0, 50, glop.duals.shape[0])
        assert dual_bound(model, shaken) <= glop.objective + 1e-6


def test_highs_gives_no_prices() -> None:
    model = build_model(_random_problem(0))
    assert np.isnan(solve_lp(model, solver="highs_lp").duals).all()


@pytest.mark.parametrize("seed", range(4))
def test_pdlp_bounds_the_optimum_from_below_and_closely(seed: int) -> None:
    model = build_model(_random_problem(seed))
    optimum = solve_lp(model, solver="glop").objective
    pdlp = solve_lp(model, solver="pdlp", tolerance=1e-6, seconds=30)
    assert pdlp.bound <= optimum + 1e-6
    assert pdlp.bound >= optimum - 1e-3 * abs(optimum)


@pytest.mark.parametrize("seed", range(3))
def test_a_batch_too_large_for_the_simplex_is_bounded_by_pdlp(seed: int) -> None:
    p = _random_problem(seed)
    exact = solve(p, seconds=20, seed=seed)
    # as if the model were too large for the MIP and for HiGHS's simplex
    large = solve(p, seconds=20, seed=seed, mip_vars=0, pdlp_vars=0)
    assert check_plan(p, large) == []
    assert large.bound_fen is not None and exact.bound_fen is not None
    assert large.bound_fen <= exact.objective_fen  # a bound of the same problem, from another method
    assert large.bound_fen <= large.objective_fen
