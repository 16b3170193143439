"""Benchmark: pickup windows for a synthetic belt day. Prints one JSON line.

    python -m solvers.pickups.bench [--parcels 12000000] [--groups 24000] [--seed 1]

Parcels are packed through the working day (most between 9:00 and 21:00, some left from the night before),
spread over (site, courier point) groups whose cut-offs fall between 17:00 and 21:00; vans take 50 to 300
parcels; windows of 120 minutes from 8:00, a window of fewer than 20 parcels waiting for the next.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from solvers.pickups.data import PickupProblem, build_problem
from solvers.pickups.result import Rolled
from solvers.pickups.solve import solve


def synthetic(parcels: int, groups: int, seed: int = 1) -> PickupProblem:
    rng = np.random.default_rng(seed)
    ready = np.clip(rng.normal(15 * 60, 3 * 60, parcels), -120, 1439).astype(np.int32)
    return build_problem(
        parcel_group=rng.integers(0, groups, parcels).astype(np.int32),
        parcel_ready_minute=ready,
        group_cutoff_minute=rng.integers(17 * 60, 21 * 60 + 1, groups).astype(np.int32),
        group_van_capacity=rng.integers(50, 301, groups).astype(np.int32),
        min_parcels=20,
    )


def run(parcels: int, groups: int, seed: int = 1) -> dict[str, float | int]:
    """The benchmark's figures, for a CLI to print."""
    problem = synthetic(parcels, groups, seed)
    t0 = time.perf_counter()
    plan = solve(problem)
    seconds = time.perf_counter() - t0
    return {
        "parcels": parcels,
        "groups": groups,
        "seconds": round(seconds, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "windows": plan.n_windows,
        "vans": int(plan.window_vans.sum()),
        "rolled": int(np.count_nonzero(plan.parcel_reason != Rolled.COLLECTED)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=12_000_000)
    ap.add_argument("--groups", type=int, default=24_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(json.dumps(run(args.parcels, args.groups, args.seed)))


if __name__ == "__main__":
    main()
