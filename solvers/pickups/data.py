"""The pickup window problem: when each parcel is packed, per (site, courier point) group, as columnar arrays.

A *group* is one site and one courier point: a courier's van comes from the point to the site. Times are
minutes after local midnight of the pickup day. The day is cut into windows of ``window_minutes`` that end
at the group's cut-off (the first, from ``earliest_minute``, may be shorter); a booked window tells the
courier to come at some time within it, so a parcel rides in a window only if it is ready by the window's
start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from solvers import checks

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

MINUTES_PER_DAY = 1440
# shorter windows are not a booking a courier accepts, and they would make the day's grid large
MIN_WINDOW_MINUTES = 10


@dataclass(frozen=True, eq=False)
class PickupProblem:
    """Built (and checked) by :func:`build_problem`."""

    parcel_group: I32  # (n,) 0..G-1, the (site, courier point) pair
    parcel_ready_minute: I32  # (n,) when the parcel is packed; before ``earliest_minute`` means waiting
    group_cutoff_minute: I32  # (G,) the courier's last collection, 0..1440
    group_van_capacity: I32  # (G,) parcels a van takes
    window_minutes: int = 120
    earliest_minute: int = 8 * 60
    min_parcels: int = 1  # a window with fewer waits for the next, unless it is the last before the cut-off
    # A parcel packed after the last window opened still goes today if it is ready this long before the
    # cut-off: the last window then opens when its last parcel is ready. 0: such parcels roll.
    shortest_minutes: int = 30

    @property
    def n_parcels(self) -> int:
        return int(self.parcel_group.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.group_cutoff_minute.shape[0])


def build_problem(
    *,
    parcel_group: Any,
    parcel_ready_minute: Any,
    group_cutoff_minute: Any,
    group_van_capacity: Any,
    window_minutes: int = 120,
    earliest_minute: int = 8 * 60,
    min_parcels: int = 1,
    shortest_minutes: int = 30,
) -> PickupProblem:
    """Check every array and return the problem; a :class:`ValueError` names the first bad record."""
    group = checks.ints("parcel_group", parcel_group)
    ready = checks.ints("parcel_ready_minute", parcel_ready_minute)
    cutoff = checks.ints("group_cutoff_minute", group_cutoff_minute)
    van = checks.ints("group_van_capacity", group_van_capacity)
    if ready.shape[0] != group.shape[0]:
        raise ValueError(f"parcel_ready_minute has {ready.shape[0]} parcels, parcel_group {group.shape[0]}")
    if van.shape[0] != cutoff.shape[0]:
        raise ValueError(
            f"group_van_capacity has {van.shape[0]} groups, group_cutoff_minute {cutoff.shape[0]}"
        )
    n_g = cutoff.shape[0]
    if not MIN_WINDOW_MINUTES <= window_minutes <= MINUTES_PER_DAY:
        raise ValueError(f"window_minutes {window_minutes}: {MIN_WINDOW_MINUTES}..{MINUTES_PER_DAY}")
    if not 0 <= earliest_minute < MINUTES_PER_DAY:
        raise ValueError(f"earliest_minute {earliest_minute}: 0..{MINUTES_PER_DAY - 1}")
    if min_parcels < 1:
        raise ValueError(f"min_parcels {min_parcels}: at least 1")
    if shortest_minutes != 0 and not MIN_WINDOW_MINUTES <= shortest_minutes <= window_minutes:
        raise ValueError(f"shortest_minutes {shortest_minutes}: 0, or {MIN_WINDOW_MINUTES}..window_minutes")
    i = checks.first((group < 0) | (group >= n_g))
    if i is not None:
        raise ValueError(f"parcel {i}: group {int(group[i])} is not one of the {n_g} groups")
    limit = np.iinfo(np.int32)
    i = checks.first((ready < limit.min) | (ready > limit.max))
    if i is not None:
        raise ValueError(f"parcel {i}: ready minute {int(ready[i])} does not fit int32")
    g = checks.first((cutoff < 0) | (cutoff > MINUTES_PER_DAY))
    if g is not None:
        raise ValueError(f"group {g}: cut-off minute {int(cutoff[g])} (0..{MINUTES_PER_DAY})")
    g = checks.first((van <= 0) | (van > limit.max))
    if g is not None:
        raise ValueError(f"group {g}: van capacity {int(van[g])} (must be positive)")
    return PickupProblem(
        parcel_group=group.astype(np.int32),
        parcel_ready_minute=ready.astype(np.int32),
        group_cutoff_minute=cutoff.astype(np.int32),
        group_van_capacity=van.astype(np.int32),
        window_minutes=int(window_minutes),
        earliest_minute=int(earliest_minute),
        min_parcels=int(min_parcels),
        shortest_minutes=int(shortest_minutes),
    )
