"""Ship confirmation write-back: a picked-up parcel's tracking number reaches the platform once, retried with
backoff on a platform fault, failed with its reason on a refusal — against the platform fakes."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select

from fulfil import db
from fulfil.domain.models import (
    Batch,
    ExceptionItem,
    Order,
    OutboxJob,
    Parcel,
    Platform,
    ShipConfirmation,
    SiteKind,
    Workshop,
)
from fulfil.domain.states import BatchState, IllegalTransition, OrderState, ParcelState
from fulfil.intake import credentials, platforms, shipback
from fulfil.jobs import retries
from integrations.base import AppCredential
from integrations.fakes import Failure
from integrations.fakes.doudian import DoudianFake
from integrations.fakes.kuaishou import KuaishouFake
from integrations.fakes.shopify import ShopifyFake
from integrations.fakes.taobao import TaobaoFake
from integrations.fakes.taobao import credential as top_credential
from tests.conftest import Backend
from tests.test_normalise import DOUDIAN, Shop, register, seed_shop

SKUS = ["SK-1", "SK-2", "SK-3"]
T0 = dt.datetime(2026, 11, 23, 12, 0)


@pytest.fixture(autouse=True)
def _leave_the_database_empty(clean: Backend) -> Iterator[None]:
    """Leave nothing behind: the demo's test refuses a database that holds shops but no orders."""
    yield
    clean.truncate()


@dataclass
class Case:
    """One platform: its fake, a paid order there, and how to count the confirmations it accepted."""

    platform: str
    shop_code: str
    fake: Any
    order_id: str
    accepted: Callable[[], list[str]]  # tracking numbers the platform recorded, one per confirmation
    shop: Shop | None = None  # ours, once seeded


def _douyin(b: Backend) -> Case:
    fake = DoudianFake(DOUDIAN, sku_codes=SKUS, shop_codes=["4463798"], seed=1)
    [event] = fake.create_orders(1)
    return Case(
        "doudian", "4463798", fake, event.order_id, lambda: [c.tracking_number for c in fake.confirmations]
    )


KUAISHOU = AppCredential(
    "kuaishou",
    "ks-app-1",
    "ks-sign-secret",
    {"message_key": base64.b64encode(bytes(range(16))).decode(), "access_token": "ks-token"},
)


def _kuaishou(b: Backend) -> Case:
    fake = KuaishouFake(KUAISHOU, sku_codes=SKUS, shop_codes=["10086"], seed=2)
    [event] = fake.create_orders(1)
    return Case(
        "kuaishou", "10086", fake, event.order_id, lambda: [c.tracking_number for c in fake.confirmations]
    )


TAOBAO = top_credential("top-app-1", "top-secret-1", ["tb-1"])


def _taobao(b: Backend) -> Case:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    fake = TaobaoFake(TAOBAO, shop_codes=["tb-1"], sku_codes=SKUS, seed=3, now=now, orders_per_shop=0)
    order = fake.new_order("tb-1", paid=True)
    return Case(
        "taobao",
        "tb-1",
        fake,
        order.order_id,
        lambda: [s.tracking for s in fake.shipments.values()] if fake.shipments else [],
    )


SHOPIFY = AppCredential("shopify", "shopify-app", "shpss_secret", {"access_token": "shpat_token"})


def _shopify(b: Backend) -> Case:
    fake = ShopifyFake(SHOPIFY, sku_codes=SKUS, shop_codes=["belt.myshopify.com"], seed=4)
    [event] = fake.create_orders(1)
    return Case(
        "shopify",
        "belt.myshopify.com",
        fake,
        event.order_id,
        lambda: [c.tracking_number for c in fake.confirmations],
    )


CREDENTIALS = {"doudian": DOUDIAN, "kuaishou": KUAISHOU, "taobao": TAOBAO, "shopify": SHOPIFY}
CASES = {"doudian": _douyin, "kuaishou": _kuaishou, "taobao": _taobao, "shopify": _shopify}


@pytest.fixture
def apis() -> Iterator[dict[str, Any]]:
    registry: dict[str, Any] = {}
    platforms.set_http_client_factory(
        lambda p: httpx.Client(transport=httpx.MockTransport(lambda r: registry[p].handler(r)))
    )
    credentials.invalidate_cache()
    yield registry
    platforms.reset()
    credentials.invalidate_cache()


def packed_order(
    engine: Engine, shop: Shop, platform: str, number: str, parcels: int = 1
) -> tuple[int, list[int]]:
    """Our order ``number`` packed, in ``parcels`` packed parcels waiting for the courier."""
    with engine.begin() as c:
        ws = c.execute(select(Workshop.id)).scalar_one_or_none()
        if ws is None:
            ws = c.execute(
                insert(Workshop)
                .values(code="W1", name="一厂", town="虞山", lon=120.76, lat=31.66, workers=30, quality=0.98,
                        reliability=0.95, active=True)
                .returning(Workshop.id)
            ).scalar_one()  # fmt: skip
        batch = c.execute(
            insert(Batch)
            .values(status=BatchState.PLANNED, window_start=T0, window_end=T0, order_count=1)
            .returning(Batch.id)
        ).scalar_one()
        oid = c.execute(
            insert(Order)
            .values(
                platform=Platform(platform),
                shop_id=shop.shop_id,
                platform_order_id=number,
                merchant_id=shop.merchant_id,
                status=OrderState.PACKED,
                created_at=T0,
                paid_at=T0,
                ship_by=T0 + dt.timedelta(hours=48),
                presale=False,
                province="44",
                city="广州市",
                receiver_sealed=b"sealed",
                batch_id=batch,
            )
            .returning(Order.id)
        ).scalar_one()
        pids = [
            c.execute(
                insert(Parcel)
                .values(
                    order_id=oid,
                    batch_id=batch,
                    site_kind=SiteKind.WORKSHOP,
                    workshop_id=ws,
                    status=ParcelState.PACKED,
                    weight_g=600,
                    ready_on=T0.date(),
                )
                .returning(Parcel.id)
            ).scalar_one()
            for _ in range(parcels)
        ]
    return oid, pids


def setup(b: Backend, apis: dict[str, Any], platform: str, credential: AppCredential | None = None) -> Case:
    case = CASES[platform](b)
    apis[platform] = case.fake
    shop = seed_shop(b.engine, platform, case.shop_code, SKUS)
    register(b, credential or CREDENTIALS[platform])
    case.shop = shop
    return case


def _shop(case: Case) -> Shop:
    assert case.shop is not None
    return case.shop


def pick_up(
    b: Backend, case: Case, tracking: str = "73100000000001", courier: str = "ZTO"
) -> tuple[int, int, int]:
    oid, [pid] = packed_order(b.engine, _shop(case), case.platform, case.order_id)
    with db.session_scope(b.engine) as s:
        [cid] = shipback.parcels_picked_up(s, [pid], {pid: (courier, tracking)})
    return oid, pid, cid


def confirmation(engine: Engine, cid: int) -> Any:
    with engine.connect() as c:
        return c.execute(
            select(
                ShipConfirmation.status,
                ShipConfirmation.attempts,
                ShipConfirmation.next_attempt_at,
                ShipConfirmation.last_error,
                ShipConfirmation.request_id,
            ).where(ShipConfirmation.id == cid)
        ).one()


@pytest.mark.parametrize("platform", ["doudian", "kuaishou", "taobao", "shopify"])
def test_a_picked_up_parcel_is_confirmed_to_its_platform_once(
    clean: Backend, apis: dict[str, Any], platform: str
) -> None:
    case = setup(clean, apis, platform)
    oid, pid, cid = pick_up(clean, case)
    with clean.engine.connect() as c:
        assert c.execute(select(Parcel.status).where(Parcel.id == pid)).scalar_one() == ParcelState.PICKED_UP
        assert c.execute(select(Order.status).where(Order.id == oid)).scalar_one() == OrderState.SHIPPED
        assert c.execute(select(OutboxJob.task, OutboxJob.args)).all() == [("confirm_shipment", [cid])]
    status, attempts, _, _, request = confirmation(clean.engine, cid)
    assert (status, attempts) == ("pending", 0)
    assert request == shipback.request_id(pid, "ZTO", "73100000000001")

    assert shipback.confirm_shipment(cid) == "done"
    assert shipback.confirm_shipment(cid) == "done"  # the job ran twice: the platform heard once
    assert case.accepted() == ["73100000000001"]
    assert confirmation(clean.engine, cid)[:2] == ("done", 1)


def test_a_server_error_is_retried_after_its_backoff(
    clean: Backend, apis: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = setup(clean, apis, "doudian")
    _, _, cid = pick_up(clean, case)
    case.fake.fail_next(Failure.SERVER_ERROR)
    assert shipback.confirm_shipment(cid) == "pending"
    status, attempts, next_at, error, _ = confirmation(clean.engine, cid)
    assert (status, attempts) == ("pending", 1) and "503" in error
    assert shipback.confirm_shipment(cid) == "skipped"  # not due yet: a stray rerun calls nobody
    assert case.accepted() == []

    with db.session_scope(clean.engine) as s:
        assert shipback.requeue_due(s, now=next_at - dt.timedelta(seconds=1)) == 0
    with db.session_scope(clean.engine) as s:
        assert shipback.requeue_due(s, now=next_at) == 1
    monkeypatch.setattr(shipback, "_utcnow", lambda: next_at + dt.timedelta(seconds=1))
    assert shipback.confirm_shipment(cid) == "done"
    assert case.accepted() == ["73100000000001"]
    assert confirmation(clean.engine, cid)[:2] == ("done", 2)
    with clean.engine.connect() as c:
        assert [a for t, a in c.execute(select(OutboxJob.task, OutboxJob.args))] == [[cid], [cid]]


def test_backoff_grows_and_retries_are_bounded(
    clean: Backend, apis: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [retries.backoff(n).total_seconds() for n in range(1, 9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
    ]
    case = setup(clean, apis, "doudian")
    _, _, cid = pick_up(clean, case)
    clock = {"now": dt.datetime.now(dt.UTC).replace(tzinfo=None)}
    monkeypatch.setattr(shipback, "_utcnow", lambda: clock["now"])
    for attempt in range(1, retries.MAX_ATTEMPTS + 1):
        case.fake.fail_next(Failure.TIMEOUT)
        result = shipback.confirm_shipment(cid)
        status, attempts, next_at, error, _ = confirmation(clean.engine, cid)
        assert attempts == attempt and "timed out" in error
        if attempt < retries.MAX_ATTEMPTS:
            assert result == "pending" and next_at == clock["now"] + retries.backoff(attempt)
            clock["now"] = next_at
    assert (result, status) == ("failed", "failed")
    assert f"gave up after {retries.MAX_ATTEMPTS} attempts" in error
    with clean.engine.connect() as c:
        [(kind, subject, payload)] = c.execute(
            select(ExceptionItem.kind, ExceptionItem.subject, ExceptionItem.payload)
        ).all()
    assert (kind, subject) == ("ship_confirmation_failed", f"ship confirmation {cid}")
    assert payload["tracking_number"] == "73100000000001"
    assert case.accepted() == []


def test_a_refused_signature_fails_with_the_reason(clean: Backend, apis: dict[str, Any]) -> None:
    wrong = AppCredential(DOUDIAN.platform, DOUDIAN.app_key, "not-the-secret", dict(DOUDIAN.extra))
    case = setup(clean, apis, "doudian", credential=wrong)
    _, _, cid = pick_up(clean, case)
    assert shipback.confirm_shipment(cid) == "failed"
    status, attempts, _, error, _ = confirmation(clean.engine, cid)
    assert (status, attempts) == ("failed", 1)
    assert "signature" in error and "not-the-secret" not in error
    with clean.engine.connect() as c:
        [(kind, reason)] = c.execute(select(ExceptionItem.kind, ExceptionItem.reason)).all()
    assert kind == "ship_confirmation_failed" and reason == error
    assert shipback.confirm_shipment(cid) == "failed"  # and stays so
    assert case.accepted() == []


def test_two_runs_at_once_make_one_call(clean: Backend, apis: dict[str, Any]) -> None:
    case = setup(clean, apis, "kuaishou")
    _, _, cid = pick_up(clean, case)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(shipback.confirm_shipment(cid))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results).count("done") >= 1 and set(results) <= {"done", "skipped"}
    calls = [r for r in case.fake.calls if "deliver" in str(r.url)]
    assert len(calls) == 1 and case.accepted() == ["73100000000001"]


def test_a_split_order_ships_when_its_last_parcel_is_picked_up(clean: Backend, apis: dict[str, Any]) -> None:
    case = setup(clean, apis, "doudian")
    oid, (p1, p2) = packed_order(clean.engine, _shop(case), "doudian", case.order_id, parcels=2)
    with db.session_scope(clean.engine) as s:
        shipback.parcels_picked_up(s, [p1], {p1: ("YUNDA", "4300000000001")})
    with clean.engine.connect() as c:
        assert c.execute(select(Order.status).where(Order.id == oid)).scalar_one() == OrderState.PACKED
    with db.session_scope(clean.engine) as s:
        shipback.parcels_picked_up(s, [p2], {p2: ("YUNDA", "4300000000002")})
    with clean.engine.connect() as c:
        assert c.execute(select(Order.status).where(Order.id == oid)).scalar_one() == OrderState.SHIPPED
        assert c.execute(
            select(ShipConfirmation.tracking_number).order_by(ShipConfirmation.id)
        ).scalars().all() == [
            "4300000000001",
            "4300000000002",
        ]


def test_bad_pickups_are_refused_by_name_and_write_nothing(clean: Backend, apis: dict[str, Any]) -> None:
    case = setup(clean, apis, "doudian")
    _, (pid,) = packed_order(clean.engine, _shop(case), "doudian", case.order_id)
    with pytest.raises(ValueError, match=f"parcel\\(s\\) \\[{pid}\\]"), db.session_scope(clean.engine) as s:
        shipback.parcels_picked_up(s, [pid], {})
    with pytest.raises(ValueError, match="unknown courier 'DHL'"), db.session_scope(clean.engine) as s:
        shipback.parcels_picked_up(s, [pid], {pid: ("DHL", "1")})
    with db.session_scope(clean.engine) as s:
        shipback.parcels_picked_up(s, [pid], {pid: ("SF", "SF100")})
    with pytest.raises(IllegalTransition, match=f"parcel {pid}: cannot pick_up in state picked_up"):
        with db.session_scope(clean.engine) as s:
            shipback.parcels_picked_up(s, [pid], {pid: ("SF", "SF100")})
    with clean.engine.connect() as c:
        assert len(c.execute(select(ShipConfirmation.id)).all()) == 1
