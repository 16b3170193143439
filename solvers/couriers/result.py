"""What the courier assignment returns: a courier point and a price per parcel, or the reason it has none."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from solvers.couriers.data import I32, I64

I8 = npt.NDArray[np.int8]


class Unassigned(IntEnum):
    """Why a parcel has no courier point; the first that applies, in this order."""

    ASSIGNED = 0
    NO_POINT_AT_SITE = 1  # no courier point collects at the parcel's site
    PROVINCE_NOT_SERVED = 2  # none of the couriers collecting at the site serves the destination province
    TOO_HEAVY = 3  # those that serve it all have a weight limit below the parcel's weight
    QUOTA_EXHAUSTED = 4  # every point that could take it is full


UNASSIGNED_TEXT = {
    Unassigned.ASSIGNED: "assigned",
    Unassigned.NO_POINT_AT_SITE: "no courier point collects at the site",
    Unassigned.PROVINCE_NOT_SERVED: "no courier collecting at the site serves the destination province",
    Unassigned.TOO_HEAVY: "over the weight limit of every courier serving the province from the site",
    Unassigned.QUOTA_EXHAUSTED: "every courier point that could take it has used its daily quota",
}


@dataclass(frozen=True, eq=False)
class CourierAssignment:
    """The assignment: as many parcels as the quotas allow, and among those assignments the cheapest.

    ``objective_fen`` is the sum of ``parcel_fen``. ``bound_fen`` is the min-cost flow's optimum over the
    same parcels: the method is exact, so it equals the objective (a gap of 0, proven by the flow).
    ``quota_free_fen`` is what the assigned parcels would cost, each at its cheapest feasible courier, were
    no quota binding: the difference to the objective is what today's quotas cost.
    """

    parcel_point: I32  # (n,) -1: none
    parcel_fen: I64  # (n,) price paid, 0 where none
    parcel_reason: I8  # (n,) Unassigned codes
    point_used: I64  # (K,) parcels given to each point, at most its quota
    objective_fen: int
    bound_fen: int
    quota_free_fen: int
    groups: int  # parcels aggregated into this many groups for the flow
    arcs: int  # the flow's size

    @property
    def assigned(self) -> int:
        return int(np.count_nonzero(self.parcel_point >= 0))
