"""Courier tracking pushes: stored once, answered, then applied to parcels (and, on pickup, written back).

:func:`receive` verifies a push over its raw bytes with the accounts of the courier's API, stores each scan
keyed by (courier, event id) — a redelivered scan is stored once — with an outbox job
``apply_tracking(lo, hi)``, commits, and only then gives the courier its success answer. A push that is
signed but cannot be read is kept whole (as one scan in state ``exception``) with an exception item naming
what is wrong; a push whose signature does not verify is refused and nothing is stored.

``apply_tracking`` matches scans to parcels by tracking number and moves them on: picked up (the parcel and,
when all its parcels are, the order ``PICK_UP``, and a ship confirmation per parcel that writes the tracking
number back to the platform: :func:`fulfil.intake.shipback.parcels_picked_up`), in transit, delivered. A scan
that skips a step implies it (delivered while still packed means picked up first). A scan for an unknown
tracking number, or for a parcel not packed, stays with its reason in the exceptions queue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.dispatch import accounts
from fulfil.domain.models import (
    Courier,
    CourierAccount,
    Order,
    Parcel,
    Pickup,
    PickupParcel,
    TrackingEvent,
    Waybill,
)
from fulfil.domain.states import ORDER, PARCEL, OrderEvent, OrderState, ParcelEvent, ParcelState
from fulfil.intake import shipback
from fulfil.jobs import outbox, retries
from fulfil.pii import Sealer
from integrations.base import PayloadError, SignatureError
from integrations.couriers import registry
from integrations.couriers.base import TrackingStatus

log = logging.getLogger(__name__)

TASK = "apply_tracking"
RECEIVED, APPLIED, IGNORED, EXCEPTION = "received", "applied", "ignored", "exception"
PER_JOB = 500


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    media_type: str


class UnknownCourier(LookupError):
    pass


def receive(engine: Engine, sealer: Sealer, api: str, headers: Mapping[str, str], body: bytes) -> Answer:
    """Handle one push from ``api`` (a courier API code, as in the webhook's path)."""
    return receive_many(engine, sealer, api, [(headers, body)])[0]


def receive_many(
    engine: Engine, sealer: Sealer, api: str, pushes: Sequence[tuple[Mapping[str, str], bytes]]
) -> list[Answer]:
    """Handle several pushes of one courier API in one transaction (a webhook gets one at a time; a relay or
    the demo's couriers may hand over many). One answer per push, in order."""
    api = api.upper()
    if api not in registry.ADAPTERS:
        raise UnknownCourier(f"no courier API {api!r}; known: {', '.join(sorted(registry.ADAPTERS))}")
    receiver = registry.receiver_for(api)
    with db.session_scope(engine) as session:
        creds = [
            accounts.credential_of(sealer, account)
            for account in session.scalars(
                select(CourierAccount).where(CourierAccount.courier == api, CourierAccount.active)
            )
        ]
    now = _utcnow()
    answers: list[Answer | None] = []
    rows: list[dict[str, Any]] = []
    unreadable: list[tuple[int, str]] = []  # (index into rows, reason)
    for headers, body in pushes:
        try:
            receiver.verify(headers, body, creds)
        except SignatureError as exc:
            answers.append(Answer(401, f"signature refused: {exc}".encode(), "text/plain"))
            continue
        answers.append(None)
        try:
            events = receiver.parse(headers, body)
        except PayloadError as exc:
            unreadable.append((len(rows), str(exc)))
            rows.append(
                {
                    "courier": api,
                    "event_id": "unreadable-" + hashlib.sha256(body).hexdigest()[:32],
                    "tracking_number": "",
                    "status": TrackingStatus.EXCEPTION.value,
                    "occurred_at": now,
                    "received_at": now,
                    "description": "",
                    "raw": body,
                    "state": EXCEPTION,
                    "reason": str(exc)[:512],
                }
            )
            continue
        rows.extend(
            {
                "courier": api,
                "event_id": e.event_id[:128],
                "tracking_number": e.tracking_number[:64],
                "status": e.status.value,
                "occurred_at": e.occurred_at,
                "received_at": now,
                "description": e.description[:256],
                "raw": body,
                "state": RECEIVED,
                "reason": None,
            }
            for e in events
        )
    with db.session_scope(engine) as session:
        stored = _insert_new(session, rows)
        bad_ids = {stored[key] for key in (_key(rows[i]) for i, _ in unreadable) if key in stored}
        for i, reason in unreadable:
            event_id = stored.get(_key(rows[i]))
            if event_id is None:
                continue  # the same unreadable push again: kept once already
            retries.open_exception(
                session,
                "unreadable_tracking",
                f"tracking event {event_id}",
                reason,
                {"courier": api, "tracking_event_id": event_id},
                now,
            )
        fresh = sorted(set(stored.values()) - bad_ids)
        for lo in range(0, len(fresh), PER_JOB):
            chunk = fresh[lo : lo + PER_JOB]
            outbox.enqueue(session, TASK, chunk[0], chunk[-1])
    status, answer, media = receiver.success()
    return [a if a is not None else Answer(status, answer, media) for a in answers]


def _key(row: Mapping[str, Any]) -> tuple[str, str]:
    return (str(row["courier"]), str(row["event_id"]))


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert the scans not stored yet: (courier, event id) -> id of each row inserted now."""
    if not rows:
        return {}
    dialect = session.get_bind().dialect.name
    stored: dict[tuple[str, str], int] = {}
    for lo in range(0, len(rows), 1000):
        stmt: Any = (postgresql if dialect == "postgresql" else sqlite).insert(TrackingEvent)
        stmt = stmt.values(rows[lo : lo + 1000]).on_conflict_do_nothing(
            index_elements=["courier", "event_id"]
        )
        for i, courier, event_id in session.execute(
            stmt.returning(TrackingEvent.id, TrackingEvent.courier, TrackingEvent.event_id)
        ):
            stored[(courier, event_id)] = i
    return stored


# --- applying -----------------------------------------------------------------------------------------------

_ORDER = {TrackingStatus.PICKED_UP: 0, TrackingStatus.IN_TRANSIT: 1, TrackingStatus.DELIVERED: 2}


def apply_tracking(lo: int, hi: int) -> dict[str, int]:
    """The task: apply the received scans with ids in [lo, hi]; idempotent (an applied scan is left alone)."""
    counts = {APPLIED: 0, IGNORED: 0, EXCEPTION: 0}
    eng = db.engine()
    with db.session_scope(eng) as session:
        events = session.execute(
            select(
                TrackingEvent.id, TrackingEvent.tracking_number, TrackingEvent.status, TrackingEvent.courier
            )
            .where(TrackingEvent.id.between(lo, hi), TrackingEvent.state == RECEIVED)
            .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
            .with_for_update(skip_locked=True)
        ).all()
        if not events:
            return counts
        numbers = sorted({e.tracking_number for e in events})
        found: dict[str, tuple[int, str, str]] = {
            str(number): (int(parcel_id), str(code), str(status))
            for number, parcel_id, code, status in session.execute(
                select(Waybill.tracking_number, Waybill.parcel_id, Courier.code, Parcel.status)
                .join(Courier, Courier.id == Waybill.courier_id)
                .join(Parcel, Parcel.id == Waybill.parcel_id)
                .where(Waybill.tracking_number.in_(numbers))
            )
        }
        # the furthest step each parcel reached in this chunk, and the scans behind it
        furthest: dict[int, TrackingStatus] = {}
        outcome: dict[int, tuple[str, str | None, int | None]] = {}
        parcel_id: int | None
        now = _utcnow()
        for e in events:
            status = TrackingStatus(e.status)
            hit = found.get(e.tracking_number)
            if hit is None:
                outcome[e.id] = (EXCEPTION, f"no waybill with tracking number {e.tracking_number}", None)
                continue
            parcel_id, _code, parcel_status = hit
            if status is TrackingStatus.EXCEPTION:
                outcome[e.id] = (EXCEPTION, "the courier reports a problem with the parcel", parcel_id)
                continue
            if ParcelState(parcel_status) in (ParcelState.PLANNED, ParcelState.CANCELLED):
                outcome[e.id] = (
                    EXCEPTION,
                    f"scan {status.value} for parcel {parcel_id}, which is {parcel_status}",
                    parcel_id,
                )
                continue
            if _ORDER[status] >= _ORDER.get(furthest.get(parcel_id, status), 0):
                furthest[parcel_id] = status
            outcome[e.id] = (APPLIED, None, parcel_id)
        applied_any = _advance(session, furthest, found)
        for e in events:
            state, reason, parcel_id = outcome[e.id]
            if state == APPLIED and parcel_id is not None and not applied_any.get(parcel_id, False):
                state = IGNORED  # the parcel was already there: a redelivered or late scan
            counts[state] += 1
            session.execute(
                update(TrackingEvent)
                .where(TrackingEvent.id == e.id)
                .values(state=state, reason=reason, parcel_id=parcel_id)
                .execution_options(synchronize_session=False)
            )
            if state == EXCEPTION:
                retries.open_exception(
                    session,
                    "tracking_exception",
                    f"tracking event {e.id}",
                    reason or "",
                    {
                        "courier": e.courier,
                        "tracking_number": e.tracking_number,
                        "status": e.status,
                        "parcel_id": parcel_id,
                    },
                    now,
                )
    return counts


def _advance(
    session: Session, furthest: dict[int, TrackingStatus], found: Mapping[str, tuple[int, str, str]]
) -> dict[int, bool]:
    """Move each parcel to the furthest step scanned; which parcels changed."""
    status_of = {pid: ParcelState(status) for pid, _c, status in found.values()}
    code_of = {pid: code for pid, code, _s in found.values()}
    number_of = {pid: number for number, (pid, _c, _s) in found.items()}
    changed: dict[int, bool] = {}
    to_pick = [p for p, s in furthest.items() if status_of[p] is ParcelState.PACKED]
    if to_pick:
        shipback.parcels_picked_up(session, to_pick, {p: (code_of[p], number_of[p]) for p in to_pick})
        for p in to_pick:
            status_of[p] = ParcelState.PICKED_UP
            changed[p] = True
        _collect_pickups(session, to_pick)
    to_transit = [
        p
        for p, s in furthest.items()
        if s is TrackingStatus.IN_TRANSIT and status_of[p] is ParcelState.PICKED_UP
    ]
    if to_transit:
        PARCEL.fire_ids(session, Parcel, to_transit, ParcelEvent.TRANSIT)
        changed.update(dict.fromkeys(to_transit, True))
    to_deliver = [
        p
        for p, s in furthest.items()
        if s is TrackingStatus.DELIVERED and status_of[p] in (ParcelState.PICKED_UP, ParcelState.IN_TRANSIT)
    ]
    if to_deliver:
        PARCEL.fire_ids(session, Parcel, to_deliver, ParcelEvent.DELIVER)
        changed.update(dict.fromkeys(to_deliver, True))
        orders = sorted(set(session.scalars(select(Parcel.order_id).where(Parcel.id.in_(to_deliver)))))
        on_the_way = exists().where(
            Parcel.order_id == Order.id,
            Parcel.status.in_(
                [ParcelState.PLANNED, ParcelState.PACKED, ParcelState.PICKED_UP, ParcelState.IN_TRANSIT]
            ),
        )
        ORDER.fire_where(
            session,
            Order,
            Order.id.in_(orders) & (Order.status == OrderState.SHIPPED) & ~on_the_way,
            OrderEvent.DELIVER,
        )
    return changed


def _collect_pickups(session: Session, parcel_ids: list[int]) -> None:
    """Pickups whose every parcel is now picked up are ``collected``."""
    pickups = set(
        session.scalars(select(PickupParcel.pickup_id).where(PickupParcel.parcel_id.in_(parcel_ids)))
    )
    if not pickups:
        return
    waiting = exists().where(
        PickupParcel.pickup_id == Pickup.id,
        PickupParcel.parcel_id == Parcel.id,
        Parcel.status == ParcelState.PACKED,
    )
    session.execute(
        update(Pickup)
        .where(Pickup.id.in_(sorted(pickups)), ~waiting, Pickup.status != "collected")
        .values(status="collected")
        .execution_options(synchronize_session=False)
    )
