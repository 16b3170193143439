"""``fulfil bench vrptw``: milk-run routing on the Solomon and Gehring–Homberger VRPTW instances, and a wave.

One JSON line per instance on stdout, progress on stderr. Distances follow the DIMACS convention of the
shared bench README (``floor(10 · euclid) / 10`` for cost and travel time), and every plan is costed and
checked by :mod:`solvers.routing.check` against the instance as read, not taken from the engine. Best-known
costs come from the ``.sol`` next to each file, when there is one.

``--wave N`` routes a generated belt-like wave of N pickup stops instead (workshops around Changshu, windows
before the evening cut-offs), by decomposition: cluster first, route second.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from fulfil.cli.bench import bench, emit, peak_rss_mb, progress
from solvers.routing.data import RoutingProblem
from solvers.routing.decompose import decompose
from solvers.routing.read import FormatError, read, read_solution
from solvers.routing.result import RoutingResult
from solvers.routing.solve import ENGINES, solve
from solvers.routing.wave import wave

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _line(problem: RoutingProblem, result: RoutingResult, seconds: float) -> dict[str, Any]:
    line: dict[str, Any] = {
        "instance": problem.name,
        "distance": problem.reported(result.distance),
        "vehicles": result.vehicles,
        "seconds": round(seconds, 3),
        "routes": result.customer_routes(problem),
        "engine": result.engine,
        "customers": problem.n_customers,
        "feasible": result.feasible,
    }
    if result.problems:
        line["problems"] = list(result.problems[:10])
    return line


@bench.command("vrptw")
@click.argument("files", nargs=-1, type=_FILE)
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--engine", default="pyvrp", show_default=True, type=click.Choice(sorted(ENGINES)))
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--wave", "wave_stops", type=click.IntRange(min=1), help="route a generated wave of this many stops"
)
@click.option(
    "--cluster-size",
    default=700,
    show_default=True,
    type=click.IntRange(min=1),
    help="largest cluster of a decomposition; a problem no larger is routed whole",
)
@click.option(
    "--decompose/--whole",
    "split",
    default=None,
    help="route by clusters or whole (default: clusters for the wave, whole for files)",
)
def vrptw_command(
    files: tuple[Path, ...],
    seconds: float,
    engine: str,
    seed: int,
    wave_stops: int | None,
    cluster_size: int,
    split: bool | None,
) -> None:
    """VRPTW (Solomon or VRPLIB files, or --wave N): one JSON line per instance."""
    if bool(files) == (wave_stops is not None):
        raise click.UsageError("give instance files or --wave N, not both")
    failed = 0
    jobs: list[tuple[str, Path | None]] = [(p.name, p) for p in files]
    if wave_stops is not None:
        jobs = [(f"wave-{wave_stops}", None)]
    for name, path in jobs:
        started = time.perf_counter()
        try:
            problem = read(path) if path is not None else wave(wave_stops or 0, seed=seed)
        except FormatError as exc:
            failed += 1
            progress(f"  {exc}")
            emit({"instance": name, "error": str(exc)})
            continue
        decomposed = split if split is not None else path is None
        how = f"by clusters of ≤ {cluster_size}" if decomposed else "whole"
        progress(
            f"vrptw {problem.name}: {problem.n_customers} stops, {problem.vehicles} vans, {engine} {how}, "
            f"{seconds:g} s"
        )
        if decomposed:
            result = decompose(problem, seconds, seed=seed, engine=engine, cluster_size=cluster_size)
        else:
            result = solve(problem, seconds, seed=seed, engine=engine)
        line = _line(problem, result, result.seconds)
        if decomposed:
            line["decomposed"] = True
            line["cluster_size"] = cluster_size
        if path is not None:
            known = path.with_suffix(".sol")
            if known.is_file():
                cost = read_solution(known).cost
                if cost is not None:
                    line["best_known"] = cost
                    # an infeasible plan has no gap: it may be short only because it leaves stops out
                    line["gap"] = round((line["distance"] - cost) / cost, 6) if result.feasible else None
        else:
            # "seconds" is the routing's; this adds generating the wave
            line["total_seconds"] = round(time.perf_counter() - started, 3)
            line["peak_rss_mb"] = peak_rss_mb()
        progress(
            f"  distance {line['distance']:g}, {result.vehicles} vans, {line['seconds']:.1f} s"
            + (
                f", best known {line['best_known']:g} (gap {100 * line['gap']:.2f}%)"
                if line.get("gap") is not None
                else ""
            )
            + ("" if result.feasible else f", INFEASIBLE: {result.problems[0]}")
        )
        emit(line)
    if failed:
        raise click.ClickException(f"{failed} instance(s) could not be read; see their 'error' lines")
