"""Readers for the two VRPTW benchmark formats, through ``vrplib``, under the DIMACS convention.

- Solomon's text format (``C101.txt``: vehicle count and capacity, then one line per customer with
  coordinates, demand, ready time, due date and service time; customer 0 is the depot);
- VRPLIB (``C1_10_1.vrp``: ``NODE_COORD_SECTION``, ``DEMAND_SECTION``, ``TIME_WINDOW_SECTION``,
  ``DEPOT_SECTION``, a ``SERVICE_TIME`` for all or a section per node, ``VEHICLES``, ``CAPACITY``).

The published best-known costs truncate every distance to one decimal, ``floor(10 · euclid) / 10``, and use
the same figure as travel time. Reading into tenths makes that exact in integers: distances are
``floor(10 · euclid)`` and every time in the file is multiplied by 10, so a solution's feasibility and cost
come out as the convention's, and ``scale = 10`` turns tenths back into the published figure.

Solutions (``.sol``: ``Route #k: c1 c2 ...`` with 1-based customer numbers, and ``Cost``) are read too, for
checking the best-known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import vrplib

from solvers.routing.data import RoutingProblem, RoutingProblemError, dimacs_matrix

__all__ = ["FormatError", "KnownSolution", "read", "read_solution", "to_locations"]

DIMACS_SCALE = 10


class FormatError(RoutingProblemError):
    """A benchmark file is malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class KnownSolution:
    routes: tuple[tuple[int, ...], ...]  # 1-based customer numbers, as in the file
    cost: float | None


def _format_of(path: Path) -> str:
    """Solomon files say ``VEHICLE`` and ``CUSTOMER`` on lines of their own; VRPLIB files ``KEY : value``."""
    with path.open() as fh:
        head = [line.strip().upper() for line in fh.readlines()[:12]]
    return "solomon" if "VEHICLE" in head and "CUSTOMER" in head else "vrplib"


def read(path: str | Path) -> RoutingProblem:
    """A Solomon or VRPLIB VRPTW instance, in tenths (see the module docstring)."""
    path = Path(path)
    try:
        kind = _format_of(path)
        raw: dict[str, Any] = vrplib.read_instance(path, instance_format=kind, compute_edge_weights=False)
    except (OSError, UnicodeDecodeError, ValueError, IndexError, KeyError) as exc:
        raise FormatError(f"{path}: cannot read as a VRPTW instance ({exc})") from exc
    for key in ("node_coord", "demand", "time_window", "capacity"):
        if key not in raw:
            raise FormatError(f"{path}: no {key} (a VRPTW instance needs coordinates, demands, windows)")
    coords = np.asarray(raw["node_coord"], dtype=np.float64)
    n = coords.shape[0]
    depots = np.asarray(raw.get("depot", [0]), dtype=np.int64).ravel()
    if depots.size != 1:
        raise FormatError(f"{path}: {depots.size} depots; milk runs here start and end at one")
    depot = int(depots[0])
    service = np.asarray(raw.get("service_time", 0), dtype=np.float64)
    if service.ndim == 0:
        # VRPLIB's single SERVICE_TIME is for the customers; the depot takes none
        service = np.full(n, float(service))
        service[depot] = 0.0
    windows = np.asarray(raw["time_window"], dtype=np.float64)
    demand = np.asarray(raw["demand"], dtype=np.float64)
    if windows.shape != (n, 2) or demand.shape != (n,) or service.shape != (n,):
        raise FormatError(
            f"{path}: {n} coordinates but demand {demand.shape}, time windows {windows.shape}, "
            f"service {service.shape}"
        )
    vehicles = int(raw.get("vehicles", n - 1))
    distance = dimacs_matrix(coords[:, 0], coords[:, 1])
    demands = _integral(path, "demand", demand)
    ready = _integral(path, "ready time", windows[:, 0]) * DIMACS_SCALE
    due = _integral(path, "due date", windows[:, 1]) * DIMACS_SCALE
    services = _integral(path, "service time", service) * DIMACS_SCALE
    try:
        return RoutingProblem(
            distance=distance,
            duration=distance,
            demand=demands,
            ready=ready,
            due=due,
            service=services,
            capacity=int(raw["capacity"]),
            vehicles=vehicles,
            depot=depot,
            x=coords[:, 0],
            y=coords[:, 1],
            scale=DIMACS_SCALE,
            name=str(raw.get("name", path.stem)),
        )
    except RoutingProblemError as exc:
        raise FormatError(f"{path}: {exc}") from exc


def _integral(path: Path, what: str, values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, Any]:
    """Integer values (times become tenths exactly only when the file's times are whole numbers)."""
    rounded = np.round(values)
    bad = np.flatnonzero(rounded != values)
    if bad.size:
        raise FormatError(f"{path}: {what} of node {int(bad[0])} is not a whole number ({values[bad[0]]})")
    return rounded.astype(np.int64)


def read_solution(path: str | Path) -> KnownSolution:
    """A ``.sol`` file: its routes (1-based customer numbers) and stated cost, if any."""
    path = Path(path)
    try:
        raw = vrplib.read_solution(path)
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise FormatError(f"{path}: cannot read as a solution ({exc})") from exc
    routes = tuple(tuple(int(c) for c in route) for route in raw.get("routes", []))
    cost = raw.get("cost")
    return KnownSolution(routes=routes, cost=None if cost is None else float(cost))


def to_locations(problem: RoutingProblem, routes: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    """Routes of 1-based customer numbers → routes of the problem's location indices."""
    customers = problem.customers()
    out = []
    for k, route in enumerate(routes):
        for c in route:
            if not 1 <= c <= customers.size:
                raise FormatError(f"route {k + 1}: customer {c} is not in 1..{customers.size}")
        out.append([int(customers[c - 1]) for c in route])
    return out
