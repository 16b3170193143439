"""Courier assignment solved exactly: one min-cost flow over the groups, then cut back into parcels.

Within a group the parcels are interchangeable, so the cut is by parcel index: a group's lowest-index parcels
take its cheapest points (ties by point index) and, where the quotas leave some without a point, the
highest-index parcels are the ones left. A caller that orders parcels by urgency (ship-by, then ready time)
thereby keeps the urgent ones. The same problem always gives the same assignment.
"""

from __future__ import annotations

import numpy as np
from ortools.graph.python import min_cost_flow

from solvers.allocation.segments import cut, runs
from solvers.couriers.data import I64, CourierProblem
from solvers.couriers.model import CourierModel, build
from solvers.couriers.result import CourierAssignment, Unassigned

_OVERFLOW = 2**63 - 1
# OR-Tools' cost scaling multiplies every cost by the node count, and the total must stay below 2^63 too
_HEADROOM = 2**62


class CourierFlowError(RuntimeError):
    """The flow could not be solved exactly (costs out of int64 range, or the solver refused it)."""


def _flow(m: CourierModel) -> tuple[I64, int]:
    n = int(m.group_size.sum())
    if m.penalty * max(n, m.n_nodes + 1) >= _HEADROOM:
        raise CourierFlowError(
            f"penalty {m.penalty} fen x {max(n, m.n_nodes + 1)} is outside int64: prices too large"
        )
    mcf = min_cost_flow.SimpleMinCostFlow()
    mcf.add_arcs_with_capacity_and_unit_cost(m.tail, m.head, m.capacity, m.cost)
    nodes = np.arange(m.n_groups + 1, dtype=np.int64)
    nodes[-1] = m.sink
    mcf.set_nodes_supplies(nodes, np.concatenate((m.group_size, [-n])))
    status = mcf.solve()
    if status != mcf.OPTIMAL:
        raise CourierFlowError(f"min-cost flow ended with status {status}")
    total = int(mcf.optimal_cost())
    if total >= _OVERFLOW:
        raise CourierFlowError("min-cost flow's cost overflowed int64")
    flows: I64 = mcf.flows(np.arange(m.tail.shape[0], dtype=np.int64)).astype(np.int64)
    return flows, total


def _empty(p: CourierProblem) -> CourierAssignment:
    return CourierAssignment(
        parcel_point=np.empty(0, np.int32),
        parcel_fen=np.empty(0, np.int64),
        parcel_reason=np.empty(0, np.int8),
        point_used=np.zeros(p.n_points, np.int64),
        objective_fen=0,
        bound_fen=0,
        quota_free_fen=0,
        groups=0,
        arcs=0,
    )


def solve(p: CourierProblem) -> CourierAssignment:
    """As many parcels as the quotas allow get a courier point, and among those assignments the cheapest."""
    if p.n_parcels == 0:
        return _empty(p)
    m = build(p)
    flows, total = _flow(m)
    n_g, n_k = m.n_groups, p.n_points
    take = flows[: m.n_take]
    route = flows[m.n_take : m.n_take + m.n_route]
    drop_at = m.n_take + m.n_route + n_k
    dropped = flows[drop_at : drop_at + n_g]

    # which group's parcels went to which point: each hub's inflow (by group) cut along its outflow (by point)
    into = np.flatnonzero(take > 0)
    into_hub = m.head[into] - n_g
    into = into[np.lexsort((m.tail[into], into_hub))]
    out = np.flatnonzero(route > 0)  # already by hub, then point
    g_i, k_i, qty = cut(take[into], route[out])
    seg_group = m.tail[into][g_i]
    seg_point = m.route_point[out][k_i]
    seg_fen = m.class_price[m.group_class[seg_group], p.point_courier[seg_point]]

    # each group's parcels by index: its segments cheapest first, then those left without a point
    short = np.flatnonzero(dropped > 0)
    seg_group = np.concatenate((seg_group, short))
    seg_point = np.concatenate((seg_point, np.full(short.shape[0], -1, np.int64)))
    seg_fen = np.concatenate((seg_fen, np.zeros(short.shape[0], np.int64)))
    qty = np.concatenate((qty, dropped[short]))
    last = (seg_point < 0).astype(np.int64)
    order = np.lexsort((seg_point, seg_fen, last, seg_group))
    seg_group, seg_point, seg_fen, qty = seg_group[order], seg_point[order], seg_fen[order], qty[order]

    parcels, _ = runs(m.parcel_group, n_g)
    parcel_point = np.empty(p.n_parcels, np.int32)
    parcel_point[parcels] = np.repeat(seg_point, qty)
    parcel_fen = np.empty(p.n_parcels, np.int64)
    parcel_fen[parcels] = np.repeat(seg_fen, qty)
    reason = np.where(
        m.group_reason[seg_group] != Unassigned.ASSIGNED,
        m.group_reason[seg_group],
        Unassigned.QUOTA_EXHAUSTED,
    ).astype(np.int8)
    reason[seg_point >= 0] = Unassigned.ASSIGNED
    parcel_reason = np.empty(p.n_parcels, np.int8)
    parcel_reason[parcels] = np.repeat(reason, qty)

    objective = int(seg_fen @ qty)
    n_dropped = int(dropped.sum())
    if total - m.penalty * n_dropped != objective:
        raise CourierFlowError(f"flow cost {total} does not re-price to the assignment's {objective} fen")
    assigned = m.group_size - dropped
    some = np.flatnonzero(assigned > 0)
    reach_courier = np.zeros((m.reach_points.shape[0], p.n_couriers), np.bool_)
    reach_courier[m.hub_reach, m.hub_courier] = True
    g_price = m.class_price[m.group_class[some]]
    g_price = np.where(reach_courier[m.group_reach[some]] & (g_price >= 0), g_price, np.iinfo(np.int64).max)
    quota_free = int(g_price.min(axis=1, initial=np.iinfo(np.int64).max) @ assigned[some])
    return CourierAssignment(
        parcel_point=parcel_point,
        parcel_fen=parcel_fen,
        parcel_reason=parcel_reason,
        point_used=np.bincount(seg_point[seg_point >= 0], weights=qty[seg_point >= 0], minlength=n_k).astype(
            np.int64
        ),
        objective_fen=objective,
        bound_fen=total - m.penalty * n_dropped,
        quota_free_fen=quota_free,
        groups=n_g,
        arcs=int(m.tail.shape[0]),
    )
