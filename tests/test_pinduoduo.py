"""Pinduoduo: signatures from the published formula and PDD's worked example; increments, mapping and errors
against the fake."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections import Counter
from typing import Any

import httpx
import pytest

from integrations import pinduoduo
from integrations.base import ApiError, AppCredential, OrderStatus
from integrations.fakes import Failure
from integrations.fakes.pinduoduo import PinduoduoFake, credential
from integrations.pinduoduo import PinduoduoOrderApi

SECRET = "pdd-secret-77aa"
SHOPS = ["mall-1", "mall-2"]
SKUS = ["PD-101-S", "PD-101-M", "PD-205-L", "PD-330-XL"]
HISTORY = dt.timedelta(hours=4)


def _md5_wrapped(secret: str, params: dict[str, str]) -> str:
    pairs = "".join(k + v for k, v in sorted(params.items()))
    return hashlib.md5((secret + pairs + secret).encode("utf-8")).hexdigest().upper()


# --- signatures --------------------------------------------------------------------------------------


def test_sign_is_upper_md5_of_secret_sorted_pairs_secret() -> None:
    params = {
        "type": pinduoduo.INCREMENT_TYPE,
        "client_id": "c0ffee",
        "access_token": "tok",
        "timestamp": "1794369600",
        "data_type": "JSON",
        "start_updated_at": "1794367800",
        "end_updated_at": "1794369600",
        "page": "2",
        "page_size": "100",
    }
    assert pinduoduo.sign(params, SECRET) == _md5_wrapped(SECRET, params)
    assert pinduoduo.sign({**params, "sign": "X", "nothing": None}, SECRET) == _md5_wrapped(SECRET, params)


def test_the_worked_example_published_by_pdd() -> None:
    # open.pinduoduo.com access guide: the documented parameters and their signature, secret "testSecret".
    params = {
        "access_token": "asd78172s8ds9a921j9qqwda12312w1w21211",
        "client_id": "1",
        "data_type": "XML",
        "order_status": "1",
        "page": "1",
        "page_size": "10",
        "timestamp": "1480411125",
        "type": "pdd.order.number.list.get",
    }
    assert pinduoduo.sign(params, "testSecret") == "E4DE3ED21002510DED352819E7AE6775"


def test_timestamp_is_unix_seconds() -> None:
    assert pinduoduo.timestamp(1794369600.9) == "1794369600"


# --- the fake and the client -------------------------------------------------------------------------


@pytest.fixture
def fake() -> PinduoduoFake:
    cred = credential("c0ffee", SECRET, SHOPS)
    return PinduoduoFake(cred, shop_codes=SHOPS, sku_codes=SKUS, seed=5, orders_per_shop=260, history=HISTORY)


def _api(fake: PinduoduoFake, cred: AppCredential | None = None, **kwargs: Any) -> PinduoduoOrderApi:
    options: dict[str, Any] = {"clock": fake.time, "page_size": 20, **kwargs}
    return PinduoduoOrderApi(cred or fake.credentials[0], fake.client(), **options)


def _listed(fake: PinduoduoFake, shop: str, start: dt.datetime, end: dt.datetime) -> set[str]:
    return {
        o.order_id
        for o in fake.orders.values()
        if o.shop_code == shop and start <= o.modified < end and o.paid
    }


def test_requests_carry_the_signed_parameters(fake: PinduoduoFake) -> None:
    form = _api(fake).signed_params(pinduoduo.DETAIL_TYPE, SHOPS[0], {"order_sn": "261111-1"})
    assert {"type", "client_id", "access_token", "timestamp", "data_type", "order_sn", "sign"} == set(form)
    assert form["sign"] == _md5_wrapped(SECRET, {k: v for k, v in form.items() if k != "sign"})


def test_pulls_across_pages_and_windows_read_every_order_once(fake: PinduoduoFake) -> None:
    end = fake.now - dt.timedelta(minutes=1)
    start = end - HISTORY
    orders = list(_api(fake).pull_all(SHOPS[0], start, end))  # eight 30-minute windows
    ids = [o.platform_order_id for o in orders]
    assert len(ids) == len(set(ids)) and set(ids) == _listed(fake, SHOPS[0], start, end)
    assert len(ids) > 150
    assert fake.methods.count(pinduoduo.INCREMENT_TYPE) >= 8
    assert all(start <= o.updated_at < end and o.shop_code == SHOPS[0] for o in orders)


def test_pulled_orders_match_the_platform_state(fake: PinduoduoFake) -> None:
    end = fake.now
    start = end - HISTORY
    expected = {"paid": "paid", "shipped": "shipped", "completed": "completed", "cancelled": "cancelled"}
    for order in _api(fake).pull_all(SHOPS[1], start, end):
        held = fake.orders[order.platform_order_id]
        assert order.status.value == expected[held.state]
        assert (order.created_at, order.paid_at, order.updated_at) == (held.created, held.paid, held.modified)
        assert order.ship_by == held.ship_by and order.presale == held.presale
        assert order.ship_by is not None  # PDD always states when the order must ship
        assert [(x.platform_sku_code, x.quantity) for x in order.lines] == [
            (x.sku_code, x.quantity) for x in held.lines
        ]
        assert order.address is not None and order.address.detail == held.address.detail
        if held.state == "paid":  # PDD shows the phone in full only while the order waits to ship
            assert order.address == held.address


def test_a_window_longer_than_thirty_minutes_is_refused_naming_the_limit(fake: PinduoduoFake) -> None:
    start = fake.now - dt.timedelta(hours=1)
    with pytest.raises(ValueError, match="0:30:00"):
        _api(fake).pull(SHOPS[0], start, start + dt.timedelta(minutes=30, seconds=1), None)
    _api(fake).pull(SHOPS[0], start, start + dt.timedelta(minutes=30), None)  # exactly the limit is fine


def test_a_cursor_resumed_mid_window_after_changes_leaves_no_gap_and_no_duplicate(
    fake: PinduoduoFake,
) -> None:
    mine = [o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.state == "paid"]
    fake.advance(seconds=3)
    fake.touch(*mine[:70])  # a busy second: more orders than a page
    end = fake.now + dt.timedelta(seconds=1)
    start = end - dt.timedelta(minutes=30)
    fake.advance(minutes=1)
    before = _listed(fake, SHOPS[0], start, end)
    first = _api(fake).pull(SHOPS[0], start, end, None)
    assert first.next_cursor
    read = {o.platform_order_id for o in first.orders}
    unread = sorted(before - read)
    changed = set(unread[:4])
    for order_id in unread[:2]:
        fake.ship(order_id, "115", f"ZT{order_id[-8:]}")
    for order_id in unread[2:4]:
        fake.cancel(order_id)
    rest: list[str] = []
    cursor: str | None = first.next_cursor
    resumed = _api(fake)
    while cursor is not None:
        page = resumed.pull(SHOPS[0], start, end, cursor)
        rest += [o.platform_order_id for o in page.orders]
        cursor = page.next_cursor
    window = [o.platform_order_id for o in first.orders] + rest
    assert len(window) == len(set(window))
    assert set(window) == before - changed
    fake.advance(minutes=1)
    later = {
        o.platform_order_id: o for o in _api(fake).pull_all(SHOPS[0], end, fake.now - dt.timedelta(seconds=5))
    }
    assert {later[i].status for i in changed} == {OrderStatus.SHIPPED, OrderStatus.CANCELLED}


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_while_pulling_never_lose_or_repeat_an_order(seed: int) -> None:
    rng = random.Random(200 + seed)
    cred = credential("r", SECRET, ["s"])
    fake = PinduoduoFake(
        cred,
        shop_codes=["s"],
        sku_codes=SKUS,
        seed=seed,
        orders_per_shop=rng.randint(50, 250),
        history=HISTORY,
    )
    ids = [o.order_id for o in fake.orders.values() if o.paid is not None]
    fake.advance(seconds=1)
    fake.touch(*ids[:30])
    fake.advance(minutes=2)
    end = fake.now - dt.timedelta(seconds=30)
    start = end - dt.timedelta(minutes=30)
    before = _listed(fake, "s", start, end)
    api = PinduoduoOrderApi(cred, fake.client(), clock=fake.time, page_size=rng.choice([8, 10]))
    changed: set[str] = set()
    got: list[str] = []
    cursor: str | None = None
    while True:
        page = api.pull("s", start, end, cursor)
        got += [o.platform_order_id for o in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        fake.advance(seconds=1)
        for order_id in rng.sample(ids, k=rng.choice([0, 1, 4])):
            fake.touch(order_id)
            changed.add(order_id)
    assert not [i for i, n in Counter(got).items() if n > 1]
    assert set(got) <= before and before - changed <= set(got)


# --- the mapping -------------------------------------------------------------------------------------


def _order(**over: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_sn": "261111-123456789012345",
        "order_status": 1,
        "confirm_status": 1,
        "refund_status": 1,
        "created_time": "2026-11-11 08:00:00",
        "pay_time": "2026-11-11 08:00:30",
        "updated_at": "2026-11-11 08:00:31",
        "last_ship_time": "2026-11-13 08:00:30",
        "is_pre_sale": 0,
        "receiver_name": "韩梅梅",
        "receiver_phone": "13700002222",
        "province": "浙江省",
        "city": "杭州市",
        "town": "西湖区",
        "receiver_address": "文三路90号",
        "item_list": [{"outer_id": "PD-101-M", "outer_goods_id": "PD-101", "sku_id": 7, "goods_count": 3}],
    }
    order.update(over)
    return order


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, OrderStatus.PAID),
        ({"refund_status": 2}, OrderStatus.PAID),  # after-sale asked, not decided
        ({"refund_status": 3}, OrderStatus.PAID),
        ({"refund_status": 4}, OrderStatus.CANCELLED),  # refunded before shipping
        ({"confirm_status": 0}, OrderStatus.CREATED),  # the group is still forming
        ({"confirm_status": 2}, OrderStatus.CANCELLED),
        ({"order_status": 2}, OrderStatus.SHIPPED),
        ({"order_status": 2, "refund_status": 4}, OrderStatus.SHIPPED),  # a return, not a cancellation
        ({"order_status": 3}, OrderStatus.COMPLETED),
    ],
)
def test_order_status_confirm_status_and_refund_status_map_to_canonical(
    fields: dict[str, int], expected: OrderStatus
) -> None:
    assert pinduoduo.to_canonical("s", _order(**fields)).status is expected


def test_times_ship_by_presale_lines_and_address() -> None:
    order = pinduoduo.to_canonical("s", _order())
    assert (order.created_at, order.paid_at) == (
        dt.datetime(2026, 11, 11, 0, 0, 0),
        dt.datetime(2026, 11, 11, 0, 0, 30),
    )
    assert order.updated_at == dt.datetime(2026, 11, 11, 0, 0, 31)
    assert order.ship_by == dt.datetime(2026, 11, 13, 0, 0, 30) and order.presale is False
    assert [(x.platform_sku_code, x.quantity) for x in order.lines] == [("PD-101-M", 3)]
    assert order.address is not None
    assert (order.address.province, order.address.city, order.address.district, order.address.detail) == (
        "浙江省",
        "杭州市",
        "西湖区",
        "文三路90号",
    )
    presale = pinduoduo.to_canonical(
        "s", _order(is_pre_sale=1, last_ship_time="", pre_sale_time="2026-11-25 00:00:00")
    )
    assert presale.presale and presale.ship_by == dt.datetime(2026, 11, 24, 16, 0, 0)
    whole = pinduoduo.to_canonical("s", _order(receiver_address="", address="浙江省杭州市西湖区文三路90号"))
    assert whole.address is not None and whole.address.detail == "文三路90号"
    fallback = pinduoduo.to_canonical("s", _order(item_list=[{"outer_goods_id": "PD-9", "goods_count": 1}]))
    assert fallback.lines[0].platform_sku_code == "PD-9"


def test_an_unreadable_order_is_a_non_retryable_error() -> None:
    for bad in (_order(order_status=9), _order(item_list=[]), _order(updated_at=None)):
        with pytest.raises(ApiError) as caught:
            pinduoduo.to_canonical("s", bad)
        assert (caught.value.code, caught.value.retryable) == ("bad_response", False)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (52101, True),
        (70031, True),
        (50000, True),
        (52103, True),
        (10019, False),
        (20004, False),
        (21001, False),
    ],
)
def test_platform_errors_map_to_retryable_or_not(fake: PinduoduoFake, code: int, retryable: bool) -> None:
    fake.fail_next(fake.error(code, "平台错误"))
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], "x")
    assert (caught.value.code, caught.value.retryable) == (str(code), retryable)


def test_a_wrong_secret_a_stale_timestamp_and_an_unknown_token_are_refused(fake: PinduoduoFake) -> None:
    order_id = next(o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.paid)
    wrong = AppCredential("pinduoduo", "c0ffee", "not-the-secret", fake.credentials[0].extra)
    with pytest.raises(ApiError) as bad_sign:
        _api(fake, wrong).fetch_order(SHOPS[0], order_id)
    assert (bad_sign.value.code, bad_sign.value.retryable) == ("20004", False)
    with pytest.raises(ApiError) as stale:
        _api(fake, clock=lambda: fake.time() - 11 * 60).fetch_order(SHOPS[0], order_id)
    assert stale.value.code == "10001"
    with pytest.raises(ApiError) as token:
        _api(fake, AppCredential("pinduoduo", "c0ffee", SECRET, {"access_token": "x"})).fetch_order(
            SHOPS[0], order_id
        )
    assert token.value.code == "20032"
    with pytest.raises(ApiError) as client:
        _api(fake, AppCredential("pinduoduo", "nobody", SECRET, fake.credentials[0].extra)).fetch_order(
            SHOPS[0], order_id
        )
    assert client.value.code == "10016"
    assert _api(fake).fetch_order(SHOPS[0], order_id).platform_order_id == order_id


def test_a_tampered_request_fails_verification(fake: PinduoduoFake) -> None:
    form = _api(fake).signed_params(pinduoduo.DETAIL_TYPE, SHOPS[0], {"order_sn": "1"})
    form["order_sn"] = "2"
    body = json.loads(fake.handler(httpx.Request("POST", pinduoduo.DEFAULT_URL, data=form)).content)
    assert body["error_response"]["error_code"] == 20004


def test_a_connection_timeout_is_retryable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    api = PinduoduoOrderApi(credential("c", SECRET, ["s"]), httpx.Client(transport=httpx.MockTransport(slow)))
    with pytest.raises(ApiError) as caught:
        api.fetch_order("s", "1")
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)


@pytest.mark.parametrize("kind", Failure.ALL)
def test_the_fakes_faults_are_retryable_api_errors(fake: PinduoduoFake, kind: str) -> None:
    fake.fail_next(kind)
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], "1")
    assert caught.value.retryable is True
    expected = {Failure.SERVER_ERROR: "http_503", Failure.TIMEOUT: "timeout", Failure.GARBAGE: "bad_response"}
    assert caught.value.code == expected.get(kind, "52101")


# --- shipment ----------------------------------------------------------------------------------------


def test_shipment_is_recorded_once_and_a_repeat_is_a_success(fake: PinduoduoFake) -> None:
    order_id = next(o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.state == "paid")
    api = _api(fake)
    api.confirm_shipment(SHOPS[0], order_id, "STO", "773000000001", "parcel-1")
    api.confirm_shipment(SHOPS[0], order_id, "STO", "773000000001", "parcel-1")
    assert [(s.order_id, s.company, s.tracking) for s in fake.shipments.values()] == [
        (order_id, "1", "773000000001")
    ]
    assert api.fetch_order(SHOPS[0], order_id).status is OrderStatus.SHIPPED
    with pytest.raises(ApiError) as other:
        api.confirm_shipment(SHOPS[0], order_id, "STO", "773000000002", "parcel-2")
    assert (other.value.code, other.value.retryable) == ("50001", False)


def test_shipment_refusals_and_courier_codes(fake: PinduoduoFake) -> None:
    paid = [o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.state == "paid"]
    fake.request_refund(paid[0])
    assert _api(fake).fetch_order(SHOPS[0], paid[0]).status is OrderStatus.PAID
    with pytest.raises(ApiError) as refunding:
        _api(fake).confirm_shipment(SHOPS[0], paid[0], "ZTO", "7301", "p")
    assert refunding.value.retryable is False
    with pytest.raises(ApiError) as courier:
        _api(fake).confirm_shipment(SHOPS[0], paid[1], "JT", "JT0001", "p")
    assert courier.value.code == "unknown_courier"
    cred = fake.credentials[0]
    assert [pinduoduo.logistics_id(cred, c) for c in ("ZTO", "YTO", "YUNDA", "STO", "SF", "EMS", "JD")] == [
        "115",
        "85",
        "121",
        "1",
        "44",
        "118",
        "120",
    ]
    custom = AppCredential("pinduoduo", "c0ffee", SECRET, {"logistics_ids": json.dumps({"JT": "384"})})
    assert pinduoduo.logistics_id(custom, "JT") == "384"
    assert not fake.shipments


def test_the_fake_is_deterministic_by_seed_and_orders_show_from_payment() -> None:
    def build(seed: int) -> PinduoduoFake:
        cred = credential("k", SECRET, ["s"])
        return PinduoduoFake(
            cred, shop_codes=["s"], sku_codes=SKUS, seed=seed, orders_per_shop=20, history=HISTORY
        )

    one, two = build(3), build(3)
    assert [one.order_info(o) for o in one.orders.values()] == [
        two.order_info(o) for o in two.orders.values()
    ]
    assert list(build(3).orders) != list(build(4).orders)
    fake = build(3)
    order = fake.new_order("s")
    fake.advance(minutes=1)
    api = PinduoduoOrderApi(fake.credentials[0], fake.client(), clock=fake.time)
    with pytest.raises(ApiError):
        api.fetch_order("s", order.order_id)
    fake.pay(order.order_id)
    assert api.fetch_order("s", order.order_id).status is OrderStatus.PAID
