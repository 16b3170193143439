"""Pickup windows: each parcel to the first window that opens after it is ready, small windows merged forward.

Group ``g`` has ``J = ceil((cutoff - earliest) / window_minutes)`` windows; window ``j`` ends at
``cutoff - (J - 1 - j) * window_minutes`` and starts ``window_minutes`` earlier, or at ``earliest_minute``
for the first. A parcel ready at ``r`` belongs to the first window starting at or after ``r`` (a parcel ready
before ``earliest_minute`` to the first); one ready after the last window opened but ``shortest_minutes`` or
more before the cut-off joins the last window, which then opens when it is ready. Then, window by window in
time order, a window holding fewer than
``min_parcels`` (its own and those carried to it) is not booked and carries its parcels to the next; the last
window before the cut-off is booked whenever it holds any.

Work is per parcel in numpy and per window slot in a loop over at most ``1440 / window_minutes`` slots, each
step over all groups at once.
"""

from __future__ import annotations

import numpy as np

from solvers.pickups.data import I64, PickupProblem
from solvers.pickups.result import PickupPlan, Rolled


def slots(p: PickupProblem) -> tuple[I64, I64]:
    """Per group its number of windows; per parcel its window slot (0 = the first), -1 where it rolls."""
    w = p.window_minutes
    cutoff = p.group_cutoff_minute.astype(np.int64)
    span = cutoff - p.earliest_minute
    n_windows: I64 = np.where(span > 0, -(-span // w), 0).astype(np.int64)
    g = p.parcel_group
    ready = p.parcel_ready_minute.astype(np.int64)
    j = n_windows[g] - (cutoff[g] - ready) // w  # = J - floor((cutoff - r) / w) = ceil((r - start_0) / w)
    j = np.where(ready <= p.earliest_minute, 0, j)
    # packed after the last window opened, yet early enough for a shortened last window
    late = (j >= n_windows[g]) & (n_windows[g] > 0) & (p.shortest_minutes > 0)
    late &= ready <= cutoff[g] - p.shortest_minutes
    j = np.where(late, n_windows[g] - 1, j)
    slot: I64 = np.where(j < n_windows[g], j, -1).astype(np.int64)
    return n_windows, slot


def solve(p: PickupProblem) -> PickupPlan:
    n_g, w = p.n_groups, p.window_minutes
    n_windows, slot = slots(p)
    width = int(n_windows.max(initial=0))
    g = p.parcel_group.astype(np.int64)
    kept = slot >= 0
    counts = np.bincount(g[kept] * width + slot[kept], minlength=n_g * width).reshape(n_g, width)

    booked = np.zeros((n_g, width), np.bool_)
    size = np.zeros((n_g, width), np.int64)
    carry = np.zeros(n_g, np.int64)
    for j in range(width):
        carry += counts[:, j]
        book = (carry > 0) & ((carry >= p.min_parcels) | (j == n_windows - 1))
        booked[:, j] = book
        size[:, j] = np.where(book, carry, 0)
        carry[book] = 0

    # a slot's parcels ride in the first booked window at or after it
    at = np.where(booked, np.arange(width), width)
    ride = np.minimum.accumulate(at[:, ::-1], axis=1)[:, ::-1]
    window_id = np.cumsum(booked.reshape(-1)).reshape(n_g, width) - 1

    w_group, w_slot = (x.astype(np.int64) for x in np.nonzero(booked))
    end = p.group_cutoff_minute[w_group].astype(np.int64) - (n_windows[w_group] - 1 - w_slot) * w
    start = np.maximum(end - w, p.earliest_minute)
    # a last window holding late parcels opens when the last of them is ready (never before a parcel is)
    last_ready = np.full((n_g, max(width, 1)), -1, np.int64)
    np.maximum.at(last_ready, (g[kept], slot[kept]), p.parcel_ready_minute[kept].astype(np.int64))
    start = np.maximum(start, last_ready[w_group, w_slot])
    parcels = size[w_group, w_slot]
    vans = -(-parcels // p.group_van_capacity[w_group].astype(np.int64))

    parcel_window = np.full(p.n_parcels, -1, np.int64)
    parcel_window[kept] = window_id[g[kept], ride[g[kept], slot[kept]]]
    ready = p.parcel_ready_minute
    cutoff = p.group_cutoff_minute[g]
    reason = np.where(
        n_windows[g] == 0,
        Rolled.NO_WINDOW,
        np.where(ready > cutoff, Rolled.AFTER_CUTOFF, Rolled.AFTER_LAST_WINDOW),
    ).astype(np.int8)
    reason[kept] = Rolled.COLLECTED
    return PickupPlan(
        window_group=w_group.astype(np.int32),
        window_start=start.astype(np.int32),
        window_end=end.astype(np.int32),
        window_parcels=parcels,
        window_vans=vans.astype(np.int64),
        parcel_window=parcel_window,
        parcel_reason=reason,
    )
