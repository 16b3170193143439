"""Milk runs: the readers under the DIMACS convention, the independent checker, both engines, decomposition,
the wave generator and ``fulfil bench vrptw``."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fulfil.cli.bench
import fulfil.cli.bench_vrptw  # registers the command
from fulfil.cli import main
from solvers.routing import (
    FormatError,
    RoutingProblem,
    RoutingProblemError,
    check,
    decompose,
    dimacs_matrix,
    read,
    read_solution,
    solve,
    to_locations,
    wave,
)
from solvers.routing.decompose import subproblem, sweep, vans_for
from tests.shared_bench import BENCH

assert fulfil.cli.bench and fulfil.cli.bench_vrptw

VRPTW = BENCH / "vrptw"
SOLOMON = VRPTW / "solomon"
HOMBERGER = VRPTW / "homberger1000"


def _small(customers: int = 30) -> RoutingProblem:
    """R101's first stops: tight windows, so a careless engine or checker shows."""
    full = read(SOLOMON / "R101.txt")
    small, _ = subproblem(full, np.arange(1, customers + 1, dtype=np.int64), full.vehicles)
    return small


def _known(name: str) -> tuple[RoutingProblem, list[list[int]]]:
    folder, suffix = (SOLOMON, ".txt") if name[0] != "_" else (HOMBERGER, ".vrp")
    problem = read(folder / (name.strip("_") + suffix))
    return problem, to_locations(problem, read_solution(folder / (name.strip("_") + ".sol")).routes)


# --- readers ------------------------------------------------------------------------------------------------


def test_reads_solomon_c101_in_tenths() -> None:
    p = read(SOLOMON / "C101.txt")
    assert (p.name, p.n_customers, p.vehicles, p.capacity, p.depot, p.scale) == ("C101", 100, 25, 200, 0, 10)
    assert (int(p.ready[0]), int(p.due[0])) == (0, 12360)  # the depot's 0..1236, in tenths
    # customer 1: (45, 68), demand 10, window 912..967, service 90; the depot is at (40, 50)
    assert (int(p.demand[1]), int(p.ready[1]), int(p.due[1]), int(p.service[1])) == (10, 9120, 9670, 900)
    assert int(p.distance[0, 1]) == math.isqrt(100 * (5**2 + 18**2)) == 186
    assert int(p.demand.sum()) == 1810


def test_reads_homberger_vrplib_with_one_service_time() -> None:
    p = read(HOMBERGER / "C1_10_1.vrp")
    assert (p.n_customers, p.vehicles, p.capacity, p.depot) == (1000, 250, 200, 0)
    assert int(p.service[0]) == 0 and set(p.service[1:].tolist()) == {900}
    assert (int(p.ready[0]), int(p.due[0])) == (0, 18240)


@pytest.mark.parametrize("name", ["C101", "R101", "RC208", "_C1_10_1", "_R2_10_5"])
def test_published_solution_costs_what_it_says(name: str) -> None:
    problem, routes = _known(name)
    folder = HOMBERGER if name[0] == "_" else SOLOMON
    stated = read_solution(folder / (name.strip("_") + ".sol")).cost
    verdict = check(problem, routes)
    assert verdict.feasible, verdict.problems
    assert stated is not None and problem.reported(verdict.distance) == pytest.approx(stated, abs=1e-9)


def test_every_published_solution_is_feasible_at_its_cost() -> None:
    """All 116 best-known solutions: the DIMACS reading is exact, or some of them would be off by a tenth."""
    files = sorted(SOLOMON.glob("*.txt")) + sorted(HOMBERGER.glob("*.vrp"))
    assert len(files) == 116
    off = []
    for path in files:
        problem = read(path)
        known = read_solution(path.with_suffix(".sol"))
        verdict = check(problem, to_locations(problem, known.routes))
        if not verdict.feasible or round(problem.reported(verdict.distance), 1) != known.cost:
            off.append(
                f"{path.name}: {problem.reported(verdict.distance)} vs {known.cost} {verdict.problems[:2]}"
            )
    assert not off, off


def test_dimacs_matrix_is_exact_where_floats_would_slip() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 1000, size=60)
    y = rng.integers(0, 1000, size=60)
    got = dimacs_matrix(x.astype(float), y.astype(float))
    want = [
        [math.isqrt(100 * ((a - b) ** 2 + (c - d) ** 2)) for b, d in zip(x, y, strict=True)]
        for a, c in zip(x, y, strict=True)
    ]
    assert got.tolist() == want
    # a 3-4-5 triangle sits exactly on an integer: floor(10·5) = 50, not 49
    assert dimacs_matrix(np.array([0.0, 3.0]), np.array([0.0, 4.0]))[0, 1] == 50
    assert dimacs_matrix(np.array([0.0, 0.5]), np.array([0.0, 0.0]))[0, 1] == 5


def test_malformed_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.vrp"
    bad.write_text("NAME : broken\nTYPE : VRPTW\nDIMENSION : 3\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n")
    with pytest.raises(FormatError, match=r"broken\.vrp"):
        read(bad)
    # vrplib reads Solomon's columns as integers and makes what it cannot parse -1
    fractional = tmp_path / "F1.txt"
    fractional.write_text((SOLOMON / "C101.txt").read_text().replace(" 912 ", " 912.5 ", 1))
    with pytest.raises(FormatError, match=r"F1\.txt: ready: location 1 \(customer 1\): negative time"):
        read(fractional)
    # VRPLIB's sections are read as numbers: a time that is no whole number cannot become exact tenths
    half = tmp_path / "half.vrp"
    half.write_text(
        (HOMBERGER / "C1_10_1.vrp").read_text().replace("SERVICE_TIME : 90", "SERVICE_TIME : 90.5")
    )
    with pytest.raises(FormatError, match=r"half\.vrp: service time of node 1 is not a whole number"):
        read(half)


# --- the checker --------------------------------------------------------------------------------------------


def _toy(due2: int = 115, depot_due: int = 1000) -> RoutingProblem:
    """Depot 0, stops 1 and 2 on a line 10 apart. Stop 1 opens at 100: a van waits there, serves 5, and
    reaches stop 2 at 115."""
    d = np.array([[0, 10, 20], [10, 0, 10], [20, 10, 0]])
    return RoutingProblem(
        distance=d,
        duration=d,
        demand=np.array([0, 3, 4]),
        ready=np.array([0, 100, 0]),
        due=np.array([depot_due, 200, due2]),
        service=np.array([0, 5, 5]),
        capacity=7,
        vehicles=2,
    )


def test_checker_counts_waiting_and_cost() -> None:
    ok = check(_toy(), [[1, 2]])
    assert ok.feasible and ok.distance == 40 and ok.vehicles == 1
    late = check(_toy(due2=114), [[1, 2]])  # without the wait at stop 1 it would reach stop 2 at 25
    assert late.problems == ("route 1: customer 2 served at 115, after its due time 114",)
    assert check(_toy(due2=114), [[2], [1]]).feasible


def test_checker_holds_the_depot_window_and_capacity() -> None:
    back_late = check(_toy(depot_due=139), [[1, 2]])  # back at 115 + 5 + 20 = 140
    assert back_late.problems == ("route 1: back at the depot at 140, after it closes at 139",)
    tight = dataclasses.replace(_toy(), capacity=6)
    assert check(tight, [[1, 2]]).problems == ("route 1: load 7 above capacity 6",)


def test_checker_rejects_each_kind_of_broken_plan() -> None:
    problem, routes = _known("C101")
    assert check(problem, routes).feasible
    overload = [routes[0] + routes[1], *routes[2:]]
    assert any("above capacity" in p for p in check(problem, overload).problems)
    reversed_ = [routes[0][::-1], *routes[1:]]
    assert any("after its due time" in p for p in check(problem, reversed_).problems)
    missing = [routes[0][:-1], *routes[1:]]
    assert "customer 75: not visited" in check(problem, missing).problems
    duplicate = [routes[0], [*routes[1], routes[0][0]], *routes[2:]]
    assert "customer 5: visited 2 times" in check(problem, duplicate).problems
    too_many = check(dataclasses.replace(problem, vehicles=9), routes)
    assert too_many.problems == ("10 routes for 9 vans",)
    assert check(problem, [[0, *routes[0]], *routes[1:]]).problems[0] == "route 1: 0 is not a stop"


# --- engines ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["pyvrp", "ortools"])
def test_both_engines_route_feasibly(engine: str) -> None:
    problem = _small()
    result = solve(problem, seconds=1.0, seed=1, engine=engine)
    assert result.feasible, result.problems
    assert result.engine == engine
    assert sorted(s for r in result.routes for s in r) == list(range(1, 31))
    assert result.distance == check(problem, result.routes).distance
    assert result.vehicles == len(result.routes) <= problem.vehicles


@pytest.mark.parametrize(("engine", "iterations"), [("pyvrp", 300), ("ortools", 30)])
def test_the_same_seed_routes_the_same(engine: str, iterations: int) -> None:
    problem = _small()
    first = solve(problem, seconds=30.0, seed=3, engine=engine, iterations=iterations)
    second = solve(problem, seconds=30.0, seed=3, engine=engine, iterations=iterations)
    assert first.routes == second.routes and first.distance == second.distance
    assert first.seconds < 20  # the iteration limit stopped it, not the clock


def test_a_warm_start_is_never_lost() -> None:
    problem, routes = _known("C101")
    result = solve(problem, seconds=0.5, seed=0, initial=routes)
    assert result.feasible and problem.reported(result.distance) == 827.3


def test_unknown_engine_is_named() -> None:
    with pytest.raises(ValueError, match="'gurobi'"):
        solve(_small(), seconds=1.0, engine="gurobi")


# --- decomposition and the wave -----------------------------------------------------------------------------


def test_sweep_splits_stops_into_equal_sectors_and_shares_the_fleet() -> None:
    problem = wave(300, seed=2)
    parts = sweep(problem, 3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1, 301))
    assert [p.size for p in parts] == [100, 100, 100]
    vans = vans_for(problem, parts)
    assert sum(vans) <= problem.vehicles
    for part, v in zip(parts, vans, strict=True):
        assert v * problem.capacity >= int(problem.demand[part].sum())


def test_decomposition_routes_a_wave_feasibly() -> None:
    problem = wave(300, seed=2)
    result = decompose(problem, seconds=4.0, seed=0, cluster_size=100)
    assert result.feasible, result.problems
    assert result.engine.startswith("pyvrp+sweep3")
    assert sorted(s for r in result.routes for s in r) == list(range(1, 301))
    assert result.seconds < 6.0


def test_the_wave_is_the_seeds() -> None:
    a, b, c = wave(200, seed=4), wave(200, seed=4), wave(200, seed=5)
    assert np.array_equal(a.distance, b.distance) and np.array_equal(a.due, b.due)
    assert not np.array_equal(a.distance, c.distance)
    assert a.ready[0] == 12 * 3600 and int(a.due[1:].max()) <= 20 * 3600


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"demand": np.array([0, 3, 8])}, "demand: location 2 (customer 2): more than a van's capacity 7"),
        ({"demand": np.array([0, -1, 4])}, "demand: location 1 (customer 1): negative demand"),
        (
            {"ready": np.array([0, 300, 0])},
            "ready/due: location 1 (customer 1): window opens after it closes",
        ),
        ({"due": np.array([1000, 200, 5])}, "due: location 2 (customer 2): unreachable from the depot"),
        ({"demand": np.array([0, 3])}, "shape"),
        ({"distance": np.array([[0, 10, 20], [10, 0, -1], [20, 10, 0]])}, "distance[1, 2]: negative"),
        ({"capacity": 0}, "capacity: 0"),
        ({"vehicles": 0}, "vehicles: 0"),
        ({"depot": 3}, "depot: 3"),
        ({"service": np.array([1, 5, 5])}, "location 0 (depot)"),
    ],
)
def test_bad_input_is_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(RoutingProblemError, match=re.escape(message)):
        dataclasses.replace(_toy(), **change)  # type: ignore[arg-type]


# --- the command --------------------------------------------------------------------------------------------


def test_bench_vrptw_prints_one_line_per_instance() -> None:
    files = [str(SOLOMON / "C101.txt"), str(SOLOMON / "C201.txt")]
    result = CliRunner().invoke(main, ["bench", "vrptw", *files, "--seconds", "1"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["instance"] for x in lines] == ["C101", "C201"]
    for x in lines:
        assert {"instance", "distance", "vehicles", "seconds", "routes"} <= x.keys()
        assert sorted(c for r in x["routes"] for c in r) == list(range(1, 101))
        assert x["feasible"] and x["vehicles"] == len(x["routes"])
    assert lines[0]["best_known"] == 827.3 and lines[0]["gap"] >= 0


def test_bench_vrptw_wave_and_usage() -> None:
    result = CliRunner().invoke(
        main, ["bench", "vrptw", "--wave", "150", "--seconds", "2", "--cluster-size", "60"]
    )
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert line["instance"] == "wave-150-seed0" and line["feasible"] and line["decomposed"]
    assert sorted(c for r in line["routes"] for c in r) == list(range(1, 151))
    both = CliRunner().invoke(main, ["bench", "vrptw", str(SOLOMON / "C101.txt"), "--wave", "10"])
    assert both.exit_code == 2 and "not both" in both.output


def test_the_problem_is_immutable_and_leaves_the_callers_arrays_alone() -> None:
    d = np.array([[0, 10, 20], [10, 0, 10], [20, 10, 0]], dtype=np.int64)
    problem = dataclasses.replace(_toy(), distance=d, duration=d)
    assert problem.duration is problem.distance  # one matrix, handed to the engines once
    assert not problem.distance.flags.writeable and d.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.capacity = 9  # type: ignore[misc]
