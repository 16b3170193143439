"""Where parcels leave from: a site's postal address for couriers, and province names for receivers.

Sites are the belt's workshops and shared warehouses, all in Changshu (常熟市, 苏州市, 江苏省); the town and
the site's own name make the street part. A site key is ``(workshop_id, warehouse_id)`` with one of them None,
as parcels and pickups carry it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfil.belt.geo import PROVINCES
from fulfil.domain.models import SharedWarehouse, Workshop
from integrations.base import Address

BELT_PROVINCE, BELT_CITY, BELT_DISTRICT = "江苏省", "苏州市", "常熟市"
SiteKey = tuple[int | None, int | None]
_PROVINCE_NAMES = {p.code: p.name for p in PROVINCES}


def province_name(code: str) -> str:
    """A GB/T 2260 province code's name (``32`` -> ``江苏省``); the code itself if unknown."""
    return _PROVINCE_NAMES.get(code, code)


def addresses(session: Session, keys: Iterable[SiteKey]) -> dict[SiteKey, Address]:
    """The sender address of each site key."""
    wanted = set(keys)
    workshops = sorted({w for w, _ in wanted if w is not None})
    warehouses = sorted({h for _, h in wanted if h is not None})
    out: dict[SiteKey, Address] = {}
    if workshops:
        for i, code, name, town, phone in session.execute(
            select(Workshop.id, Workshop.code, Workshop.name, Workshop.town, Workshop.contact_phone).where(
                Workshop.id.in_(workshops)
            )
        ):
            out[(i, None)] = _address(code, name, town, phone)
    if warehouses:
        for i, code, name, town, phone in session.execute(
            select(
                SharedWarehouse.id,
                SharedWarehouse.code,
                SharedWarehouse.name,
                SharedWarehouse.town,
                SharedWarehouse.contact_phone,
            ).where(SharedWarehouse.id.in_(warehouses))
        ):
            out[(None, i)] = _address(code, name, town, phone)
    missing = wanted - set(out)
    if missing:
        raise LookupError(f"no site for key(s) {sorted(missing, key=str)[:5]}")
    return out


def _address(code: str, name: str, town: str, phone: str | None) -> Address:
    # The contact is the site's dispatch desk, by the site's name: the belt keeps no named person per site.
    # A site without a phone gets "" and the courier says what is missing (the waybill fails with its reason).
    return Address(
        name=name,
        phone=phone or "",
        province=BELT_PROVINCE,
        city=BELT_CITY,
        district=BELT_DISTRICT,
        detail=f"{town} {name} ({code})",
    )
