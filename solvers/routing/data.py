"""The milk-run problem: one depot, vans of one capacity, stops with demands, service times and time windows.

Everything is integer so that feasibility and cost are exact: distances and durations are matrices in the
problem's own unit (tenths for the DIMACS benchmarks, where ``floor(10 · euclid)`` is the published
convention; metres and seconds for a generated wave), and ``scale`` says how many of those units make one
reported distance unit. Location ``i`` is row and column ``i`` of both matrices; the depot is one of them.

Time windows follow Solomon: service at a stop *starts* within ``[ready, due]`` (a van arriving early waits),
and lasts ``service``; the depot's window is when vans may leave and must be back. Travel time from ``i``
to ``j`` is ``duration[i, j]``; service time is counted at the stop where it happens, not in the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class RoutingProblemError(ValueError):
    """The problem's arrays are inconsistent; the message names the array and the record at fault."""


@dataclass(frozen=True, eq=False)
class RoutingProblem:
    distance: I64  # [n, n] cost of driving i → j, in the problem's unit
    duration: I64  # [n, n] travel time i → j (may be the same array as ``distance``)
    demand: I64  # [n] load collected at each stop (the depot's is 0)
    ready: I64  # [n] earliest start of service; at the depot, the earliest departure
    due: I64  # [n] latest start of service; at the depot, the latest return
    service: I64  # [n] time spent at the stop (the depot's is 0)
    capacity: int  # of every van
    vehicles: int  # vans available
    depot: int = 0
    x: F64 | None = None  # [n] coordinates, when known: decomposition sweeps by angle around the depot
    y: F64 | None = None
    scale: int = 1  # problem units per reported distance unit (10 for the DIMACS convention)
    name: str = ""

    def __post_init__(self) -> None:
        # read-only views: the caller's own arrays stay writable, and a shared matrix stays shared (the
        # engines then hand one matrix over for both)
        shared = self.duration is self.distance
        for field_name in ("distance", "duration", "demand", "ready", "due", "service", "x", "y"):
            value = getattr(self, field_name)
            if value is None:
                continue
            kind = np.float64 if field_name in ("x", "y") else np.int64
            view = np.ascontiguousarray(value, dtype=kind).view()
            view.setflags(write=False)
            object.__setattr__(self, field_name, view)
        if shared:
            object.__setattr__(self, "duration", self.distance)
        self.validate()

    @property
    def n_locations(self) -> int:
        return int(self.demand.shape[0])

    @property
    def n_customers(self) -> int:
        return self.n_locations - 1

    def customers(self) -> I64:
        """Location indices of the stops (every location but the depot), in order."""
        out: I64 = np.delete(np.arange(self.n_locations, dtype=np.int64), self.depot)
        return out

    def customer_numbers(self) -> I64:
        """Per location, its 1-based customer number as the benchmark files count them (the depot's is 0)."""
        numbers = np.zeros(self.n_locations, dtype=np.int64)
        numbers[self.customers()] = np.arange(1, self.n_locations, dtype=np.int64)
        return numbers

    def reported(self, units: int) -> float:
        """A distance in the problem's unit, in reported units (tenths → one decimal for DIMACS)."""
        return units / self.scale

    def validate(self) -> None:
        n = self.n_locations
        if n < 2:
            raise RoutingProblemError(f"demand: a depot and at least one stop are needed, got {n} locations")
        for field_name in ("distance", "duration"):
            matrix = getattr(self, field_name)
            if matrix.shape != (n, n):
                raise RoutingProblemError(f"{field_name}: shape {matrix.shape}, expected ({n}, {n})")
            bad = np.argwhere(matrix < 0)
            if bad.size:
                i, j = bad[0].tolist()
                raise RoutingProblemError(f"{field_name}[{i}, {j}]: negative ({matrix[i, j]})")
        for field_name in ("ready", "due", "service"):
            if getattr(self, field_name).shape != (n,):
                raise RoutingProblemError(
                    f"{field_name}: shape {getattr(self, field_name).shape}, expected ({n},)"
                )
        for field_name in ("x", "y"):
            coords = getattr(self, field_name)
            if coords is not None and coords.shape != (n,):
                raise RoutingProblemError(f"{field_name}: shape {coords.shape}, expected ({n},)")
        if (self.x is None) != (self.y is None):
            raise RoutingProblemError("x, y: give both coordinates or neither")
        if not 0 <= self.depot < n:
            raise RoutingProblemError(f"depot: {self.depot} is not a location (0..{n - 1})")
        if self.capacity <= 0:
            raise RoutingProblemError(f"capacity: {self.capacity}, expected a positive load")
        if self.vehicles <= 0:
            raise RoutingProblemError(f"vehicles: {self.vehicles}, expected at least one van")
        if self.scale <= 0:
            raise RoutingProblemError(f"scale: {self.scale}, expected a positive number of units")
        stops = self.customers()
        if self.demand[self.depot] != 0 or self.service[self.depot] != 0:
            raise RoutingProblemError(f"location {self.depot} (depot): demand and service must be 0")
        self._first(stops, self.demand[stops] < 0, "demand", "negative demand")
        self._first(
            stops, self.demand[stops] > self.capacity, "demand", f"more than a van's capacity {self.capacity}"
        )
        self._first(stops, self.service[stops] < 0, "service", "negative service time")
        everywhere = np.arange(n, dtype=np.int64)
        # times count from the plan's start; vrplib's Solomon reader also makes a value it cannot parse -1
        self._first(everywhere, self.ready < 0, "ready", "negative time")
        self._first(everywhere, self.ready > self.due, "ready/due", "window opens after it closes")
        # A stop no van can reach in time from the depot and bring back before the depot closes makes the
        # whole problem infeasible; naming it here beats a solver that silently leaves it out.
        arrive = np.maximum(self.ready[self.depot] + self.duration[self.depot, stops], self.ready[stops])
        back = arrive + self.service[stops] + self.duration[stops, self.depot]
        self._first(
            stops, arrive > self.due[stops], "due", "unreachable from the depot before its window closes"
        )
        self._first(
            stops,
            back > self.due[self.depot],
            "due",
            "a van serving it cannot be back before the depot closes",
        )

    def _first(self, where: I64, bad: npt.NDArray[np.bool_], field_name: str, what: str) -> None:
        hits = np.flatnonzero(bad)
        if hits.size:
            loc = int(where[hits[0]])
            more = f" (and {hits.size - 1} more)" if hits.size > 1 else ""
            raise RoutingProblemError(f"{field_name}: location {loc}{self._label(loc)}: {what}{more}")

    def _label(self, loc: int) -> str:
        return " (depot)" if loc == self.depot else f" (customer {int(self.customer_numbers()[loc])})"


def dimacs_matrix(x: F64, y: F64) -> I64:
    """``floor(10 · euclid)`` between all points, exact for integer coordinates (the DIMACS convention).

    In tenths: ``floor(10 · sqrt(s)) = isqrt(100 · s)`` for the integer squared distance ``s``, so it is
    computed as a float square root and corrected by one where rounding put it across an integer.
    """
    xi = np.asarray(x)
    yi = np.asarray(y)
    if np.array_equal(xi, np.round(xi)) and np.array_equal(yi, np.round(yi)):
        xs = xi.astype(np.int64)
        ys = yi.astype(np.int64)
        dx = xs[:, None] - xs[None, :]
        dy = ys[:, None] - ys[None, :]
        s100 = 100 * (dx * dx + dy * dy)
        r = np.floor(np.sqrt(s100.astype(np.float64))).astype(np.int64)
        r -= (r * r > s100).astype(np.int64)
        r += ((r + 1) * (r + 1) <= s100).astype(np.int64)
        return r
    dxf = xi[:, None] - xi[None, :]
    dyf = yi[:, None] - yi[None, :]
    out: I64 = np.floor(10.0 * np.hypot(dxf, dyf)).astype(np.int64)
    return out
