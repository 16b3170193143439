"""Couriers for packed parcels: a courier point per parcel under price tables, daily quotas and service
restrictions (:mod:`solvers.couriers`), and a waybill request per assigned parcel.

:func:`assign_couriers` runs in the caller's transaction. It takes the packed parcels of sites that have no
courier point yet, reads the price tables, every point's quota less what it has already taken for the day,
and which points collect what (a point collects at the sites within its ``radius_km``, and only parcels
packed at least :data:`PICKUP_MARGIN_MINUTES` before its cut-off); solves; and writes, in bulk: the parcel's
courier, point, price and ship day; a pending waybill with a stable request id; one outbox job
``request_waybills(lo, hi)`` per range of new waybill ids. A parcel no point can take stays packed and
unassigned, with an open ``no_courier`` exception naming the reason (one per parcel, not repeated while it is
open) unless it was only packed too late for today's cut-offs; the next run tries it again, when quotas have
room or the day has turned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from fulfil.dbcolumns import read_columns, update_columns, write_columns
from fulfil.domain.models import (
    Courier,
    CourierPoint,
    ExceptionItem,
    Order,
    Parcel,
    SharedWarehouse,
    Waybill,
    Workshop,
)
from fulfil.domain.states import ParcelState
from fulfil.jobs import outbox
from fulfil.planning.load import BELT_UTC_OFFSET
from fulfil.prices import price_tables
from solvers.couriers import UNASSIGNED_TEXT, Unassigned, build_problem, solve

I64 = npt.NDArray[np.int64]
WAYBILL_TASK = "request_waybills"
PICKUP_MARGIN_MINUTES = 30  # a point must still have this long before its cut-off to collect a parcel
AFTER_CUTOFF_TEXT = "packed after the cut-off of every courier point at the site: waits for the next day"
WAYBILLS_PER_JOB = 200
EARTH_KM = 6371.0088


@dataclass
class AssignReport:
    day: dt.date
    parcels: int = 0
    assigned: int = 0
    shipping_fen: int = 0
    unassigned: dict[str, int] = field(default_factory=dict)  # reason -> parcels
    waybill_jobs: int = 0


def request_id(parcel_id: int, point_id: int) -> str:
    """Stable for a parcel at its courier point: a retried waybill request is the same request."""
    return f"wb-{parcel_id}-{point_id}"


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def haversine_km(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> npt.NDArray[np.float64]:
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    out: npt.NDArray[np.float64] = 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


def _waiting_parcels(session: Session, day: dt.date) -> list[npt.NDArray[Any]]:
    return read_columns(
        session,
        select(
            Parcel.id,
            Parcel.order_id,
            Parcel.workshop_id,
            Parcel.warehouse_id,
            Parcel.weight_g,
            Order.province,
            Parcel.packed_at,
        )
        .join(Order, Order.id == Parcel.order_id)
        .where(
            Parcel.status == ParcelState.PACKED,
            Parcel.courier_point_id.is_(None),
            Parcel.ready_on <= day,
        )
        .order_by(Parcel.id),
        [np.int64, np.int64, np.int64, np.int64, np.int64, object, "datetime64[us]"],
        nulls="mask",
    )


def assign_couriers(session: Session, day: dt.date, *, now: dt.datetime) -> AssignReport:
    """Give the day's packed, unassigned parcels their courier points; see the module's docstring."""
    report = AssignReport(day)
    pid, order_id, workshop, warehouse, weight, province, packed_at = _waiting_parcels(session, day)
    n = int(pid.shape[0])
    report.parcels = n
    if n == 0:
        return report
    pid = np.asarray(pid, dtype=np.int64)
    at_workshop = ~np.ma.getmaskarray(workshop)
    site_key = np.where(at_workshop, np.ma.getdata(workshop), -np.ma.getdata(warehouse)).astype(np.int64)
    # The solver's "site" is a site at a packing time: a point collects only what is packed before its
    # cut-off, less the margin a pickup needs. A parcel packed on an earlier day is ready all day.
    midnight = np.datetime64(dt.datetime.combine(day, dt.time()) - BELT_UTC_OFFSET, "us")
    packed = np.where(np.ma.getmaskarray(packed_at), midnight, np.ma.getdata(packed_at))
    ready = np.maximum((packed - midnight) // np.timedelta64(1, "m"), 0).astype(np.int64)
    keys, parcel_site = np.unique(np.stack([site_key, ready], axis=1), axis=0, return_inverse=True)
    parcel_site = parcel_site.reshape(-1)
    sites = keys[:, 0].copy()
    lon, lat = _site_places(session, sites)

    c_id, c_max = read_columns(
        session,
        select(Courier.id, Courier.max_weight_g).order_by(Courier.id),
        [np.int64, np.int64],
    )
    k_id, k_courier, k_lon, k_lat, k_radius, k_quota = read_columns(
        session,
        select(
            CourierPoint.id,
            CourierPoint.courier_id,
            CourierPoint.lon,
            CourierPoint.lat,
            CourierPoint.radius_km,
            CourierPoint.daily_quota,
        ).order_by(CourierPoint.id),
        [np.int64, np.int64, np.float64, np.float64, np.float64, np.int64],
    )
    cutoff = cutoff_minutes(session)
    used = {
        k: v
        for k, v in session.execute(
            select(Parcel.courier_point_id, func.count())
            .where(Parcel.ship_on == day, Parcel.courier_point_id.is_not(None))
            .group_by(Parcel.courier_point_id)
        )
    }
    quota = np.maximum(k_quota - np.array([used.get(int(k), 0) for k in k_id], dtype=np.int64), 0)

    codes = np.asarray(province, dtype=object).astype(str).tolist()
    tables = price_tables(session, codes, c_id)

    distance = haversine_km(lon[:, None], lat[:, None], k_lon[None, :], k_lat[None, :])
    in_area = distance <= k_radius[None, :]
    reach = in_area & (keys[:, 1:2] + PICKUP_MARGIN_MINUTES <= cutoff[None, :])
    late: npt.NDArray[np.bool_] = np.asarray(in_area.any(axis=1) & ~reach.any(axis=1))  # all past cut-off
    indptr = np.concatenate([[0], np.cumsum(reach.sum(axis=1))]).astype(np.int64)
    points = np.nonzero(reach)[1].astype(np.int32)

    problem = build_problem(
        parcel_site=parcel_site.astype(np.int32),
        parcel_province=tables.province_index(codes).astype(np.int32),
        parcel_weight_g=np.asarray(weight, dtype=np.int32),
        first_weight_g=tables.first_weight_g,
        first_fen=tables.first_fen,
        additional_fen_per_kg=tables.additional_fen_per_kg,
        max_weight_g=np.asarray(c_max, dtype=np.int64),
        point_courier=np.searchsorted(c_id, k_courier).astype(np.int32),
        point_quota=quota,
        site_points_indptr=indptr,
        site_points=points,
    )
    result = solve(problem)

    done = result.parcel_point >= 0
    report.assigned = int(done.sum())
    report.shipping_fen = int(result.parcel_fen[done].sum())
    if report.assigned:
        point = k_id[result.parcel_point[done]]
        courier = k_courier[result.parcel_point[done]]
        ids = pid[done]
        update_columns(
            session,
            _table(Parcel),
            ids,
            {
                "courier_id": courier,
                "courier_point_id": point,
                "shipping_fen": result.parcel_fen[done].astype(np.int64),
                "ship_on": np.full(ids.shape[0], np.datetime64(day, "D")),
            },
        )
        report.waybill_jobs = _request_waybills(session, ids, courier, point, now)
    _flag_unassigned(session, pid, np.asarray(order_id), result.parcel_reason, late[parcel_site], now, report)
    return report


def cutoff_minutes(session: Session) -> I64:
    """Each courier point's cut-off in local minutes after midnight, in id order."""
    times = session.scalars(select(CourierPoint.cutoff).order_by(CourierPoint.id))
    return np.array([t.hour * 60 + t.minute for t in times], np.int64)


def _site_places(session: Session, sites: I64) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Longitude and latitude of each site key (a workshop's id, or minus a warehouse's; repeats allowed)."""
    lon = np.zeros(sites.shape[0])
    lat = np.zeros(sites.shape[0])
    for model, sign in ((Workshop, 1), (SharedWarehouse, -1)):
        wanted = (sites * sign)[(sites * sign) > 0]
        if wanted.shape[0] == 0:
            continue
        ids, lo, la = read_columns(
            session,
            select(model.id, model.lon, model.lat).where(model.id.in_(wanted.tolist())).order_by(model.id),
            [np.int64, np.float64, np.float64],
        )
        order = np.argsort(ids)
        where = np.flatnonzero(sites * sign > 0)
        at = order[np.searchsorted(ids[order], sites[where] * sign)]
        lon[where], lat[where] = lo[at], la[at]
    return lon, lat


def _request_waybills(session: Session, parcel_ids: I64, courier: I64, point: I64, now: dt.datetime) -> int:
    n = parcel_ids.shape[0]
    write_columns(
        session,
        _table(Waybill),
        {
            "parcel_id": parcel_ids,
            "courier_id": courier,
            "request_id": [
                request_id(int(p), int(k)) for p, k in zip(parcel_ids.tolist(), point.tolist(), strict=True)
            ],
            "created_at": np.full(n, np.datetime64(now, "us")),
            "status": ["pending"] * n,
            "attempts": np.zeros(n, np.int64),
            "next_attempt_at": np.full(n, np.datetime64(now, "us")),
        },
    )
    (new_ids,) = read_columns(
        session,
        select(Waybill.id).where(Waybill.parcel_id.in_(parcel_ids.tolist())).order_by(Waybill.id)
        if n <= 10_000
        else select(Waybill.id)
        .where(Waybill.status == "pending", Waybill.created_at == now, Waybill.attempts == 0)
        .order_by(Waybill.id),
        [np.int64],
    )
    jobs = 0
    for lo in range(0, new_ids.shape[0], WAYBILLS_PER_JOB):
        chunk = new_ids[lo : lo + WAYBILLS_PER_JOB]
        outbox.enqueue(session, WAYBILL_TASK, int(chunk[0]), int(chunk[-1]))
        jobs += 1
    return jobs


def _flag_unassigned(
    session: Session,
    parcel_ids: I64,
    order_ids: npt.NDArray[Any],
    reasons: npt.NDArray[np.int8],
    after_cutoff: npt.NDArray[np.bool_],
    now: dt.datetime,
    report: AssignReport,
) -> None:
    left = np.flatnonzero(reasons != Unassigned.ASSIGNED)
    if left.shape[0] == 0:
        return
    subjects = [f"parcel {int(parcel_ids[i])}" for i in left.tolist()]
    already = set(
        session.scalars(
            select(ExceptionItem.subject).where(
                ExceptionItem.kind == "no_courier",
                ExceptionItem.status == "open",
                ExceptionItem.subject.in_(subjects),
            )
        )
    )
    rows = []
    for i, subject in zip(left.tolist(), subjects, strict=True):
        why = Unassigned(int(reasons[i]))
        text = UNASSIGNED_TEXT[why]
        if why is Unassigned.NO_POINT_AT_SITE and after_cutoff[i]:
            text = AFTER_CUTOFF_TEXT
        report.unassigned[text] = report.unassigned.get(text, 0) + 1
        if subject in already or text == AFTER_CUTOFF_TEXT:
            continue  # already flagged, or simply tomorrow's: the next run takes it
        rows.append(
            {
                "kind": "no_courier",
                "subject": subject,
                "reason": text,
                "payload": {
                    "parcel_id": int(parcel_ids[i]),
                    "order_id": int(order_ids[i]),
                    "code": why.name.lower(),
                    "day": report.day.isoformat(),
                },
                "status": "open",
                "created_at": now,
            }
        )
    if rows:
        session.execute(insert(ExceptionItem), rows)


__all__ = ["AssignReport", "assign_couriers", "cutoff_minutes", "haversine_km", "request_id"]
