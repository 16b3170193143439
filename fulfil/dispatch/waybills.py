"""The ``request_waybills(lo, hi)`` task: electronic waybills for the pending rows with ids in [lo, hi].

Idempotent and safe to run twice at once: a run first claims the rows that are pending and due (a lease moves
``next_attempt_at`` ahead), then calls the couriers outside any transaction, then records each answer only
on a row still pending. Each request carries the row's stable request id, which the adapters send where the
courier keys orders, so a retry after a lost answer gets the same waybill number back.

A retryable error (a timeout, 5xx, the courier busy) counts an attempt and waits with exponential backoff
(:mod:`fulfil.jobs.retries`); :func:`requeue_due`, on the workers' periodic tick, enqueues what is due
again. A refusal (a bad address, a refused signature, no account) or the last attempt mark the waybill
``failed`` and open a ``waybill_failed`` exception with the courier's reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from fulfil import db
from fulfil import settings as _settings
from fulfil.dispatch import accounts, sites
from fulfil.domain.models import (
    AllocationDecision,
    Courier,
    Order,
    OrderLine,
    Parcel,
    Sku,
    Style,
    Waybill,
)
from fulfil.jobs import outbox, retries
from fulfil.jobs.retries import LEASE, ORPHAN_AFTER
from fulfil.pii import PiiError, Sealer
from integrations.base import Address, ApiError
from integrations.couriers.base import CourierApi, Item, WaybillRequest

log = logging.getLogger(__name__)

TASK = "request_waybills"
PENDING, ISSUED, FAILED = "pending", "issued", "failed"
SWEEP_LIMIT = 20_000
PER_JOB = 200


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _claim(session: Session, lo: int, hi: int, now: dt.datetime) -> list[int]:
    due = and_(
        Waybill.id.between(lo, hi),
        Waybill.status == PENDING,
        or_(Waybill.next_attempt_at.is_(None), Waybill.next_attempt_at <= now),
    )
    ids = list(
        session.scalars(select(Waybill.id).where(due).order_by(Waybill.id).with_for_update(skip_locked=True))
    )
    if ids:
        session.execute(
            update(Waybill)
            .where(Waybill.id.in_(ids), Waybill.status == PENDING)
            .values(next_attempt_at=now + LEASE)
            .execution_options(synchronize_session=False)
        )
    return ids


def _requests(
    session: Session, ids: list[int], sealer: Sealer
) -> tuple[list[Any], dict[int, WaybillRequest]]:
    rows: list[Any] = list(
        session.execute(
            select(
                Waybill.id,
                Waybill.request_id,
                Waybill.attempts,
                Waybill.parcel_id,
                Courier.code,
                Parcel.order_id,
                Parcel.weight_g,
                Parcel.workshop_id,
                Parcel.warehouse_id,
                Order.province,
                Order.city,
                Order.receiver_sealed,
            )
            .join(Parcel, Parcel.id == Waybill.parcel_id)
            .join(Courier, Courier.id == Waybill.courier_id)
            .join(Order, Order.id == Parcel.order_id)
            .where(Waybill.id.in_(ids))
            .order_by(Waybill.id)
        )
    )
    senders = sites.addresses(session, [(r.workshop_id, r.warehouse_id) for r in rows])
    items = _items(session, rows)
    requests: dict[int, WaybillRequest] = {}
    for r in rows:
        try:
            receiver = sealer.open(r.receiver_sealed)
        except PiiError:
            continue  # no request: the caller fails it with the reason
        requests[r.id] = WaybillRequest(
            request_id=r.request_id,
            parcel_ref=str(r.parcel_id),
            sender=senders[(r.workshop_id, r.warehouse_id)],
            receiver=Address(
                name=receiver.name,
                phone=receiver.phone,
                province=sites.province_name(r.province),
                city=r.city,
                district="",
                detail=receiver.address,
            ),
            items=items.get(r.parcel_id) or [Item("服装", 1, r.weight_g)],
            weight_g=r.weight_g,
            carrier=r.code,
        )
    return rows, requests


def _items(session: Session, rows: list[Any]) -> dict[int, list[Item]]:
    """What each parcel holds: its order's lines planned at its site, by style, colour and size."""
    by_order = {r.order_id: r for r in rows}
    found = session.execute(
        select(
            OrderLine.order_id,
            AllocationDecision.workshop_id,
            AllocationDecision.warehouse_id,
            Style.name,
            Sku.colour,
            Sku.size,
            Sku.weight_g,
            AllocationDecision.quantity,
        )
        .join(AllocationDecision, AllocationDecision.order_line_id == OrderLine.id)
        .join(Sku, Sku.id == OrderLine.sku_id)
        .join(Style, Style.id == Sku.style_id)
        .where(OrderLine.order_id.in_(list(by_order)))
        .order_by(OrderLine.id)
    ).all()
    out: dict[int, list[Item]] = defaultdict(list)
    for f in found:
        r = by_order[f.order_id]
        if (f.workshop_id, f.warehouse_id) == (r.workshop_id, r.warehouse_id):
            out[r.parcel_id].append(Item(f"{f.name} {f.colour} {f.size}", int(f.quantity), int(f.weight_g)))
    return out


def request_waybills(lo: int, hi: int) -> dict[str, int]:
    """The task; returns how many waybills were issued, retried later and failed by this run."""
    eng = db.engine()
    now = _utcnow()
    sealer = Sealer(_settings.get().pii_key)
    outcomes: dict[int, tuple[str, Any]] = {}
    with db.session_scope(eng) as session:
        ids = _claim(session, lo, hi, now)
    if not ids:
        return {"issued": 0, "retry": 0, "failed": 0}
    with db.session_scope(eng) as session:
        rows, requests = _requests(session, ids, sealer)
        apis: dict[str, CourierApi | Exception] = {}
        for code in sorted({r.code for r in rows}):
            try:
                apis[code] = accounts.api_for(session, sealer, code)
            except (LookupError, ValueError) as exc:  # no account, unknown courier
                apis[code] = exc
    for r in rows:
        api = apis[r.code]
        request = requests.get(r.id)
        if request is None:
            outcomes[r.id] = ("failed", "the receiver's sealed data does not open with this key")
        elif isinstance(api, Exception):
            outcomes[r.id] = ("failed", str(api))
        else:
            try:
                outcomes[r.id] = ("issued", api.create_waybill(request))
            except ApiError as exc:
                outcomes[r.id] = ("retry" if exc.retryable else "failed", f"{r.code}: {exc}")
            except Exception as exc:  # an adapter's bug: keep trying a while, then let operations see it
                log.exception("waybill %d: the %s adapter failed", r.id, r.code)
                outcomes[r.id] = ("retry", f"{r.code}: {type(exc).__name__}: {exc}")
    return _record(eng, rows, outcomes)


def _record(eng: Any, rows: list[Any], outcomes: dict[int, tuple[str, Any]]) -> dict[str, int]:
    counts = {"issued": 0, "retry": 0, "failed": 0}
    now = _utcnow()
    with db.session_scope(eng) as session:
        for r in rows:
            kind, what = outcomes[r.id]
            error = None if kind == "issued" else str(what)
            outcome, values = retries.after_attempt(r.attempts + 1, error, kind == "retry", now)
            if outcome == "done":
                values.update(
                    status=ISSUED,
                    tracking_number=what.tracking_number,
                    print_data=what.print_data,
                    issued_at=now,
                )
            elif outcome == "failed":
                values["status"] = FAILED
            counts["issued" if outcome == "done" else outcome] += 1
            session.execute(
                update(Waybill)
                .where(Waybill.id == r.id, Waybill.status == PENDING)
                .values(values)
                .execution_options(synchronize_session=False)
            )
            if outcome == "failed":
                retries.open_exception(
                    session,
                    "waybill_failed",
                    f"parcel {r.parcel_id}",
                    values["last_error"],
                    {
                        "waybill_id": r.id,
                        "parcel_id": r.parcel_id,
                        "order_id": r.order_id,
                        "courier": r.code,
                        "request_id": r.request_id,
                        "attempts": values["attempts"],
                    },
                    now,
                )
    if counts["retry"] or counts["failed"]:
        log.warning("waybills: %s", counts)
    return counts


def requeue_due(session: Session, *, now: dt.datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Enqueue the pending waybills whose next attempt is due (retries after their backoff, runs whose lease
    ran out, rows whose job was lost), a range of ids per job. Returns the jobs enqueued."""
    now = now or _utcnow()
    due = list(
        session.scalars(
            select(Waybill.id)
            .where(
                Waybill.status == PENDING,
                Waybill.next_attempt_at <= now,
                (Waybill.attempts > 0) | (Waybill.created_at <= now - ORPHAN_AFTER),
            )
            .order_by(Waybill.id)
            .limit(limit)
        )
    )
    jobs = 0
    for lo in range(0, len(due), PER_JOB):
        chunk = due[lo : lo + PER_JOB]
        outbox.enqueue(session, TASK, chunk[0], chunk[-1])
        jobs += 1
    return jobs
