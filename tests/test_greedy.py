"""The baseline allocation's rule cascade, on small cases that can be checked by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.allocation import AllocationProblem, ProblemError, SiteKind, Unfilled, Why, allocate
from solvers.allocation.data import MINUTES_PER_DAY

DAY = MINUTES_PER_DAY
# a ship-by of 23:00 on day d: production on day d (ready 18:00) still meets it
SHIP_DAY0, SHIP_DAY1 = 23 * 60, DAY + 23 * 60


def problem(**kw: Any) -> AllocationProblem:
    """One merchant at (120.75, 31.65), one style (1 minute a piece, no minimum lot), one SKU, one cell of 10,
    two workshops (0 near, 1 far) with 100 regular + 60 overtime minutes a day on 3 days, both qualified,
    two warehouses (0 near, 1 far) with no stock, shipping 500 fen to the one province."""
    base: dict[str, Any] = dict(
        merchant_lon=[120.75],
        merchant_lat=[31.65],
        merchant_pools=[False],
        style_family=[0],
        style_minutes_per_unit=[1.0],
        style_min_lot=[0],
        style_changeover_fen=[0],
        sku_style=[0],
        sku_weight_g=[300],
        cell_style=[0],
        cell_sku=[0],
        cell_owner=[0],
        cell_quantity=[10],
        cell_lines=[10],
        cell_ship_by=[SHIP_DAY1],
        cell_province=[0],
        workshop_lon=[120.76, 120.95],
        workshop_lat=[31.66, 31.80],
        regular_minutes=np.full((2, 1, 3), 100.0),
        overtime_minutes=np.full((2, 1, 3), 60.0),
        overtime_fen_per_minute=np.full((2, 1, 3), 3),
        qual_workshop=[0, 1],
        qual_style=[0, 0],
        qual_unit_cost_fen=[1000, 900],
        warehouse_lon=[120.751, 121.2],
        warehouse_lat=[31.651, 31.9],
        warehouse_handling=np.full((2, 3), 1000),
        warehouse_handling_fen=[50, 40],
        stock_warehouse=[],
        stock_owner=[],
        stock_sku=[],
        stock_available=[],
        province_shipping_fen=[500],
        start=dt.date(2024, 11, 11),
        days=3,
    )
    base.update(kw)
    scalars = {"start", "days", "first_day", "ready_minute", "late_fen_per_unit_day"}
    floats = {
        "merchant_lon",
        "merchant_lat",
        "style_minutes_per_unit",
        "workshop_lon",
        "workshop_lat",
        "warehouse_lon",
        "warehouse_lat",
        "regular_minutes",
        "overtime_minutes",
    }
    args: dict[str, Any] = {}
    for k, v in base.items():
        if k in scalars:
            args[k] = v
        elif k == "merchant_pools":
            args[k] = np.asarray(v, dtype=np.bool_)
        elif k in floats:
            args[k] = np.asarray(v, dtype=np.float64)
        else:
            args[k] = np.asarray(v, dtype=np.int64)
    return AllocationProblem(**args)


def pieces(p: AllocationProblem, cell: int = 0) -> list[tuple[str, int, int, int]]:
    r = allocate(p)
    return [(a.site_kind.name, a.site, a.day, a.quantity) for a in r.cell_allocations(cell)]


def test_made_at_the_nearest_qualified_workshop_on_the_earliest_day() -> None:
    r = allocate(problem())
    [a] = r.cell_allocations(0)
    assert (a.site_kind, a.site, a.day, a.quantity) == (SiteKind.WORKSHOP, 0, 0, 10)
    assert a.why == Why.MADE_REGULAR and not a.late
    assert (a.regular_minutes, a.overtime_minutes) == (10.0, 0.0)
    # goods 10 x 1000, shipping 10 lines x 500, nothing else
    assert r.costs() == {
        "goods_fen": 10_000,
        "overtime_fen": 0,
        "changeover_fen": 0,
        "shipping_fen": 5_000,
        "late_fen": 0,
        "unfilled_fen": 0,
        "split_fen": 0,
        "churn_fen": 0,
    }
    assert r.objective_fen == 15_000
    assert r.used_regular[0, 0, 0] == 10.0 and r.used_regular.sum() == 10.0


def test_stock_first_at_the_nearest_warehouse_that_has_it() -> None:
    p = problem(
        stock_warehouse=[0, 1],
        stock_owner=[0, 0],
        stock_sku=[0, 0],
        stock_available=[3, 4],
    )
    # near warehouse's 3, then the far one's 4, then 3 made
    assert pieces(p) == [("WAREHOUSE", 0, 0, 3), ("WAREHOUSE", 1, 0, 4), ("WORKSHOP", 0, 0, 3)]
    r = allocate(p)
    assert r.cell_allocations(0)[0].why == Why.OWN_STOCK
    # handling is per line: 3 lines at 50 fen and 4 lines at 40 fen
    assert [a.goods_fen for a in r.cell_allocations(0)[:2]] == [150, 160]
    assert r.used_handling[0, 0] == 3 and r.used_handling[1, 0] == 4


def test_stock_within_handling_capacity_in_lines() -> None:
    # 10 pieces on 5 lines; the near warehouse can pick 2 lines today, 1 tomorrow: 4 + 2 pieces on time
    handling = np.array([[2, 1, 0], [0, 0, 0]])
    p = problem(
        cell_lines=[5],
        stock_warehouse=[0],
        stock_owner=[0],
        stock_sku=[0],
        stock_available=[100],
        warehouse_handling=handling,
    )
    assert pieces(p) == [("WAREHOUSE", 0, 0, 4), ("WAREHOUSE", 0, 1, 2), ("WORKSHOP", 0, 0, 4)]


def test_capacity_spills_to_the_next_workshop_in_regular_time_before_overtime() -> None:
    reg = np.zeros((2, 1, 3))
    reg[0, 0, 0] = 6.0  # near workshop: 6 pieces of regular time, only on day 0
    reg[1, 0, 1] = 100.0  # far workshop: regular time on day 1
    p = problem(regular_minutes=reg)
    r = allocate(p)
    got = [(a.site, a.day, a.quantity, a.why) for a in r.cell_allocations(0)]
    assert got == [(0, 0, 6, Why.MADE_REGULAR), (1, 1, 4, Why.MADE_REGULAR)]
    assert r.alloc_overtime_minutes.sum() == 0


def test_overtime_after_regular_time() -> None:
    reg = np.zeros((2, 1, 3))
    reg[0, 0, 0] = 6.0
    ot = np.zeros((2, 1, 3))
    ot[0, 0, 0] = 60.0
    p = problem(regular_minutes=reg, overtime_minutes=ot, overtime_fen_per_minute=np.full((2, 1, 3), 7))
    r = allocate(p)
    [a, b] = r.cell_allocations(0)
    assert (a.quantity, a.regular_minutes, a.overtime_minutes, a.why) == (6, 6.0, 0.0, Why.MADE_REGULAR)
    assert (b.quantity, b.regular_minutes, b.overtime_minutes, b.why) == (4, 0.0, 4.0, Why.MADE_OVERTIME)
    assert b.overtime_fen == 28
    # both pieces grew the one lot of the style at workshop 0 on day 0
    assert a.lot == b.lot and r.lot_quantity.tolist() == [10]
    assert r.lot_regular_minutes[0] == 6.0 and r.lot_overtime_minutes[0] == 4.0


def test_minimum_lot_rounds_up_and_its_surplus_serves_the_next_cell() -> None:
    p = problem(
        style_min_lot=[50],
        style_changeover_fen=[2000],
        sku_style=[0, 0],
        sku_weight_g=[300, 300],
        cell_style=[0, 0],
        cell_sku=[0, 1],
        cell_owner=[0, 0],
        cell_quantity=[10, 30],
        cell_lines=[10, 30],
        cell_ship_by=[SHIP_DAY1, SHIP_DAY1],
        cell_province=[0, 0],
    )
    r = allocate(p)
    [a] = r.cell_allocations(0)
    assert (a.site, a.quantity, a.regular_minutes, a.goods_fen, a.changeover_fen) == (
        0,
        10,
        50.0,
        50_000,
        2000,
    )
    [b] = r.cell_allocations(1)
    assert (b.site, b.quantity, b.regular_minutes, b.goods_fen, b.why) == (0, 30, 0.0, 0, Why.LOT_SURPLUS)
    assert r.lot_quantity.tolist() == [50] and r.lot_allocated.tolist() == [40]
    assert r.lot_surplus_sku.tolist() == [0]  # the surplus is made in the SKU of the cell that opened the lot
    assert r.used_regular.sum() == 50.0


def test_a_lot_planned_earlier_serves_from_its_spare_pieces_first() -> None:
    p = problem(
        style_min_lot=[50],
        style_changeover_fen=[2000],
        open_lot_workshop=[1],
        open_lot_style=[0],
        open_lot_day=[1],
        open_lot_spare=[30],
        open_lot_owner=[0],
    )
    r = allocate(p)
    [a] = r.cell_allocations(0)
    # the far workshop's earlier lot has 30 spare: no new lot at the near one, no minutes, no changeover
    assert (a.site, a.day, a.quantity, a.why, a.lot) == (1, 1, 10, Why.LOT_SURPLUS, 0)
    assert (a.regular_minutes, a.goods_fen, a.changeover_fen) == (0.0, 0, 0)
    assert r.lot_open.tolist() == [0] and r.lot_quantity.tolist() == [30] and r.lot_allocated.tolist() == [10]


def test_a_lot_planned_earlier_grows_without_a_new_minimum_lot() -> None:
    reg = np.zeros((2, 1, 3))
    reg[0, 0, 0] = 30.0  # too little for a new lot of 50, enough to grow the earlier one
    p = problem(
        style_min_lot=[50],
        style_changeover_fen=[2000],
        regular_minutes=reg,
        overtime_minutes=np.zeros((2, 1, 3)),
        open_lot_workshop=[0],
        open_lot_style=[0],
        open_lot_day=[0],
        open_lot_spare=[4],
        open_lot_owner=[0],
    )
    r = allocate(p)
    got = [(a.site, a.quantity, a.regular_minutes, a.changeover_fen, a.why) for a in r.cell_allocations(0)]
    assert got == [(0, 4, 0.0, 0, Why.LOT_SURPLUS), (0, 6, 6.0, 0, Why.MADE_REGULAR)]
    assert r.lot_open.tolist() == [0] and r.lot_quantity.tolist() == [10]
    assert r.lot_regular_minutes.tolist() == [6.0]


def test_a_minimum_lot_that_does_not_fit_is_not_opened() -> None:
    reg = np.zeros((2, 1, 3))
    reg[0, 0, 0] = 40.0  # the near workshop cannot make a lot of 50
    reg[1, 0, 0] = 80.0
    p = problem(style_min_lot=[50], regular_minutes=reg, overtime_minutes=np.zeros((2, 1, 3)))
    r = allocate(p)
    [a] = r.cell_allocations(0)
    assert (a.site, a.quantity, a.regular_minutes) == (1, 10, 50.0)


def test_what_fits_nowhere_before_ship_by_goes_late_to_the_earliest_day() -> None:
    reg = np.zeros((2, 1, 3))
    reg[1, 0, 2] = 100.0  # only the far workshop on day 2 has time
    p = problem(
        regular_minutes=reg,
        overtime_minutes=np.zeros((2, 1, 3)),
        cell_ship_by=[SHIP_DAY0],
        late_fen_per_unit_day=100,
    )
    r = allocate(p)
    [a] = r.cell_allocations(0)
    assert (a.site, a.day, a.quantity, a.late) == (1, 2, 10, True)
    assert a.late_fen == 100 * 10 * 2  # two days late
    assert r.unfilled_cell.size == 0


def test_on_time_stock_beats_nothing_but_late_stock_waits_for_its_day() -> None:
    # the warehouse can pick only on day 2 and the cell is due on day 0: late from stock on day 2
    handling = np.zeros((2, 3), dtype=np.int64)
    handling[0, 2] = 100
    p = problem(
        regular_minutes=np.zeros((2, 1, 3)),
        overtime_minutes=np.zeros((2, 1, 3)),
        warehouse_handling=handling,
        stock_warehouse=[0],
        stock_owner=[0],
        stock_sku=[0],
        stock_available=[10],
        cell_ship_by=[SHIP_DAY0],
    )
    assert pieces(p) == [("WAREHOUSE", 0, 2, 10)]


def test_unfillable_demand_keeps_its_reason() -> None:
    no_capacity = problem(regular_minutes=np.zeros((2, 1, 3)), overtime_minutes=np.zeros((2, 1, 3)))
    r = allocate(no_capacity)
    assert r.unfilled() == {
        0: (10, "no stock left and no qualified workshop has capacity (for a minimum lot) in the plan days")
    }
    assert r.n_allocations == 0

    r = allocate(problem(qual_workshop=[], qual_style=[], qual_unit_cost_fen=[]))
    assert r.unfilled_reason.tolist() == [Unfilled.NO_SOURCE]

    r = allocate(problem(province_shipping_fen=[-1]))
    assert r.unfilled_reason.tolist() == [Unfilled.NO_COURIER]


def test_part_filled_cell_reports_the_rest() -> None:
    reg = np.zeros((2, 1, 3))
    reg[0, 0, 0] = 7.0
    r = allocate(problem(regular_minutes=reg, overtime_minutes=np.zeros((2, 1, 3))))
    assert int(r.alloc_quantity.sum()) == 7
    assert r.unfilled_quantity.tolist() == [3] and r.unfilled_reason.tolist() == [Unfilled.NO_CAPACITY]


def _pooling(pools: list[bool]) -> AllocationProblem:
    # merchants 0, 1, 2; only merchant 1 and 2 hold stock of the SKU; merchant 0 orders it
    return problem(
        merchant_lon=[120.75, 120.8, 120.7],
        merchant_lat=[31.65, 31.6, 31.7],
        merchant_pools=pools,
        stock_warehouse=[0, 1],
        stock_owner=[1, 2],
        stock_sku=[0, 0],
        stock_available=[4, 4],
    )


def test_pooled_stock_only_between_pooling_merchants() -> None:
    # nobody pools: merchant 0 makes everything
    assert pieces(_pooling([False, False, False])) == [("WORKSHOP", 0, 0, 10)]
    # 0 and 1 pool, 2 does not: only merchant 1's stock
    r = allocate(_pooling([True, True, False]))
    got = [(a.site_kind.name, a.site, a.stock_owner, a.quantity, a.why) for a in r.cell_allocations(0)]
    assert got == [("WAREHOUSE", 0, 1, 4, Why.POOLED_STOCK), ("WORKSHOP", 0, -1, 6, Why.MADE_REGULAR)]
    # 1 pools but the ordering merchant does not: nothing pooled
    assert pieces(_pooling([False, True, True])) == [("WORKSHOP", 0, 0, 10)]


def test_cells_are_served_in_order_of_ship_by() -> None:
    reg = np.zeros((2, 1, 3))
    reg[0, 0, 0] = 10.0
    p = problem(
        regular_minutes=reg,
        overtime_minutes=np.zeros((2, 1, 3)),
        sku_style=[0, 0],
        sku_weight_g=[300, 300],
        cell_style=[0, 0],
        cell_sku=[0, 1],
        cell_owner=[0, 0],
        cell_quantity=[10, 10],
        cell_lines=[10, 10],
        cell_ship_by=[SHIP_DAY1, SHIP_DAY0],  # cell 1 is due first
        cell_province=[0, 0],
    )
    r = allocate(p)
    assert r.cell_allocations(1)[0].quantity == 10
    assert r.cell_allocations(0) == [] and r.unfilled_cell.tolist() == [0]


def test_bad_input_names_the_array() -> None:
    with pytest.raises(ProblemError, match="cell_sku"):
        problem(cell_sku=[5])
    with pytest.raises(ProblemError, match="regular_minutes"):
        problem(regular_minutes=np.zeros((2, 1, 2)))
    with pytest.raises(ProblemError, match="cell_quantity"):
        problem(cell_quantity=[0], cell_lines=[0])
    short = np.full((2, 1, 3), 100.0)
    short[1, 0, 2] = -5
    with pytest.raises(
        ProblemError, match=r"^regular_minutes: negative value -5.0 at workshop 1, family 0, day 2$"
    ):
        problem(regular_minutes=short)
    with pytest.raises(ProblemError, match=r"^style_min_lot: negative value -1 at style 0$"):
        problem(style_min_lot=[-1])


def random_problem(seed: int, cells: int = 60) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    n_m, n_st, n_w, n_h, fam, days = 4, 6, 5, 3, 2, 4
    n_sku = n_st * 2
    sku_style = np.repeat(np.arange(n_st), 2)
    cell_sku = rng.integers(0, n_sku, cells)
    qual = [(w, s) for w in range(n_w) for s in range(n_st) if rng.random() < 0.5]
    stock = [(h, m, k) for h in range(n_h) for m in range(n_m) for k in range(n_sku) if rng.random() < 0.1]
    qty = rng.integers(1, 40, cells)
    open_lots = sorted(
        {
            (int(w), int(st_), int(d))
            for w, st_, d in zip(*(rng.integers(0, n, 3) for n in (n_w, n_st, days)), strict=True)
        }
    )
    open_lots = [(w, s_, d) for w, s_, d in open_lots if (w, s_) in set(qual)]
    return problem(
        merchant_lon=rng.uniform(120.6, 121.0, n_m),
        merchant_lat=rng.uniform(31.5, 31.9, n_m),
        merchant_pools=rng.random(n_m) < 0.5,
        style_family=rng.integers(0, fam, n_st),
        style_minutes_per_unit=rng.uniform(0.5, 4.0, n_st),
        style_min_lot=rng.choice([0, 20, 50], n_st),
        style_changeover_fen=rng.integers(0, 3000, n_st),
        sku_style=sku_style,
        sku_weight_g=rng.integers(100, 900, n_sku),
        cell_style=sku_style[cell_sku],
        cell_sku=cell_sku,
        cell_owner=rng.integers(0, n_m, cells),
        cell_quantity=qty,
        cell_lines=np.maximum(1, qty // rng.integers(1, 3, cells)),
        cell_ship_by=rng.integers(-DAY, 3 * DAY, cells),
        cell_province=rng.integers(0, 3, cells),
        workshop_lon=rng.uniform(120.6, 121.0, n_w),
        workshop_lat=rng.uniform(31.5, 31.9, n_w),
        regular_minutes=rng.uniform(0, 200, (n_w, fam, days)),
        overtime_minutes=rng.uniform(0, 60, (n_w, fam, days)),
        overtime_fen_per_minute=rng.integers(1, 10, (n_w, fam, days)),
        qual_workshop=[w for w, _ in qual],
        qual_style=[s for _, s in qual],
        qual_unit_cost_fen=rng.integers(500, 3000, len(qual)),
        warehouse_lon=rng.uniform(120.6, 121.0, n_h),
        warehouse_lat=rng.uniform(31.5, 31.9, n_h),
        warehouse_handling=rng.integers(0, 30, (n_h, days)),
        warehouse_handling_fen=rng.integers(20, 80, n_h),
        stock_warehouse=[h for h, _, _ in stock],
        stock_owner=[m for _, m, _ in stock],
        stock_sku=[k for _, _, k in stock],
        stock_available=rng.integers(0, 30, len(stock)),
        province_shipping_fen=[450, 600, -1],
        days=days,
        open_lot_workshop=[w for w, _, _ in open_lots],
        open_lot_style=[s_ for _, s_, _ in open_lots],
        open_lot_day=[d for _, _, d in open_lots],
        open_lot_spare=rng.integers(0, 30, len(open_lots)),
        open_lot_owner=rng.integers(0, n_m, len(open_lots)),
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_invariants_hold_on_random_belts(seed: int) -> None:
    p = random_problem(seed)
    r = allocate(p)
    # every piece placed or unfilled, never both, never more
    placed = np.bincount(r.alloc_cell, weights=r.alloc_quantity, minlength=p.n_cells)
    left = np.bincount(r.unfilled_cell, weights=r.unfilled_quantity, minlength=p.n_cells)
    assert np.array_equal(placed + left, p.cell_quantity)
    # capacity and handling never exceeded, stock never over-taken
    assert np.all(r.used_regular <= p.regular_minutes + 1e-6) and np.all(r.used_regular >= -1e-6)
    assert np.all(r.used_overtime <= p.overtime_minutes + 1e-6) and np.all(r.used_overtime >= -1e-6)
    assert np.all(r.used_handling <= p.warehouse_handling) and np.all(r.used_handling >= 0)
    stock = r.alloc_kind == SiteKind.WAREHOUSE
    for row in range(p.stock_available.shape[0]):
        taken = r.alloc_quantity[
            stock & (r.alloc_site == p.stock_warehouse[row]) & (r.alloc_owner == p.stock_owner[row])
        ]
        cells = r.alloc_cell[
            stock & (r.alloc_site == p.stock_warehouse[row]) & (r.alloc_owner == p.stock_owner[row])
        ]
        assert taken[p.cell_sku[cells] == p.stock_sku[row]].sum() <= p.stock_available[row]
    # stock goes only to its owner or between pooling merchants
    own = r.alloc_owner[stock] == p.cell_owner[r.alloc_cell[stock]]
    both_pool = p.merchant_pools[r.alloc_owner[stock]] & p.merchant_pools[p.cell_owner[r.alloc_cell[stock]]]
    assert np.all(own | both_pool)
    # lots: new ones at least the minimum; all exactly their minutes, never less than what cells took
    new = r.lot_open < 0
    assert np.array_equal(r.lot_open[~new], np.arange(p.open_lot_workshop.shape[0]))
    assert np.all(r.lot_quantity[new] >= p.style_min_lot[r.lot_style[new]])
    assert np.all(r.lot_quantity >= r.lot_allocated)
    spare = np.where(new, 0, p.open_lot_spare[np.maximum(r.lot_open, 0)] if p.open_lot_spare.size else 0)
    minutes = r.lot_regular_minutes + r.lot_overtime_minutes
    assert np.allclose(minutes, (r.lot_quantity - spare) * p.style_minutes_per_unit[r.lot_style])
    # a changeover only for lots this solve opened
    assert r.alloc_changeover_fen[r.alloc_lot >= 0][~new[r.alloc_lot[r.alloc_lot >= 0]]].sum() == 0
    assert np.isclose(minutes.sum(), (r.used_regular + r.used_overtime).sum())
    # only qualified workshops make a style
    made = r.alloc_kind == SiteKind.WORKSHOP
    qualified = set(zip(p.qual_workshop.tolist(), p.qual_style.tolist(), strict=True))
    for w, c in zip(r.alloc_site[made].tolist(), r.alloc_cell[made].tolist(), strict=True):
        assert (w, int(p.cell_style[c])) in qualified
    # late exactly when after the due day; unservable provinces never placed
    assert np.array_equal(r.alloc_late, r.alloc_day > p.due_day()[r.alloc_cell])
    assert np.all(p.province_shipping_fen[p.cell_province[r.alloc_cell]] >= 0)
    assert r.objective_fen == sum(r.costs().values())


def test_deterministic() -> None:
    a, b = allocate(random_problem(7, cells=300)), allocate(random_problem(7, cells=300))
    for name in ("alloc_cell", "alloc_site", "alloc_day", "alloc_quantity", "lot_quantity", "unfilled_cell"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.objective_fen == b.objective_fen
