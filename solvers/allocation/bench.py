"""Benchmark: the greedy allocation of a large synthetic batch. Prints one JSON line.

    python -m solvers.allocation.bench [--lines 1000000] [--workshops 200] [--seed 1]

Lines are drawn like a belt's day (Zipf-skewed SKUs, 31 provinces, ship-by over three days), aggregated into
cells with numpy as the planner does, then allocated; both steps are timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time

import numpy as np

from solvers.allocation.data import MINUTES_PER_DAY, AllocationProblem
from solvers.allocation.greedy import allocate


def synthetic(lines: int, workshops: int, seed: int) -> tuple[AllocationProblem, float]:
    rng = np.random.default_rng(seed)
    merchants, styles, skus_per_style, families, warehouses, provinces, days = 50, 400, 5, 4, 10, 31, 5
    skus = styles * skus_per_style
    sku_style = rng.permutation(np.repeat(np.arange(styles), skus_per_style))  # hit SKUs in many styles
    style_owner = rng.integers(0, merchants, styles)
    popularity = 1.0 / np.arange(1, skus + 1) ** 1.1
    line_sku = rng.choice(skus, lines, p=popularity / popularity.sum())
    line_qty = rng.choice([1, 1, 1, 2, 3], lines)
    line_ship = rng.integers(MINUTES_PER_DAY, 3 * MINUTES_PER_DAY, lines)
    line_prov = rng.integers(0, provinces, lines)

    t0 = time.perf_counter()
    due = (line_ship - 18 * 60) // MINUTES_PER_DAY
    key = (line_sku * provinces + line_prov) * 8 + due
    cells, inverse = np.unique(key, return_inverse=True)
    qty = np.bincount(inverse, weights=line_qty).astype(np.int64)
    n_lines = np.bincount(inverse).astype(np.int64)
    ship = np.full(cells.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(ship, inverse, line_ship)
    cell_sku = cells // 8 // provinces
    aggregate_s = time.perf_counter() - t0

    # each style qualified at a fifth of the workshops; regular capacity over the days about 1.3x the demand,
    # so the nearest workshops fill up and the cascade has to spill, run overtime and go late
    per_style = max(1, workshops // 5)
    q_style = np.repeat(np.arange(styles), per_style)
    q_ws = np.concatenate([rng.choice(workshops, per_style, replace=False) for _ in range(styles)])
    mpu = rng.uniform(3, 12, styles)
    demand_minutes = float((qty * mpu[sku_style[cell_sku]]).sum())
    per_day = 1.3 * demand_minutes / workshops / families / days
    stock_rows = rng.choice(warehouses * skus, skus, replace=False)
    stock_sku = stock_rows % skus
    problem = AllocationProblem(
        merchant_lon=rng.uniform(120.6, 121.0, merchants),
        merchant_lat=rng.uniform(31.5, 31.9, merchants),
        merchant_pools=rng.random(merchants) < 0.3,
        style_family=rng.integers(0, families, styles),
        style_minutes_per_unit=mpu,
        style_min_lot=rng.choice([50, 100, 200], styles),
        style_changeover_fen=rng.integers(5_000, 30_000, styles),
        sku_style=sku_style,
        sku_weight_g=rng.integers(150, 900, skus),
        cell_style=sku_style[cell_sku],
        cell_sku=cell_sku,
        cell_owner=style_owner[sku_style[cell_sku]],
        cell_quantity=qty,
        cell_lines=n_lines,
        cell_ship_by=ship,
        cell_province=(cells // 8) % provinces,
        workshop_lon=rng.uniform(120.6, 121.0, workshops),
        workshop_lat=rng.uniform(31.5, 31.9, workshops),
        regular_minutes=rng.uniform(0.5, 1.5, (workshops, families, days)) * per_day,
        overtime_minutes=rng.uniform(0.1, 0.3, (workshops, families, days)) * per_day,
        overtime_fen_per_minute=rng.integers(1, 5, (workshops, families, days)),
        qual_workshop=q_ws,
        qual_style=q_style,
        qual_unit_cost_fen=np.asarray(rng.integers(1_500, 6_000, q_ws.shape[0]), dtype=np.int64),
        warehouse_lon=rng.uniform(120.6, 121.0, warehouses),
        warehouse_lat=rng.uniform(31.5, 31.9, warehouses),
        warehouse_handling=np.full((warehouses, days), lines // 40),
        warehouse_handling_fen=rng.integers(80, 150, warehouses),
        stock_warehouse=stock_rows // skus,
        stock_owner=style_owner[sku_style[stock_sku]],
        stock_sku=stock_sku,
        stock_available=rng.integers(0, 300, skus),
        province_shipping_fen=rng.integers(350, 1200, provinces),
        start=dt.date(2024, 11, 11),
        days=days,
    )
    return problem, aggregate_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--workshops", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    problem, aggregate_s = synthetic(args.lines, args.workshops, args.seed)
    result = allocate(problem)
    summary = result.summary(problem)
    print(
        json.dumps(
            {
                "benchmark": "greedy_allocation",
                "lines": args.lines,
                "cells": problem.n_cells,
                "workshops": args.workshops,
                "aggregate_seconds": round(aggregate_s, 3),
                "allocate_seconds": round(result.seconds, 3),
                "allocations": result.n_allocations,
                "lots": summary["lots"],
                "pieces_late": summary["pieces_late"],
                "pieces_unfilled": summary["pieces_unfilled"],
                "utilisation": summary["utilisation"],
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
