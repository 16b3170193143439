"""Pickups (揽收): windows before each courier point's cut-off, sized to the parcels ready in them and the
point's vans (:mod:`solvers.pickups`), booked through the courier adapters.

:func:`schedule_pickups` (the caller's transaction) takes the day's parcels that have a courier point and a
waybill and no pickup yet, groups them by site and point, and writes one ``Pickup`` per window with its
parcels and an outbox job ``book_pickup(pickup_id)``. A parcel packed after its point's cut-off moves to the
next day's pickups (and quota).

``book_pickup`` books through the courier's adapter, with a stable request id (a retry is the same booking);
a courier that takes no bookings by API (those reached through Cainiao) collects on its standing round, and
the pickup says ``standing``. Retries and failures as for waybills: backoff, then ``failed`` with a
``pickup_failed`` exception.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, exists, insert, select, update
from sqlalchemy.orm import Session

from fulfil import db
from fulfil import settings as _settings
from fulfil.dbcolumns import read_columns, update_columns, write_columns
from fulfil.dispatch import accounts, sites
from fulfil.dispatch.assign import cutoff_minutes
from fulfil.domain.models import (
    Courier,
    CourierPoint,
    Parcel,
    Pickup,
    PickupParcel,
    SiteKind,
    Waybill,
)
from fulfil.domain.states import ParcelState
from fulfil.jobs import outbox, retries
from fulfil.jobs.retries import LEASE, ORPHAN_AFTER
from fulfil.pii import Sealer
from fulfil.planning.load import BELT_UTC_OFFSET
from integrations.base import ApiError
from integrations.couriers.base import PickupNotOffered, PickupRequest
from solvers import pickups as pickup_windows

log = logging.getLogger(__name__)

TASK = "book_pickup"
REQUESTED, BOOKED, STANDING, FAILED = "requested", "booked", "standing", "failed"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class PickupReport:
    day: dt.date
    parcels: int = 0
    pickups: int = 0
    vans: int = 0
    rolled: int = 0  # packed after the cut-off: next day's pickups


def _local_midnight_utc(day: dt.date) -> np.datetime64:
    return np.datetime64(dt.datetime.combine(day, dt.time()) - BELT_UTC_OFFSET, "us")


def schedule_pickups(session: Session, day: dt.date, *, now: dt.datetime) -> PickupReport:
    """Windows and bookings for the day's parcels that are ready to collect; see the module's docstring."""
    report = PickupReport(day)
    no_pickup = ~exists().where(PickupParcel.parcel_id == Parcel.id)
    pid, workshop, warehouse, point, packed_at, weight = read_columns(
        session,
        select(
            Parcel.id,
            Parcel.workshop_id,
            Parcel.warehouse_id,
            Parcel.courier_point_id,
            Parcel.packed_at,
            Parcel.weight_g,
        )
        .join(Waybill, Waybill.parcel_id == Parcel.id)
        .where(
            Parcel.ship_on == day,
            Parcel.status == ParcelState.PACKED,
            Waybill.status == "issued",
            no_pickup,
        )
        .order_by(Parcel.id),
        [np.int64, np.int64, np.int64, np.int64, "datetime64[us]", np.int64],
        nulls="mask",
    )
    n = int(pid.shape[0])
    report.parcels = n
    if n == 0:
        return report
    pid = np.asarray(pid, np.int64)
    point = np.asarray(point, np.int64)
    at_workshop = ~np.ma.getmaskarray(workshop)
    site = np.where(at_workshop, np.ma.getdata(workshop), -np.ma.getdata(warehouse)).astype(np.int64)
    keys = np.stack([site, point], axis=1)
    groups, parcel_group = np.unique(keys, axis=0, return_inverse=True)
    parcel_group = parcel_group.reshape(-1)
    midnight = _local_midnight_utc(day)
    packed = np.ma.getdata(packed_at)
    packed = np.where(np.ma.getmaskarray(packed_at), midnight, packed)
    ready = np.maximum((packed - midnight) // np.timedelta64(1, "m"), 0).astype(np.int32)

    k_id, k_cutoff, k_van = _points(session)
    at = np.searchsorted(k_id, groups[:, 1])
    cutoff = k_cutoff[at].astype(np.int32)
    plan = pickup_windows.solve(
        pickup_windows.build_problem(
            parcel_group=parcel_group.astype(np.int32),
            parcel_ready_minute=ready,
            group_cutoff_minute=cutoff,
            group_van_capacity=k_van[at].astype(np.int32),
        )
    )

    rolled = plan.parcel_window < 0
    report.rolled = int(rolled.sum())
    if report.rolled:
        update_columns(
            session,
            cast(Table, Parcel.__table__),
            pid[rolled],
            {"ship_on": np.full(report.rolled, np.datetime64(day + dt.timedelta(days=1), "D"))},
        )
    w = plan.window_group.shape[0]
    report.pickups, report.vans = w, int(plan.window_vans.sum())
    if w == 0:
        return report
    g = plan.window_group
    w_site, w_point = groups[g, 0], groups[g, 1]
    start = midnight + plan.window_start.astype("timedelta64[m]")
    end = midnight + plan.window_end.astype("timedelta64[m]")
    taken = plan.parcel_window >= 0
    weight_by_window = np.bincount(plan.parcel_window[taken], weights=np.asarray(weight)[taken], minlength=w)
    pickup_ids, fresh = _insert_pickups(
        session,
        day,
        now,
        w_site,
        w_point,
        start,
        end,
        plan.window_parcels.astype(np.int64),
        plan.window_vans.astype(np.int64),
        weight_by_window.astype(np.int64),
        k_van[at][g],
    )
    write_columns(
        session,
        cast(Table, PickupParcel.__table__),
        {"pickup_id": pickup_ids[plan.parcel_window[taken]], "parcel_id": pid[taken]},
    )
    for p in pickup_ids[fresh].tolist():
        outbox.enqueue(session, TASK, int(p))
    return report


def _points(session: Session) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    k_id, k_van = read_columns(
        session,
        select(CourierPoint.id, CourierPoint.van_capacity).order_by(CourierPoint.id),
        [np.int64, np.int64],
    )
    return k_id, cutoff_minutes(session), k_van


def _insert_pickups(
    session: Session,
    day: dt.date,
    now: dt.datetime,
    site: npt.NDArray[np.int64],
    point: npt.NDArray[np.int64],
    start: npt.NDArray[Any],
    end: npt.NDArray[Any],
    parcels: npt.NDArray[np.int64],
    vans: npt.NDArray[np.int64],
    weight: npt.NDArray[np.int64],
    van_capacity: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The pickup id of each window, and which windows are new."""
    rows: list[dict[str, Any]] = []
    for i in range(site.shape[0]):
        s, k = int(site[i]), int(point[i])
        begin = start[i].astype("datetime64[us]").item()
        rows.append(
            {
                "courier_point_id": k,
                "site_kind": SiteKind.WORKSHOP if s > 0 else SiteKind.WAREHOUSE,
                "workshop_id": s if s > 0 else None,
                "warehouse_id": -s if s < 0 else None,
                "window_start": begin,
                "window_end": end[i].astype("datetime64[us]").item(),
                "parcel_count": int(parcels[i]),
                "vans": int(vans[i]),
                "total_weight_g": int(weight[i]),
                "day": day,
                "status": REQUESTED,
                # stable for the site, point and window: re-planning the same window books the same pickup
                "request_id": f"pk-{k}-{'w' if s > 0 else 'h'}{abs(s)}-{begin:%Y%m%d%H%M}",
                "attempts": 0,
                "next_attempt_at": now,
            }
        )
    # A window an earlier run of the day wrote for the same site and point takes the new parcels too (its van
    # count grows with them); only new windows are booked.
    existing = {
        request: (pickup_id, count)
        for request, pickup_id, count in session.execute(
            select(Pickup.request_id, Pickup.id, Pickup.parcel_count).where(
                Pickup.request_id.in_([r["request_id"] for r in rows])
            )
        )
    }
    out = np.zeros(len(rows), np.int64)
    fresh = [i for i, r in enumerate(rows) if r["request_id"] not in existing]
    if fresh:
        ids = session.scalars(
            insert(Pickup).returning(Pickup.id, sort_by_parameter_order=True), [rows[i] for i in fresh]
        )
        out[fresh] = list(ids)
    for i, r in enumerate(rows):
        if r["request_id"] not in existing:
            continue
        pickup_id, count = existing[r["request_id"]]
        out[i] = pickup_id
        total = count + r["parcel_count"]
        session.execute(
            update(Pickup)
            .where(Pickup.id == pickup_id)
            .values(
                parcel_count=total,
                total_weight_g=Pickup.total_weight_g + r["total_weight_g"],
                vans=-(-total // int(van_capacity[i])),
            )
            .execution_options(synchronize_session=False)
        )
    return out, np.array(fresh, np.int64)


# --- the job --------------------------------------------------------------------------------------------


def book_pickup(pickup_id: int) -> str:
    """The ``book_pickup`` task. Returns the pickup's status after the run (``skipped`` when another run holds
    it or it is not due)."""
    eng = db.engine()
    now = _utcnow()
    sealer = Sealer(_settings.get().pii_key)
    with db.session_scope(eng) as session:
        claimed = session.execute(
            update(Pickup)
            .where(Pickup.id == pickup_id, Pickup.status == REQUESTED, Pickup.next_attempt_at <= now)
            .values(next_attempt_at=now + LEASE)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            status = session.scalar(select(Pickup.status).where(Pickup.id == pickup_id))
            if status is None:
                raise LookupError(f"no pickup {pickup_id}")
            return str(status) if status != REQUESTED else "skipped"
        p = session.execute(
            select(Pickup, Courier.code)
            .join(CourierPoint, CourierPoint.id == Pickup.courier_point_id)
            .join(Courier, Courier.id == CourierPoint.courier_id)
            .where(Pickup.id == pickup_id)
        ).one()
        pickup, code = p[0], p[1]
        key = (pickup.workshop_id, pickup.warehouse_id)
        sender = sites.addresses(session, [key])[key]
        numbers = list(
            session.scalars(
                select(Waybill.tracking_number)
                .join(PickupParcel, PickupParcel.parcel_id == Waybill.parcel_id)
                .where(PickupParcel.pickup_id == pickup_id)
                .order_by(Waybill.parcel_id)
            )
        )
        request = PickupRequest(
            request_id=pickup.request_id or f"pk-{pickup_id}",
            site_ref=sender.detail,
            sender=sender,
            window_start=pickup.window_start,
            window_end=pickup.window_end,
            parcel_count=pickup.parcel_count,
            total_weight_g=pickup.total_weight_g,
            tracking_numbers=[n for n in numbers if n],
        )
        attempts = pickup.attempts + 1
        error: str | None = None
        retryable = False
        values: dict[str, Any] = {"attempts": attempts}
        try:
            api = accounts.api_for(session, sealer, code)
        except (LookupError, ValueError) as exc:
            api, error = None, str(exc)
    if api is not None:
        try:
            booking = api.book_pickup(request)
            values.update(
                status=BOOKED,
                booking_ref=booking.booking_ref[:64],
                window_start=booking.window_start,
                window_end=booking.window_end,
            )
        except PickupNotOffered:
            values.update(status=STANDING)
        except ApiError as exc:
            error, retryable = f"{code}: {exc}", exc.retryable
        except Exception as exc:  # an adapter's bug: keep trying a while, then let operations see it
            log.exception("pickup %d: the %s adapter failed", pickup_id, code)
            error, retryable = f"{code}: {type(exc).__name__}: {exc}", True
    outcome, result = retries.after_attempt(attempts, error, retryable, _utcnow())
    values.update(result)
    if outcome == "failed":
        values["status"] = FAILED
    with db.session_scope(eng) as session:
        session.execute(
            update(Pickup)
            .where(Pickup.id == pickup_id, Pickup.status == REQUESTED)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        if outcome == "failed":
            retries.open_exception(
                session,
                "pickup_failed",
                f"pickup {pickup_id}",
                values["last_error"],
                {"pickup_id": pickup_id, "courier": code, "attempts": attempts},
                _utcnow(),
            )
    return str(values.get("status", REQUESTED))


def requeue_due(session: Session, *, now: dt.datetime | None = None, limit: int = 20_000) -> int:
    """Enqueue the requested pickups whose next attempt is due. Returns the jobs enqueued."""
    now = now or _utcnow()
    due = list(
        session.scalars(
            select(Pickup.id)
            .where(
                Pickup.status == REQUESTED,
                Pickup.next_attempt_at <= now,
                (Pickup.attempts > 0) | (Pickup.next_attempt_at <= now - ORPHAN_AFTER),
            )
            .order_by(Pickup.id)
            .limit(limit)
        )
    )
    for p in due:
        outbox.enqueue(session, TASK, p)
    return len(due)
