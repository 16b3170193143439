"""The schema: migrations match the models on both backends, constraints hold, receivers are sealed."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from fulfil import migrate
from fulfil.db import session_scope
from fulfil.domain.models import Base, Merchant, Order, Platform, PlatformShop, Stock
from fulfil.domain.states import OrderState
from fulfil.pii import Receiver, Sealer
from tests.conftest import Backend


def test_migrations_reach_head_and_match_the_models(backend: Backend) -> None:
    assert migrate.is_current(backend.engine)
    with backend.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def _shop(s: object) -> tuple[Merchant, PlatformShop]:
    m = Merchant(code="M1", name="常熟服饰", town="虞山", lon=120.74, lat=31.65)
    shop = PlatformShop(platform=Platform.DOUDIAN, shop_code="4463798", name="旗舰店", merchant=m)
    s.add_all([m, shop])  # type: ignore[attr-defined]
    s.flush()  # type: ignore[attr-defined]
    return m, shop


def _order(m: Merchant, shop: PlatformShop, sealed: bytes, pid: str = "6920000001") -> Order:
    now = dt.datetime(2026, 11, 23, 20, 15)
    return Order(
        platform=Platform.DOUDIAN,
        shop_id=shop.id,
        platform_order_id=pid,
        merchant_id=m.id,
        status=OrderState.PAID,
        created_at=now,
        paid_at=now,
        ship_by=now + dt.timedelta(hours=48),
        province="44",
        city="广州",
        receiver_sealed=sealed,
    )


def test_an_order_is_unique_per_platform_shop_and_platform_id(clean: Backend) -> None:
    with session_scope(clean.engine) as s:
        m, shop = _shop(s)
        s.add(_order(m, shop, b"x"))
    with pytest.raises(IntegrityError), session_scope(clean.engine) as s:
        m2 = s.scalars(select(Merchant)).one()
        shop2 = s.scalars(select(PlatformShop)).one()
        s.add(_order(m2, shop2, b"y"))


def test_receiver_data_is_sealed_at_rest(clean: Backend) -> None:
    sealer = Sealer(clean.settings.pii_key)
    receiver = Receiver("欧阳娜娜", "13912345678", "梅李镇通江路 88 号 3 幢")
    with session_scope(clean.engine) as s:
        m, shop = _shop(s)
        s.add(_order(m, shop, sealer.seal(receiver)))
    with clean.engine.connect() as conn:
        raw = conn.execute(text("SELECT receiver_sealed FROM orders")).scalar_one()
    raw = bytes(raw)
    for clear in (receiver.name, receiver.phone, receiver.address):
        assert clear.encode() not in raw
    assert sealer.open(raw) == receiver


def test_stock_reservations_cannot_exceed_on_hand(clean: Backend) -> None:
    from fulfil.domain.models import ProcessFamily, SharedWarehouse, Sku, Style

    with session_scope(clean.engine) as s:
        m, _ = _shop(s)
        fam = ProcessFamily(code="cut_sew", name="裁剪缝制")
        s.add(fam)
        s.flush()
        style = Style(
            merchant_id=m.id,
            code="ST1",
            name="卫衣",
            process_family_id=fam.id,
            minutes_per_unit=12.0,
            min_lot=100,
            changeover_fen=5000,
        )
        s.add(style)
        s.flush()
        sku = Sku(style_id=style.id, code="ST1-BLK-M", colour="黑", size="M", weight_g=450)
        wh = SharedWarehouse(
            code="W1",
            name="云仓",
            town="古里",
            lon=120.8,
            lat=31.7,
            daily_handling_capacity=10_000,
            handling_fen_per_line=80,
        )
        s.add_all([sku, wh])
        s.flush()
        s.add(Stock(warehouse_id=wh.id, owner_id=m.id, sku_id=sku.id, on_hand=5, reserved=5))
    with pytest.raises(IntegrityError), session_scope(clean.engine) as s:
        s.execute(text("UPDATE stock SET reserved = 6"))
