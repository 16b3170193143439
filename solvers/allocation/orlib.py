"""Readers for two OR-Library benchmark formats, into :class:`CoreProblem`.

- Generalised assignment (``gap``; Chu & Beasley, Yagiura): ``m n``, the cost matrix ``c`` (m rows of n), the
  resource matrix ``a`` (m rows of n), the capacities ``b`` (m). Jobs become whole must-serve demands of one
  unit, agents become sites with one resource each of capacity ``b[i]``; arc (j, i) costs ``c[i][j]`` and uses
  ``a[i][j]``.
- Capacitated facility location (``cflp``; Beasley 1988): ``m n``; m lines ``capacity fixed_cost``; then per
  customer its demand followed by m numbers, the cost of serving *all* of its demand from facility i.
  Customers become splittable must-serve demands, facilities sites with the fixed cost and ``site_max`` =
  capacity, and an arc costs ``cost / demand`` per unit. In ``capa``/``capb``/``capc`` the capacity is the
  literal word ``capacity`` and must be given by the caller.

Both files are read as a token stream: some wrap a row across lines. Reading a file is all these do.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from solvers.allocation.core import CoreProblem
from solvers.allocation.data import ProblemError

__all__ = [
    "CflpInstance",
    "FormatError",
    "GapInstance",
    "cflp_needs_capacity",
    "read_cflp",
    "read_cflp_matrices",
    "read_gap",
    "read_gap_matrices",
    "to_cflp_problem",
    "to_gap_problem",
]


class FormatError(ProblemError):
    """A benchmark file is malformed; the message names the file and what is wrong."""


class _Tokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.tokens = path.read_text().split()
        except (OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"{path}: cannot read ({exc})") from exc
        self.pos = 0

    def fail(self, what: str) -> FormatError:
        return FormatError(f"{self.path}: {what}")

    def take(self, n: int, what: str) -> list[str]:
        if self.pos + n > len(self.tokens):
            raise self.fail(
                f"ends early: expected {n} values for {what}, found {len(self.tokens) - self.pos}"
            )
        out = self.tokens[self.pos : self.pos + n]
        self.pos += n
        return out

    def ints(self, n: int, what: str) -> list[int]:
        out = []
        for t in self.take(n, what):
            try:
                value = float(t)
            except ValueError:
                raise self.fail(f"{what}: {t!r} is not a number") from None
            if not value.is_integer():
                raise self.fail(f"{what}: {t!r} is not an integer")
            out.append(int(value))
        return out

    def floats(self, n: int, what: str) -> list[float]:
        out = []
        for t in self.take(n, what):
            try:
                value = float(t)
            except ValueError:
                raise self.fail(f"{what}: {t!r} is not a number") from None
            if not math.isfinite(value):
                raise self.fail(f"{what}: {t!r} is not finite")
            out.append(value)
        return out

    def size(self) -> tuple[int, int]:
        m, n = self.ints(2, "the header 'm n'")
        if m < 1 or n < 1:
            raise self.fail(f"header: m={m} and n={n} must both be at least 1")
        return m, n

    def end(self) -> None:
        if self.pos != len(self.tokens):
            raise self.fail(
                f"{len(self.tokens) - self.pos} values after the end of the instance "
                f"(starting {self.tokens[self.pos]!r})"
            )


class GapInstance:
    """A generalised assignment instance as its matrices: costs ``c`` and uses ``a`` [agent, job]."""

    def __init__(self, cost: np.ndarray, use: np.ndarray, capacity: np.ndarray) -> None:
        self.cost = cost
        self.use = use
        self.capacity = capacity

    @property
    def agents(self) -> int:
        return int(self.cost.shape[0])

    @property
    def jobs(self) -> int:
        return int(self.cost.shape[1])


def read_gap_matrices(path: str | Path) -> GapInstance:
    t = _Tokens(Path(path))
    m, n = t.size()
    cost = np.array(t.floats(m * n, f"the cost matrix c ({m}×{n})"), dtype=np.float64).reshape(m, n)
    use = np.array(t.floats(m * n, f"the resource matrix a ({m}×{n})"), dtype=np.float64).reshape(m, n)
    capacity = np.array(t.floats(m, f"the capacities b ({m})"), dtype=np.float64)
    t.end()
    if (use < 0).any():
        raise t.fail("the resource matrix a has a negative value")
    if (capacity < 0).any():
        raise t.fail("the capacities b have a negative value")
    return GapInstance(cost, use, capacity)


def read_gap(path: str | Path) -> CoreProblem:
    """A GAP file (minimisation) as a core problem; arcs are job-major (arc j·m + i is job j on agent i)."""
    return to_gap_problem(read_gap_matrices(path), Path(path).name)


def to_gap_problem(g: GapInstance, name: str = "") -> CoreProblem:
    m, n = g.agents, g.jobs
    jobs = np.repeat(np.arange(n, dtype=np.int64), m)
    agents = np.tile(np.arange(m, dtype=np.int64), n)
    return CoreProblem(
        demand_quantity=np.ones(n, dtype=np.int64),
        demand_whole=np.ones(n, dtype=np.bool_),
        demand_unmet_cost=np.full(n, np.inf),
        site_fixed_cost=np.zeros(m),
        site_min=np.zeros(m, dtype=np.int64),
        site_max=np.full(m, n, dtype=np.int64),
        site_unit_cost=np.zeros(m),
        site_resource=np.full(m, -1, dtype=np.int64),
        site_unit_use=np.zeros(m),
        arc_demand=jobs,
        arc_site=agents,
        arc_cost=np.ascontiguousarray(g.cost.T.reshape(-1)),
        arc_resource=agents.copy(),
        arc_use=np.ascontiguousarray(g.use.T.reshape(-1)),
        resource_capacity=g.capacity.copy(),
        resource_extra=np.zeros(m),
        resource_extra_cost=np.zeros(m),
        name=name,
    )


class CflpInstance:
    """A capacitated facility location instance: per facility capacity and fixed cost, per customer demand,
    and ``cost[i, j]``, the cost of serving all of customer j's demand from facility i."""

    def __init__(self, capacity: np.ndarray, fixed: np.ndarray, demand: np.ndarray, cost: np.ndarray) -> None:
        self.capacity = capacity
        self.fixed = fixed
        self.demand = demand
        self.cost = cost

    @property
    def facilities(self) -> int:
        return int(self.fixed.shape[0])

    @property
    def customers(self) -> int:
        return int(self.demand.shape[0])


def read_cflp_matrices(path: str | Path, capacity: float | None = None) -> CflpInstance:
    t = _Tokens(Path(path))
    m, n = t.size()
    caps: list[float] = []
    fixed: list[float] = []
    literal = False
    for i in range(m):
        word = t.take(1, f"the capacity of facility {i}")[0]
        if word.lower() == "capacity":
            literal = True
            if capacity is None:
                raise t.fail(
                    "facility capacities are the word 'capacity' (a capa/capb/capc file): give the capacity "
                    "(e.g. --capacity 8000)"
                )
            caps.append(float(capacity))
        else:
            t.pos -= 1
            caps.append(t.floats(1, f"the capacity of facility {i}")[0])
        fixed.append(t.floats(1, f"the fixed cost of facility {i}")[0])
    if capacity is not None and not literal:
        raise t.fail("a capacity was given but the file has its own numeric capacities")
    demand = np.empty(n)
    cost = np.empty((m, n))
    for j in range(n):
        demand[j] = t.floats(1, f"the demand of customer {j}")[0]
        cost[:, j] = t.floats(m, f"the {m} costs of customer {j}")
    t.end()
    caps_a = np.array(caps)
    if (caps_a < 0).any() or not np.all(caps_a == np.round(caps_a)):
        raise t.fail("capacities must be non-negative integers")
    if (demand < 1).any() or not np.all(demand == np.round(demand)):
        raise t.fail(f"demands must be positive integers (customer {int(np.argmin(demand))})")
    if (np.array(fixed) < 0).any():
        raise t.fail("a fixed cost is negative")
    return CflpInstance(caps_a, np.array(fixed), demand, cost)


def cflp_needs_capacity(path: str | Path) -> bool:
    """Does the file give its capacities as the word ``capacity`` (capa/capb/capc)?"""
    t = _Tokens(Path(path))
    t.size()
    return t.take(1, "the capacity of facility 0")[0].lower() == "capacity"


def read_cflp(path: str | Path, capacity: float | None = None) -> CoreProblem:
    """A CFLP file as a core problem; arcs are customer-major (arc j·m + i: customer j from facility i).

    ``capacity`` is required, and only allowed, for files whose capacities are the word ``capacity``; the
    instance is then named ``<file>_<capacity>`` (``capa_8000``).
    """
    c = read_cflp_matrices(path, capacity)
    name = Path(path).name if capacity is None else f"{Path(path).name}_{capacity:g}"
    return to_cflp_problem(c, name)


def to_cflp_problem(c: CflpInstance, name: str = "", *, fixed_cost_scale: float = 1.0) -> CoreProblem:
    """``fixed_cost_scale`` multiplies the fixed costs (for files whose fixed costs are off by a factor)."""
    m, n = c.facilities, c.customers
    customers = np.repeat(np.arange(n, dtype=np.int64), m)
    facilities = np.tile(np.arange(m, dtype=np.int64), n)
    per_unit = (c.cost / c.demand[None, :]).T.reshape(-1)
    return CoreProblem(
        demand_quantity=c.demand.astype(np.int64),
        demand_whole=np.zeros(n, dtype=np.bool_),
        demand_unmet_cost=np.full(n, np.inf),
        site_fixed_cost=c.fixed * fixed_cost_scale,
        site_min=np.zeros(m, dtype=np.int64),
        site_max=c.capacity.astype(np.int64),
        site_unit_cost=np.zeros(m),
        site_resource=np.full(m, -1, dtype=np.int64),
        site_unit_use=np.zeros(m),
        arc_demand=customers,
        arc_site=facilities,
        arc_cost=np.ascontiguousarray(per_unit),
        arc_resource=np.full(m * n, -1, dtype=np.int64),
        arc_use=np.zeros(m * n),
        resource_capacity=np.zeros(0),
        resource_extra=np.zeros(0),
        resource_extra_cost=np.zeros(0),
        name=name,
    )
