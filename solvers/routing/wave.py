"""A generated afternoon wave of pickups in a garment belt like Changshu's, for routing at scale.

Workshops sit in clusters round the belt's towns (a few kilometres across each) within about 25 km of a
consolidation point where the courier's line-haul leaves in the evening. Each has a pickup window in the
afternoon that closes before its courier's cut-off (19:00, 20:00 or 21:00); vans leave the consolidation
point from 12:00 and must be back by 21:30. Parcels per workshop are skewed (most hand over a few bags, a
few hand over hundreds: the hit styles). Distances are road metres (straight line × 1.3), durations seconds
at an average 30 km/h, times in seconds since midnight; reported distances are kilometres.

Only the seed decides the wave: the same seed gives the same problem.
"""

from __future__ import annotations

import numpy as np

from solvers.routing.data import RoutingProblem

# town centres relative to the consolidation point, km east and north, and their share of the workshops
_TOWNS = np.array(
    [
        (0.0, 0.0, 0.22),  # the garment city itself
        (-4.5, 3.0, 0.10),
        (6.0, 8.5, 0.12),
        (11.0, -2.0, 0.09),
        (-9.0, -6.0, 0.08),
        (2.5, -9.5, 0.10),
        (-13.0, 7.5, 0.07),
        (15.5, 9.0, 0.08),
        (8.0, -15.0, 0.06),
        (-3.0, 16.0, 0.08),
    ]
)
_ROAD_FACTOR = 1.3
_METRES_PER_SECOND = 30_000 / 3600
_CUTOFFS = np.array([19 * 3600, 20 * 3600, 21 * 3600])
DEPART = 12 * 3600
BACK_BY = 21 * 3600 + 1800


def wave(stops: int, seed: int = 0, capacity: int = 300, vehicles: int | None = None) -> RoutingProblem:
    """A wave of ``stops`` pickups; ``capacity`` parcels a van; by default vans enough for twice the load."""
    rng = np.random.default_rng(seed)
    town = rng.choice(len(_TOWNS), size=stops, p=_TOWNS[:, 2] / _TOWNS[:, 2].sum())
    spread = rng.uniform(1.0, 2.5, size=stops)
    east = _TOWNS[town, 0] + rng.normal(0.0, 1.0, size=stops) * spread
    north = _TOWNS[town, 1] + rng.normal(0.0, 1.0, size=stops) * spread
    x = np.concatenate(([0.0], east)) * 1000.0
    y = np.concatenate(([0.0], north)) * 1000.0
    straight = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    distance = np.round(straight * _ROAD_FACTOR).astype(np.int64)
    duration = np.round(distance / _METRES_PER_SECOND).astype(np.int64)

    parcels = np.minimum(np.ceil(rng.lognormal(mean=1.8, sigma=0.9, size=stops)), capacity // 2).astype(
        np.int64
    )
    demand = np.concatenate(([0], parcels))
    service = np.concatenate(
        ([0], 180 + 6 * parcels)
    )  # parking and the hand-over, then a few seconds a parcel
    cutoff = rng.choice(_CUTOFFS, size=stops, p=[0.3, 0.45, 0.25])
    # windows of one to four hours that open from 13:00 on and close at least an hour before the cut-off,
    # each kept reachable from the consolidation point and with time to bring the parcels back
    length = rng.integers(3600, 4 * 3600 + 1, size=stops)
    close = cutoff - 3600 - rng.integers(0, 2 * 3600 + 1, size=stops)
    open_ = np.maximum(13 * 3600, close - length)
    out = duration[0, 1:]
    back = duration[1:, 0]
    close = np.maximum(close, np.maximum(open_, DEPART + out) + 600)
    close = np.minimum(close, BACK_BY - back - service[1:])
    open_ = np.minimum(open_, close)
    ready = np.concatenate(([DEPART], open_))
    due = np.concatenate(([BACK_BY], close))
    fleet = vehicles if vehicles is not None else int(np.ceil(2 * parcels.sum() / capacity))
    return RoutingProblem(
        distance=distance,
        duration=duration,
        demand=demand,
        ready=ready,
        due=due,
        service=service,
        capacity=capacity,
        vehicles=fleet,
        x=x,
        y=y,
        scale=1000,
        name=f"wave-{stops}-seed{seed}",
    )
