"""The belt generator: deterministic plain data, the shape of the day, integrity, sealing, reruns, the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import aliased

import fulfil.belt.generate as gen
import fulfil.cli.bench_belt
import fulfil.cli.generate
import fulfil.cli.worker  # noqa: F401  (registers `batches`)
from fulfil.belt import geo
from fulfil.belt.generate import BeltError, BeltParams, BeltSummary, clear_belt, generate_belt
from fulfil.cli import _COMMAND_MODULES, main
from fulfil.db import make_engine, session_scope
from fulfil.domain.models import (
    AllocationDecision,
    Base,
    Batch,
    Belt,
    Courier,
    CourierPoint,
    CourierPrice,
    Merchant,
    Order,
    OrderLine,
    Platform,
    PlatformShop,
    PlatformSkuMapping,
    ProcessFamily,
    Qualification,
    SharedWarehouse,
    Sku,
    Stock,
    Style,
    Workshop,
    WorkshopCapacity,
)
from fulfil.domain.states import BatchState, OrderState
from fulfil.pii import PiiError, Sealer
from tests.conftest import Backend

DAY = dt.date(2025, 3, 1)
LOCAL = dt.timedelta(hours=geo.UTC_OFFSET_HOURS)


def _params(orders: int = 4_000, **kw: Any) -> BeltParams:
    return BeltParams.scaled(orders, day=DAY, **kw)


def _generate(b: Backend, params: BeltParams, **kw: Any) -> BeltSummary:
    return generate_belt(b.engine, params, Sealer(b.settings.pii_key), **kw)


def _rows(b: Backend, stmt: Any) -> list[tuple[Any, ...]]:
    with b.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def _digest(b: Backend) -> str:
    """A digest of the belt's plain data: every table by natural keys, ids left out, receivers opened."""
    sealer = Sealer(b.settings.pii_key)
    h = hashlib.sha256()

    def feed(rows: list[tuple[Any, ...]]) -> None:
        for r in rows:
            h.update(repr(r).encode())
        h.update(b"|")

    feed(_rows(b, select(ProcessFamily.code, ProcessFamily.name).order_by(ProcessFamily.code)))
    feed(
        _rows(
            b,
            select(
                Merchant.code, Merchant.name, Merchant.town, Merchant.lon, Merchant.lat, Merchant.pools_stock
            ).order_by(Merchant.code),
        )
    )
    feed(
        _rows(
            b,
            select(PlatformShop.platform, PlatformShop.shop_code, PlatformShop.name, Merchant.code)
            .join(Merchant)
            .order_by(PlatformShop.platform, PlatformShop.shop_code),
        )
    )
    feed(
        _rows(
            b,
            select(
                Style.code,
                Style.name,
                ProcessFamily.code,
                Style.minutes_per_unit,
                Style.min_lot,
                Style.changeover_fen,
            )
            .join(ProcessFamily)
            .order_by(Style.code),
        )
    )
    feed(
        _rows(
            b, select(Sku.code, Style.code, Sku.colour, Sku.size, Sku.weight_g).join(Style).order_by(Sku.code)
        )
    )
    feed(
        _rows(
            b,
            select(PlatformShop.shop_code, PlatformSkuMapping.platform_sku_code, Sku.code)
            .join(PlatformShop)
            .join(Sku)
            .order_by(PlatformShop.shop_code, Sku.code),
        )
    )
    feed(
        _rows(
            b,
            select(
                Workshop.code,
                Workshop.name,
                Workshop.town,
                Workshop.lon,
                Workshop.lat,
                Workshop.workers,
                Workshop.quality,
                Workshop.reliability,
            ).order_by(Workshop.code),
        )
    )
    feed(
        _rows(
            b,
            select(
                Workshop.code,
                WorkshopCapacity.day,
                ProcessFamily.code,
                WorkshopCapacity.regular_minutes,
                WorkshopCapacity.overtime_minutes,
                WorkshopCapacity.overtime_premium_fen_per_minute,
            )
            .join(Workshop)
            .join(ProcessFamily)
            .order_by(Workshop.code, WorkshopCapacity.day, ProcessFamily.code),
        )
    )
    feed(
        _rows(
            b,
            select(Workshop.code, Style.code, Qualification.unit_cost_fen)
            .join(Workshop)
            .join(Style)
            .order_by(Workshop.code, Style.code),
        )
    )
    feed(
        _rows(
            b,
            select(
                SharedWarehouse.code,
                SharedWarehouse.name,
                SharedWarehouse.town,
                SharedWarehouse.lon,
                SharedWarehouse.lat,
                SharedWarehouse.daily_handling_capacity,
                SharedWarehouse.handling_fen_per_line,
            ).order_by(SharedWarehouse.code),
        )
    )
    feed(
        _rows(
            b,
            select(SharedWarehouse.code, Merchant.code, Sku.code, Stock.on_hand, Stock.reserved)
            .join(SharedWarehouse)
            .join(Merchant)
            .join(Sku)
            .order_by(SharedWarehouse.code, Sku.code),
        )
    )
    feed(_rows(b, select(Courier.code, Courier.name).order_by(Courier.code)))
    feed(
        _rows(
            b,
            select(
                CourierPoint.code,
                Courier.code,
                CourierPoint.town,
                CourierPoint.lon,
                CourierPoint.lat,
                CourierPoint.daily_quota,
                CourierPoint.cutoff,
                CourierPoint.van_capacity,
            )
            .join(Courier)
            .order_by(CourierPoint.code),
        )
    )
    feed(
        _rows(
            b,
            select(
                Courier.code,
                CourierPrice.province,
                CourierPrice.first_weight_g,
                CourierPrice.first_fen,
                CourierPrice.additional_fen_per_kg,
            )
            .join(Courier)
            .order_by(Courier.code, CourierPrice.province),
        )
    )
    orders = _rows(
        b,
        select(
            Order.platform,
            PlatformShop.shop_code,
            Order.platform_order_id,
            Merchant.code,
            Order.status,
            Order.created_at,
            Order.paid_at,
            Order.ship_by,
            Order.presale,
            Order.province,
            Order.city,
            Order.receiver_sealed,
        )
        .join(PlatformShop, Order.shop_id == PlatformShop.id)
        .join(Merchant, Order.merchant_id == Merchant.id)
        .order_by(Order.platform_order_id),
    )
    feed([(*o[:-1], sealer.open(o[-1])) for o in orders])
    feed(
        _rows(
            b,
            select(Order.platform_order_id, Sku.code, OrderLine.quantity)
            .join(Order)
            .join(Sku)
            .order_by(Order.platform_order_id, Sku.code),
        )
    )
    return h.hexdigest()


def test_same_seed_same_plain_data_whatever_the_chunk_and_another_seed_differs(clean: Backend) -> None:
    _generate(clean, _params(3_000, seed=7))
    first = _digest(clean)
    clear_belt(clean.engine)
    _generate(clean, _params(3_000, seed=7, chunk=1_000))
    assert _digest(clean) == first
    clear_belt(clean.engine)
    _generate(clean, _params(3_000, seed=8))
    assert _digest(clean) != first


def test_the_shape_of_the_day(clean: Backend) -> None:
    s = _generate(clean, _params(5_000))
    assert (s.orders, s.skus, s.workshops, s.merchants) == (5_000, 500, 50, 12)

    # Hits: units per SKU are Zipf-skewed, the top 1 % of SKUs carry far more than 1 % of the units.
    units = Counter(
        dict(_rows(clean, select(OrderLine.sku_id, func.sum(OrderLine.quantity)).group_by(OrderLine.sku_id)))
    )
    by_sku = sorted(units.values(), reverse=True) + [0] * (s.skus - len(units))
    top = by_sku[: s.skus // 100]
    assert sum(top) / sum(by_sku) > 0.15, sum(top) / sum(by_sku)

    # Destinations follow population: Guangdong (126 M) far above Tibet (3.6 M), and the most common.
    provinces = Counter(dict(_rows(clean, select(Order.province, func.count()).group_by(Order.province))))
    assert provinces["44"] > 10 * max(provinces["54"], 1)
    assert provinces.most_common(1)[0][0] == "44"
    assert set(provinces) <= {p.code for p in geo.PROVINCES}
    cities = _rows(clean, select(Order.province, Order.city).distinct())
    assert all(c in {name for name, _ in geo.PROVINCE_BY_CODE[p].cities} for p, c in cities)

    # Live streams: the busiest 15 minutes hold several times the mean 15 minutes.
    paid = [p for (p,) in _rows(clean, select(Order.paid_at))]
    start = dt.datetime.combine(DAY, dt.time()) - LOCAL
    assert all(start <= p < start + dt.timedelta(days=1) for p in paid)
    windows = Counter(int((p - start).total_seconds() // 900) for p in paid)
    assert max(windows.values()) > 3.5 * (len(paid) / 96), max(windows.values()) / (len(paid) / 96)
    # ... and nights are quiet: 03:00-05:00 local carries less than an even share.
    night = sum(windows[w] for w in range(12, 20))
    assert night < len(paid) * 8 / 96 * 0.5

    # Ship-by: 48 h from payment, or for pre-sale the end of a local day 3 to 15 days later.
    orders = _rows(clean, select(Order.created_at, Order.paid_at, Order.ship_by, Order.presale, Order.status))
    presale = [o for o in orders if o[3]]
    assert 0.01 < len(presale) / len(orders) < 0.06
    for created, paid_at, ship_by, is_presale, status in orders:
        assert status == "paid"
        assert created <= paid_at
        if is_presale:
            local_days = ((ship_by + LOCAL).date() - (paid_at + LOCAL).date()).days
            assert 3 <= local_days <= 15
            assert (ship_by + LOCAL).time() == dt.time(23, 59, 59)
        else:
            assert ship_by - paid_at == dt.timedelta(hours=48)

    # Lines: mostly one per order, at most three; quantities mostly one.
    per_order = Counter(
        n for (n,) in _rows(clean, select(func.count()).select_from(OrderLine).group_by(OrderLine.order_id))
    )
    assert sum(per_order.values()) == s.orders
    assert per_order[1] / s.orders > 0.75 and max(per_order) <= 3 and per_order[2] > 0
    qty = Counter(q for (q,) in _rows(clean, select(OrderLine.quantity)))
    assert qty[1] / sum(qty.values()) > 0.8


def test_master_data_looks_like_changshu(clean: Backend) -> None:
    s = _generate(clean, _params(4_000))
    towns = {t.name for t in geo.TOWNS}
    workshops = _rows(clean, select(Workshop.id, Workshop.town, Workshop.lon, Workshop.lat, Workshop.workers))
    assert len(workshops) == s.workshops
    for _, town, lon, lat, workers in workshops:
        assert town in towns and abs(lon - geo.BELT_LON) < 0.4 and abs(lat - geo.BELT_LAT) < 0.4
        assert 10 <= workers <= 200
    assert len({t for _, t, *_ in workshops}) > 5  # clustered over many towns, not one

    # Capacity calendar: every workshop, every day of the horizon, regular time within its workers' day.
    cap = _rows(
        clean,
        select(
            WorkshopCapacity.workshop_id,
            WorkshopCapacity.day,
            WorkshopCapacity.regular_minutes,
            WorkshopCapacity.overtime_minutes,
            WorkshopCapacity.overtime_premium_fen_per_minute,
            Workshop.workers,
        ).join(Workshop),
    )
    assert {d for _, d, *_ in cap} == {DAY + dt.timedelta(days=i) for i in range(16)}
    assert {w for w, *_ in cap} == {w for w, *_ in workshops}
    for _, _, regular, overtime, premium, workers in cap:
        assert 0 <= regular <= workers * 480 and 0 <= overtime <= workers * 150 and premium > 0
    assert sum(r for _, _, r, *_ in cap) > 0.7 * sum(w * 480 for *_, w in cap)

    styles = _rows(clean, select(Style.minutes_per_unit, Style.min_lot, Style.changeover_fen))
    assert all(5 <= m <= 40 and 50 <= lot <= 200 and c > 0 for m, lot, c in styles)
    # Every style can be made: some qualified workshop has capacity in its process family.
    makeable = _rows(
        clean,
        select(func.count(func.distinct(Style.id)))
        .select_from(Style)
        .join(Qualification, Qualification.style_id == Style.id)
        .join(
            WorkshopCapacity,
            (WorkshopCapacity.workshop_id == Qualification.workshop_id)
            & (WorkshopCapacity.process_family_id == Style.process_family_id),
        ),
    )
    assert makeable[0][0] == len(styles)

    # Shops: a Douyin-heavy mix.
    shops = Counter(p for (p,) in _rows(clean, select(PlatformShop.platform)))
    assert shops.most_common(1)[0][0] == Platform.DOUDIAN
    # Stock: the owner is the SKU's merchant; many SKUs have none, popular ones have more.
    stock = _rows(
        clean,
        select(Stock.sku_id, Stock.on_hand, Stock.owner_id, Style.merchant_id)
        .join(Sku, Stock.sku_id == Sku.id)
        .join(Style),
    )
    assert all(owner == merchant and on_hand > 0 for _, on_hand, owner, merchant in stock)
    stocked = {sku for sku, *_ in stock}
    assert 0.2 * s.skus < len(stocked) < 0.9 * s.skus
    units = dict(
        _rows(clean, select(OrderLine.sku_id, func.sum(OrderLine.quantity)).group_by(OrderLine.sku_id))
    )
    on_hand = Counter[int]()
    for sku, qty, *_ in stock:
        on_hand[sku] += qty
    ranked = sorted(units, key=lambda k: -units[k])
    decile = max(len(ranked) // 10, 1)
    assert np.mean([on_hand[k] for k in ranked[:decile]]) > 3 * np.mean(
        [on_hand[k] for k in ranked[-decile:]]
    )

    # Couriers: the eight, with evening cut-offs; tongda cheap nearby and dear far away, SF and JD dearer.
    assert {c for (c,) in _rows(clean, select(Courier.code))} == {
        "ZTO",
        "YTO",
        "YUNDA",
        "STO",
        "JT",
        "SF",
        "JD",
        "EMS",
    }
    cutoffs = [c for (c,) in _rows(clean, select(CourierPoint.cutoff))]
    assert all(dt.time(17) <= c <= dt.time(21, 30) for c in cutoffs)
    prices = {
        (c, p): (f, a)
        for c, p, f, a in _rows(
            clean,
            select(
                Courier.code,
                CourierPrice.province,
                CourierPrice.first_fen,
                CourierPrice.additional_fen_per_kg,
            ).join(Courier),
        )
    }
    assert len(prices) == 8 * 31
    for c in ("ZTO", "YTO", "YUNDA", "STO", "JT"):
        assert all(250 <= prices[c, p][0] <= 350 for p in ("31", "32", "33"))
        assert all(1000 <= prices[c, p][0] <= 1800 for p in ("54", "65"))
        assert prices[c, "65"][1] > 4 * prices[c, "31"][1]
    for p in geo.PROVINCE_BY_CODE:
        assert (
            prices["SF", p][0] > 1.5 * prices["ZTO", p][0] and prices["JD", p][0] > 1.5 * prices["ZTO", p][0]
        )


@pytest.mark.parametrize("deferred", [False, True], ids=["row-by-row", "indexes-rebuilt"])
def test_integrity_keys_and_sealed_receivers(
    clean: Backend, deferred: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The large-day path (indexes and foreign keys rebuilt after the load) must leave the schema as it was.
    monkeypatch.setattr(gen, "DEFER_INDEXES_FROM", 1 if deferred else 10**12)

    def schema() -> Any:
        with clean.engine.connect() as conn:
            i = inspect(conn)
            return [
                (i.get_indexes(t), i.get_foreign_keys(t), i.get_unique_constraints(t))
                for t in ("orders", "order_lines")
            ]

    before = schema()
    calls: list[tuple[str, int, int]] = []
    s = _generate(clean, _params(3_000), progress=lambda *a: calls.append(a))
    assert schema() == before
    assert ("orders", s.orders, s.orders) in calls and ("master data", 14, 14) in calls

    # Every key points at a row, and an order's shop, lines and merchant agree.
    shop, sku, style = aliased(PlatformShop), aliased(Sku), aliased(Style)
    assert (
        _rows(
            clean,
            select(func.count())
            .select_from(Order)
            .outerjoin(shop, Order.shop_id == shop.id)
            .where((shop.id.is_(None)) | (shop.merchant_id != Order.merchant_id)),
        )[0][0]
        == 0
    )
    assert (
        _rows(
            clean,
            select(func.count())
            .select_from(OrderLine)
            .outerjoin(Order)
            .outerjoin(sku)
            .outerjoin(style, sku.style_id == style.id)
            .where(Order.id.is_(None) | style.id.is_(None) | (style.merchant_id != Order.merchant_id)),
        )[0][0]
        == 0
    )
    counts = dict(_rows(clean, select(Order.platform, func.count()).group_by(Order.platform)))
    assert sum(counts.values()) == s.orders
    assert _rows(clean, select(func.count(func.distinct(Order.platform_order_id))))[0][0] == s.orders
    assert (
        _rows(
            clean,
            select(func.count())
            .select_from(Order)
            .join(shop, Order.shop_id == shop.id)
            .where(shop.platform != Order.platform),
        )[0][0]
        == 0
    )
    if clean.name == "sqlite":
        with clean.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []

    # Receivers: sealed, open with the key only, never stored in clear.
    sealer, other = Sealer(clean.settings.pii_key), Sealer(bytes.fromhex("11" * 32))
    blobs = [b for (b,) in _rows(clean, select(Order.receiver_sealed).limit(300))]
    for blob in blobs:
        r = sealer.open(blob)
        assert 2 <= len(r.name) <= 3 and len(r.phone) == 11 and r.phone.startswith("1") and "号" in r.address
        for clear in (r.name, r.phone, r.address):
            assert clear.encode() not in blob
        with pytest.raises(PiiError):
            other.open(blob)
    assert len({b[1:13] for b in blobs}) == len(blobs)  # nonces never repeat

    # Ids: the sequences were left past the generated rows, so the ORM inserts without a collision.
    max_merchant = _rows(clean, select(func.max(Merchant.id)))[0][0]
    with session_scope(clean.engine) as sess:
        m = Merchant(code="NEW", name="后来的商家", town="虞山", lon=120.7, lat=31.6)
        sess.add(m)
        sess.flush()
        assert m.id > max_merchant


def test_a_rerun_is_refused_and_clear_belt_empties_everything(clean: Backend) -> None:
    s = _generate(clean, _params(1_000, seed=3))
    with pytest.raises(BeltError, match=r"already holds belt 'changshu' \(seed 3.*--reset"):
        _generate(clean, _params(1_000, seed=4))
    assert _rows(clean, select(func.count()).select_from(Order))[0][0] == s.orders
    assert _rows(clean, select(Belt.seed))[0][0] == 3

    clear_belt(clean.engine)
    with clean.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0, table.name

    # Rows the generator would write, but no belt: refused too, and nothing is written.
    with session_scope(clean.engine) as sess:
        sess.add(Merchant(code="HAND", name="手工录入", town="虞山", lon=120.7, lat=31.6))
    with pytest.raises(BeltError, match=r"already holds rows .*merchants"):
        _generate(clean, _params(1_000))
    assert _rows(clean, select(func.count()).select_from(Order))[0][0] == 0
    assert _rows(clean, select(func.count()).select_from(Belt))[0][0] == 0
    clear_belt(clean.engine)
    assert _generate(clean, _params(1_000, seed=4)).orders == 1_000


def test_a_failure_half_way_leaves_nothing_behind(clean: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "DEFER_INDEXES_FROM", 1)

    class Failing(Sealer):
        calls = 0

        def seal_bytes(self, plain: bytes, nonce: bytes | None = None) -> bytes:
            Failing.calls += 1
            if Failing.calls > 2_500:
                raise RuntimeError("disk on fire")
            return super().seal_bytes(plain, nonce)

    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_belt(clean.engine, _params(4_000, chunk=1_000), Failing(clean.settings.pii_key))
    with clean.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0, table.name
        # The dropped indexes came back with the rollback.
        assert {ix["name"] for ix in inspect(conn).get_indexes("orders")} >= {"ix_orders_status_paid_at"}


def test_params_scale_and_refuse_nonsense(tmp_path: Any) -> None:
    p = BeltParams.scaled(20_000, day=DAY)
    d = BeltParams(day=DAY)
    assert (p.workshops, p.warehouses, p.skus, p.merchants) == (
        d.workshops,
        d.warehouses,
        d.skus,
        d.merchants,
    )
    big = BeltParams.scaled(12_000_000, workshops=None, merchants=800)
    assert (big.workshops, big.warehouses, big.skus, big.merchants) == (5_000, 60, 40_000, 800)
    with pytest.raises(ValueError, match=r"BeltParams.skus \(10\) must be at least BeltParams.merchants"):
        BeltParams(skus=10, merchants=20).validate()
    with pytest.raises(ValueError, match=r"BeltParams\.orders"):
        BeltParams(orders=0).validate()
    # An empty database: told to migrate.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(BeltError, match=r"not migrated.*fulfil migrate"):
            generate_belt(engine, _params(1_000), Sealer(bytes(32)))
    finally:
        engine.dispose()


def test_cli_generate_and_bench(clean: Backend) -> None:
    assert "fulfil.cli.generate" in _COMMAND_MODULES
    runner = CliRunner()
    args = ["--orders", "1500", "--day", "2025-03-01", "--seed", "5"]
    result = runner.invoke(main, ["generate", *args])
    assert result.exit_code == 0, result.output
    assert "orders" in result.stdout and "1,500" in result.stdout

    again = runner.invoke(main, ["generate", *args])
    assert again.exit_code == 1
    assert "already holds belt 'changshu'" in again.stderr and "--reset" in again.stderr

    bench = runner.invoke(main, ["bench", "generate", *args, "--reset"])
    assert bench.exit_code == 0, bench.output
    lines = bench.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["bench"] == "generate" and record["database"] == clean.name
    assert record["orders"] == 1500 and record["order_lines"] >= 1500
    assert record["seconds"] > 0 and record["orders_per_s"] > 0 and record["peak_rss_mb"] > 0


def test_bench_belt_plans_a_generated_day_and_can_roll_it_back(clean: Backend) -> None:
    runner = CliRunner()
    small = ["--workshops", "30", "--warehouses", "3", "--skus", "300", "--seconds", "10"]
    first = runner.invoke(main, ["bench", "belt", "--orders", "1500", *small, "--rollback"])
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["bench"] == "belt" and record["database"] == clean.name and record["orders"] == 1500
    assert record["workshops"] == 30 and record["warehouses"] == 3 and record["skus"] == 300
    assert (
        record["bound"] is not None and record["bound"] <= record["objective"] <= record["greedy_objective"]
    )
    assert record["seconds"] >= record["solve_seconds"] > 0 and record["peak_rss_mb"] > 0
    assert record["decisions"] > 0 and record["rolled_back"] is True
    with clean.engine.connect() as c:  # rolled back: the orders wait in the pool again, nothing is decided
        assert c.execute(select(func.count()).select_from(AllocationDecision)).scalar_one() == 0
        assert c.execute(select(func.count()).where(Order.status == OrderState.PAID)).scalar_one() == 1500

    again = runner.invoke(main, ["bench", "belt", "--orders", "1500", *small, "--reuse"])
    assert again.exit_code == 0, again.output
    kept = json.loads(again.stdout.strip().splitlines()[-1])
    assert kept["objective"] == record["objective"] and kept["rolled_back"] is False
    with clean.engine.connect() as c:
        assert (
            c.execute(select(func.count()).select_from(AllocationDecision)).scalar_one() == kept["decisions"]
        )

    refused = runner.invoke(main, ["bench", "belt", "--orders", "1500", *small])
    assert refused.exit_code == 1 and "--reuse" in refused.stderr


def test_bench_belt_plans_a_closed_batch_again(clean: Backend) -> None:
    runner = CliRunner()
    small = ["--workshops", "30", "--warehouses", "3", "--skus", "300"]
    made = runner.invoke(main, ["generate", "--orders", "1500", *small, "--day", "2025-03-01"])
    assert made.exit_code == 0, made.output
    # the batching tick puts the day's orders in one-day batches and, the next day, closes them
    ticked = runner.invoke(
        main, ["batches", "tick", "--now", "2025-03-02T12:00:00", "--window-minutes", "1440"]
    )
    assert ticked.exit_code == 0, ticked.output
    with clean.engine.connect() as c:
        batch_id, n = c.execute(
            select(Order.batch_id, func.count())
            .group_by(Order.batch_id)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
    assert batch_id is not None

    again = runner.invoke(main, ["bench", "belt", "--batch", str(batch_id), "--seconds", "10", "--rollback"])
    assert again.exit_code == 0, again.output
    record = json.loads(again.stdout.strip().splitlines()[-1])
    assert record["orders"] == n and record["decisions"] > 0 and record["rolled_back"] is True, json.dumps(
        record
    )
    with clean.engine.connect() as c:  # rolled back: the batch is closed and its orders wait in it
        assert c.execute(select(Batch.status).where(Batch.id == batch_id)).scalar_one() == BatchState.CLOSED
        assert c.execute(select(func.count()).select_from(AllocationDecision)).scalar_one() == 0

    missing = runner.invoke(main, ["bench", "belt", "--batch", "999999"])
    assert missing.exit_code == 1 and "batch 999999 does not exist" in missing.stderr
    both = runner.invoke(main, ["bench", "belt", "--batch", str(batch_id), "--reuse"])
    assert both.exit_code == 2 and "--batch" in both.stderr


@pytest.mark.parametrize(
    ("orders", "merchants", "skus", "workshops"), [(20_000, 40, 2_000, 200), (1_000_000, 500, 20_000, 3_000)]
)
def test_a_style_hosts_may_feature_is_qualified_for_a_streams_share(
    orders: int, merchants: int, skus: int, workshops: int
) -> None:
    # one day of regular minutes at the workshops qualified for such a style (in its family) covers an average
    # stream's share of the day's pieces, or every workshop of the family is qualified; with a fixed handful
    # of workshops per style, a 1M-order day left 114,000 orders with nowhere to be made
    from fulfil.belt.master import (
        STREAM_SHARE,
        UNITS_PER_ORDER,
        generate_master,
        stream_candidates,
        stream_count,
    )

    day = dt.date(2026, 12, 2)  # a Wednesday: no workshop rests
    m = generate_master(
        seed=1, day=day, orders=orders, merchants=merchants, skus=skus, workshops=workshops, warehouses=8
    )
    q, cap, st = (m.table(t).columns for t in ("qualifications", "workshop_capacity", "styles"))
    q_style, q_ws = np.asarray(q["style_id"]), np.asarray(q["workshop_id"])
    c_ws, c_fam, c_reg = (np.asarray(cap[c]) for c in ("workshop_id", "process_family_id", "regular_minutes"))
    on_day = np.asarray(cap["day"]) == day
    family, minutes = np.asarray(st["process_family_id"]), np.asarray(st["minutes_per_unit"])
    n_streams = stream_count(merchants)
    for s in stream_candidates(m.style_weight, n_streams).tolist():
        qualified = q_ws[q_style == s]
        in_family = c_fam == family[s]
        have = c_reg[on_day & in_family & np.isin(c_ws, qualified)].sum()
        need = orders * UNITS_PER_ORDER * STREAM_SHARE / n_streams * minutes[s]
        assert have >= need or set(qualified.tolist()) == set(c_ws[in_family].tolist()), s
