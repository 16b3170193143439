"""A small packed belt for the dispatch tests: two workshops and a shared warehouse in Changshu, couriers with
points, prices and quotas, and packed parcels of orders whose receivers are sealed with the backend's key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from fulfil.domain.models import (
    Courier,
    CourierPoint,
    CourierPrice,
    Order,
    Parcel,
    SharedWarehouse,
    SiteKind,
    Workshop,
)
from fulfil.domain.states import OrderState, ParcelState
from fulfil.pii import Receiver, Sealer
from tests.jobs_support import add_orders

DAY = dt.date(2026, 11, 24)
UTC_MIDNIGHT = dt.datetime(2026, 11, 23, 16, 0)  # 00:00 in Changshu on DAY


def local(hour: int, minute: int = 0) -> dt.datetime:
    """Naive UTC of a Changshu time on DAY."""
    return UTC_MIDNIGHT + dt.timedelta(hours=hour, minutes=minute)


@dataclass(frozen=True)
class PointSpec:
    courier: str
    quota: int
    cutoff: dt.time = dt.time(19, 0)
    lon: float = 120.75
    lat: float = 31.65
    radius_km: float = 30.0
    van_capacity: int = 500


@dataclass
class Belt:
    workshops: list[int]
    warehouse: int
    couriers: dict[str, int]
    points: list[int]


# first kilogram, each further one (fen) to Guangdong (44) and Xinjiang (65)
PRICES = {
    "ZTO": {"44": (500, 200), "65": (1500, 900)},
    "STO": {"44": (450, 250), "65": (1400, 800)},
    "SF": {"44": (1500, 600), "65": (2500, 1200)},
    "JD": {"44": (1400, 500)},  # JD does not serve Xinjiang here
}


def add_belt(engine: Engine, points: Sequence[PointSpec], sf_max_weight_g: int = 0) -> Belt:
    with engine.begin() as c:
        workshops = [
            c.execute(
                insert(Workshop)
                .values(
                    code=f"WS{i}", name=f"制衣厂{i}", town="虞山", lon=120.74 + i / 100, lat=31.65,
                    contact_phone="13900001111",
                    workers=30, quality=0.98, reliability=0.95,
                )
                .returning(Workshop.id)
            ).scalar_one()
            for i in (1, 2)
        ]  # fmt: skip
        warehouse = c.execute(
            insert(SharedWarehouse)
            .values(
                code="WH1", name="云仓一号", town="海虞", lon=120.80, lat=31.70, contact_phone="13900002222",
                daily_handling_capacity=10_000, handling_fen_per_line=80,
            )
            .returning(SharedWarehouse.id)
        ).scalar_one()  # fmt: skip
        couriers = {}
        for code in PRICES:
            couriers[code] = c.execute(
                insert(Courier)
                .values(code=code, name=code, max_weight_g=sf_max_weight_g if code == "SF" else 0)
                .returning(Courier.id)
            ).scalar_one()
            for province, (first, add) in PRICES[code].items():
                c.execute(
                    insert(CourierPrice).values(
                        courier_id=couriers[code], province=province, first_weight_g=1000,
                        first_fen=first, additional_fen_per_kg=add,
                    )
                )  # fmt: skip
        ids = []
        for k, p in enumerate(points):
            ids.append(
                c.execute(
                    insert(CourierPoint)
                    .values(
                        courier_id=couriers[p.courier], code=f"{p.courier}-{k}", town="虞山", lon=p.lon,
                        lat=p.lat, daily_quota=p.quota, cutoff=p.cutoff, van_capacity=p.van_capacity,
                        radius_km=p.radius_km,
                    )
                    .returning(CourierPoint.id)
                ).scalar_one()
            )  # fmt: skip
    return Belt(workshops, warehouse, couriers, ids)


def add_packed_parcels(
    engine: Engine,
    sealer: Sealer,
    sites: Sequence[tuple[SiteKind, int]],
    *,
    province: str = "44",
    weight_g: int = 800,
    packed_at: dt.datetime | None = None,
    first: int = 0,
) -> list[int]:
    """One packed order and its parcel per site given; returns the parcel ids."""
    orders = add_orders(engine, [local(9)] * len(sites), status=OrderState.PACKED, first=first)
    with engine.begin() as c:
        c.execute(
            Order.__table__.update()
            .where(Order.id.in_(orders))
            .values(
                province=province,
                city="广州市" if province == "44" else "乌鲁木齐市",
                receiver_sealed=sealer.seal(Receiver("张三丰", "13812345678", "天河路385号太古汇1座")),
            )
        )
        rows = [
            {
                "order_id": o,
                "batch_id": 1,
                "site_kind": kind,
                "workshop_id": site if kind is SiteKind.WORKSHOP else None,
                "warehouse_id": site if kind is SiteKind.WAREHOUSE else None,
                "status": ParcelState.PACKED,
                "weight_g": weight_g,
                "ready_on": DAY,
                "packed_at": packed_at or local(15),
            }
            for o, (kind, site) in zip(orders, sites, strict=True)
        ]
        c.execute(insert(Parcel), rows)
        found = {
            k: v for k, v in c.execute(select(Parcel.order_id, Parcel.id).where(Parcel.order_id.in_(orders)))
        }
    return [found[o] for o in orders]
