"""The courier assignment problem: ready parcels, courier price tables and courier points, as columnar arrays.

Everything is indexed densely from 0 (the caller keeps the maps back to its own ids): ``S`` sites (workshops
and shared warehouses), ``P`` destination provinces, ``C`` couriers and ``K`` courier points (网点). A
courier point belongs to one courier, collects at some sites and takes at most its remaining daily quota of
parcels.

A parcel of ``w`` grams to province ``p`` costs, with courier ``c``::

    first_fen[c, p] + ceil(max(0, w - first_weight_g[c, p]) / 1000) * additional_fen_per_kg[c, p]

and courier ``c`` may take it only where ``first_fen[c, p] >= 0`` (the courier serves the province) and
``max_weight_g[c]`` is 0 (no limit) or at least ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from solvers import checks

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

# A price above ¥1,000,000 per parcel or per kilogram is a unit mistake (yuan for fen, or worse); the bound
# also keeps the flow's costs, penalty included, far from int64 at belt scale.
MAX_FEN = 100_000_000


@dataclass(frozen=True, eq=False)
class CourierProblem:
    """Built (and checked) by :func:`build_problem`; the solver trusts it."""

    parcel_site: I32  # (n,) 0..S-1
    parcel_province: I32  # (n,) 0..P-1, destination province
    parcel_weight_g: I32  # (n,) > 0
    first_weight_g: I64  # (C, P) grams the first price covers
    first_fen: I64  # (C, P) -1 where the courier does not serve the province
    additional_fen_per_kg: I64  # (C, P) per started kilogram over the first weight
    max_weight_g: I64  # (C,) 0 = no limit
    point_courier: I32  # (K,) the courier of each courier point
    point_quota: I64  # (K,) parcels the point can still take today
    site_points_indptr: I64  # (S + 1,) CSR by site: the points collecting at site s are
    site_points: I32  # site_points[site_points_indptr[s]:site_points_indptr[s + 1]]

    @property
    def n_parcels(self) -> int:
        return int(self.parcel_site.shape[0])

    @property
    def n_sites(self) -> int:
        return int(self.site_points_indptr.shape[0]) - 1

    @property
    def n_couriers(self) -> int:
        return int(self.first_fen.shape[0])

    @property
    def n_provinces(self) -> int:
        return int(self.first_fen.shape[1])

    @property
    def n_points(self) -> int:
        return int(self.point_courier.shape[0])


def _check_table(name: str, table: I64, ok: npt.NDArray[np.bool_], rule: str) -> None:
    bad = np.argwhere(~ok)
    if bad.size:
        c, p = (int(x) for x in bad[0])
        raise ValueError(f"courier {c}, province {p}: {name} {int(table[c, p])} ({rule})")


def build_problem(
    *,
    parcel_site: Any,
    parcel_province: Any,
    parcel_weight_g: Any,
    first_weight_g: Any,
    first_fen: Any,
    additional_fen_per_kg: Any,
    max_weight_g: Any,
    point_courier: Any,
    point_quota: Any,
    site_points_indptr: Any,
    site_points: Any,
) -> CourierProblem:
    """Check every array and return the problem; a :class:`ValueError` names the first bad record
    (``parcel i``, ``courier c, province p``, ``courier c``, ``point k`` or ``site s``)."""
    site = checks.ints("parcel_site", parcel_site, 1)
    province = checks.ints("parcel_province", parcel_province, 1)
    weight = checks.ints("parcel_weight_g", parcel_weight_g, 1)
    n = site.shape[0]
    for name, a in (("parcel_province", province), ("parcel_weight_g", weight)):
        if a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0]} parcels, parcel_site {n}")
    fw = checks.ints("first_weight_g", first_weight_g, 2)
    first = checks.ints("first_fen", first_fen, 2)
    add = checks.ints("additional_fen_per_kg", additional_fen_per_kg, 2)
    n_c, n_p = first.shape
    if n_c == 0 or n_p == 0:
        raise ValueError(f"first_fen has shape {first.shape}: at least one courier and one province")
    for name, a in (("first_weight_g", fw), ("additional_fen_per_kg", add)):
        if a.shape != first.shape:
            raise ValueError(f"{name} has shape {a.shape}, first_fen {first.shape} (couriers x provinces)")
    max_w = checks.ints("max_weight_g", max_weight_g, 1)
    if max_w.shape[0] != n_c:
        raise ValueError(f"max_weight_g has {max_w.shape[0]} couriers, first_fen {n_c}")
    courier = checks.ints("point_courier", point_courier, 1)
    quota = checks.ints("point_quota", point_quota, 1)
    n_k = courier.shape[0]
    if quota.shape[0] != n_k:
        raise ValueError(f"point_quota has {quota.shape[0]} points, point_courier {n_k}")
    indptr = checks.ints("site_points_indptr", site_points_indptr, 1)
    points = checks.ints("site_points", site_points, 1)
    if indptr.shape[0] < 1 or indptr[0] != 0:
        raise ValueError("site_points_indptr must start at 0 (one entry per site, plus one)")
    n_s = indptr.shape[0] - 1

    i = checks.first((site < 0) | (site >= n_s))
    if i is not None:
        raise ValueError(f"parcel {i}: site {int(site[i])} is not one of the {n_s} sites")
    i = checks.first((province < 0) | (province >= n_p))
    if i is not None:
        raise ValueError(f"parcel {i}: province {int(province[i])} is not one of the {n_p} provinces")
    i = checks.first((weight <= 0) | (weight > np.iinfo(np.int32).max))
    if i is not None:
        raise ValueError(f"parcel {i}: weight {int(weight[i])} g (must be positive and fit int32)")

    _check_table("first weight", fw, (fw >= 0) & (fw <= np.iinfo(np.int32).max), "grams, from 0")
    served = first >= 0
    _check_table(
        "first price", first, (first >= -1) & (first <= MAX_FEN), f"fen 0..{MAX_FEN}, or -1: not served"
    )
    _check_table(
        "additional price per kg",
        add,
        ~served | ((add >= 0) & (add <= MAX_FEN)),
        f"fen 0..{MAX_FEN} where the courier serves the province",
    )
    c = checks.first(max_w < 0)
    if c is not None:
        raise ValueError(f"courier {c}: max weight {int(max_w[c])} g (0 means no limit)")

    k = checks.first((courier < 0) | (courier >= n_c))
    if k is not None:
        raise ValueError(f"point {k}: courier {int(courier[k])} is not one of the {n_c} couriers")
    k = checks.first(quota < 0)
    if k is not None:
        raise ValueError(f"point {k}: quota {int(quota[k])} is negative")

    s = checks.first(np.diff(indptr) < 0)
    if s is not None:
        raise ValueError(f"site {s}: site_points_indptr decreases ({int(indptr[s])} to {int(indptr[s + 1])})")
    if indptr[-1] != points.shape[0]:
        raise ValueError(f"site_points_indptr ends at {int(indptr[-1])}, site_points has {points.shape[0]}")
    j = checks.first((points < 0) | (points >= n_k))
    if j is not None:
        s = int(np.searchsorted(indptr, j, side="right")) - 1
        raise ValueError(f"site {s}: point {int(points[j])} is not one of the {n_k} points")

    return CourierProblem(
        parcel_site=site.astype(np.int32),
        parcel_province=province.astype(np.int32),
        parcel_weight_g=weight.astype(np.int32),
        first_weight_g=fw,
        first_fen=first,
        additional_fen_per_kg=np.where(served, add, 0),
        max_weight_g=max_w,
        point_courier=courier.astype(np.int32),
        point_quota=quota,
        site_points_indptr=indptr,
        site_points=points.astype(np.int32),
    )
