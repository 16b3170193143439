"""What the pickup planner returns: the booked windows, and each parcel's window or why it rolls over."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from solvers.pickups.data import I32, I64

I8 = npt.NDArray[np.int8]


class Rolled(IntEnum):
    """Why a parcel is not collected today (it rolls to the next day's first window)."""

    COLLECTED = 0
    AFTER_CUTOFF = 1  # ready after the group's cut-off
    AFTER_LAST_WINDOW = 2  # ready by the cut-off, but after the last window opened: the van may have come
    NO_WINDOW = 3  # the group's cut-off is at or before the earliest pickup: no window today


ROLLED_TEXT = {
    Rolled.COLLECTED: "collected today",
    Rolled.AFTER_CUTOFF: "ready after the courier's cut-off",
    Rolled.AFTER_LAST_WINDOW: "ready after the last pickup window before the cut-off opened",
    Rolled.NO_WINDOW: "the courier's cut-off is before the earliest pickup: no window today",
}


@dataclass(frozen=True, eq=False)
class PickupPlan:
    """Windows sorted by group, then start; ``parcel_window`` indexes them."""

    window_group: I32
    window_start: I32  # minutes after midnight; every parcel in the window is ready by then
    window_end: I32  # at or before the group's cut-off
    window_parcels: I64
    window_vans: I64  # ceil(parcels / van capacity)
    parcel_window: I64  # (n,) -1: rolls to the next day
    parcel_reason: I8  # (n,) Rolled codes

    @property
    def n_windows(self) -> int:
        return int(self.window_group.shape[0])
