"""Normalisation end to end: signed pushes from the platform fakes → inbox → ``normalise_inbox`` → orders,
with the platforms' APIs answered by the fakes through ``httpx.MockTransport``."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import OperationalError

from fulfil import db
from fulfil.domain.models import (
    ExceptionItem,
    InboxMessage,
    InboxStatus,
    Merchant,
    Order,
    OrderLine,
    OutboxJob,
    Platform,
    PlatformShop,
    PlatformSkuMapping,
    ProcessFamily,
    Sku,
    Style,
)
from fulfil.domain.states import OrderState
from fulfil.intake import credentials, inbox, normalise, platforms
from fulfil.intake.convergence import Incoming, Outcome
from fulfil.pii import Sealer
from integrations import doudian, shopify
from integrations.base import Address, AppCredential, CanonicalOrder, OrderStatus, PushAdapter
from integrations.base import OrderLine as CanonicalLine
from integrations.fakes import Failure, FakeEvent, FakePlatform
from integrations.fakes.doudian import DoudianFake
from integrations.fakes.shopify import ShopifyFake
from tests.conftest import Backend

SKU_CODES = ["DY-RED-M", "DY-RED-L", "DY-BLK-M", "DY-BLK-L", "DY-WHT-S"]
DOUDIAN_SHOP = "4463798"
DOUDIAN = AppCredential("doudian", "7012345678901234567", "dy-secret-1", {"access_token": "dy-token"})


@pytest.fixture(autouse=True)
def _leave_the_database_empty(clean: Backend) -> Iterator[None]:
    """Leave nothing behind: the demo's test refuses a database that holds shops but no orders."""
    yield
    clean.truncate()


@dataclass
class Shop:
    merchant_id: int
    shop_id: int
    skus: dict[str, int]  # platform SKU code -> SKU id


def seed_shop(
    engine: Engine,
    platform: str,
    shop_code: str,
    sku_codes: Sequence[str],
    *,
    mapped: Sequence[str] | None = None,
    merchant_code: str = "M1",
) -> Shop:
    """A merchant (made once), a style with one SKU per code, the platform shop and its SKU mappings."""
    with engine.begin() as c:
        mid = c.execute(select(Merchant.id).where(Merchant.code == merchant_code)).scalar_one_or_none()
        if mid is None:
            mid = c.execute(
                insert(Merchant)
                .values(
                    code=merchant_code, name="虞山服饰", town="虞山", lon=120.75, lat=31.65, pools_stock=False
                )
                .returning(Merchant.id)
            ).scalar_one()
        fam = c.execute(select(ProcessFamily.id)).scalar_one_or_none()
        if fam is None:
            fam = c.execute(
                insert(ProcessFamily).values(code="sew", name="cut and sew").returning(ProcessFamily.id)
            ).scalar_one()
        style = c.execute(
            insert(Style)
            .values(
                merchant_id=mid,
                code=f"ST-{platform}-{shop_code}"[:64],
                name="针织衫",
                process_family_id=fam,
                minutes_per_unit=2.0,
                min_lot=20,
                changeover_fen=1000,
            )
            .returning(Style.id)
        ).scalar_one()
        skus = {
            code: c.execute(
                insert(Sku)
                .values(style_id=style, code=code, colour="黑", size="M", weight_g=300)
                .returning(Sku.id)
            ).scalar_one()
            for code in sku_codes
        }
        sid = c.execute(
            insert(PlatformShop)
            .values(platform=Platform(platform), shop_code=shop_code, name="旗舰店", merchant_id=mid)
            .returning(PlatformShop.id)
        ).scalar_one()
        rows = [
            {"shop_id": sid, "platform_sku_code": code, "sku_id": skus[code]}
            for code in (sku_codes if mapped is None else mapped)
        ]
        if rows:
            c.execute(insert(PlatformSkuMapping), rows)
    return Shop(mid, sid, skus)


def register(b: Backend, credential: AppCredential, merchant_code: str | None = "M1") -> None:
    with db.session_scope(b.engine) as s:
        credentials.register_app(
            s,
            Sealer(b.settings.pii_key),
            credential.platform,
            credential.app_key,
            credential.secret,
            merchant_code,
            extra=dict(credential.extra),
        )
    credentials.invalidate_cache()


@pytest.fixture
def apis() -> Iterator[dict[str, Any]]:
    """platform -> the fake answering its API (every client the intake makes goes to it)."""
    registry: dict[str, Any] = {}

    def factory(platform: str) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(lambda r: registry[platform].handler(r)))

    platforms.set_http_client_factory(factory)
    credentials.invalidate_cache()
    yield registry
    platforms.reset()
    credentials.invalidate_cache()


def deliver(b: Backend, fake: FakePlatform, adapter: PushAdapter, events: Sequence[FakeEvent]) -> list[int]:
    """Each event as the platform pushes it, verified, parsed and stored: the new inbox ids."""
    ids: list[int] = []
    for headers, body in fake.pushes(events):
        cred = adapter.verify(headers, body, [fake.credential])
        messages = adapter.parse(headers, body, cred)
        with db.session_scope(b.engine) as s:
            ids.extend(inbox.store_push(s, fake.platform, cred.app_key, messages).new_ids)
    return ids


def inbox_rows(engine: Engine, ids: Sequence[int]) -> list[tuple[InboxStatus, int | None, int]]:
    with engine.connect() as c:
        return [
            (InboxStatus(s), o, a)
            for s, o, a in c.execute(
                select(InboxMessage.status, InboxMessage.order_id, InboxMessage.attempts)
                .where(InboxMessage.id.in_(ids))
                .order_by(InboxMessage.id)
            )
        ]


def douyin(
    b: Backend, apis: dict[str, Any], *, mapped: Sequence[str] | None = None
) -> tuple[DoudianFake, Shop]:
    shop = seed_shop(b.engine, "doudian", DOUDIAN_SHOP, SKU_CODES, mapped=mapped)
    register(b, DOUDIAN)
    fake = DoudianFake(DOUDIAN, sku_codes=SKU_CODES, shop_codes=[DOUDIAN_SHOP], seed=3)
    apis["doudian"] = fake
    return fake, shop


# --- the happy path ----------------------------------------------------------------------------------------


def test_pushed_orders_become_orders_with_their_lines_and_addresses(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, shop = douyin(clean, apis)
    events = fake.create_orders(30)
    ids = deliver(clean, fake, doudian.push, events)
    assert len(ids) == 30

    summary = normalise.normalise_inbox(*ids)
    assert (summary.normalised, summary.exceptions, summary.retrying) == (30, 0, 0)
    rows = inbox_rows(clean.engine, ids)
    assert {s for s, _, _ in rows} == {InboxStatus.NORMALISED}
    sealer = Sealer(clean.settings.pii_key)
    with clean.engine.connect() as c:
        orders = {
            number: (oid, status, province, city, sealed, ship_by, paid_at)
            for oid, number, status, province, city, sealed, ship_by, paid_at in c.execute(
                select(
                    Order.id,
                    Order.platform_order_id,
                    Order.status,
                    Order.province,
                    Order.city,
                    Order.receiver_sealed,
                    Order.ship_by,
                    Order.paid_at,
                )
            )
        }
        lines = c.execute(select(OrderLine.order_id, OrderLine.sku_id, OrderLine.quantity)).all()
    assert sorted(o for _, o, _ in rows) == sorted(v[0] for v in orders.values())
    provinces = {
        "江苏省": "32",
        "浙江省": "33",
        "广东省": "44",
        "上海市": "31",
        "北京市": "11",
        "天津市": "12",
    }
    for event in events:
        want = fake.order(event.order_id)
        oid, status, province, city, sealed, ship_by, paid_at = orders[want.order_id]
        assert status == OrderState.PAID
        assert paid_at == want.paid_at.replace(microsecond=0)  # type: ignore[union-attr]
        assert ship_by == (want.ship_by or paid_at + dt.timedelta(hours=48)).replace(microsecond=0)
        if want.address.province in provinces:
            assert province == provinces[want.address.province]
        municipal = want.address.province in ("上海市", "北京市", "天津市", "重庆市")
        assert city == (want.address.district if municipal else want.address.city)
        assert sealer.open(sealed).phone == want.address.phone
        assert sorted((s, q) for o, s, q in lines if o == oid) == sorted(
            (shop.skus[line.sku_code], line.quantity) for line in want.lines
        )


def test_running_twice_changes_nothing_and_runs_at_once_make_one_order_each(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, _ = douyin(clean, apis)
    created = fake.create_orders(10, paid=False)
    paid = [fake.pay(e.order_id) for e in created]
    ids = deliver(clean, fake, doudian.push, created + paid)  # two messages per order
    errors: list[BaseException] = []

    def run(some: list[int]) -> None:
        try:
            normalise.normalise_inbox(*some)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    # all of them twice, and the "created" and the "paid" messages of the same orders apart, all at once
    parts = [ids[:10], ids[10:], ids, ids]
    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    again = normalise.normalise_inbox(*ids)
    assert again.skipped == len(ids) and again.normalised == 0
    with clean.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(Order)).scalar_one() == 10
        assert set(c.execute(select(Order.status)).scalars()) == {OrderState.PAID}
        per_order = c.execute(
            select(InboxMessage.order_id, func.count()).group_by(InboxMessage.order_id)
        ).all()
    assert len(per_order) == 10 and all(n == 2 for _, n in per_order)
    assert {s for s, _, _ in inbox_rows(clean.engine, ids)} <= {InboxStatus.NORMALISED, InboxStatus.IGNORED}


def test_a_cancellation_delivered_before_the_payment_converges(clean: Backend, apis: dict[str, Any]) -> None:
    fake, _ = douyin(clean, apis)
    [created] = fake.create_orders(1, paid=False)
    paid = fake.pay(created.order_id)
    cancelled = fake.cancel(created.order_id)
    first = deliver(clean, fake, doudian.push, [cancelled])
    normalise.normalise_inbox(*first)
    late = deliver(clean, fake, doudian.push, [paid, created])
    normalise.normalise_inbox(*late)
    with clean.engine.connect() as c:
        assert c.execute(select(Order.status)).scalars().all() == [OrderState.CANCELLED]
    statuses = [s for s, _, _ in inbox_rows(clean.engine, first + late)]
    assert statuses[0] == InboxStatus.NORMALISED
    assert statuses[1:] == [InboxStatus.IGNORED, InboxStatus.IGNORED]  # the platform's state was already here


# --- listing instead of one call per order -----------------------------------------------------------------


def _methods(fake: FakePlatform) -> Counter[str]:
    return Counter(str(r.url.params.get("method")) for r in fake.calls)


def test_many_orders_of_one_app_come_from_its_listing_a_page_per_call(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, shop = douyin(clean, apis)
    events = fake.create_orders(250)
    ids = deliver(clean, fake, doudian.push, events)
    fake.calls.clear()
    summary = normalise.normalise_inbox(*ids)
    assert (summary.normalised, summary.exceptions, summary.retrying) == (250, 0, 0)
    methods = _methods(fake)
    assert methods["order.orderDetail"] == 0 and 3 <= methods["order.searchList"] <= 4
    with clean.engine.connect() as c:
        lines = c.execute(
            select(Order.platform_order_id, OrderLine.sku_id, OrderLine.quantity).join(
                Order, Order.id == OrderLine.order_id
            )
        ).all()
    got: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for number, sku, quantity in lines:
        got[number].append((sku, quantity))
    assert len(got) == 250
    for event in events:
        want = fake.order(event.order_id)
        assert sorted(got[event.order_id]) == sorted(
            (shop.skus[ln.sku_code], ln.quantity) for ln in want.lines
        )


class LaggingListing:
    """The Douyin fake behind a lagging listing index: some orders not listed yet, some as they were."""

    def __init__(self, fake: DoudianFake) -> None:
        self.fake = fake
        self.missing: set[str] = set()
        self.stale: dict[str, dict[str, Any]] = {}  # order id -> the detail the listing still shows

    def handler(self, request: httpx.Request) -> httpx.Response:
        response = self.fake.handler(request)
        if request.url.params.get("method") != "order.searchList":
            return response
        doc = response.json()
        listed = [d for d in doc["data"]["shop_order_list"] if d["order_id"] not in self.missing]
        doc["data"]["shop_order_list"] = [self.stale.get(d["order_id"], d) for d in listed]
        return httpx.Response(200, json=doc, request=request)


def test_an_order_the_listing_misses_or_shows_older_than_its_message_is_fetched_on_its_own(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, _ = douyin(clean, apis)
    lagging = apis["doudian"] = LaggingListing(fake)
    events = fake.create_orders(30)
    missing, changed = events[4].order_id, events[7].order_id
    lagging.missing.add(missing)
    lagging.stale[changed] = fake.detail(fake.order(changed))  # still paid in the listing ...
    cancel = fake.cancel(changed, at=fake.now + dt.timedelta(seconds=10))  # ... though cancelled since
    ids = deliver(clean, fake, doudian.push, [*events, cancel])
    fake.calls.clear()
    summary = normalise.normalise_inbox(*ids)
    assert summary.exceptions == 0 and summary.retrying == 0
    fetched = sorted(
        json.loads(r.content)["shop_order_id"]
        for r in fake.calls
        if r.url.params["method"] == "order.orderDetail"
    )
    assert fetched == sorted([missing, changed])
    with clean.engine.connect() as c:
        states = {n: s for n, s in c.execute(select(Order.platform_order_id, Order.status))}
    assert len(states) == 30
    assert states[changed] == OrderState.CANCELLED and states[missing] == OrderState.PAID


def test_a_failed_listing_falls_back_to_one_call_per_order_and_a_few_orders_are_never_listed(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, _ = douyin(clean, apis)
    ids = deliver(clean, fake, doudian.push, fake.create_orders(30))
    fake.calls.clear()
    fake.fail_next(Failure.SERVER_ERROR)  # the listing's one page
    assert normalise.normalise_inbox(*ids).normalised == 30
    assert _methods(fake) == {"order.searchList": 1, "order.orderDetail": 30}

    few = deliver(clean, fake, doudian.push, fake.create_orders(normalise.LIST_MIN - 1))
    fake.calls.clear()
    assert normalise.normalise_inbox(*few).normalised == normalise.LIST_MIN - 1
    assert _methods(fake) == {"order.orderDetail": normalise.LIST_MIN - 1}


# --- what cannot be normalised waits, named --------------------------------------------------------------


def _exception_items(engine: Engine) -> list[tuple[str, str, str, dict[str, Any]]]:
    with engine.connect() as c:
        return [
            (k, s, r, p)
            for k, s, r, p in c.execute(
                select(ExceptionItem.kind, ExceptionItem.subject, ExceptionItem.reason, ExceptionItem.payload)
                .where(ExceptionItem.status == "open")
                .order_by(ExceptionItem.id)
            )
        ]


def test_an_unknown_sku_waits_with_its_code_and_goes_through_once_mapped(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, shop = douyin(clean, apis, mapped=SKU_CODES[1:])
    events = fake.create_orders(40)
    ids = deliver(clean, fake, doudian.push, events)
    summary = normalise.normalise_inbox(*ids)
    waiting = [
        e for e in events if any(line.sku_code == SKU_CODES[0] for line in fake.order(e.order_id).lines)
    ]
    assert waiting, "the seed gives some orders the unmapped hit SKU"
    assert (summary.normalised, summary.exceptions) == (40 - len(waiting), len(waiting))
    items = _exception_items(clean.engine)
    assert {k for k, _, _, _ in items} == {"unknown_sku"}
    assert all(repr(SKU_CODES[0]) in r and p["codes"] == [SKU_CODES[0]] for _, _, r, p in items)
    stuck = sorted(p["inbox_id"] for _, _, _, p in items)

    with clean.engine.begin() as c:
        c.execute(
            insert(PlatformSkuMapping).values(
                shop_id=shop.shop_id, platform_sku_code=SKU_CODES[0], sku_id=shop.skus[SKU_CODES[0]]
            )
        )
    with db.session_scope(clean.engine) as s:
        assert normalise.requeue(s, stuck) == len(waiting)
    normalise.normalise_inbox(*stuck)
    assert {s for s, _, _ in inbox_rows(clean.engine, ids)} == {InboxStatus.NORMALISED}
    assert _exception_items(clean.engine) == []  # resolved when put back
    with clean.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(Order)).scalar_one() == 40


def test_unknown_shops_heartbeats_and_orderless_messages_end_at_once(
    clean: Backend, apis: dict[str, Any]
) -> None:
    fake, _ = douyin(clean, apis)
    other = DoudianFake(DOUDIAN, sku_codes=SKU_CODES, shop_codes=["999"], seed=4)
    ids = deliver(clean, other, doudian.push, other.create_orders(2))
    with clean.engine.begin() as c:
        extra = c.execute(
            insert(InboxMessage).returning(InboxMessage.id, sort_by_parameter_order=True),
            [
                {"platform": Platform.KUAISHOU, "message_id": "hb-1", "topic": "test", "event": "heartbeat",
                 "raw": b"{}", "status": InboxStatus.RECEIVED, "attempts": 0},
                {"platform": Platform.DOUDIAN, "message_id": "x-1", "topic": "999", "event": "updated",
                 "shop_code": DOUDIAN_SHOP, "raw": b"{}", "status": InboxStatus.RECEIVED, "attempts": 0},
            ],
        ).scalars().all()  # fmt: skip
    summary = normalise.normalise_inbox(*ids, *extra)
    assert (summary.ignored, summary.exceptions) == (2, 2)
    assert [s for s, _, _ in inbox_rows(clean.engine, [*ids, *extra])] == [
        InboxStatus.EXCEPTION,
        InboxStatus.EXCEPTION,
        InboxStatus.IGNORED,
        InboxStatus.IGNORED,
    ]
    items = _exception_items(clean.engine)
    assert [(k, s) for k, s, _, _ in items] == [
        ("unknown_shop", f"inbox {ids[0]}"),
        ("unknown_shop", f"inbox {ids[1]}"),
    ]
    assert "'999'" in items[0][2]
    assert not fake.calls and not other.calls  # nothing was fetched for them


def test_a_platform_error_retries_and_a_refusal_is_an_exception(clean: Backend, apis: dict[str, Any]) -> None:
    fake, _ = douyin(clean, apis)
    events = fake.create_orders(3)
    ids = deliver(clean, fake, doudian.push, events)
    fake.fail_next(Failure.SERVER_ERROR)  # the first order's fetch
    with pytest.raises(normalise.RetryLater, match="1 message"):
        normalise.normalise_inbox(*ids)
    rows = inbox_rows(clean.engine, ids)
    assert rows[0] == (InboxStatus.RECEIVED, None, 1)
    assert [s for s, _, _ in rows[1:]] == [InboxStatus.NORMALISED, InboxStatus.NORMALISED]
    normalise.normalise_inbox(*ids)
    assert inbox_rows(clean.engine, ids)[0][0] == InboxStatus.NORMALISED

    # an order the platform does not know is not retried
    [ghost] = fake.create_orders(1)
    del fake.orders[ghost.order_id]
    [gid] = deliver(clean, fake, doudian.push, [ghost])
    normalise.normalise_inbox(gid)
    [(kind, subject, reason, payload)] = _exception_items(clean.engine)
    assert (kind, subject, payload["platform_order_id"]) == ("fetch_failed", f"inbox {gid}", ghost.order_id)
    assert "50002" in reason


def test_retries_are_bounded_and_the_sweep_puts_due_messages_back(
    clean: Backend, apis: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = douyin(clean, apis)
    [mid] = deliver(clean, fake, doudian.push, fake.create_orders(1))
    with clean.engine.connect() as c:
        received = c.execute(select(InboxMessage.received_at).where(InboxMessage.id == mid)).scalar_one()
    # not due yet: neither a fresh row (its job is still queued) nor a row within its backoff
    with db.session_scope(clean.engine) as s:
        assert normalise.requeue_due(s, now=received + dt.timedelta(seconds=20)) == 0
    with db.session_scope(clean.engine) as s:
        assert normalise.requeue_due(s, now=received + normalise.ORPHAN_AFTER) == 1  # its job was lost
    for attempt in range(1, normalise.MAX_ATTEMPTS):
        fake.fail_next(Failure.TIMEOUT)
        with pytest.raises(normalise.RetryLater):
            normalise.normalise_inbox(mid)
        assert inbox_rows(clean.engine, [mid]) == [(InboxStatus.RECEIVED, None, attempt)]
        due = normalise.due_at(received, attempt)
        with db.session_scope(clean.engine) as s:
            assert normalise.requeue_due(s, now=due - dt.timedelta(seconds=1)) == 0
        with db.session_scope(clean.engine) as s:
            assert normalise.requeue_due(s, now=due) == 1
    fake.fail_next(Failure.TIMEOUT)
    normalise.normalise_inbox(mid)  # the last attempt: no more retries, an exception
    assert inbox_rows(clean.engine, [mid]) == [(InboxStatus.EXCEPTION, None, normalise.MAX_ATTEMPTS)]
    [(kind, _, reason, _)] = _exception_items(clean.engine)
    assert kind == "fetch_failed" and f"after {normalise.MAX_ATTEMPTS} attempts" in reason
    with clean.engine.connect() as c:
        jobs = c.execute(select(OutboxJob.task, OutboxJob.args).order_by(OutboxJob.id)).all()
    assert jobs[0] == ("normalise_inbox", [mid])  # the push's own job
    assert jobs[1:] == [("normalise_inbox", [mid])] * normalise.MAX_ATTEMPTS  # the sweep's


def test_one_message_that_cannot_be_applied_spoils_nothing_else(
    clean: Backend, apis: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = douyin(clean, apis)
    ids = deliver(clean, fake, doudian.push, fake.create_orders(5))
    poison = ids[2]
    real = normalise.converge

    def converge(session: Any, items: Sequence[Incoming], sealer: Sealer, **kw: Any) -> list[Outcome]:
        out = real(session, items, sealer, **kw)  # written, then refused: the savepoint must undo it
        if any(i.ref == poison for i in items):
            raise ValueError("a constraint the database refused")
        return out

    monkeypatch.setattr(normalise, "converge", converge)
    summary = normalise.normalise_inbox(*ids)
    assert (summary.normalised, summary.exceptions) == (4, 1)
    rows = inbox_rows(clean.engine, ids)
    assert rows[2] == (InboxStatus.EXCEPTION, None, 0)
    assert [s for s, _, _ in rows[:2] + rows[3:]] == [InboxStatus.NORMALISED] * 4
    with clean.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(Order)).scalar_one() == 4
    [(kind, subject, reason, _)] = _exception_items(clean.engine)
    assert (kind, subject) == ("apply_failed", f"inbox {poison}") and "refused" in reason


def test_no_app_for_the_shop_is_an_exception_naming_the_shop(clean: Backend, apis: dict[str, Any]) -> None:
    seed_shop(clean.engine, "doudian", DOUDIAN_SHOP, SKU_CODES)
    fake = DoudianFake(DOUDIAN, sku_codes=SKU_CODES, shop_codes=[DOUDIAN_SHOP], seed=3)
    apis["doudian"] = fake
    [mid] = deliver(clean, fake, doudian.push, fake.create_orders(1))
    normalise.normalise_inbox(mid)
    [(kind, _, reason, _)] = _exception_items(clean.engine)
    assert kind == "no_credential" and DOUDIAN_SHOP in reason


# --- whole orders in the push, pulled rows ---------------------------------------------------------------


def test_a_shopify_push_is_the_whole_order_and_needs_no_api_call(
    clean: Backend, apis: dict[str, Any]
) -> None:
    store = "belt-store.myshopify.com"
    cred = AppCredential("shopify", "shopify-app", "shpss_secret", {"access_token": "shpat_token"})
    seed_shop(clean.engine, "shopify", store, SKU_CODES)
    register(clean, cred)
    fake = ShopifyFake(cred, sku_codes=SKU_CODES, shop_codes=[store], seed=5)
    apis["shopify"] = fake
    created = fake.create_orders(2)
    moved = fake.change_address(
        created[0].order_id, Address("Li Lei", "13800001234", "Zhejiang", "Hangzhou", "", "1 Wensan Rd")
    )
    ids = deliver(clean, fake, shopify.push, [moved, created[1]])
    summary = normalise.normalise_inbox(*ids)
    assert not fake.calls
    assert (summary.normalised, summary.exceptions) == (2, 0)
    us = fake.order(created[1].order_id).address
    with clean.engine.connect() as c:
        rows = c.execute(
            select(Order.platform_order_id, Order.province, Order.city, Order.country).order_by(Order.id)
        ).all()
        sealed = c.execute(select(Order.receiver_sealed).order_by(Order.id)).scalars().all()
    # moved to China; the other goes abroad through the belt's export hand-over in Jiangsu
    assert rows == [
        (created[0].order_id, "33", "Hangzhou", "CN"),
        (created[1].order_id, "32", f"US {us.city}", "US"),
    ]
    receiver = Sealer(clean.settings.pii_key).open(sealed[1])
    assert receiver.name == us.name and us.province in receiver.address and receiver.address.endswith("US")


def test_pulled_orders_keep_their_receiver_sealed_in_the_inbox(clean: Backend) -> None:
    sealer = Sealer(clean.settings.pii_key)
    order = CanonicalOrder(
        platform="taobao",
        shop_code="shop-1",
        platform_order_id="3100000000001",
        status=OrderStatus.PAID,
        created_at=dt.datetime(2026, 11, 11, 3, 0),
        paid_at=dt.datetime(2026, 11, 11, 3, 1),
        updated_at=dt.datetime(2026, 11, 11, 3, 1, 5),
        lines=[CanonicalLine("A-1", 2, "针织开衫")],
        address=Address("韩梅梅", "13912345678", "江苏省", "苏州市", "常熟市", "虞山北路8号"),
        ship_by=dt.datetime(2026, 11, 18),
        presale=True,
    )
    raw = normalise.encode_pulled(order, sealer)
    assert b"13912345678" not in raw and "韩梅梅".encode() not in raw
    assert b"3100000000001" in raw  # the order itself stays readable for an operator
    assert normalise.decode_pulled(raw, sealer) == order
    with pytest.raises(Exception, match="pulled order unreadable"):
        normalise.decode_pulled(raw[:-5], sealer)


# --- the adapter registry ---------------------------------------------------------------------------------


def test_every_platform_has_its_adapter_and_the_default_client_has_short_timeouts() -> None:
    cred = AppCredential(
        "x", "key", "secret", {"access_token": "t", "message_key": "AAAAAAAAAAAAAAAAAAAAAA=="}
    )
    try:
        for name in platforms.SPECS:
            api = platforms.order_api(name, AppCredential(name, cred.app_key, cred.secret, cred.extra))
            assert callable(api.fetch_order) and callable(api.confirm_shipment)
            if name in platforms.PULL_PLATFORMS:
                assert callable(platforms.increment_api(name, AppCredential(name, "k", "s", {})).pull)
            else:
                with pytest.raises(platforms.NoAdapter, match="not pulled"):
                    platforms.increment_api(name, AppCredential(name, "k", "s", {}))
        assert {p for p in platforms.SPECS if platforms.order_from_push(p)} == {"shopify", "woocommerce"}
        timeout = platforms.http_client("doudian").timeout
        assert (timeout.connect, timeout.read) == (platforms.CONNECT_TIMEOUT_S, platforms.TIMEOUT_S)
        with pytest.raises(platforms.NoAdapter, match="unknown platform 'myspace'"):
            platforms.order_api("myspace", cred)
    finally:
        platforms.reset()


def test_a_deadlock_rolled_back_by_the_database_is_applied_again(
    clean: Backend, apis: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = douyin(clean, apis)
    ids = deliver(clean, fake, doudian.push, fake.create_orders(3))
    real = normalise._apply
    attempts: list[int] = []

    class Deadlock(Exception):
        sqlstate = "40P01"

    def apply(*args: Any) -> normalise.Summary:
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("COPY orders", None, Deadlock("deadlock detected"))
        return real(*args)

    monkeypatch.setattr(normalise, "_apply", apply)
    assert normalise.normalise_inbox(*ids).normalised == 3
    assert len(attempts) == 2 and len(fake.calls) == 3  # fetched once, applied twice

    class Locked(Exception):
        sqlstate = None

    def locked(*args: Any) -> normalise.Summary:
        raise OperationalError("UPDATE inbox", None, Locked("database is locked"))

    monkeypatch.setattr(normalise, "_apply", locked)
    with pytest.raises(OperationalError):  # anything else: the job fails, the rows stay received
        normalise.normalise_inbox(*deliver(clean, fake, doudian.push, fake.create_orders(1)))
