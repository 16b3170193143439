"""Benchmark: courier assignment of a synthetic belt day. Prints one JSON line.

    python -m solvers.couriers.bench [--parcels 12000000] [--seed 1]

The day: 3,000 workshops and 50 shared warehouses (which ship 30% of the parcels) in 6 areas of the belt,
34 provinces (skewed towards the coast), 8 couriers with 30 courier points, each point collecting in some
areas; economy couriers are cheap, refuse the far west and take at most 30 kg. Point quotas total about
1.25x the parcels but lean towards the couriers' usual shares, so the cheap points run out and parcels move.
``seconds`` times :func:`solvers.couriers.solve` alone; ``generate_seconds`` drawing the day and checking it
(``build_problem``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from solvers.couriers.data import CourierProblem, build_problem
from solvers.couriers.solve import solve

WORKSHOPS, WAREHOUSES, AREAS, PROVINCES = 3000, 50, 6, 34
# ZTO, YTO, Yunda, STO, J&T, SF, JD, EMS
POINTS_PER_COURIER = np.array([4, 4, 4, 4, 4, 4, 3, 3])
BASE_FEN = np.array([280, 290, 270, 285, 260, 1300, 1100, 900])
PER_KG_FEN = np.array([150, 160, 150, 150, 140, 700, 600, 400])
MAX_WEIGHT_G = np.array([30_000, 30_000, 30_000, 30_000, 30_000, 50_000, 0, 0])
SHARE = np.array([0.2, 0.18, 0.18, 0.14, 0.14, 0.06, 0.05, 0.05])
PRESENT = np.array([0.9, 0.9, 0.85, 0.85, 0.8, 0.5, 0.4, 0.4])  # at a workshop; warehouses have them all


def synthetic(parcels: int, seed: int = 1) -> CourierProblem:
    rng = np.random.default_rng(seed)
    n_c = POINTS_PER_COURIER.shape[0]
    sites = WORKSHOPS + WAREHOUSES
    site_area = rng.integers(0, AREAS, sites)

    # points: point j of courier c collects in the areas a with a % points(c) == j
    point_courier = np.repeat(np.arange(n_c), POINTS_PER_COURIER)
    point_rank = np.concatenate([np.arange(k) for k in POINTS_PER_COURIER])
    first_point = np.concatenate(([0], np.cumsum(POINTS_PER_COURIER)[:-1]))
    present = rng.random((sites, n_c)) < PRESENT
    present[WORKSHOPS:] = True
    s_idx, c_idx = np.nonzero(present)
    site_points = first_point[c_idx] + site_area[s_idx] % POINTS_PER_COURIER[c_idx]
    indptr = np.concatenate(([0], np.cumsum(present.sum(axis=1))))

    # parcels: warehouses ship 30%; provinces skewed; weights log-normal around 600 g with a long tail
    from_warehouse = rng.random(parcels) < 0.3
    parcel_site = np.where(
        from_warehouse,
        WORKSHOPS + rng.integers(0, WAREHOUSES, parcels),
        rng.integers(0, WORKSHOPS, parcels),
    ).astype(np.int32)
    popularity = 1.0 / np.arange(1, PROVINCES + 1) ** 0.9
    parcel_province = rng.choice(PROVINCES, parcels, p=popularity / popularity.sum()).astype(np.int32)
    weight = np.clip(rng.lognormal(np.log(600.0), 0.9, parcels), 50, 80_000).astype(np.int32)

    # prices: further provinces cost more; economy couriers (0..4) do not serve the two farthest
    distance = np.linspace(1.0, 2.2, PROVINCES)
    jitter = rng.uniform(0.9, 1.1, (n_c, PROVINCES))
    first_fen = np.round(BASE_FEN[:, None] * distance[None, :] * jitter).astype(np.int64)
    first_fen[:5, -2:] = -1
    additional = np.round(PER_KG_FEN[:, None] * distance[None, :] * jitter).astype(np.int64)
    first_weight = np.where(np.arange(n_c)[:, None] == 7, 500, 1000) * np.ones((1, PROVINCES), np.int64)

    # quotas: each courier's share of 1.25x the parcels, split over its points by the parcels of their areas
    site_parcels = np.bincount(parcel_site, minlength=sites)
    area_parcels = np.bincount(site_area, weights=site_parcels, minlength=AREAS)
    point_area_parcels = np.array(
        [
            area_parcels[np.arange(AREAS) % POINTS_PER_COURIER[c] == r].sum()
            for c, r in zip(point_courier, point_rank, strict=True)
        ]
    )
    point_quota = np.round(1.25 * parcels * SHARE[point_courier] * point_area_parcels / parcels).astype(
        np.int64
    )

    return build_problem(
        parcel_site=parcel_site,
        parcel_province=parcel_province,
        parcel_weight_g=weight,
        first_weight_g=first_weight,
        first_fen=first_fen,
        additional_fen_per_kg=additional,
        max_weight_g=MAX_WEIGHT_G,
        point_courier=point_courier,
        point_quota=point_quota,
        site_points_indptr=indptr,
        site_points=site_points,
    )


def run(parcels: int, seed: int = 1) -> dict[str, float | int | list[int]]:
    """The benchmark's figures, for a CLI to print."""
    t0 = time.perf_counter()
    problem = synthetic(parcels, seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = solve(problem)
    seconds = time.perf_counter() - t0
    reasons = np.bincount(result.parcel_reason, minlength=5)
    return {
        "parcels": parcels,
        "seconds": round(seconds, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "objective": result.objective_fen,
        "bound": result.bound_fen,
        "quota_free": result.quota_free_fen,
        "assigned": result.assigned,
        "unassigned_by_reason": [int(x) for x in reasons[1:]],
        "groups": result.groups,
        "arcs": result.arcs,
        "generate_seconds": round(build_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=12_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(json.dumps(run(args.parcels, args.seed)))


if __name__ == "__main__":
    main()
