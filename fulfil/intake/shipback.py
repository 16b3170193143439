"""Ship confirmation write-back: when a parcel is picked up, its tracking number goes back to the platform.

:func:`parcels_picked_up` (in the caller's transaction) fires the parcels' ``PICK_UP`` — and the order's when
all its parcels are picked up — and writes one :class:`ShipConfirmation` per parcel with a stable request id
and an outbox job ``confirm_shipment(confirmation_id)``.

``confirm_shipment(confirmation_id)`` (the rq task) calls the platform's ``confirm_shipment`` through its
adapter (Douyin ``order.logisticsAdd``, Kuaishou delivery, Taobao offline send, Shopify fulfillment ...). It
is idempotent: a confirmation ``done`` or ``failed`` is left alone, and a run claims the row first (a lease:
``next_attempt_at`` moves :data:`LEASE` ahead), so two runs at once make one call — a run whose claim fails
does nothing. The platform call happens outside any transaction; should the process die after it, the lease
runs out and the retry repeats the call with the same request id and tracking number, which the adapters treat
as done when the platform already carries it.

Retries: a retryable error counts an attempt and sets ``next_attempt_at`` with exponential backoff (30 s,
1, 2, 4, 8, 16, 32 min); :func:`requeue_due`, called by the workers' periodic tick, enqueues what is due again
through the outbox (no rq scheduler needed). A non-retryable error (a refused signature, an unknown courier,
no app for the shop), or :data:`MAX_ATTEMPTS` attempts, marks it ``failed`` with the reason and opens an
exception item (``ship_confirmation_failed``) for operations.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from sqlalchemy import exists, insert, select, update
from sqlalchemy.orm import Session

from fulfil import db
from fulfil.domain.models import (
    Order,
    Parcel,
    Platform,
    PlatformShop,
    ShipConfirmation,
)
from fulfil.domain.states import ORDER, PARCEL, OrderEvent, OrderState, ParcelEvent, ParcelState
from fulfil.intake import platforms
from fulfil.jobs import outbox, retries
from fulfil.jobs.retries import LEASE, ORPHAN_AFTER
from integrations.base import ApiError

log = logging.getLogger(__name__)

TASK = "confirm_shipment"
COURIERS = frozenset({"ZTO", "YTO", "YUNDA", "STO", "JT", "SF", "JD", "EMS"})
SWEEP_LIMIT = 20_000
BUSY_QUEUE = 100
PENDING, DONE, FAILED = "pending", "done", "failed"
_CHUNK = 5000


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def request_id(parcel_id: int, courier_code: str, tracking_number: str) -> str:
    """Stable for a parcel and its tracking number: every retry is the same request to the platform."""
    digest = hashlib.sha256(f"{courier_code}:{tracking_number}".encode()).hexdigest()[:16]
    return f"ship-{parcel_id}-{digest}"


# --- pickup ---------------------------------------------------------------------------------------------


def parcels_picked_up(
    session: Session, parcel_ids: Iterable[int], tracking: Mapping[int, tuple[str, str]]
) -> list[int]:
    """The courier collected ``parcel_ids`` (each packed), with ``tracking[parcel_id] = (courier, number)``.

    In the caller's transaction: parcels ``PICK_UP``; orders whose every parcel is now picked up (cancelled
    parcels aside) ``PICK_UP``; one ship confirmation per parcel and its outbox job. Returns the confirmation
    ids, in parcel id order. ValueError names a parcel without tracking or a courier code not known;
    :class:`~fulfil.domain.states.IllegalTransition` a parcel (or order) not in a state to be picked up.
    """
    ids = sorted(set(parcel_ids))
    if not ids:
        return []
    missing = [p for p in ids if p not in tracking]
    if missing:
        raise ValueError(f"no tracking number for parcel(s) {missing[:20]}")
    for p in ids:
        courier, number = tracking[p]
        if courier not in COURIERS:
            raise ValueError(
                f"parcel {p}: unknown courier {courier!r}; couriers: {', '.join(sorted(COURIERS))}"
            )
        if not number or len(number) > 64 or number != number.strip():
            raise ValueError(f"parcel {p}: tracking number {number!r} is empty, padded or over 64 characters")
    rows: list[Any] = []
    for i in range(0, len(ids), _CHUNK):
        rows.extend(
            session.execute(
                select(Parcel.id, Parcel.order_id, Order.platform)
                .join(Order, Order.id == Parcel.order_id)
                .where(Parcel.id.in_(ids[i : i + _CHUNK]))
            ).all()
        )
    unknown = sorted(set(ids) - {r.id for r in rows})
    if unknown:
        raise LookupError(f"no parcel(s) {unknown[:20]}")
    PARCEL.fire_ids(session, Parcel, ids, ParcelEvent.PICK_UP)

    order_ids = sorted({r.order_id for r in rows})
    waiting = exists().where(
        Parcel.order_id == Order.id, Parcel.status.in_([ParcelState.PLANNED, ParcelState.PACKED])
    )
    for i in range(0, len(order_ids), _CHUNK):
        ORDER.fire_where(
            session,
            Order,
            Order.id.in_(order_ids[i : i + _CHUNK]) & ~waiting & (Order.status != OrderState.SHIPPED),
            OrderEvent.PICK_UP,
        )

    now = _utcnow()
    values = [
        {
            "parcel_id": r.id,
            "order_id": r.order_id,
            "platform": Platform(r.platform),
            "courier_code": tracking[r.id][0],
            "tracking_number": tracking[r.id][1],
            "request_id": request_id(r.id, *tracking[r.id]),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for r in sorted(rows, key=lambda r: r.id)
    ]
    confirmation_ids = list(
        session.execute(
            insert(ShipConfirmation).returning(ShipConfirmation.id, sort_by_parameter_order=True), values
        ).scalars()
    )
    for cid in confirmation_ids:
        outbox.enqueue(session, TASK, cid)
    return confirmation_ids


# --- the job --------------------------------------------------------------------------------------------


def confirm_shipment(confirmation_id: int) -> str:
    """The ``confirm_shipment`` task: tell the platform, once. Returns the confirmation's status after the run
    (``skipped`` when another run holds it or it is not due)."""
    eng = db.engine()
    now = _utcnow()
    with db.session_scope(eng) as session:
        claimed = session.execute(
            update(ShipConfirmation)
            .where(
                ShipConfirmation.id == confirmation_id,
                ShipConfirmation.status == PENDING,
                ShipConfirmation.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + LEASE)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            status = session.scalar(
                select(ShipConfirmation.status).where(ShipConfirmation.id == confirmation_id)
            )
            if status is None:
                raise LookupError(f"no ship confirmation {confirmation_id}")
            return str(status) if status != PENDING else "skipped"
        row = session.execute(
            select(
                ShipConfirmation.platform,
                ShipConfirmation.courier_code,
                ShipConfirmation.tracking_number,
                ShipConfirmation.request_id,
                ShipConfirmation.attempts,
                ShipConfirmation.order_id,
                ShipConfirmation.parcel_id,
                Order.platform_order_id,
                Order.merchant_id,
                PlatformShop.shop_code,
            )
            .join(Order, Order.id == ShipConfirmation.order_id)
            .join(PlatformShop, PlatformShop.id == Order.shop_id)
            .where(ShipConfirmation.id == confirmation_id)
        ).one()
        platform = Platform(row.platform).value
        keys = platforms.shop_app_keys(session, platform, {row.merchant_id})[row.merchant_id]

    error: str | None = None
    retryable = False
    try:
        credential = platforms.credential_for(eng, platform, keys, row.shop_code)
        api = platforms.order_api(platform, credential)
        api.confirm_shipment(
            row.shop_code, row.platform_order_id, row.courier_code, row.tracking_number, row.request_id
        )
    except ApiError as exc:
        error, retryable = f"{platform}: {exc}", exc.retryable
    except (platforms.NoCredential, platforms.NoAdapter) as exc:
        error = str(exc)
    except Exception as exc:  # an adapter's bug: keep trying a while, then let operations see it
        log.exception("ship confirmation %d: the %s adapter failed", confirmation_id, platform)
        error, retryable = f"{platform}: {type(exc).__name__}: {exc}", True

    attempts = row.attempts + 1
    done_now = _utcnow()
    outcome, values = retries.after_attempt(attempts, error, retryable, done_now)
    if outcome == "done":
        values.update(status=DONE, done_at=done_now)
    elif outcome == "failed":
        values["status"] = FAILED
    with db.session_scope(eng) as session:
        session.execute(
            update(ShipConfirmation)
            .where(ShipConfirmation.id == confirmation_id, ShipConfirmation.status == PENDING)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        if outcome == "failed":
            retries.open_exception(
                session,
                "ship_confirmation_failed",
                f"ship confirmation {confirmation_id}",
                values["last_error"],
                {
                    "confirmation_id": confirmation_id,
                    "order_id": row.order_id,
                    "parcel_id": row.parcel_id,
                    "platform": platform,
                    "platform_order_id": row.platform_order_id,
                    "courier_code": row.courier_code,
                    "tracking_number": row.tracking_number,
                    "attempts": attempts,
                },
                done_now,
            )
    status = str(values.get("status", PENDING))
    if error is not None:
        log.warning("ship confirmation %d (%s): %s -> %s", confirmation_id, platform, error, status)
    return status


# --- retries --------------------------------------------------------------------------------------------


def requeue_due(
    session: Session,
    *,
    now: dt.datetime | None = None,
    connection: redis.Redis | None = None,
    queue: str = "intake",
    limit: int = SWEEP_LIMIT,
) -> int:
    """Enqueue the pending confirmations whose next attempt is due: retries after their backoff, runs whose
    lease ran out, and rows whose job was lost. With ``connection``, nothing while the intake queue holds a
    backlog. Returns the jobs enqueued."""
    if connection is not None:
        from rq import Queue

        if Queue(queue, connection=connection).count > BUSY_QUEUE:
            return 0
    now = now or _utcnow()
    due = list(
        session.scalars(
            select(ShipConfirmation.id)
            .where(
                ShipConfirmation.status == PENDING,
                ShipConfirmation.next_attempt_at <= now,
                (ShipConfirmation.attempts > 0) | (ShipConfirmation.created_at <= now - ORPHAN_AFTER),
            )
            .order_by(ShipConfirmation.next_attempt_at, ShipConfirmation.id)
            .limit(limit)
        )
    )
    for cid in due:
        outbox.enqueue(session, TASK, cid)
    if due:
        log.info("ship confirmations: %d due again, enqueued", len(due))
    return len(due)
