"""Orders and churn: the split-shipment penalty and churn against a previous plan, checked on hand-made cases,
against an independent reference MIP (``tests/allocation_reference.py``) on small random instances, and for
scale (the cut into order lines is columnar)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from solvers.allocation import AllocationProblem, ProblemError, SiteKind, allocate, solve
from solvers.allocation.check import check_plan
from solvers.allocation.orders import assign_lines, churn_pieces, extra_parcels
from solvers.allocation.result import AllocationResult
from tests.allocation_reference import reference_optimum
from tests.conftest import Backend
from tests.test_greedy import DAY, SHIP_DAY0, problem


def orders_problem(orders: list[tuple[int, int, int, list[tuple[int, int]]]], **kw: Any) -> AllocationProblem:
    """A problem from orders (owner, province, ship-by, [(SKU, quantity), ...]), cut into cells as the
    loader does (SKU × owner × province × due day); orders of more than one piece are listed."""
    ready = kw.get("ready_minute", 18 * 60)
    lines = [
        (o, sku, qty, owner, prov, ship)
        for o, (owner, prov, ship, items) in enumerate(orders)
        for sku, qty in items
    ]
    sku_style = np.asarray(kw["sku_style"])
    keys: dict[tuple[int, int, int, int], int] = {}
    line_cell = []
    for _, sku, _, owner, prov, ship in lines:
        key = (sku, owner, prov, (ship - ready) // DAY)
        line_cell.append(keys.setdefault(key, len(keys)))
    n_cells = len(keys)
    cell_qty = np.zeros(n_cells, np.int64)
    cell_lines = np.zeros(n_cells, np.int64)
    cell_ship = np.full(n_cells, 10**9, np.int64)
    for (_, _, qty, _, _, ship), c in zip(lines, line_cell, strict=True):
        cell_qty[c] += qty
        cell_lines[c] += 1
        cell_ship[c] = min(cell_ship[c], ship)
    cell_key = sorted(keys, key=keys.__getitem__)
    listed = [o for o, (_, _, _, items) in enumerate(orders) if sum(q for _, q in items) > 1]
    start, l_cell, l_qty = [0], [], []
    for o in listed:
        for (lo, _, qty, _, _, _), c in zip(lines, line_cell, strict=True):
            if lo == o:
                l_cell.append(c)
                l_qty.append(qty)
        start.append(len(l_cell))
    args = dict(
        cell_style=sku_style[[k[0] for k in cell_key]],
        cell_sku=[k[0] for k in cell_key],
        cell_owner=[k[1] for k in cell_key],
        cell_quantity=cell_qty,
        cell_lines=cell_lines,
        cell_ship_by=cell_ship,
        cell_province=[k[2] for k in cell_key],
        order_start=start,
        order_line_cell=l_cell,
        order_line_quantity=l_qty,
    )
    args.update(kw)
    return problem(**args)


def two_sku_belt(**kw: Any) -> dict[str, Any]:
    """Two styles of one SKU each, one merchant; warehouse 0 holds both SKUs, warehouse 1 only SKU 0 and
    handles lines cheaper; no workshop is qualified."""
    base: dict[str, Any] = dict(
        style_family=[0, 0],
        style_minutes_per_unit=[1.0, 1.0],
        style_min_lot=[0, 0],
        style_changeover_fen=[0, 0],
        sku_style=[0, 1],
        sku_weight_g=[300, 300],
        qual_workshop=[],
        qual_style=[],
        qual_unit_cost_fen=[],
        stock_warehouse=[0, 0, 1],
        stock_owner=[0, 0, 0],
        stock_sku=[0, 1, 0],
        stock_available=[10, 10, 10],
        warehouse_handling_fen=[200, 50],
    )
    base.update(kw)
    return base


def test_an_order_is_kept_in_one_parcel_when_the_penalty_outweighs_cheaper_handling() -> None:
    # one order of SKU 0 and SKU 1: SKU 0 is 150 fen cheaper to pick at warehouse 1, but SKU 1 is only at
    # warehouse 0; a split costs 100 (split) or 1,000 (kept)
    order = [(0, 0, SHIP_DAY0 + DAY, [(0, 1), (1, 1)])]
    near_1 = dict(warehouse_lon=[121.2, 120.751], warehouse_lat=[31.9, 31.651])  # the cascade's nearest: 1
    cheap = orders_problem(order, **two_sku_belt(split_fen_per_parcel=100, **near_1))
    dear = dataclasses.replace(cheap, split_fen_per_parcel=1_000)
    r = solve(cheap, seconds=10)
    assert check_plan(cheap, r) == []
    assert sorted(set(r.alloc_site.tolist())) == [0, 1] and r.split_fen == 100
    r = solve(dear, seconds=10)
    assert check_plan(dear, r) == []
    assert r.alloc_site.tolist() == [0, 0] and r.split_fen == 0
    assert r.costs()["goods_fen"] == 400
    assert r.bound_fen is not None and r.bound_fen <= r.objective_fen
    # the cascade takes the nearest stock and pays the split; the penalty counts on its plan the same way
    g = allocate(dear)
    assert check_plan(dear, g) == []
    assert sorted(g.alloc_site.tolist()) == [0, 1] and g.split_fen == 1_000
    assert g.objective_fen > r.objective_fen


def test_without_listed_orders_there_is_no_penalty() -> None:
    order = [(0, 0, SHIP_DAY0 + DAY, [(0, 1), (1, 1)])]
    p = orders_problem(order, **two_sku_belt(split_fen_per_parcel=10_000))
    bare = dataclasses.replace(
        p,
        order_start=np.zeros(1, np.int64),
        order_line_cell=p.order_line_cell[:0],
        order_line_quantity=p.order_line_quantity[:0],
    )
    r = solve(bare, seconds=10)
    assert check_plan(bare, r) == [] and r.split_fen == 0 and r.piece_line.size == 0


def test_lines_are_cut_so_orders_share_sites() -> None:
    # cell 0 (SKU 0) is served 2 at warehouse 0 and 2 at warehouse 1; cell 1 (SKU 1) 2 at warehouse 1 only.
    # Orders A = (SKU 0, SKU 1) and B = (SKU 0 x 2): A's SKU 0 goes to warehouse 1 with its SKU 1 (one
    # parcel), B takes warehouse 0's two whole
    orders = [
        (0, 0, SHIP_DAY0, [(0, 2)]),  # B, listed first
        (0, 0, SHIP_DAY0, [(0, 1), (1, 2)]),  # A
        (0, 0, SHIP_DAY0, [(0, 1)]),  # a single piece
    ]
    p = orders_problem(orders, **two_sku_belt(split_fen_per_parcel=500))
    r = _plan(
        p,
        cells=[0, 0, 1],
        sites=[0, 1, 1],
        quantities=[2, 2, 2],
    )
    line, source, qty = assign_lines(p, r)
    site = {(int(lid), int(r.alloc_site[s])) for lid, s in zip(line, source, strict=True)}
    # listed lines: B's (0), A's SKU 0 (1) and SKU 1 (2)
    assert site == {(0, 0), (1, 1), (2, 1)}
    assert extra_parcels(p, r, line, source) == 0
    assert qty.sum() == p.order_line_quantity.sum()


def test_unfilled_pieces_go_to_unlisted_lines_first() -> None:
    orders = [(0, 0, SHIP_DAY0, [(0, 1), (1, 1)]), (0, 0, SHIP_DAY0, [(0, 1)])]
    p = orders_problem(orders, **two_sku_belt())
    # cell 0 holds 2 pieces: one served, one unfilled; the unfilled one is the single-piece order's
    r = _plan(p, cells=[0, 1], sites=[0, 0], quantities=[1, 1], unfilled=[(0, 1)])
    line, source, _ = assign_lines(p, r)
    assert (source >= 0).all() and sorted(line.tolist()) == [0, 1]


def test_churn_keeps_the_previous_sites_when_it_pays() -> None:
    # 10 pieces, workshop 1 is 100 fen a piece cheaper; the previous plan made them at workshop 0
    p = problem(
        prev_cell=[0], prev_kind=[int(SiteKind.WORKSHOP)], prev_site=[0], prev_day=[1], prev_quantity=[10]
    )
    moved = solve(dataclasses.replace(p, churn_fen_per_unit=50), seconds=10)
    kept = solve(dataclasses.replace(p, churn_fen_per_unit=150), seconds=10)
    assert moved.alloc_site.tolist() == [1] and moved.churn_fen == 500
    assert kept.alloc_site.tolist() == [0] and kept.churn_fen == 0
    for r, fen in ((moved, 50), (kept, 150)):
        q = dataclasses.replace(p, churn_fen_per_unit=fen)
        assert check_plan(q, r) == []
        assert r.stopped_by == "optimal" and r.bound_fen is not None
        assert r.bound_fen <= r.objective_fen <= r.bound_fen + 2
    # without a previous plan the term vanishes
    bare = solve(problem(churn_fen_per_unit=150), seconds=10)
    assert bare.alloc_site.tolist() == [1] and bare.churn_fen == 0


def test_new_fields_are_validated_naming_the_record() -> None:
    order = [(0, 0, SHIP_DAY0, [(0, 1), (1, 1)])]
    belt = two_sku_belt()
    with pytest.raises(ProblemError, match="order_line_cell: index 5"):
        orders_problem(order, **{**belt, "order_line_cell": [0, 5]})
    with pytest.raises(ProblemError, match="order_line_quantity: order line 1 has 0"):
        orders_problem(order, **{**belt, "order_line_quantity": [1, 0]})
    with pytest.raises(ProblemError, match="cell 1's listed order lines hold 3 pieces"):
        orders_problem(order, **{**belt, "order_line_quantity": [1, 3]})
    with pytest.raises(ProblemError, match="order_start: order 0 has no lines"):
        orders_problem(order, **{**belt, "order_start": [0, 0, 2]})
    with pytest.raises(ProblemError, match="order_start: ends at 1"):
        orders_problem(order, **{**belt, "order_start": [0, 1]})
    with pytest.raises(ProblemError, match="prev_site: entry 1 names workshop 7"):
        problem(prev_cell=[0, 0], prev_kind=[1, 1], prev_site=[0, 7], prev_day=[0, 0], prev_quantity=[1, 1])
    with pytest.raises(ProblemError, match="prev_quantity: the previous plan gives cell 0 11 pieces"):
        problem(prev_cell=[0, 0], prev_kind=[0, 1], prev_site=[0, 0], prev_day=[0, 0], prev_quantity=[5, 6])
    with pytest.raises(ProblemError, match="prev_kind: index 2"):
        problem(prev_cell=[0], prev_kind=[2], prev_site=[0], prev_day=[0], prev_quantity=[1])
    with pytest.raises(ProblemError, match="churn_fen_per_unit: negative"):
        problem(churn_fen_per_unit=-1)


def test_the_checker_recounts_split_and_churn() -> None:
    order = [(0, 0, SHIP_DAY0 + DAY, [(0, 1), (1, 1)])]
    p = orders_problem(
        order,
        **two_sku_belt(split_fen_per_parcel=100),
        prev_cell=[0],
        prev_kind=[0],
        prev_site=[0],
        prev_day=[0],
        prev_quantity=[1],
        churn_fen_per_unit=30,
    )
    r = solve(p, seconds=10)
    assert check_plan(p, r) == []
    assert any(
        "split_fen is" in e for e in check_plan(p, dataclasses.replace(r, split_fen=r.split_fen + 100))
    )
    assert any("churn_fen is" in e for e in check_plan(p, dataclasses.replace(r, churn_fen=r.churn_fen + 30)))
    lost = dataclasses.replace(
        r,
        piece_quantity=r.piece_quantity[:-1],
        piece_line=r.piece_line[:-1],
        piece_source=r.piece_source[:-1],
    )
    assert any("pieces cut" in e for e in check_plan(p, lost))


# --- against the reference --------------------------------------------------------------------------------


def random_orders_problem(seed: int, *, split: int, churn: int) -> AllocationProblem:
    """A tiny belt: 2 merchants, 3 styles of 2 SKUs, 2 workshops, 2 warehouses, 3 days, 6 orders of 1 to 3
    lines. Each SKU group has one shipping price and one line per piece (see the test below); with
    ``churn`` a random previous plan of some cells."""
    rng = np.random.default_rng(seed)
    n_m, n_st, n_w, n_h, days = 2, 3, 2, 2, 3
    sku_style = np.repeat(np.arange(n_st), 2)
    n_sku = sku_style.shape[0]
    orders = []
    for _ in range(6):
        items = [(int(k), 1) for k in rng.choice(n_sku, int(rng.integers(1, 4)), replace=False)]
        orders.append(
            (
                int(rng.integers(0, n_m)),
                int(rng.integers(0, 3)),
                int(rng.integers(0, 2)) * DAY + 23 * 60,
                items,
            )
        )
    quals = [(w, s) for w in range(n_w) for s in range(n_st) if rng.random() < 0.6]
    stock = [(h, m, k) for h in range(n_h) for m in range(n_m) for k in range(n_sku) if rng.random() < 0.3]
    kw: dict[str, Any] = dict(
        merchant_lon=rng.uniform(120.6, 121.0, n_m),
        merchant_lat=rng.uniform(31.5, 31.9, n_m),
        merchant_pools=rng.random(n_m) < 0.5,
        style_family=rng.integers(0, 2, n_st),
        style_minutes_per_unit=rng.choice([1.0, 2.0], n_st),
        style_min_lot=rng.choice([0, 2, 4], n_st),
        style_changeover_fen=rng.choice([0, 300, 1_500], n_st),
        sku_style=sku_style,
        sku_weight_g=[300] * n_sku,
        workshop_lon=rng.uniform(120.6, 121.0, n_w),
        workshop_lat=rng.uniform(31.5, 31.9, n_w),
        regular_minutes=rng.choice([0.0, 4.0, 8.0], (n_w, 2, days)),
        overtime_minutes=rng.choice([0.0, 3.0], (n_w, 2, days)),
        overtime_fen_per_minute=rng.integers(1, 60, (n_w, 2, days)),
        qual_workshop=[w for w, _ in quals],
        qual_style=[s for _, s in quals],
        qual_unit_cost_fen=rng.integers(300, 900, len(quals)),
        warehouse_lon=rng.uniform(120.6, 121.0, n_h),
        warehouse_lat=rng.uniform(31.5, 31.9, n_h),
        warehouse_handling=rng.integers(0, 4, (n_h, days)),
        warehouse_handling_fen=rng.integers(20, 200, n_h),
        stock_warehouse=[h for h, _, _ in stock],
        stock_owner=[m for _, m, _ in stock],
        stock_sku=[k for _, _, k in stock],
        stock_available=rng.integers(1, 4, len(stock)),
        province_shipping_fen=[500, 500, -1],
        late_fen_per_unit_day=int(rng.choice([300, 3_000])),
        unfilled_fen_per_unit=20_000,
        days=days,
        split_fen_per_parcel=split,
        churn_fen_per_unit=churn,
    )
    if rng.random() < 0.5:
        kw.update(
            open_lot_workshop=[0],
            open_lot_style=[int(rng.integers(0, n_st))],
            open_lot_day=[0],
            open_lot_spare=[int(rng.integers(0, 3))],
            open_lot_owner=[int(rng.integers(0, n_m))],
        )
    p = orders_problem(orders, **kw)
    if churn:
        cells = np.flatnonzero(rng.random(p.n_cells) < 0.6)
        kind = rng.integers(0, 2, cells.shape[0])
        site = rng.integers(0, 2, cells.shape[0])
        qty = np.array([int(rng.integers(1, int(p.cell_quantity[c]) + 1)) for c in cells], np.int64)
        p = dataclasses.replace(
            p,
            prev_cell=cells,
            prev_kind=kind,
            prev_site=site,
            prev_day=np.zeros_like(cells),
            prev_quantity=qty,
        )
    return p


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(("split", "churn"), [(0, 0), (700, 0), (0, 400), (700, 400)])
def test_the_optimiser_against_the_reference(seed: int, split: int, churn: int) -> None:
    # Every SKU group's cells share one shipping price and one line per piece, so the per-group rates the
    # plans report are every cell's own (the cascade prices its pieces per cell)
    p = random_orders_problem(seed, split=split, churn=churn)
    ref = reference_optimum(p)
    assert ref.optimal
    r = solve(p, seconds=10, seed=seed)
    assert check_plan(p, r) == []
    rounding = r.n_allocations + r.lot_workshop.shape[0]  # each plan rounds its amounts to whole fen
    assert r.bound_fen is not None
    assert r.bound_fen <= ref.objective + 1e-6
    assert r.objective_fen >= ref.objective - rounding
    if r.stopped_by == "optimal":
        assert r.objective_fen <= ref.objective + rounding
    g = allocate(p)
    assert check_plan(p, g) == []
    assert g.objective_fen >= ref.objective - rounding - g.n_allocations


# --- scale -------------------------------------------------------------------------------------------------


def _plan(
    p: AllocationProblem,
    *,
    cells: list[int],
    sites: list[int],
    quantities: list[int],
    unfilled: Sequence[tuple[int, int]] = (),
) -> AllocationResult:
    """A plan from stock: the given pieces at the given warehouses on day 0 (costs left at 0)."""
    n = len(cells)
    z = np.zeros(n, np.int64)
    return AllocationResult(
        solver="test",
        status="feasible",
        seconds=0.0,
        alloc_cell=np.asarray(cells, np.int64),
        alloc_kind=z,
        alloc_site=np.asarray(sites, np.int64),
        alloc_owner=z,
        alloc_day=z,
        alloc_quantity=np.asarray(quantities, np.int64),
        alloc_regular_minutes=np.zeros(n),
        alloc_overtime_minutes=np.zeros(n),
        alloc_goods_fen=z,
        alloc_overtime_fen=z,
        alloc_changeover_fen=z,
        alloc_shipping_fen=z,
        alloc_late_fen=z,
        alloc_late=np.zeros(n, np.bool_),
        alloc_why=z,
        alloc_lot=z - 1,
        lot_workshop=z[:0],
        lot_style=z[:0],
        lot_family=z[:0],
        lot_day=z[:0],
        lot_quantity=z[:0],
        lot_allocated=z[:0],
        lot_surplus_sku=z[:0],
        lot_owner=z[:0],
        lot_regular_minutes=np.zeros(0),
        lot_overtime_minutes=np.zeros(0),
        lot_open=z[:0],
        unfilled_cell=np.asarray([c for c, _ in unfilled], np.int64),
        unfilled_quantity=np.asarray([q for _, q in unfilled], np.int64),
        unfilled_reason=np.zeros(len(unfilled), np.int64),
        used_regular=np.zeros((p.n_workshops, p.n_families, p.days)),
        used_overtime=np.zeros((p.n_workshops, p.n_families, p.days)),
        used_handling=np.zeros((p.n_warehouses, p.days), np.int64),
    )


def test_the_cut_into_order_lines_is_columnar() -> None:
    # 400,000 listed orders of 2 to 4 lines over 20,000 cells, each cell served from 1 to 4 of 50 warehouses:
    # the cut runs in numpy (a Python loop per order would take minutes here) and keeps every line whole
    rng = np.random.default_rng(1)
    n_cells, n_orders, n_h = 20_000, 400_000, 50
    per_order = rng.integers(2, 5, n_orders)
    line_cell = rng.integers(0, n_cells, int(per_order.sum()))
    line_qty = rng.integers(1, 3, line_cell.shape[0])
    cell_qty = np.bincount(line_cell, weights=line_qty, minlength=n_cells).astype(np.int64) + 1
    cell_lines = np.bincount(line_cell, minlength=n_cells).astype(np.int64) + 1
    n_sites = rng.integers(1, 5, n_cells)
    a_cell = np.repeat(np.arange(n_cells), n_sites)
    a_site = rng.integers(0, n_h, a_cell.shape[0])
    a_qty = np.zeros(a_cell.shape[0], np.int64)
    first = np.cumsum(n_sites) - n_sites
    a_qty[first] = cell_qty  # then move up to half of it to the cell's other sites
    extra = np.flatnonzero(n_sites > 1)
    moved = cell_qty[extra] // 2
    a_qty[first[extra]] -= moved
    a_qty[first[extra] + 1] += moved
    keep = a_qty > 0
    p = problem(
        merchant_lon=[120.7],
        merchant_lat=[31.6],
        merchant_pools=[False],
        cell_style=np.zeros(n_cells, np.int64),
        cell_sku=np.zeros(n_cells, np.int64),
        cell_owner=np.zeros(n_cells, np.int64),
        cell_quantity=cell_qty,
        cell_lines=cell_lines,
        cell_ship_by=np.full(n_cells, SHIP_DAY0),
        cell_province=np.zeros(n_cells, np.int64),
        warehouse_lon=rng.uniform(120.6, 121.0, n_h),
        warehouse_lat=rng.uniform(31.5, 31.9, n_h),
        warehouse_handling=np.full((n_h, 3), 10**6),
        warehouse_handling_fen=np.full(n_h, 50),
        order_start=np.concatenate(([0], np.cumsum(per_order))),
        order_line_cell=line_cell,
        order_line_quantity=line_qty,
        split_fen_per_parcel=100,
    )
    r = _plan(p, cells=a_cell[keep].tolist(), sites=a_site[keep].tolist(), quantities=a_qty[keep].tolist())
    t0 = time.perf_counter()
    line, source, qty = assign_lines(p, r)
    seconds = time.perf_counter() - t0
    assert np.array_equal(np.bincount(line, weights=qty, minlength=line_cell.shape[0]), line_qty)
    assert np.array_equal(r.alloc_cell[source], line_cell[line])
    assert np.all(np.bincount(source, weights=qty, minlength=r.n_allocations) <= r.alloc_quantity)
    splits = extra_parcels(p, r, line, source)
    # a naive cut (lines in order along each cell's allocations) splits more
    naive = _naive_splits(p, r)
    assert splits < naive
    assert seconds < 30, seconds
    assert churn_pieces(p, r.alloc_cell, r.alloc_kind, r.alloc_site, r.alloc_quantity) == 0


def _naive_splits(p: AllocationProblem, r: AllocationResult) -> int:
    """Parcels past the first when each cell's lines are cut along its allocations in order."""
    from solvers.allocation.plan import cut

    order = np.argsort(p.order_line_cell, kind="stable")
    listed = np.bincount(p.order_line_cell, weights=p.order_line_quantity, minlength=p.n_cells)
    d_cell = np.concatenate((p.order_line_cell[order], np.arange(p.n_cells)))
    d_qty = np.concatenate((p.order_line_quantity[order], p.cell_quantity - listed.astype(np.int64)))
    d_line = np.concatenate((order, np.full(p.n_cells, -1)))
    by = np.argsort(d_cell, kind="stable")
    a = np.argsort(r.alloc_cell, kind="stable")
    di, si, _ = cut(d_qty[by], r.alloc_quantity[a])
    line = d_line[by][di]
    keep = line >= 0
    return extra_parcels(p, r, line[keep], a[si][keep])


# --- shards ------------------------------------------------------------------------------------------------


def with_orders_and_previous(p: AllocationProblem, seed: int) -> AllocationProblem:
    """``p`` with listed orders of one piece from each of two cells (often of two shards) and a previous
    plan: the cascade's plan of ``p`` with a third of its pieces moved to another site."""
    rng = np.random.default_rng(seed)
    spare_lines = np.flatnonzero(p.cell_lines >= 2)
    pairs = rng.permutation(spare_lines)[: 2 * (spare_lines.shape[0] // 2)]
    previous = allocate(p)
    kind, site = previous.alloc_kind.copy(), previous.alloc_site.copy()
    moved = rng.random(kind.shape[0]) < 1 / 3
    site[moved & (kind == 0)] = (site[moved & (kind == 0)] + 1) % p.n_warehouses
    site[moved & (kind == 1)] = (site[moved & (kind == 1)] + 1) % p.n_workshops
    return dataclasses.replace(
        p,
        order_start=np.arange(0, pairs.shape[0] + 1, 2),
        order_line_cell=pairs,
        order_line_quantity=np.ones(pairs.shape[0], np.int64),
        split_fen_per_parcel=800,
        prev_cell=previous.alloc_cell,
        prev_kind=kind,
        prev_site=site,
        prev_day=previous.alloc_day,
        prev_quantity=previous.alloc_quantity,
        churn_fen_per_unit=300,
    )


@pytest.mark.parametrize("seed", range(4))
def test_sharded_plans_count_orders_across_shards_and_churn_whole(seed: int) -> None:
    from solvers.allocation.shard import result_from_bytes, result_to_bytes, solve_sharded, split
    from tests.test_shards import random_problem as shard_problem

    p = with_orders_and_previous(shard_problem(seed), seed)
    parts = split(p)
    shard_of = np.zeros(p.n_cells, np.int64)
    for k, s in enumerate(parts):
        shard_of[s.cells] = k
    across = shard_of[p.order_line_cell[0::2]] != shard_of[p.order_line_cell[1::2]]
    merged = solve_sharded(p, seconds=10, seed=seed)
    assert check_plan(p, merged) == []
    assert merged.bound_fen is not None and merged.bound_fen <= merged.objective_fen
    whole = solve(p, seconds=10, seed=seed)
    assert check_plan(p, whole) == []
    assert whole.bound_fen is not None and merged.bound_fen <= whole.objective_fen + 1e-6
    assert merged.objective_fen >= whole.bound_fen - 1e-6
    back, _ = result_from_bytes(result_to_bytes(merged))
    assert (back.split_fen, back.churn_fen) == (merged.split_fen, merged.churn_fen)
    assert np.array_equal(back.piece_source, merged.piece_source)
    if seed == 0:
        assert len(parts) > 1 and across.any() and p.prev_quantity.sum() > 0


# --- planning a batch: the loader's orders and previous plan, the writer's parcels -------------------------


def test_a_planned_batch_ships_the_parcels_its_penalty_counted(clean: Backend) -> None:
    from sqlalchemy import func, select, update

    from fulfil.domain.models import AllocationDecision, Order, OrderLine, Parcel, SolverRun
    from fulfil.domain.states import OrderState
    from fulfil.planning import jobs
    from fulfil.planning.load import CHURN_FEN_PER_UNIT, SPLIT_FEN_PER_PARCEL, load_batch
    from tests.test_planning import decisions, first_batch, seed_belt

    eng = clean.engine
    belt = seed_belt(eng)
    bid, (o1, o2, o3, o4) = first_batch(eng, belt)
    with Session(eng) as s:
        loaded = load_batch(s, bid)
    p = loaded.problem
    # listed: O1 (3 pieces), O2 (2 pieces), O3 (two lines); O4 is a single piece
    assert p.n_orders == 3 and p.split_fen_per_parcel == SPLIT_FEN_PER_PARCEL
    listed_orders = loaded.line_order[loaded.listed_line]
    assert sorted(set(listed_orders.tolist())) == [o1, o2, o3]
    assert np.array_equal(p.order_line_cell, loaded.line_cell[loaded.listed_line])
    assert p.prev_cell.size == 0  # planned the first time: no previous plan

    jobs.plan_batch(bid)
    with eng.connect() as c:
        result = c.execute(select(SolverRun.parameters).where(SolverRun.batch_id == bid)).scalar_one()[
            "result"
        ]
        parcels = dict(
            c.execute(select(Parcel.order_id, func.count()).group_by(Parcel.order_id)).all()  # type: ignore[arg-type]
        )
        statuses = dict(c.execute(select(Order.id, Order.status)).all())  # type: ignore[arg-type]
    # no order with a served piece was released here, so every parcel the penalty counted was written
    assert statuses[o4] == OrderState.PAID and o4 not in parcels
    assert sum(n - 1 for n in parcels.values()) * SPLIT_FEN_PER_PARCEL == result["split_fen"]
    # O3: K1b from the S1 lot at W2 (the cheaper workshop), K2 from stock (3) and from W1 (the only one that
    # makes S2): three parcels; O2 takes the stock's other 2 whole
    assert decisions(eng, o3) == [
        ("K1b", "workshop", 1, "W2", 1400),
        ("K2", "warehouse", 3, "H1", 30),
        ("K2", "workshop", 1, "W1", 800),
    ]
    assert parcels[o3] == 3 and parcels[o2] == 1

    # planned again (its orders back in the batch): the loader gives the decisions as the previous plan
    with Session(eng) as s, s.begin():
        s.execute(update(Order).where(Order.batch_id == bid).values(status=OrderState.BATCHED))
        again = load_batch(s, bid, previous=True)
        decided = dict(
            s.execute(
                select(OrderLine.id, func.sum(AllocationDecision.quantity))
                .join(AllocationDecision, AllocationDecision.order_line_id == OrderLine.id)
                .group_by(OrderLine.id)
            ).all()  # type: ignore[arg-type]
        )
    q = again.problem
    assert q.churn_fen_per_unit == CHURN_FEN_PER_UNIT
    per_cell = np.zeros(q.n_cells, np.int64)
    for lid, n in decided.items():
        per_cell[again.line_cell[again.line_id.tolist().index(lid)]] += int(n)
    assert np.array_equal(np.bincount(q.prev_cell, weights=q.prev_quantity, minlength=q.n_cells), per_cell)
    r = solve(q, seconds=10)
    assert check_plan(q, r) == [] and r.bound_fen is not None and r.bound_fen <= r.objective_fen
