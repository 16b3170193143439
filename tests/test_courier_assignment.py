"""Courier assignment (solvers/couriers): known answers, every reason, and optimality against models written
from the definition (CP-SAT on small instances, GLOP on a mid-sized one: the assignment's LP is integral)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from solvers.couriers import CourierAssignment, CourierProblem, Unassigned, build_problem, solve
from solvers.couriers.bench import run, synthetic


def _problem(**over: Any) -> CourierProblem:
    """One site, one province, three couriers (300, 400, 500 fen for the first kg, 100 a kg more), one
    point each."""
    base: dict[str, Any] = {
        "parcel_site": [0] * 7,
        "parcel_province": [0] * 7,
        "parcel_weight_g": [800] * 7,
        "first_weight_g": [[1000], [1000], [1000]],
        "first_fen": [[300], [400], [500]],
        "additional_fen_per_kg": [[100], [100], [100]],
        "max_weight_g": [0, 0, 0],
        "point_courier": [0, 1, 2],
        "point_quota": [3, 2, 10],
        "site_points_indptr": [0, 3],
        "site_points": [0, 1, 2],
    }
    base.update(over)
    return build_problem(**base)


def test_a_full_quota_moves_parcels_to_the_next_cheapest_courier() -> None:
    r = solve(_problem())
    # cheapest 3 to courier 0, 2 to courier 1, the rest to courier 2; the lowest parcel indices first
    assert r.parcel_point.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert r.parcel_fen.tolist() == [300, 300, 300, 400, 400, 500, 500]
    assert r.parcel_reason.tolist() == [0] * 7
    assert r.point_used.tolist() == [3, 2, 2]
    assert r.objective_fen == r.bound_fen == 2700
    assert r.quota_free_fen == 7 * 300


def test_prices_step_per_started_kilogram_over_the_first_weight() -> None:
    weights = [1, 1000, 1001, 2000, 2001, 3500]
    r = solve(
        _problem(
            parcel_site=[0] * 6,
            parcel_province=[0] * 6,
            parcel_weight_g=weights,
            first_weight_g=[[1000], [500], [1000]],
            first_fen=[[-1], [200], [-1]],
            additional_fen_per_kg=[[0], [150], [0]],
            point_quota=[0, 99, 0],
        )
    )
    # courier 1: 200 fen for the first 500 g, 150 per started kilogram beyond
    assert r.parcel_fen.tolist() == [200, 200 + 150, 200 + 150, 200 + 2 * 150, 200 + 2 * 150, 200 + 3 * 150]


def test_a_parcel_without_a_point_is_flagged_with_the_restriction_that_excluded_it() -> None:
    # site 0: points of couriers 0 and 1; site 1: none. Province 1 served only by courier 2, which has no
    # point at site 0. Courier 1 takes at most 5 kg; courier 0 does not serve province 2.
    r = solve(
        build_problem(
            parcel_site=[0, 1, 0, 0, 0, 0, 0],
            parcel_province=[0, 0, 1, 2, 2, 0, 0],
            parcel_weight_g=[500, 500, 500, 6000, 500, 500, 500],
            first_weight_g=np.full((3, 3), 1000),
            first_fen=[[300, -1, -1], [450, -1, 400], [500, 500, 500]],
            additional_fen_per_kg=np.full((3, 3), 100),
            max_weight_g=[0, 5000, 0],
            point_courier=[0, 1, 2],
            point_quota=[1, 2, 50],
            site_points_indptr=[0, 2, 2],
            site_points=[0, 1],
        )
    )
    assert r.parcel_reason.tolist() == [
        Unassigned.ASSIGNED,
        Unassigned.NO_POINT_AT_SITE,
        Unassigned.PROVINCE_NOT_SERVED,
        Unassigned.TOO_HEAVY,
        Unassigned.ASSIGNED,
        Unassigned.ASSIGNED,
        Unassigned.QUOTA_EXHAUSTED,  # both points of site 0 are full: the highest index is left
    ]
    # parcel 4 has only point 1 (and is cheaper there than a province-0 parcel); of the province-0 parcels
    # the lowest indices get the points
    assert r.parcel_point.tolist() == [0, -1, -1, -1, 1, 1, -1]
    assert r.objective_fen == 300 + 400 + 450
    assert r.parcel_fen[r.parcel_point < 0].tolist() == [0, 0, 0, 0]
    assert r.point_used.tolist() == [1, 2, 0]


def test_most_parcels_first_even_when_leaving_one_out_is_cheaper() -> None:
    # parcel 0 (site 0, province 0) can only use point 0 at 10 fen; parcel 1 (site 1, province 1) point 0 at
    # 1 fen or point 1 at 100 fen; one parcel each. Leaving parcel 0 out costs 1 plus the penalty, so a
    # penalty just above the dearest price (101) would wrongly leave it: the penalty must beat whole paths.
    r = solve(
        build_problem(
            parcel_site=[0, 1],
            parcel_province=[0, 1],
            parcel_weight_g=[100, 100],
            first_weight_g=[[1000, 1000], [1000, 1000]],
            first_fen=[[10, 1], [-1, 100]],
            additional_fen_per_kg=[[0, 0], [0, 0]],
            max_weight_g=[0, 0],
            point_courier=[0, 1],
            point_quota=[1, 1],
            site_points_indptr=[0, 1, 3],
            site_points=[0, 0, 1],
        )
    )
    assert r.parcel_point.tolist() == [0, 1]
    assert r.objective_fen == 110


# --- an independent model of the definition --------------------------------------------------------------


@dataclass
class _Ref:
    pairs: list[tuple[int, int, int]]  # (parcel, point, price) where the point may take the parcel


def _price(p: CourierProblem, c: int, province: int, w: int) -> int | None:
    first = int(p.first_fen[c, province])
    limit = int(p.max_weight_g[c])
    if first < 0 or (limit and w > limit):
        return None
    over = max(0, w - int(p.first_weight_g[c, province]))
    return first + -(-over // 1000) * int(p.additional_fen_per_kg[c, province])


def _reference(p: CourierProblem) -> _Ref:
    pairs = []
    for i in range(p.n_parcels):
        s = int(p.parcel_site[i])
        for k in sorted(
            {int(x) for x in p.site_points[p.site_points_indptr[s] : p.site_points_indptr[s + 1]]}
        ):
            price = _price(p, int(p.point_courier[k]), int(p.parcel_province[i]), int(p.parcel_weight_g[i]))
            if price is not None:
                pairs.append((i, k, price))
    return _Ref(pairs)


def _check_valid(p: CourierProblem, r: CourierAssignment) -> None:
    """Every assignment allowed and priced by the definition; quotas kept; reasons true."""
    ref = _reference(p)
    allowed = {(i, k): price for i, k, price in ref.pairs}
    for i in range(p.n_parcels):
        k = int(r.parcel_point[i])
        if k >= 0:
            assert (i, k) in allowed, f"parcel {i} at point {k} is not allowed"
            assert int(r.parcel_fen[i]) == allowed[i, k]
            assert r.parcel_reason[i] == Unassigned.ASSIGNED
        else:
            assert r.parcel_fen[i] == 0
            mine = [kk for (ii, kk) in allowed if ii == i]
            if mine:
                assert r.parcel_reason[i] == Unassigned.QUOTA_EXHAUSTED
                # lexicographic: a parcel is left only when every point it could use is full
                assert all(r.point_used[kk] == p.point_quota[kk] for kk in mine)
            else:
                assert r.parcel_reason[i] != Unassigned.ASSIGNED
    used = np.bincount(r.parcel_point[r.parcel_point >= 0], minlength=p.n_points)
    assert used.tolist() == r.point_used.tolist()
    assert np.all(r.point_used <= p.point_quota)
    assert r.objective_fen == int(r.parcel_fen.sum()) == r.bound_fen


def _cp_sat(p: CourierProblem) -> tuple[int, int]:
    """(most parcels assigned, least cost among those), from the definition."""
    ref = _reference(p)
    m = cp_model.CpModel()
    x = {(i, k): m.new_bool_var(f"x{i}_{k}") for i, k, _ in ref.pairs}
    for i in range(p.n_parcels):
        m.add(sum(v for (ii, _), v in x.items() if ii == i) <= 1)
    for k in range(p.n_points):
        m.add(sum(v for (_, kk), v in x.items() if kk == k) <= int(p.point_quota[k]))
    big = sum(price for _, _, price in ref.pairs) + 1
    count = sum(x.values())
    cost = sum(price * x[i, k] for i, k, price in ref.pairs)
    m.minimize(cost - big * count)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    assert solver.solve(m) == cp_model.OPTIMAL
    n = sum(int(solver.value(v)) for v in x.values())
    return n, int(solver.objective_value) + big * n


def _random_problem(
    rng: np.random.Generator, n: int, sites: int, couriers: int, points: int
) -> CourierProblem:
    provinces = 3
    first = rng.integers(100, 900, (couriers, provinces))
    first[rng.random((couriers, provinces)) < 0.2] = -1
    membership = rng.random((sites, points)) < 0.5
    indptr = np.concatenate(([0], np.cumsum(membership.sum(axis=1))))
    return build_problem(
        parcel_site=rng.integers(0, sites, n),
        parcel_province=rng.integers(0, provinces, n),
        parcel_weight_g=rng.integers(1, 7000, n),
        first_weight_g=rng.choice([500, 1000, 2000], (couriers, provinces)),
        first_fen=first,
        additional_fen_per_kg=rng.integers(0, 400, (couriers, provinces)),
        max_weight_g=rng.choice([0, 3000, 5000], couriers),
        point_courier=rng.integers(0, couriers, points),
        point_quota=rng.integers(0, 5, points),
        site_points_indptr=indptr,
        site_points=np.nonzero(membership)[1],
    )


@pytest.mark.parametrize("seed", range(40))
def test_optimal_against_cp_sat_on_small_random_instances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = _random_problem(rng, n=int(rng.integers(1, 16)), sites=3, couriers=3, points=5)
    r = solve(p)
    _check_valid(p, r)
    assert (r.assigned, r.objective_fen) == _cp_sat(p)


def test_optimal_against_an_lp_on_a_mid_sized_day() -> None:
    """A few hundred parcels over many sites sharing points: the assignment LP (written per parcel and point
    from the definition) has an integral optimum, so its value must be the solver's."""
    p = synthetic(400, seed=7)
    # make quotas bind hard, and tight enough that some parcels are left
    quota = np.maximum(p.point_quota // 40, 1)
    p = build_problem(**{**{f: getattr(p, f) for f in p.__dataclass_fields__}, "point_quota": quota})
    r = solve(p)
    _check_valid(p, r)
    ref = _reference(p)
    lp = pywraplp.Solver.CreateSolver("GLOP")
    x = [lp.NumVar(0.0, 1.0, "") for _ in ref.pairs]
    by_parcel: dict[int, list[Any]] = {}
    by_point: dict[int, list[Any]] = {}
    for v, (i, k, _) in zip(x, ref.pairs, strict=True):
        by_parcel.setdefault(i, []).append(v)
        by_point.setdefault(k, []).append(v)
    for vs in by_parcel.values():
        lp.Add(sum(vs) <= 1)
    for k, vs in by_point.items():
        lp.Add(sum(vs) <= int(p.point_quota[k]))
    big = sum(price for _, _, price in ref.pairs) + 1  # one more parcel always outweighs any cost
    lp.Minimize(sum(v * (price - big) for v, (_, _, price) in zip(x, ref.pairs, strict=True)))
    assert lp.Solve() == pywraplp.Solver.OPTIMAL
    count = sum(v.solution_value() for v in x)
    cost = sum(v.solution_value() * price for v, (_, _, price) in zip(x, ref.pairs, strict=True))
    assert r.assigned == round(count)
    assert r.objective_fen == round(cost)
    assert r.assigned < p.n_parcels, "the instance should leave some parcels without a point"


def test_the_same_day_gives_the_same_assignment() -> None:
    p = synthetic(30_000, seed=3)
    a, b = solve(p), solve(p)
    for name in ("parcel_point", "parcel_fen", "parcel_reason", "point_used"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.objective_fen == b.objective_fen


def test_a_synthetic_day_is_valid_and_its_quotas_bind() -> None:
    p = synthetic(20_000, seed=5)
    r = solve(p)
    assert r.objective_fen == r.bound_fen > r.quota_free_fen
    assert np.all(r.point_used <= p.point_quota)
    # prices recomputed column-wise from the definition
    k = r.parcel_point
    done = k >= 0
    c = p.point_courier[k[done]]
    prov = p.parcel_province[done]
    w = p.parcel_weight_g[done].astype(np.int64)
    over = np.maximum(w - p.first_weight_g[c, prov], 0)
    expect = p.first_fen[c, prov] + -(-over // 1000) * p.additional_fen_per_kg[c, prov]
    assert np.array_equal(r.parcel_fen[done], expect)
    assert np.all(p.first_fen[c, prov] >= 0)
    limit = p.max_weight_g[c]
    assert np.all((limit == 0) | (w <= limit))


def test_bench_reports_its_figures() -> None:
    got = run(5_000, seed=2)
    assert got["parcels"] == 5_000
    assert got["objective"] == got["bound"]
    assert set(got) >= {"parcels", "seconds", "peak_rss_mb", "objective", "bound"}


def test_no_parcels() -> None:
    r = solve(_problem(parcel_site=[], parcel_province=[], parcel_weight_g=[]))
    assert r.parcel_point.shape == (0,)
    assert r.objective_fen == 0
    assert r.point_used.tolist() == [0, 0, 0]


def test_a_belt_without_points_flags_every_parcel() -> None:
    r = solve(_problem(point_courier=[], point_quota=[], site_points_indptr=[0, 0], site_points=[]))
    assert r.parcel_reason.tolist() == [Unassigned.NO_POINT_AT_SITE] * 7
    assert r.parcel_point.tolist() == [-1] * 7
    assert r.objective_fen == 0


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"parcel_site": [0, 0, 3, 0, 0, 0, 0]}, "parcel 2: site 3"),
        ({"parcel_province": [0, 0, 0, 0, -1, 0, 0]}, "parcel 4: province -1"),
        ({"parcel_weight_g": [800, 800, 800, 800, 800, 0, 800]}, "parcel 5: weight 0"),
        ({"parcel_weight_g": [800.0] * 7}, "parcel_weight_g must hold integers"),
        ({"parcel_province": [0] * 6}, "parcel_province has 6 parcels"),
        ({"first_fen": [[300], [-5], [500]]}, "courier 1, province 0: first price -5"),
        (
            {"additional_fen_per_kg": [[100], [100], [-1]]},
            "courier 2, province 0: additional price per kg -1",
        ),
        ({"first_weight_g": [[1000], [-1], [1000]]}, "courier 1, province 0: first weight -1"),
        ({"first_fen": [[300], [400], [10**9]]}, "courier 2, province 0: first price 1000000000"),
        ({"max_weight_g": [0, -3, 0]}, "courier 1: max weight -3"),
        ({"point_courier": [0, 7, 2]}, "point 1: courier 7"),
        ({"point_quota": [3, 2, -1]}, "point 2: quota -1"),
        ({"site_points_indptr": [0, 2, 3], "site_points": [0, 1, 9]}, "site 1: point 9"),
        ({"site_points_indptr": [0, 3, 2], "site_points": [0, 1]}, "site 1: site_points_indptr decreases"),
        ({"site_points_indptr": [0, 2]}, "site_points_indptr ends at 2"),
    ],
)
def test_bad_input_names_the_record(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _problem(**over)
