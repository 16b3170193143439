"""JD (JOS): signatures from the published formula and JD's worked example; searches, mapping and errors
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

from integrations import increments, jd
from integrations.base import ApiError, AppCredential, OrderStatus
from integrations.fakes import Failure
from integrations.fakes.jd import JdFake, credential
from integrations.jd import JdOrderApi

SECRET = "jd-secret-9c2e"
SHOPS = ["jd-shop-1", "jd-shop-2"]
SKUS = ["JD-101-S", "JD-101-M", "JD-205-L", "JD-330-XL"]


def _md5_wrapped(secret: str, params: dict[str, str]) -> str:
    pairs = "".join(k + v for k, v in sorted(params.items()))
    return hashlib.md5((secret + pairs + secret).encode("utf-8")).hexdigest().upper()


# --- signatures --------------------------------------------------------------------------------------


def test_sign_is_upper_md5_of_secret_sorted_pairs_secret() -> None:
    params = {
        "method": jd.SEARCH_METHOD,
        "app_key": "8A1F",
        "access_token": "tok-1",
        "timestamp": "2026-11-11 12:00:00",
        "v": "2.0",
        "sign_method": "md5",
        "360buy_param_json": '{"end_date":"2026-11-11 11:00:00","order_state":"WAIT_SELLER_STOCK_OUT"}',
    }
    assert jd.sign(params, SECRET) == _md5_wrapped(SECRET, params)
    assert jd.sign({**params, "sign": "X"}, SECRET) == _md5_wrapped(SECRET, params)  # sign is not signed
    assert jd.verify({**params, "sign": _md5_wrapped(SECRET, params).lower()}, SECRET)
    assert not jd.verify({**params, "sign": _md5_wrapped("other", params)}, SECRET)


def test_the_worked_example_published_by_jd() -> None:
    # open.jd.com developer guide (listId=2643): the documented request and its signature.
    params = {
        "360buy_param_json": '{"end_date":null,"optional_fields":null,"order_state":"WAIT_SELLER_STOCK_OUT",'
        '"page":"1","page_size":"200","start_date":null}',
        "access_token": "yourtoken",
        "app_key": "yourappkey",
        "method": "jingdong.pop.order.search",
        "timestamp": "2021-05-07 09:20:39.683+0800",
        "v": "2.0",
    }
    assert jd.sign(params, "yourappSecret") == "D70825340F4084360B9362B60DFD7930"


def test_param_json_is_compact_sorted_and_keeps_chinese() -> None:
    text = jd.param_json({"b": "京东", "a": 1})
    assert text == '{"a":1,"b":"京东"}'


def test_timestamp_is_beijing_time() -> None:
    unix = dt.datetime(2026, 11, 10, 16, 30, 0, tzinfo=dt.UTC).timestamp()
    assert jd.timestamp(unix) == "2026-11-11 00:30:00"


def test_requests_carry_the_signed_parameters(fake: JdFake) -> None:
    form = _api(fake).signed_params(jd.GET_METHOD, SHOPS[0], {"orderId": "1"})
    assert set(form) == {
        "method",
        "app_key",
        "access_token",
        "timestamp",
        "v",
        "sign_method",
        "360buy_param_json",
        "sign",
    }
    unsigned = {k: v for k, v in form.items() if k != "sign"}
    assert form["sign"] == _md5_wrapped(SECRET, unsigned)


# --- the fake and the client -------------------------------------------------------------------------


@pytest.fixture
def fake() -> JdFake:
    return JdFake(
        credential("8A1F", SECRET, SHOPS), shop_codes=SHOPS, sku_codes=SKUS, seed=11, orders_per_shop=240
    )


def _api(fake: JdFake, cred: AppCredential | None = None, **kwargs: Any) -> JdOrderApi:
    options: dict[str, Any] = {"clock": fake.time, "page_size": 20, **kwargs}
    return JdOrderApi(cred or fake.credentials[0], fake.client(), **options)


def _listed(fake: JdFake, shop: str, start: dt.datetime, end: dt.datetime) -> set[str]:
    """What JD shows in a window: orders from payment on."""
    return {
        o.order_id
        for o in fake.orders.values()
        if o.shop_code == shop and start <= o.modified < end and o.paid is not None
    }


def test_pulls_across_pages_and_windows_read_every_order_once(fake: JdFake) -> None:
    end = fake.now - dt.timedelta(minutes=1)
    start = end - dt.timedelta(days=2, hours=3)
    orders = list(
        increments.pull_all(_api(fake), SHOPS[0], start, end, dt.timedelta(hours=10))
    )  # six windows
    ids = [o.platform_order_id for o in orders]
    assert len(ids) == len(set(ids)) and set(ids) == _listed(fake, SHOPS[0], start, end)
    assert len(ids) > 150
    assert fake.methods.count(jd.SEARCH_METHOD) >= len(ids) // 20
    same = {o.platform_order_id for o in _api(fake).pull_all(SHOPS[0], start, end)}  # one 30-day window
    assert same == set(ids)


def test_pulled_orders_match_the_platform_state(fake: JdFake) -> None:
    end = fake.now
    start = end - dt.timedelta(days=3)
    expected = {"paid": "paid", "shipped": "shipped", "completed": "completed", "cancelled": "cancelled"}
    seen = set()
    for order in _api(fake).pull_all(SHOPS[1], start, end):
        held = fake.orders[order.platform_order_id]
        seen.add(held.state)
        assert order.status.value == expected[held.state]
        assert (order.created_at, order.paid_at, order.updated_at) == (held.created, held.paid, held.modified)
        assert [(x.platform_sku_code, x.quantity) for x in order.lines] == [
            (x.sku_code, x.quantity) for x in held.lines
        ]
        assert order.address == held.address
    assert seen == set(expected)


def test_unpaid_orders_appear_once_paid(fake: JdFake) -> None:
    order = fake.new_order(SHOPS[0])
    fake.advance(minutes=2)
    api = _api(fake)
    first = {o.platform_order_id for o in api.pull_all(SHOPS[0], fake.now - dt.timedelta(hours=1), fake.now)}
    assert order.order_id not in first
    fake.pay(order.order_id)
    fake.advance(minutes=2)
    later = {
        o.platform_order_id: o for o in api.pull_all(SHOPS[0], fake.now - dt.timedelta(minutes=3), fake.now)
    }
    assert later[order.order_id].status is OrderStatus.PAID


def test_a_window_longer_than_jd_allows_is_refused_naming_the_limit(fake: JdFake) -> None:
    start = fake.now - dt.timedelta(days=40)
    with pytest.raises(ValueError, match="30 days"):
        _api(fake).pull(SHOPS[0], start, start + dt.timedelta(days=31), None)


def test_a_window_fuller_than_jd_pages_through_is_halved(fake: JdFake) -> None:
    end = fake.now
    start = end - dt.timedelta(days=3)
    api = _api(fake, page_size=1)  # 100 pages of one: fewer orders than this window holds
    with pytest.raises(increments.WindowTooFull):
        api.pull(SHOPS[0], start, end, None)
    ids = [o.platform_order_id for o in api.pull_all(SHOPS[0], start, end)]
    assert len(ids) == len(set(ids)) and set(ids) == _listed(fake, SHOPS[0], start, end)


def test_a_cursor_resumed_mid_window_after_changes_leaves_no_gap_and_no_duplicate(fake: JdFake) -> None:
    end = fake.now - dt.timedelta(minutes=5)
    start = end - dt.timedelta(days=2)
    before = _listed(fake, SHOPS[0], start, end)
    first = _api(fake).pull(SHOPS[0], start, end, None)
    assert first.next_cursor
    read = {o.platform_order_id for o in first.orders}
    fake.advance(seconds=20)
    paid = sorted(i for i in before if fake.orders[i].state == "paid")
    changed = set(paid[:10])
    for order_id in paid[:5]:
        fake.ship(order_id, "1499", f"JD{order_id}")
    for order_id in paid[5:10]:
        fake.change_address(order_id)
    assert changed - read  # some changed before the cursor reached them
    rest: list[str] = []
    cursor: str | None = first.next_cursor
    resumed = _api(fake)  # another worker picks the cursor up
    while cursor is not None:
        page = resumed.pull(SHOPS[0], start, end, cursor)
        rest += [o.platform_order_id for o in page.orders]
        cursor = page.next_cursor
    window = [o.platform_order_id for o in first.orders] + rest
    assert len(window) == len(set(window))
    assert set(window) <= before and before - set(window) <= changed
    fake.advance(minutes=1)
    later = {
        o.platform_order_id: o for o in _api(fake).pull_all(SHOPS[0], end, fake.now - dt.timedelta(seconds=5))
    }
    assert before <= set(window) | set(later)
    assert all(later[i].updated_at == fake.orders[i].modified for i in changed)


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_while_pulling_never_lose_or_repeat_an_order(seed: int) -> None:
    rng = random.Random(100 + seed)
    cred = credential("r", SECRET, ["s"])
    fake = JdFake(cred, shop_codes=["s"], sku_codes=SKUS, seed=seed, orders_per_shop=rng.randint(50, 300))
    ids = [o.order_id for o in fake.orders.values() if o.paid is not None]
    fake.advance(seconds=1)
    fake.touch(*ids[:45])  # one second holding more orders than a page
    fake.advance(minutes=2)
    end = fake.now - dt.timedelta(seconds=30)
    start = end - dt.timedelta(days=2)
    before = _listed(fake, "s", start, end)
    api = JdOrderApi(cred, fake.client(), clock=fake.time, page_size=rng.choice([10, 20]))
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
        for order_id in rng.sample(ids, k=rng.choice([0, 2, 5])):
            fake.touch(order_id)
            changed.add(order_id)
    assert not [i for i, n in Counter(got).items() if n > 1]
    assert set(got) <= before and before - changed <= set(got)


# --- the mapping -------------------------------------------------------------------------------------


def _order(**over: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "orderId": "230000000001",
        "orderState": "WAIT_SELLER_STOCK_OUT",
        "orderStartTime": "2026-11-11 00:01:02",
        "paymentConfirmTime": "2026-11-11 00:02:03",
        "modified": "2026-11-11 00:02:04",
        "consigneeInfo": {
            "fullname": "李雷",
            "mobile": "13900001111",
            "province": "江苏",
            "city": "苏州市",
            "county": "常熟市",
            "town": "虞山街道",
            "fullAddress": "江苏苏州市常熟市虞山街道海虞北路88号",
        },
        "itemInfoList": [
            {"skuId": "100012", "outerSkuId": "JD-101-M", "skuName": "羊毛衫", "itemTotal": "2"}
        ],
    }
    order.update(over)
    return order


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("WAIT_SELLER_STOCK_OUT", OrderStatus.PAID),
        ("WAIT_SELLER_DELIVERY", OrderStatus.PAID),
        ("LOCKED", OrderStatus.PAID),
        ("PAUSE", OrderStatus.PAID),
        ("WAIT_GOODS_RECEIVE_CONFIRM", OrderStatus.SHIPPED),
        ("SEND_TO_DISTRIBUTION_CENER", OrderStatus.SHIPPED),
        ("FINISHED_L", OrderStatus.COMPLETED),
        ("TRADE_CANCELED", OrderStatus.CANCELLED),
    ],
)
def test_order_state_maps_to_canonical(state: str, expected: OrderStatus) -> None:
    assert jd.to_canonical("s", _order(orderState=state)).status is expected


def test_times_lines_and_address() -> None:
    order = jd.to_canonical("s", _order())
    assert order.created_at == dt.datetime(2026, 11, 10, 16, 1, 2)
    assert order.paid_at == dt.datetime(2026, 11, 10, 16, 2, 3)
    assert order.updated_at == dt.datetime(2026, 11, 10, 16, 2, 4)
    assert [(x.platform_sku_code, x.quantity, x.title) for x in order.lines] == [("JD-101-M", 2, "羊毛衫")]
    assert order.address is not None
    assert (order.address.province, order.address.city, order.address.district) == (
        "江苏",
        "苏州市",
        "常熟市",
    )
    assert order.address.detail == "虞山街道海虞北路88号"
    no_code = jd.to_canonical("s", _order(itemInfoList=[{"skuId": "100012", "itemTotal": "1"}]))
    assert no_code.lines[0].platform_sku_code == "100012"  # JD's sku id when the shop set no code
    cancelled = jd.to_canonical("s", _order(orderState="TRADE_CANCELED", orderStateRemark="用户取消"))
    assert cancelled.cancel_reason == "用户取消"


def test_an_unreadable_order_is_a_non_retryable_error() -> None:
    for bad in (_order(orderState="NEW_STATE"), _order(itemInfoList=[]), _order(modified="")):
        with pytest.raises(ApiError) as caught:
            jd.to_canonical("s", bad)
        assert (caught.value.code, caught.value.retryable) == ("bad_response", False)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "retryable"), [("2", True), ("19", False), ("12", False), ("15", False)])
def test_gateway_errors_map_to_retryable_or_not(fake: JdFake, code: str, retryable: bool) -> None:
    fake.fail_next(fake.error(code, "中文描述", "english description"))
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], "1")
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_a_wrong_secret_a_stale_timestamp_and_a_foreign_token_are_refused(fake: JdFake) -> None:
    order_id = next(o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.paid)
    wrong = AppCredential("jd", "8A1F", "not-the-secret", fake.credentials[0].extra)
    with pytest.raises(ApiError) as bad_sign:
        _api(fake, wrong).fetch_order(SHOPS[0], order_id)
    assert (bad_sign.value.code, bad_sign.value.retryable) == ("12", False)
    with pytest.raises(ApiError) as stale:
        _api(fake, clock=lambda: fake.time() + 7 * 60).fetch_order(SHOPS[0], order_id)
    assert stale.value.code == "8"
    with pytest.raises(ApiError) as token:
        _api(fake, AppCredential("jd", "8A1F", SECRET, {"access_token": "stolen"})).fetch_order(
            SHOPS[0], order_id
        )
    assert token.value.code == "19"
    assert _api(fake).fetch_order(SHOPS[0], order_id).platform_order_id == order_id


def test_a_business_refusal_in_api_result_is_not_retryable(fake: JdFake) -> None:
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], "999999999999")
    assert (caught.value.code, caught.value.retryable) == ("10400404", False)


def test_http_failures_are_retryable() -> None:
    api = JdOrderApi(
        credential("k", SECRET, ["s"]),
        httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503))),
    )
    with pytest.raises(ApiError) as caught:
        api.fetch_order("s", "1")
    assert (caught.value.code, caught.value.retryable) == ("http_503", True)


@pytest.mark.parametrize("kind", Failure.ALL)
def test_the_fakes_faults_are_retryable_api_errors(fake: JdFake, kind: str) -> None:
    fake.fail_next(kind)
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], "1")
    assert caught.value.retryable is True
    expected = {Failure.SERVER_ERROR: "http_503", Failure.TIMEOUT: "timeout", Failure.GARBAGE: "bad_response"}
    assert caught.value.code == expected.get(kind, "2")


# --- shipment ----------------------------------------------------------------------------------------


def test_shipment_is_recorded_once_and_a_repeat_is_a_success(fake: JdFake) -> None:
    order_id = next(o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.state == "paid")
    api = _api(fake)
    api.confirm_shipment(SHOPS[0], order_id, "YUNDA", "4312000000001", "parcel-9")
    api.confirm_shipment(SHOPS[0], order_id, "YUNDA", "4312000000001", "parcel-9")
    assert [(s.order_id, s.company, s.tracking) for s in fake.shipments.values()] == [
        (order_id, "1327", "4312000000001")
    ]
    assert api.fetch_order(SHOPS[0], order_id).status is OrderStatus.SHIPPED
    with pytest.raises(ApiError) as other:
        api.confirm_shipment(SHOPS[0], order_id, "YUNDA", "4312000000002", "parcel-10")
    assert other.value.retryable is False


def test_shipment_refusals(fake: JdFake) -> None:
    paid = [o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.state == "paid"]
    fake.request_refund(paid[0])  # JD locks the order
    assert _api(fake).fetch_order(SHOPS[0], paid[0]).status is OrderStatus.PAID
    with pytest.raises(ApiError) as locked:
        _api(fake).confirm_shipment(SHOPS[0], paid[0], "ZTO", "7300", "p")
    assert locked.value.retryable is False
    with pytest.raises(ApiError) as courier:
        _api(fake).confirm_shipment(SHOPS[0], paid[1], "JT", "JT0001", "p")
    assert courier.value.code == "unknown_courier"
    custom = AppCredential("jd", "8A1F", SECRET, {"logistics_ids": json.dumps({"JT": "3046"})})
    assert jd.logistics_id(custom, "JT") == "3046"
    assert not fake.shipments


def test_the_fake_is_deterministic_by_seed() -> None:
    def build(seed: int) -> list[dict[str, Any]]:
        f = JdFake(
            credential("k", SECRET, ["s"]), shop_codes=["s"], sku_codes=SKUS, seed=seed, orders_per_shop=20
        )
        return [f.order_info(o) for o in f.orders.values() if o.paid]

    assert build(3) == build(3)
    assert build(3) != build(4)
