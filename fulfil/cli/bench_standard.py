"""``fulfil bench gap`` and ``fulfil bench cflp``: the core solver on standard OR-Library instances.

One JSON line per instance on stdout, progress on stderr. Every result is checked against the instance file
itself (not the solver's model of it): the assignment or flows must be feasible there, and the objective is
recomputed from the file's numbers. Best-known values come from ``BOUNDS.tsv`` / ``OPTIMA.tsv`` next to the
files, when they list the instance.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from fulfil.cli.bench import bench, emit, progress
from solvers.allocation.core import CoreResult
from solvers.allocation.core_solve import solve_core
from solvers.allocation.orlib import (
    CflpInstance,
    FormatError,
    GapInstance,
    cflp_needs_capacity,
    read_cflp_matrices,
    read_gap_matrices,
    to_cflp_problem,
    to_gap_problem,
)

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _table(path: Path, name: str) -> dict[str, list[str]]:
    """``instance → other columns`` of a TSV next to the instance files (empty when there is none)."""
    table = path.parent / name
    if not table.is_file():
        return {}
    with table.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return {row[0]: row[1:] for row in rows[1:] if row}


def _unreadable(name: str, message: str) -> None:
    """A file that cannot be benchmarked gets its own JSON line; the others still run."""
    progress(f"  {message}")
    emit({"instance": name, "error": message})


def _finish(failed: int) -> None:
    if failed:
        raise click.ClickException(f"{failed} instance(s) could not be read; see their 'error' lines")


def check_gap(g: GapInstance, assignment: list[int], objective: float) -> list[str]:
    """What is wrong with ``assignment`` (job → agent) for the instance as the file states it."""
    problems = []
    a = np.asarray(assignment, dtype=np.int64)
    if a.shape != (g.jobs,) or (a < 0).any() or (a >= g.agents).any():
        return [f"assignment: expected one agent in 0..{g.agents - 1} for each of {g.jobs} jobs"]
    jobs = np.arange(g.jobs)
    load = np.bincount(a, weights=g.use[a, jobs], minlength=g.agents)
    for i in np.flatnonzero(load > g.capacity + 1e-9).tolist():
        problems.append(f"agent {i}: load {load[i]:g} above capacity {g.capacity[i]:g}")
    cost = math.fsum(g.cost[a, jobs].tolist())
    if not math.isclose(cost, objective, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"objective: reported {objective}, the file's costs give {cost}")
    return problems


def check_cflp(
    c: CflpInstance, flows: list[list[float]], objective: float, fixed_scale: float = 1.0
) -> list[str]:
    """What is wrong with ``flows`` ([facility, customer, fraction]) for the instance its file states."""
    problems = []
    share = np.zeros((c.facilities, c.customers))
    for i, j, f in flows:
        share[int(i), int(j)] += f
    if (share < -1e-12).any():
        problems.append("a negative fraction")
    served = share.sum(axis=0)
    for j in np.flatnonzero(np.abs(served - 1.0) > 1e-9).tolist():
        problems.append(f"customer {j}: served fraction {served[j]}, expected 1")
    load = share @ c.demand
    for i in np.flatnonzero(load > c.capacity + 1e-6).tolist():
        problems.append(f"facility {i}: load {load[i]:g} above capacity {c.capacity[i]:g}")
    opened = (share > 0).any(axis=1)
    cost = math.fsum((c.fixed[opened] * fixed_scale).tolist()) + math.fsum((c.cost * share).ravel().tolist())
    if not math.isclose(cost, objective, rel_tol=1e-9, abs_tol=1e-6):
        problems.append(f"objective: reported {objective}, the file's costs give {cost}")
    return problems


def _common(result: CoreResult, name: str) -> dict[str, Any]:
    return {
        "instance": name,
        "objective": result.objective,
        "bound": result.bound,
        "seconds": round(result.seconds, 3),
        "status": result.status,
    }


@bench.command("gap")
@click.argument("files", nargs=-1, required=True, type=_FILE)
@click.option("--seconds", default=30.0, show_default=True, help="time limit per instance")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=1, show_default=True, help="threads for the whole-problem CP-SAT runs")
def gap_command(files: tuple[Path, ...], seconds: float, seed: int, workers: int) -> None:
    """Generalised assignment (OR-Library format, minimisation): one JSON line per instance."""
    failed = 0
    for path in files:
        try:
            g = read_gap_matrices(path)
        except FormatError as exc:
            failed += 1
            _unreadable(path.name, str(exc))
            continue
        problem = to_gap_problem(g, path.name)
        progress(f"gap {path.name}: {g.agents} agents × {g.jobs} jobs, {seconds:g} s")
        result = solve_core(problem, seconds=seconds, seed=seed, workers=workers)
        # arcs are job-major: arc j·m + i is job j on agent i
        used = np.flatnonzero(result.flow > 0)
        assignment = np.full(g.jobs, -1, dtype=np.int64)
        assignment[problem.arc_demand[used]] = problem.arc_site[used]
        line = _common(result, path.name)
        line["assignment"] = assignment.tolist()
        known = _table(path, "BOUNDS.tsv").get(path.name)
        if known:
            best = float(known[1])
            line["best_known"] = best
            line["gap_to_best_known"] = round((result.objective - best) / abs(best), 6)
        problems = check_gap(g, line["assignment"], result.objective)
        line["feasible"] = not problems
        if problems:
            line["problems"] = problems[:10]
        progress(
            f"  objective {result.objective:g}, bound {result.bound:g}"
            + (f", best known {line['best_known']:g}" if "best_known" in line else "")
            + f", {result.seconds:.1f} s, {result.status}"
        )
        emit(line)
    _finish(failed)


@bench.command("cflp")
@click.argument("files", nargs=-1, required=True, type=_FILE)
@click.option(
    "--capacity",
    "capacities",
    multiple=True,
    type=float,
    help="facility capacity for files that say 'capacity' (capa/capb/capc); repeat for several",
)
@click.option("--seconds", default=30.0, show_default=True, help="time limit per instance")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--fixed-cost-scale",
    default=1.0,
    show_default=True,
    help=(
        "multiply the file's fixed costs: the shared copies of cap94, cap101–134 and capa–c carry 10× "
        "OR-Library's, and 0.1 gives back the instances whose optima OPTIMA.tsv lists"
    ),
)
def cflp_command(
    files: tuple[Path, ...], capacities: tuple[float, ...], seconds: float, seed: int, fixed_cost_scale: float
) -> None:
    """Capacitated facility location (Beasley's OR-Library format): one JSON line per instance."""
    failed = 0
    for path in files:
        try:
            literal = cflp_needs_capacity(path)
        except FormatError as exc:
            failed += 1
            _unreadable(path.name, str(exc))
            continue
        if literal and not capacities:
            failed += 1
            _unreadable(
                path.name,
                f"{path}: its capacities are the word 'capacity': give --capacity (e.g. --capacity 8000)",
            )
            continue
        for capacity in capacities if literal else (None,):
            name = path.name if capacity is None else f"{path.name}_{capacity:g}"
            try:
                c = read_cflp_matrices(path, capacity)
            except FormatError as exc:
                failed += 1
                _unreadable(name, str(exc))
                continue
            problem = to_cflp_problem(c, name, fixed_cost_scale=fixed_cost_scale)
            progress(f"cflp {name}: {c.facilities} facilities × {c.customers} customers, {seconds:g} s")
            result = solve_core(problem, seconds=seconds, seed=seed)
            used = np.flatnonzero(result.flow > 0)
            flows = [
                [int(problem.arc_site[a]), int(problem.arc_demand[a]), float(result.flow[a]) / c.demand[j]]
                for a, j in zip(used.tolist(), problem.arc_demand[used].tolist(), strict=True)
            ]
            line = _common(result, name)
            line["flows"] = flows
            if fixed_cost_scale != 1.0:
                line["fixed_cost_scale"] = fixed_cost_scale
            known = _table(path, "OPTIMA.tsv").get(name)
            if known:
                optimum = float(known[0])
                line["optimum"] = optimum
                line["gap_to_optimum"] = round((result.objective - optimum) / abs(optimum), 9)
            problems = check_cflp(c, flows, result.objective, fixed_cost_scale)
            line["feasible"] = not problems
            if problems:
                line["problems"] = problems[:10]
            progress(
                f"  objective {result.objective:.3f}, bound {result.bound:.3f}"
                + (f", optimum {line['optimum']:.3f}" if "optimum" in line else "")
                + f", {result.seconds:.1f} s, {result.status}"
            )
            emit(line)
    _finish(failed)
