"""Parcels aggregated into groups that the flow cannot tell apart, and the min-cost flow network over them.

Two parcels are interchangeable when they reach the same set of courier points and pay the same price with
every courier (or are refused by the same couriers). So a parcel's group is the pair

- *reach*: the set of points collecting at its site (sites with the same set are merged: a belt's sites
  mostly share the points of their area, so thousands of sites become a few dozen reaches), and
- *class*: its row of prices over the couriers (``NOT_SERVED`` / ``TOO_HEAVY`` where refused), the same for
  every (province, weight) whose rows are equal; a province's prices step once per kilogram, so a day's
  12 million parcels fall into some hundreds of classes.

Network: group --price--> (reach, courier) --0--> point --0, quota--> sink, and group --penalty--> sink
for parcels left without a point. The penalty exceeds the cost of any simple path through the network, so
the optimum assigns as many parcels as the quotas allow first, and is the cheapest such assignment second
(a cheaper flow assigning fewer would leave an augmenting path whose cycle through the penalty arc has
negative cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solvers.couriers.data import I64, CourierProblem
from solvers.couriers.result import Unassigned

B = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]

NOT_SERVED = -1
TOO_HEAVY = -2

# keys below this many (or one per item) are compressed through a dense table, in linear time, rather than
# sorted: the table costs five bytes a key
_DENSE_KEYS = 1 << 22


def compress(keys: I64, upper: int) -> tuple[I64, I64]:
    """The distinct ``keys`` (in ``0..upper-1``), sorted, and each key's index among them."""
    if upper <= max(_DENSE_KEYS, keys.shape[0]) and upper < 2**31:
        present = np.zeros(upper, np.bool_)
        present[keys] = True
        ids = np.cumsum(present, dtype=np.int32) - 1
        distinct: I64 = np.flatnonzero(present).astype(np.int64)
        inverse: I64 = ids[keys].astype(np.int64)
        return distinct, inverse
    distinct, inverse = np.unique(keys, return_inverse=True)
    return distinct.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def prices(p: CourierProblem, province: I64, weight: I64) -> I64:
    """Per (province, weight) row, the price with each courier, or ``NOT_SERVED`` / ``TOO_HEAVY``."""
    first = p.first_fen[:, province].T
    over = np.maximum(weight[:, None] - p.first_weight_g[:, province].T, 0)
    price = first + (over + 999) // 1000 * p.additional_fen_per_kg[:, province].T
    heavy = (p.max_weight_g > 0)[None, :] & (weight[:, None] > p.max_weight_g[None, :])
    out: I64 = np.where(first < 0, NOT_SERVED, np.where(heavy, TOO_HEAVY, price)).astype(np.int64)
    return out


def reaches(p: CourierProblem) -> tuple[I64, B]:
    """Each site's reach (sites with the same set of points share one) and which points each reach has.

    Sets are compared as rows of a sites x points bit matrix: an eighth of a byte per pair, 12 MB for 10,000
    sites and 10,000 points."""
    n_s, n_k = p.n_sites, p.n_points
    if n_k == 0:
        return np.zeros(n_s, np.int64), np.zeros((1, 0), np.bool_)
    member = np.zeros((n_s, n_k), np.bool_)
    member[np.repeat(np.arange(n_s), np.diff(p.site_points_indptr)), p.site_points] = True
    packed = np.packbits(member, axis=1)
    _, first, site_reach = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    return site_reach.reshape(-1).astype(np.int64), member[first]


@dataclass(frozen=True, eq=False)
class CourierModel:
    parcel_group: I64  # (n,)
    group_size: I64  # (G,)
    group_reach: I64  # (G,)
    group_class: I64  # (G,)
    class_price: I64  # (L, C) price per courier, or NOT_SERVED / TOO_HEAVY
    reach_points: B  # (R, K)
    group_reason: I8  # (G,) why no point could take the group's parcels; ASSIGNED where some could
    # the network: nodes are groups, then (reach, courier) hubs, then points, then the sink
    hub_reach: I64  # (H,)
    hub_courier: I64  # (H,)
    tail: I64
    head: I64
    capacity: I64
    cost: I64
    # arcs in this order: n_take group -> hub, n_route hub -> point, K point -> sink, G group -> sink (left)
    n_take: int
    n_route: int
    route_point: I64  # (n_route,) the point of each hub -> point arc
    n_nodes: int
    penalty: int  # per parcel left without a point

    @property
    def n_groups(self) -> int:
        return int(self.group_size.shape[0])

    @property
    def sink(self) -> int:
        return self.n_nodes - 1


def build(p: CourierProblem) -> CourierModel:
    n, n_c, n_k = p.n_parcels, p.n_couriers, p.n_points
    weight = p.parcel_weight_g.astype(np.int64)
    province = p.parcel_province.astype(np.int64)
    w_span = int(weight.max(initial=0)) + 1
    pairs, parcel_pair = compress(province * w_span + weight, p.n_provinces * w_span)
    pair_price = prices(p, pairs // w_span, pairs % w_span)
    class_price, pair_class = np.unique(pair_price, axis=0, return_inverse=True)
    class_price = class_price.astype(np.int64).reshape(-1, n_c)
    pair_class = pair_class.reshape(-1).astype(np.int64)
    n_l = class_price.shape[0]

    site_reach, reach_points = reaches(p)
    n_r = reach_points.shape[0]
    parcel_key = site_reach[p.parcel_site] * n_l + pair_class[parcel_pair]
    del parcel_pair
    keys, parcel_group = compress(parcel_key, n_r * n_l)
    del parcel_key
    group_size = np.bincount(parcel_group, minlength=keys.shape[0]).astype(np.int64)
    group_reach, group_class = keys // max(n_l, 1), keys % max(n_l, 1)
    n_g = keys.shape[0]

    # hubs: the couriers each reach has points of
    reach_courier = np.zeros((n_r, n_c), np.bool_)
    r_idx, k_idx = np.nonzero(reach_points)
    reach_courier[r_idx, p.point_courier[k_idx]] = True
    hub_reach, hub_courier = (x.astype(np.int64) for x in np.nonzero(reach_courier))
    hub_of = np.full((n_r, n_c), -1, np.int64)
    hub_of[hub_reach, hub_courier] = np.arange(hub_reach.shape[0])
    n_h = hub_reach.shape[0]

    g_price = class_price[group_class]  # (G, C)
    g_has = reach_courier[group_reach]  # (G, C)
    take = g_has & (g_price >= 0)
    reason = np.full(n_g, Unassigned.ASSIGNED, np.int8)
    reason[~take.any(axis=1)] = Unassigned.TOO_HEAVY
    reason[~(g_has & (g_price != NOT_SERVED)).any(axis=1)] = Unassigned.PROVINCE_NOT_SERVED
    reason[~reach_points[group_reach].any(axis=1)] = Unassigned.NO_POINT_AT_SITE

    hub0, point0 = n_g, n_g + n_h
    sink = point0 + n_k
    t_g, t_c = (x.astype(np.int64) for x in np.nonzero(take))
    route_hub = hub_of[r_idx, p.point_courier[k_idx]]
    order = np.lexsort((k_idx, route_hub))
    route_hub, route_point = route_hub[order], k_idx[order].astype(np.int64)

    max_price = int(class_price.max(initial=0))
    # a simple path enters each hub at most once, and only arcs into hubs cost anything
    penalty = (n_h + 1) * max(max_price, 1) + 1
    g_idx = np.arange(n_g, dtype=np.int64)
    k_all = np.arange(n_k, dtype=np.int64)
    tail = np.concatenate((t_g, hub0 + route_hub, point0 + k_all, g_idx))
    head = np.concatenate(
        (hub0 + hub_of[group_reach[t_g], t_c], point0 + route_point, np.full(n_k + n_g, sink))
    )
    capacity = np.concatenate(
        (group_size[t_g], np.full(route_hub.shape[0], n), np.minimum(p.point_quota, n), group_size)
    ).astype(np.int64)
    cost = np.concatenate(
        (g_price[t_g, t_c], np.zeros(route_hub.shape[0] + n_k, np.int64), np.full(n_g, penalty))
    ).astype(np.int64)
    return CourierModel(
        parcel_group=parcel_group,
        group_size=group_size,
        group_reach=group_reach,
        group_class=group_class,
        class_price=class_price,
        reach_points=reach_points,
        group_reason=reason,
        hub_reach=hub_reach,
        hub_courier=hub_courier,
        tail=tail,
        head=head,
        capacity=capacity,
        cost=cost,
        n_take=int(t_g.shape[0]),
        n_route=int(route_hub.shape[0]),
        route_point=route_point,
        n_nodes=sink + 1,
        penalty=penalty,
    )
