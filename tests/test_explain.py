"""Explanations of a plan: cost breakdowns, runners-up, shadow prices and binding constraints — expected
numbers worked out by hand from each problem — and the dashboard's endpoints on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

from fulfil.api.app import create_app
from fulfil.db import session_scope
from fulfil.domain.models import (
    AllocationDecision,
    DecisionExplanation,
    OrderBinding,
    ShadowPrice,
    SolverRun,
)
from fulfil.planning.explain import record_explanations
from fulfil.planning.load import LATE_FEN_PER_UNIT_DAY, load_batch
from fulfil.planning.write import write_plan
from solvers.allocation import SiteKind, allocate, solve
from solvers.allocation.check import check_plan
from solvers.allocation.data import AllocationProblem
from solvers.allocation.explain import Binding, explain
from solvers.allocation.result import AllocationResult
from tests.conftest import Backend
from tests.test_greedy import SHIP_DAY0, problem, random_problem
from tests.test_planning import DAY0, add_batch, first_batch, paid, seed_belt

PARTS = (
    "unit_fen",
    "surplus_fen",
    "overtime_fen",
    "changeover_fen",
    "handling_fen",
    "shipping_fen",
    "late_fen",
)


def optimal(p: AllocationProblem) -> AllocationResult:
    r = solve(p, seconds=20)
    assert check_plan(p, r) == [] and r.stopped_by == "optimal"
    return r


# --- breakdown ----------------------------------------------------------------------------------------------


def _two_cells_one_lot() -> AllocationProblem:
    # two SKUs of one style, 3 pieces each, due day 0; minimum lot 20, changeover 5,000 fen
    return problem(
        style_min_lot=[20],
        style_changeover_fen=[5_000],
        sku_style=[0, 0],
        sku_weight_g=[300, 300],
        cell_style=[0, 0],
        cell_sku=[0, 1],
        cell_owner=[0, 0],
        cell_quantity=[3, 3],
        cell_lines=[3, 3],
        cell_ship_by=[SHIP_DAY0, SHIP_DAY0],
        cell_province=[0, 0],
    )


def test_a_minimum_lots_costs_are_shared_by_its_allocations_and_add_up_to_the_plan() -> None:
    p = _two_cells_one_lot()
    r = optimal(p)  # one lot of 20 at the cheaper workshop 1 (900 fen a piece)
    e = explain(p, r)
    assert r.n_allocations == 2
    for i in range(2):
        got = {k: int(getattr(e, k)[i]) for k in PARTS}
        assert got == {
            "unit_fen": 3 * 900,
            "surplus_fen": 14 * 900 // 2,  # 20 - 6 pieces nobody takes, half each
            "overtime_fen": 0,
            "changeover_fen": 5_000 // 2,
            "handling_fen": 0,
            "shipping_fen": 3 * 500,
            "late_fen": 0,
        }
        assert e.total_fen[i] == sum(got.values())
    assert int(e.total_fen.sum()) == r.objective_fen == 20 * 900 + 5_000 + 6 * 500
    # the cascade books the whole lot on its first allocation; shared, the parts still add up to its plan
    c = allocate(p)
    ec = explain(p, c)
    assert int(ec.total_fen.sum()) == c.objective_fen
    assert ec.changeover_fen.tolist() == [2_500, 2_500]


# --- runner-up ----------------------------------------------------------------------------------------------


def test_the_runner_up_is_the_dearer_workshop_at_the_difference_in_unit_cost() -> None:
    # one day, 10 pieces: workshop 1 at 900 fen a piece, workshop 0 at 1,000
    one_day = {
        "regular_minutes": np.full((2, 1, 1), 100.0),
        "overtime_minutes": np.full((2, 1, 1), 60.0),
        "overtime_fen_per_minute": np.full((2, 1, 1), 3),
        "warehouse_handling": np.full((2, 1), 1000),
        "days": 1,
        "cell_ship_by": [SHIP_DAY0],
    }
    p = problem(**one_day)
    r = optimal(p)
    e = explain(p, r)
    assert (r.alloc_site.tolist(), r.alloc_quantity.tolist()) == ([1], [10])
    assert (e.runner_kind[0], e.runner_site[0], e.runner_day[0]) == (SiteKind.WORKSHOP, 0, 0)
    assert e.runner_extra_fen_per_piece[0] == pytest.approx(1_000 - 900)
    # with workshop 0 gone, there is no other way at all
    alone = problem(**one_day, qual_workshop=[1], qual_style=[0], qual_unit_cost_fen=[900])
    ea = explain(alone, optimal(alone))
    assert ea.runner_kind.tolist() == [-1] and np.isnan(ea.runner_extra_fen_per_piece[0])


def test_no_runner_up_is_cheaper_on_optimal_plans_and_the_cascade_shows_where_it_is_not() -> None:
    worse = 0
    for seed in range(4):
        p = random_problem(seed, cells=25)
        r = solve(p, seconds=20)
        assert r.stopped_by == "optimal"
        e = explain(p, r)
        assert int(e.total_fen.sum()) == r.objective_fen - r.unfilled_fen
        extra = e.runner_extra_fen_per_piece[~np.isnan(e.runner_extra_fen_per_piece)]
        # moving pieces gives a feasible plan, so it cannot beat the optimum (but for rounding to whole fen)
        assert extra.size and extra.min() >= -1.0
        c = allocate(p)
        ec = explain(p, c)
        assert int(ec.total_fen.sum()) == c.objective_fen - c.unfilled_fen
        worse += int(np.nanmin(ec.runner_extra_fen_per_piece) < -1.0)
    assert worse > 0  # the cascade is not optimal, and some runner-up says where


# --- shadow prices ------------------------------------------------------------------------------------------


def test_a_full_cheap_workshop_is_worth_what_the_dear_one_costs_more_and_a_slack_one_nothing() -> None:
    # 200 pieces due day 0, 1 minute each: workshop 1 (900 a piece) makes 100 regular + 60 overtime (3 fen a
    # minute: 903 < 1,000), workshop 0 (1,000 a piece) the other 40 of its 160 minutes
    p = problem(cell_quantity=[200], cell_lines=[200], cell_ship_by=[SHIP_DAY0])
    r = optimal(p)
    e = explain(p, r)
    assert e.lp_message is None
    # one more minute at workshop 1 moves a piece from workshop 0: 1,000 - 900 saved, in regular time;
    # in overtime, less its premium
    assert e.shadow_regular[1, 0, 0] == pytest.approx(100.0)
    assert e.shadow_overtime[1, 0, 0] == pytest.approx(97.0)
    # workshop 0 has minutes to spare, and nothing is made on the later days
    assert e.shadow_regular[0, 0, 0] == 0 and e.shadow_overtime[0, 0, 0] == 0
    assert np.count_nonzero(e.shadow_regular) == 1 and np.count_nonzero(e.shadow_overtime) == 1


def test_while_overtime_is_left_a_regular_minute_saves_the_premium() -> None:
    # 150 pieces due day 0 at workshop 1 only: 100 regular minutes, then 50 of its 60 overtime minutes
    p = problem(
        cell_quantity=[150],
        cell_lines=[150],
        cell_ship_by=[SHIP_DAY0],
        qual_workshop=[1],
        qual_style=[0],
        qual_unit_cost_fen=[900],
    )
    e = explain(p, optimal(p))
    assert e.shadow_regular[1, 0, 0] == pytest.approx(3.0)
    assert e.shadow_overtime[1, 0, 0] == 0.0


# --- binding constraints ------------------------------------------------------------------------------------


def test_a_late_cell_names_the_full_capacity_and_a_minute_is_worth_a_day_of_lateness() -> None:
    # as above without overtime: 100 pieces on time, 50 a day late (500 fen a piece-day)
    p = problem(
        cell_quantity=[150],
        cell_lines=[150],
        cell_ship_by=[SHIP_DAY0],
        qual_workshop=[1],
        qual_style=[0],
        qual_unit_cost_fen=[900],
        overtime_minutes=np.zeros((2, 1, 3)),
    )
    r = optimal(p)
    e = explain(p, r)
    assert (e.binding_cell.tolist(), e.binding_late.tolist(), e.binding_unfilled.tolist()) == ([0], [50], [0])
    assert e.binding_code.tolist() == [Binding.CAPACITY_FULL]
    assert e.binding_texts() == [
        "no stock the owner may take and every qualified workshop's family 0 capacity full through day 0"
    ]
    assert e.shadow_regular[1, 0, 0] == pytest.approx(500.0)
    # the late pieces' runner-up: a day later still, 500 fen a piece more
    late = np.flatnonzero(r.alloc_late)
    assert e.runner_day[late].tolist() == [2]
    assert e.runner_extra_fen_per_piece[late] == pytest.approx([500.0])


def _small_order_and_an_open_lot(**kw: Any) -> AllocationProblem:
    # 5 pieces due day 0 at workshop 1 only (minimum lot 100, 900 a piece); an earlier lot there on day 1
    # grows without a minimum
    return problem(
        cell_quantity=[5],
        cell_lines=[5],
        cell_ship_by=[SHIP_DAY0],
        qual_workshop=[1],
        qual_style=[0],
        qual_unit_cost_fen=[900],
        style_min_lot=[100],
        open_lot_workshop=[1],
        open_lot_style=[0],
        open_lot_day=[1],
        open_lot_spare=[0],
        open_lot_owner=[0],
        **kw,
    )


def test_a_minimum_lot_larger_than_the_demand_makes_lateness_cheaper() -> None:
    p = _small_order_and_an_open_lot()
    r = optimal(p)
    assert r.alloc_day.tolist() == [1] and r.alloc_late.tolist() == [True]
    e = explain(p, r)
    assert e.binding_code.tolist() == [Binding.MIN_LOT_COSTLIER]
    # on time: a lot of 100 for 5 pieces, 100 x 900 / 5 = 18,000 a piece; late: 900 + 500
    assert e.binding_extra_fen_per_piece[0] == pytest.approx(18_000 - 1_400)
    assert e.binding_texts() == [
        "a new minimum lot of 100, larger than the demand: on time at workshop 1 on day 0 but costs 16,600 "
        "fen a piece more than lateness"
    ]
    assert (e.runner_day[0], bool(e.runner_new_lot[0])) == (0, True)
    assert e.runner_extra_fen_per_piece[0] == pytest.approx(16_600)


def test_a_minimum_lot_that_fits_no_free_capacity_is_named() -> None:
    regular = np.full((2, 1, 3), 100.0)
    regular[1, 0, 0] = 50.0  # room for the 5 pieces on day 0, not for a lot of 100
    p = _small_order_and_an_open_lot(regular_minutes=regular, overtime_minutes=np.zeros((2, 1, 3)))
    e = explain(p, optimal(p))
    assert e.binding_code.tolist() == [Binding.MIN_LOT]
    assert e.binding_texts(family=lambda f: "cut and sew") == [
        "no stock the owner may take and a minimum lot (100) fits no qualified workshop's free cut and sew "
        "capacity through day 0"
    ]


def test_unfilled_cells_name_the_missing_courier_and_the_missing_source() -> None:
    p = problem(
        cell_quantity=[5, 3],
        cell_lines=[5, 3],
        cell_ship_by=[SHIP_DAY0, SHIP_DAY0],
        cell_style=[0, 0],
        cell_sku=[0, 0],
        cell_owner=[0, 0],
        cell_province=[0, 1],
        province_shipping_fen=[500, -1],
        qual_workshop=[],
        qual_style=[],
        qual_unit_cost_fen=[],
    )
    e = explain(p, solve(p, seconds=10))
    assert e.binding_unfilled.tolist() == [5, 3]
    assert e.binding_code.tolist() == [Binding.NO_SOURCE, Binding.NO_COURIER]
    assert e.binding_texts() == [
        "no stock the owner may take and no qualified workshop",
        "no courier serves the province",
    ]


# --- recorded and served ------------------------------------------------------------------------------------


@pytest.fixture
def client(clean: Backend) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(clean.settings)) as c:
        yield c


def _plan_and_explain(backend: Backend, batch_id: int) -> int:
    """Plan the batch with the optimiser and record its explanation, as ``jobs.plan_session`` will."""
    with session_scope(backend.engine) as session:
        loaded = load_batch(session, batch_id)
        result = solve(loaded.problem, seconds=20, seed=0)
        summary = write_plan(session, loaded, result, started_at=dt.datetime(2026, 11, 23, 2, 0))
        record_explanations(session, loaded, result, summary.solver_run_id)
        return summary.solver_run_id


def test_a_planned_batch_is_explained_through_the_api(clean: Backend, client: TestClient[Litestar]) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    # 400 pieces of K2 (S2: 1 minute a piece, only W1: 100 regular + 50 overtime minutes a day at 2 fen, 800
    # a piece; 5 in stock), due on day 1: 5 from stock, 150 made on each of days 0 and 1, 95 a day late
    bid, (big,) = add_batch(eng, belt, [(paid(0), [("K2", 400)])])
    run_id = _plan_and_explain(clean, bid)

    r = client.get(f"/api/batches/{bid}/explanation")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["batch_id"] == bid
    run = body["solver_run"]
    assert (run["id"], run["explained"], run["lp_message"]) == (run_id, True, None)
    assert run["objective_fen"] > 0 and run["costs"]["late_fen"] == 95 * LATE_FEN_PER_UNIT_DAY
    assert body["orders"] == [
        {
            "order_id": big,
            "status": "late",
            "pieces": 95,
            "code": "capacity_full",
            "reason": (
                "stock short and every qualified workshop's cut and sew capacity full through 2026-11-24"
            ),
        }
    ]
    # a minute more at W1 on day 0 or 1 makes a piece a day earlier: the day's lateness per piece (1 minute)
    prices = {(sp["workshop"], sp["day"]): sp for sp in body["shadow_prices"]}
    assert set(prices) == {("W1", "2026-11-23"), ("W1", "2026-11-24")}
    for sp in prices.values():
        assert sp["family"] == "cut and sew"
        assert sp["regular_fen_per_minute"] == pytest.approx(LATE_FEN_PER_UNIT_DAY)
        assert sp["overtime_fen_per_minute"] == pytest.approx(LATE_FEN_PER_UNIT_DAY - 2)
    assert body["shadow_price_count"] == 2 and body["order_count"] == 1

    with eng.connect() as c:
        decisions = c.execute(
            select(AllocationDecision.id, AllocationDecision.day, AllocationDecision.quantity)
            .where(AllocationDecision.solver_run_id == run_id)
            .order_by(AllocationDecision.id)
        ).all()
        assert c.execute(select(func.count()).select_from(DecisionExplanation)).scalar_one() == len(decisions)
        assert c.execute(select(func.count()).select_from(ShadowPrice)).scalar_one() == 2
        assert c.execute(select(func.count()).select_from(OrderBinding)).scalar_one() == 1
    late = [d for d in decisions if d.day == DAY0 + dt.timedelta(days=2)]
    assert [d.quantity for d in late] == [95]
    d = client.get(f"/api/decisions/{late[0].id}/explanation")
    assert d.status_code == 200, d.text
    x = d.json()
    assert (x["decision_id"], x["source"], x["quantity"], x["late"]) == (late[0].id, "workshop", 95, True)
    parts = x["breakdown"]
    # 95 pieces at 800, their own lot (changeover 1,000), a day late; shipping 1 line x 500 over 400 pieces
    assert (parts["unit_fen"], parts["changeover_fen"], parts["late_fen"]) == (
        95 * 800,
        1_000,
        95 * LATE_FEN_PER_UNIT_DAY,
    )
    assert parts["shipping_fen"] == round(95 * 500 / 400)
    assert parts["total_fen"] == sum(v for k, v in parts.items() if k != "total_fen")
    # the runner-up: W1 a day later still (a new lot again), one more day of lateness a piece
    assert x["runner_up"] == {
        "site_kind": "workshop",
        "workshop_id": belt.workshop["W1"],
        "warehouse_id": None,
        "site": "W1",
        "stock_owner_id": None,
        "day": "2026-11-26",
        "new_lot": True,
        "extra_fen_per_piece": pytest.approx(LATE_FEN_PER_UNIT_DAY),
    }


def test_unfilled_orders_are_explained_and_unknown_ids_are_404s(
    clean: Backend, client: TestClient[Litestar]
) -> None:
    eng = clean.engine
    belt = seed_belt(eng)
    bid, (_o1, _o2, _o3, o4) = first_batch(eng, belt)
    run_id = _plan_and_explain(clean, bid)
    body = client.get(f"/api/batches/{bid}/explanation", params={"limit": 1}).json()
    assert body["solver_run"]["id"] == run_id
    assert body["orders"] == [
        {
            "order_id": o4,
            "status": "unfilled",
            "pieces": 1,
            "code": "no_source",
            "reason": "no stock the owner may take and no qualified workshop",
        }
    ]
    assert client.get(f"/api/batches/{bid}/explanation", params={"limit": 0}).status_code == 400

    missing = client.get("/api/batches/987654/explanation")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "batch 987654 does not exist"
    gone = client.get("/api/decisions/987654/explanation")
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "decision 987654 does not exist"
    # a batch closed but never planned has no solver run to explain
    fresh, _ = add_batch(eng, belt, [(paid(5), [("K2", 1)])])
    r = client.get(f"/api/batches/{fresh}/explanation")
    assert r.status_code == 404 and r.json()["error"]["message"] == f"batch {fresh} has no solver run"
    with eng.connect() as c:
        assert c.execute(select(func.count()).select_from(SolverRun)).scalar_one() == 1
