"""Labels of stored parcels: what :func:`fulfil.dispatch.labels.label_pdf` prints, read from the database.

The receiver is unsealed only in memory, for the page, and printed masked (the label module masks it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfil.belt.vocab import COURIERS
from fulfil.dispatch import sites
from fulfil.dispatch.labels import Label, label_pdf
from fulfil.domain.models import Courier, Order, Parcel, Pickup, PickupParcel, Waybill
from fulfil.pii import Sealer

_COURIER_NAMES = dict(COURIERS)


class NoLabel(LookupError):
    """A label cannot be printed: the parcel does not exist (``missing``) or has no waybill number yet."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def pickup_parcels(session: Session, pickup_id: int) -> list[int]:
    """The parcels a pickup collects, in id order; :class:`NoLabel` if there is no such pickup."""
    if session.get(Pickup, pickup_id) is None:
        raise NoLabel(f"no pickup {pickup_id}", missing=True)
    return list(
        session.scalars(
            select(PickupParcel.parcel_id)
            .where(PickupParcel.pickup_id == pickup_id)
            .order_by(PickupParcel.parcel_id)
        )
    )


def parcel_labels(session: Session, sealer: Sealer, parcel_ids: Sequence[int]) -> bytes:
    """One PDF with a page per parcel, in the order given; :class:`NoLabel` if there is none to print."""
    if not parcel_ids:
        raise NoLabel("no parcels to print", missing=True)
    rows = {
        r.id: r
        for r in session.execute(
            select(
                Parcel.id,
                Parcel.order_id,
                Parcel.weight_g,
                Parcel.workshop_id,
                Parcel.warehouse_id,
                Order.platform_order_id,
                Order.province,
                Order.city,
                Order.ship_by,
                Order.receiver_sealed,
                Waybill.tracking_number,
                Courier.code,
            )
            .join(Order, Order.id == Parcel.order_id)
            .outerjoin(Waybill, Waybill.parcel_id == Parcel.id)
            .outerjoin(Courier, Courier.id == Waybill.courier_id)
            .where(Parcel.id.in_(list(parcel_ids)))
        )
    }
    missing = [p for p in parcel_ids if p not in rows]
    if missing:
        raise NoLabel(f"no parcel {missing[0]}", missing=True)
    waiting = [p for p in parcel_ids if not rows[p].tracking_number]
    if waiting:
        raise NoLabel(f"parcel {waiting[0]} has no waybill number yet", missing=False)
    senders = sites.addresses(session, {(r.workshop_id, r.warehouse_id) for r in rows.values()})
    labels = []
    for p in parcel_ids:
        r = rows[p]
        receiver = sealer.open(r.receiver_sealed)
        labels.append(
            Label(
                waybill=r.tracking_number,
                courier=f"{_COURIER_NAMES.get(r.code, r.code)} {r.code}",
                sender_site=senders[(r.workshop_id, r.warehouse_id)].detail,
                province=sites.province_name(r.province),
                city=r.city,
                receiver_name=receiver.name,
                receiver_phone=receiver.phone,
                receiver_address=receiver.address,
                parcel_ref=str(r.id),
                order_ref=r.platform_order_id,
                weight_g=r.weight_g,
                ship_by=r.ship_by.replace(tzinfo=dt.UTC),  # stored as naive UTC
            )
        )
    return label_pdf(labels)
