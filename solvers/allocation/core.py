"""The core problem: capacitated assignment of demands to sites with fixed charges, minimums and resources.

The belt's allocation is compiled into *shards* of this problem, and the standard benchmarks (generalised
assignment, capacitated facility location) read into it, so one solver (:func:`solve_core` in
``core_solve``) serves both. Everything is indexed densely from 0.

Model (all flows integer)::

    minimise  Σ arc_cost·x + Σ site_unit_cost·z + Σ site_fixed_cost·y + Σ resource_extra_cost·e
              + Σ demand_unmet_cost·u
    demand j      Σ_{a→j} x_a + u_j = q_j;   whole demands: x_a ∈ {0, q_j} (one arc or none)
    site k        Σ_{a→k} x_a ≤ z_k ≤ site_max_k·y_k,   z_k ≥ site_min_k·y_k
    resource r    Σ arc_use·x + Σ site_unit_use·z ≤ capacity_r + e_r,   0 ≤ e_r ≤ extra_r

Production above what the arcs take (``z_k - Σ x_a``) is *surplus*: it exists only to reach a site's minimum.
A demand with ``demand_unmet_cost = inf`` must be served in full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from solvers.allocation.data import F64, I64, B, ProblemError

__all__ = [
    "CoreInfeasible",
    "CoreProblem",
    "CoreResult",
    "check_feasible",
    "evaluate",
    "normalised",
    "violations",
]

# Resource sums are float: allow this much relative slack before calling a constraint violated.
_REL_TOL = 1e-9


class CoreInfeasible(ProblemError):
    """No solution serves every must-serve demand (or none was found before the time limit)."""


@dataclass(frozen=True, eq=False)
class CoreProblem:
    # --- demands ------------------------------------------------------------------------------------------
    demand_quantity: I64  # ≥ 1
    demand_whole: B  # True: all of it on exactly one arc, or all unmet
    demand_unmet_cost: F64  # per unit left unserved; inf: must be served
    # --- sites --------------------------------------------------------------------------------------------
    site_fixed_cost: F64  # paid once if the site produces anything
    site_min: I64  # production is 0 or at least this (0: no minimum)
    site_max: I64  # upper bound on production
    site_unit_cost: F64  # per unit of production, surplus included
    site_resource: I64  # -1: none
    site_unit_use: F64  # resource used per unit of production
    # --- arcs (demand → site) -----------------------------------------------------------------------------
    arc_demand: I64
    arc_site: I64
    arc_cost: F64  # per unit of flow
    arc_resource: I64  # -1: none
    arc_use: F64  # resource used per unit of flow
    # --- resources ----------------------------------------------------------------------------------------
    resource_capacity: F64
    resource_extra: F64  # extra capacity beyond the capacity (overtime)
    resource_extra_cost: F64  # per unit of extra used
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_demands(self) -> int:
        return int(self.demand_quantity.shape[0])

    @property
    def n_sites(self) -> int:
        return int(self.site_fixed_cost.shape[0])

    @property
    def n_arcs(self) -> int:
        return int(self.arc_demand.shape[0])

    @property
    def n_resources(self) -> int:
        return int(self.resource_capacity.shape[0])

    @property
    def must_serve(self) -> B:
        out: B = np.isinf(self.demand_unmet_cost)
        return out

    def needs_switch(self) -> B:
        """Per site: does it need an open/closed decision (a fixed cost or a minimum)?"""
        out: B = (self.site_fixed_cost > 0) | (self.site_min > 0)
        return out

    # --- validation ---------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ProblemError` naming the first inconsistent array."""
        kinds = {"I64": np.int64, "F64": np.float64, "B": np.bool_}
        for f in fields(self):
            if f.type not in kinds:
                continue
            a = getattr(self, f.name)
            if not isinstance(a, np.ndarray):
                raise ProblemError(f"{f.name}: expected a numpy array, got {type(a).__name__}")
            if a.dtype != kinds[str(f.type)]:
                raise ProblemError(f"{f.name}: expected dtype {np.dtype(kinds[str(f.type)])}, got {a.dtype}")
            if a.ndim != 1:
                raise ProblemError(f"{f.name}: expected a 1-d array, got shape {a.shape}")
            if a.dtype == np.float64 and np.isnan(a).any():
                raise ProblemError(f"{f.name}: NaN at index {int(np.flatnonzero(np.isnan(a))[0])}")
        self._same_length("demand", ["demand_quantity", "demand_whole", "demand_unmet_cost"])
        self._same_length(
            "site",
            ["site_fixed_cost", "site_min", "site_max", "site_unit_cost", "site_resource", "site_unit_use"],
        )
        self._same_length("arc", ["arc_demand", "arc_site", "arc_cost", "arc_resource", "arc_use"])
        self._same_length("resource", ["resource_capacity", "resource_extra", "resource_extra_cost"])
        self._index("arc_demand", self.arc_demand, self.n_demands, allow_none=False)
        self._index("arc_site", self.arc_site, self.n_sites, allow_none=False)
        self._index("arc_resource", self.arc_resource, self.n_resources, allow_none=True)
        self._index("site_resource", self.site_resource, self.n_resources, allow_none=True)
        self._at_least("demand_quantity", self.demand_quantity, 1)
        for name in (
            "demand_unmet_cost",
            "site_fixed_cost",
            "site_min",
            "site_max",
            "site_unit_cost",
            "site_unit_use",
            "arc_use",
            "resource_capacity",
            "resource_extra",
            "resource_extra_cost",
        ):
            self._at_least(name, getattr(self, name), 0)
        for name in (
            "site_fixed_cost",
            "site_unit_cost",
            "site_unit_use",
            "arc_cost",
            "arc_use",
            "resource_capacity",
            "resource_extra",
            "resource_extra_cost",
        ):
            a = getattr(self, name)
            if a.size and not np.isfinite(a).all():
                raise ProblemError(f"{name}: not finite at index {int(np.flatnonzero(~np.isfinite(a))[0])}")
        if self.n_sites and np.any(self.site_min > self.site_max):
            bad = int(np.flatnonzero(self.site_min > self.site_max)[0])
            raise ProblemError(
                f"site_min: site {bad} has minimum {self.site_min[bad]} "
                f"above its maximum {self.site_max[bad]}"
            )
        # Scaled to integers for CP-SAT, quantities this large would overflow its int64 arithmetic.
        for name in ("demand_quantity", "site_max"):
            a = getattr(self, name)
            if a.size and a.max() > 2**40:
                raise ProblemError(f"{name}: value {a.max()} is above 2^40")

    def _same_length(self, what: str, names: list[str]) -> None:
        n = getattr(self, names[0]).shape[0]
        for name in names:
            a = getattr(self, name)
            if a.shape[0] != n:
                raise ProblemError(f"{name}: expected one value per {what} ({n}), got {a.shape[0]}")

    @staticmethod
    def _index(name: str, a: I64, n: int, *, allow_none: bool) -> None:
        lo = -1 if allow_none else 0
        if a.size and (a.min() < lo or a.max() >= n):
            bad = a[(a < lo) | (a >= n)][0]
            none = " or -1" if allow_none else ""
            raise ProblemError(f"{name}: index {bad} is outside 0..{n - 1}{none}")

    @staticmethod
    def _at_least(name: str, a: Any, lo: float) -> None:
        if a.size and a.min() < lo:
            raise ProblemError(f"{name}: value {a.min()} at index {int(a.argmin())} is below {lo}")

    def summary(self) -> dict[str, Any]:
        return {
            "demands": self.n_demands,
            "whole": int(self.demand_whole.sum()),
            "must_serve": int(self.must_serve.sum()),
            "sites": self.n_sites,
            "arcs": self.n_arcs,
            "resources": self.n_resources,
        }


@dataclass(frozen=True, eq=False)
class CoreResult:
    flow: I64  # per arc
    production: I64  # per site, surplus included
    opened: B  # per site
    unmet: I64  # per demand
    extra: F64  # per resource
    objective: float  # recomputed from the problem and this solution
    bound: float  # a proven lower bound on the optimum
    status: str  # "optimal" (bound meets objective) or "feasible"
    seconds: float
    stopped_by: str  # "optimal", "time" or "work"
    engine: str = ""
    iterations: int = 0  # improvement rounds (large-neighbourhood search moves tried)
    improvements: int = 0
    counters: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return (self.objective - self.bound) / max(abs(self.objective), 1e-9)

    def summary(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "bound": self.bound,
            "gap": round(self.gap, 6),
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "stopped_by": self.stopped_by,
            "engine": self.engine,
            "iterations": self.iterations,
            "improvements": self.improvements,
        }


# --- evaluation -------------------------------------------------------------------------------------------
def site_inflow(p: CoreProblem, flow: I64) -> I64:
    out: I64 = np.bincount(p.arc_site, weights=flow, minlength=p.n_sites).astype(np.int64)
    return out


def demand_served(p: CoreProblem, flow: I64) -> I64:
    out: I64 = np.bincount(p.arc_demand, weights=flow, minlength=p.n_demands).astype(np.int64)
    return out


def resource_usage(p: CoreProblem, flow: I64, production: I64) -> F64:
    use = np.zeros(p.n_resources)
    arcs = p.arc_resource >= 0
    np.add.at(use, p.arc_resource[arcs], p.arc_use[arcs] * flow[arcs])
    sites = p.site_resource >= 0
    np.add.at(use, p.site_resource[sites], p.site_unit_use[sites] * production[sites])
    return use


def normalised(p: CoreProblem, flow: I64) -> tuple[I64, B, I64, F64]:
    """Production, opened, unmet and extra implied by the flows, each at its cheapest.

    Surplus is made only to reach a site's minimum, a site is open only if it produces, and extra capacity is
    only what the usage needs: every cost coefficient is non-negative, so this never costs more.
    """
    inflow = site_inflow(p, flow)
    opened: B = inflow > 0
    production: I64 = np.where(opened, np.maximum(inflow, p.site_min), 0).astype(np.int64)
    unmet: I64 = (p.demand_quantity - demand_served(p, flow)).astype(np.int64)
    extra: F64 = np.maximum(resource_usage(p, flow, production) - p.resource_capacity, 0.0)
    return production, opened, unmet, extra


def evaluate(p: CoreProblem, flow: I64, production: I64, opened: B, unmet: I64, extra: F64) -> float:
    """The objective of a solution, in float64, from the problem's own coefficients."""
    with np.errstate(invalid="ignore"):
        unmet_cost = np.where(unmet > 0, p.demand_unmet_cost * unmet, 0.0)
    total = (
        math.fsum((p.arc_cost * flow).tolist())
        + math.fsum((p.site_unit_cost * production).tolist())
        + math.fsum(p.site_fixed_cost[opened].tolist())
        + math.fsum((p.resource_extra_cost * extra).tolist())
        + math.fsum(unmet_cost.tolist())
    )
    return float(total)


def check_feasible(p: CoreProblem, r: CoreResult, *, limit: int = 20) -> list[str]:
    """The constraints the result violates, as sentences (empty: feasible). At most ``limit`` of them."""
    shapes = {
        "flow": p.n_arcs,
        "production": p.n_sites,
        "opened": p.n_sites,
        "unmet": p.n_demands,
        "extra": p.n_resources,
    }
    for name, n in shapes.items():
        if np.shape(getattr(r, name)) != (n,):
            return [f"{name}: shape {np.shape(getattr(r, name))}, expected ({n},)"]
    flow = np.asarray(r.flow, dtype=np.int64)
    prod = np.asarray(r.production, dtype=np.int64)
    opened = np.asarray(r.opened, dtype=np.bool_)
    unmet = np.asarray(r.unmet, dtype=np.int64)
    extra = np.asarray(r.extra, dtype=np.float64)
    out = violations(p, flow, prod, opened, unmet, extra, limit=limit)
    if len(out) < limit:
        objective = evaluate(p, flow, prod, opened, unmet, extra)
        if not math.isclose(objective, r.objective, rel_tol=1e-9, abs_tol=1e-6):
            out.append(f"objective: reported {r.objective}, recomputed {objective}")
    return out


def violations(
    p: CoreProblem, flow: I64, prod: I64, opened: B, unmet: I64, extra: F64, *, limit: int = 20
) -> list[str]:
    """Vectorised: each constraint family is one mask, only the first ``limit`` offenders are worded."""
    out: list[str] = []

    def report(mask: Any, words: Any) -> bool:
        for i in np.flatnonzero(mask)[: limit - len(out)].tolist():
            out.append(words(i))
        return len(out) >= limit

    q = p.demand_quantity
    served = demand_served(p, flow)
    j = p.arc_demand
    whole_arc = p.demand_whole[j]
    arcs_used = np.bincount(j, weights=flow > 0, minlength=p.n_demands)
    inflow = site_inflow(p, flow)
    usage = resource_usage(p, flow, prod)
    tol = _REL_TOL * np.maximum(1.0, np.maximum(np.abs(p.resource_capacity), np.abs(usage)))
    checks = [
        (flow < 0, lambda a: f"arc {a}: negative flow {flow[a]}"),
        (
            served + unmet != q,
            lambda d: f"demand {d}: served {served[d]} + unmet {unmet[d]} != quantity {q[d]}",
        ),
        (unmet < 0, lambda d: f"demand {d}: negative unmet {unmet[d]}"),
        ((unmet > 0) & p.must_serve, lambda d: f"demand {d}: must be served but {unmet[d]} unmet"),
        (
            whole_arc & (flow != 0) & (flow != q[j]),
            lambda a: f"arc {a}: whole demand {j[a]} of {q[j[a]]} split ({flow[a]} on this arc)",
        ),
        (
            p.demand_whole & (arcs_used > 1),
            lambda d: f"demand {d}: whole, but served on {int(arcs_used[d])} arcs",
        ),
        (prod < inflow, lambda k: f"site {k}: production {prod[k]} below the flow {inflow[k]} it serves"),
        (prod > p.site_max, lambda k: f"site {k}: production {prod[k]} above its maximum {p.site_max[k]}"),
        ((prod > 0) & ~opened, lambda k: f"site {k}: produces {prod[k]} but is not opened"),
        (
            opened & (prod < p.site_min),
            lambda k: f"site {k}: opened with production {prod[k]} below its minimum {p.site_min[k]}",
        ),
        (
            prod > np.maximum(inflow, p.site_min),
            lambda k: (
                f"site {k}: production {prod[k]} is more than its flow {inflow[k]} and its minimum "
                f"{p.site_min[k]}"
            ),
        ),
        (
            (extra < -tol) | (extra > p.resource_extra + tol),
            lambda r: f"resource {r}: extra {extra[r]} outside 0..{p.resource_extra[r]}",
        ),
        (
            usage > p.resource_capacity + extra + tol,
            lambda r: (
                f"resource {r}: usage {usage[r]} above capacity {p.resource_capacity[r]} + extra {extra[r]}"
            ),
        ),
    ]
    for mask, words in checks:
        if report(mask, words):
            break
    return out
