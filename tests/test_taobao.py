"""Taobao/Tmall (TOP): signatures from the published formulas; increments, mapping and errors via the fake."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import random
from collections import Counter
from typing import Any

import httpx
import pytest

from integrations import increments, taobao
from integrations.base import ApiError, AppCredential, OrderStatus
from integrations.fakes import Confirmation, Failure
from integrations.fakes.taobao import TaobaoFake, credential
from integrations.taobao import TaobaoOrderApi

SECRET = "top-secret-1f3a"
SHOPS = ["tb-shop-1", "tb-shop-2"]
SKUS = ["CS-101-S", "CS-101-M", "CS-205-L", "CS-330-XL", "CS-412-M"]


def _kv(params: dict[str, str]) -> str:
    return "".join(k + v for k, v in sorted(params.items()))


PARAMS = {
    "method": "taobao.trades.sold.increment.get",
    "app_key": "23456789",
    "session": "6102a1f9c0ffee",
    "timestamp": "2026-11-11 12:00:00",
    "format": "json",
    "v": "2.0",
    "sign_method": "md5",
    "fields": "tid,status,modified",
    "start_modified": "2026-11-11 00:00:00",
    "end_modified": "2026-11-11 11:00:00",
    "page_no": "3",
}


# --- signatures --------------------------------------------------------------------------------------


def test_md5_sign_is_upper_hex_md5_of_secret_sorted_pairs_secret() -> None:
    expected = hashlib.md5((SECRET + _kv(PARAMS) + SECRET).encode()).hexdigest().upper()
    assert taobao.sign(PARAMS, SECRET) == expected
    assert taobao.sign({**PARAMS, "sign": "ANYTHING"}, SECRET) == expected  # sign itself is not signed


def test_the_worked_example_published_by_top() -> None:
    # open.taobao.com docId=101617: the API-call guide's md5 example, secret "helloworld".
    params = {
        "method": "taobao.item.seller.get",
        "app_key": "12345678",
        "session": "test",
        "timestamp": "2016-01-01 12:00:00",
        "format": "json",
        "v": "2.0",
        "sign_method": "md5",
        "fields": "num_iid,title,nick,price,num",
        "num_iid": "11223344",
    }
    assert taobao.sign(params, "helloworld") == "66987CB115214E59E6EC978214934FB8"


def test_hmac_and_hmac_sha256_sign_the_pairs_without_wrapping() -> None:
    base = _kv(PARAMS).encode()
    md5 = hmac.new(SECRET.encode(), base, hashlib.md5).hexdigest().upper()
    sha = hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest().upper()
    assert taobao.sign(PARAMS, SECRET, "hmac") == md5
    assert taobao.sign(PARAMS, SECRET, "hmac-sha256") == sha
    with pytest.raises(ValueError, match="sign_method"):
        taobao.sign(PARAMS, SECRET, "sha1")


def test_chinese_values_are_signed_as_utf8_and_bytes_or_empty_values_are_left_out() -> None:
    params = {**PARAMS, "buyer_nick": "张三的小店"}
    expected = hashlib.md5((SECRET + _kv(params) + SECRET).encode("utf-8")).hexdigest().upper()
    assert taobao.sign({**params, "image": b"\x89PNG", "seller_memo": ""}, SECRET) == expected


def test_qimen_sign_puts_the_raw_body_before_the_closing_secret() -> None:
    params = {"method": "taobao.qimen.deliveryorder.confirm", "app_key": "23456789", "customerId": "c1"}
    body = "<request><deliveryOrder><deliveryOrderCode>D1</deliveryOrderCode></deliveryOrder></request>"
    expected = hashlib.md5((SECRET + _kv(params) + body + SECRET).encode()).hexdigest().upper()
    assert taobao.qimen_sign(params, body, SECRET) == expected
    assert taobao.qimen_sign(params, body.encode(), SECRET) == expected
    assert taobao.qimen_verify({**params, "sign": expected.lower()}, body, SECRET)
    assert not taobao.qimen_verify({**params, "sign": expected}, body + " ", SECRET)


def test_timestamp_is_beijing_time() -> None:
    unix = dt.datetime(2026, 11, 11, 4, 0, 5, tzinfo=dt.UTC).timestamp()
    assert taobao.timestamp(unix) == "2026-11-11 12:00:05"


# --- the fake and the client -------------------------------------------------------------------------


@pytest.fixture
def fake() -> TaobaoFake:
    return TaobaoFake(
        credential("23456789", SECRET, SHOPS), shop_codes=SHOPS, sku_codes=SKUS, seed=7, orders_per_shop=240
    )


def _api(fake: TaobaoFake, credential: AppCredential | None = None, **kwargs: Any) -> TaobaoOrderApi:
    options: dict[str, Any] = {"clock": fake.time, "page_size": 20, **kwargs}
    return TaobaoOrderApi(credential or fake.credentials[0], fake.client(), **options)


def _in_window(fake: TaobaoFake, shop: str, start: dt.datetime, end: dt.datetime) -> set[str]:
    return {o.order_id for o in fake.orders.values() if o.shop_code == shop and start <= o.modified < end}


def test_pull_all_reads_every_changed_order_once_across_pages_and_windows(fake: TaobaoFake) -> None:
    end = fake.now - dt.timedelta(minutes=1)
    start = end - dt.timedelta(days=2, hours=1)
    orders = list(_api(fake).pull_all(SHOPS[0], start, end))
    ids = [o.platform_order_id for o in orders]
    assert len(ids) == len(set(ids))
    assert set(ids) == _in_window(fake, SHOPS[0], start, end)
    assert len(ids) > 200
    assert (
        fake.methods.count("taobao.trades.sold.increment.get") >= len(ids) // 20
    )  # many pages, three windows
    assert all(o.shop_code == SHOPS[0] and start <= o.updated_at < end for o in orders)


def test_a_session_sees_its_own_shop_only(fake: TaobaoFake) -> None:
    end = fake.now
    start = end - dt.timedelta(days=1)
    ids = {o.platform_order_id for o in _api(fake).pull_all(SHOPS[1], start, end)}
    assert ids == _in_window(fake, SHOPS[1], start, end)
    assert not ids & _in_window(fake, SHOPS[0], start, end)


def test_pulled_orders_match_the_platform_state(fake: TaobaoFake) -> None:
    end = fake.now
    start = end - dt.timedelta(days=1)
    expected = {"unpaid": "created", "paid": "paid", "shipped": "shipped", "completed": "completed"}
    for order in _api(fake).pull_all(SHOPS[0], start, end):
        held = fake.orders[order.platform_order_id]
        assert order.status.value == expected.get(held.state, "cancelled")
        assert order.created_at == held.created and order.updated_at == held.modified
        assert order.paid_at == held.paid
        assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
            (line.sku_code, line.quantity) for line in held.lines
        ]
        assert order.address == held.address
        assert order.presale == held.presale and order.ship_by == held.ship_by


def test_a_window_longer_than_a_day_is_refused_naming_the_limit(fake: TaobaoFake) -> None:
    start = fake.now - dt.timedelta(days=2)
    with pytest.raises(ValueError, match="1 day"):
        _api(fake).pull(SHOPS[0], start, start + dt.timedelta(days=1, seconds=1), None)
    with pytest.raises(ValueError, match="must end after"):
        _api(fake).pull(SHOPS[0], start, start, None)


def test_windows_cut_a_span_into_whole_second_windows_the_platform_allows() -> None:
    start = dt.datetime(2026, 11, 9, 3, 0, 0, 250000)
    end = dt.datetime(2026, 11, 11, 5, 30, 0, 500000)
    cut = increments.windows(start, end, taobao.MAX_WINDOW)
    assert cut[0][0] == start and cut[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cut))
    for low, high in cut:
        increments.check_window(low, high, taobao.MAX_WINDOW, "top")  # each fits as sent
    assert [high - low for low, high in cut][1] == taobao.MAX_WINDOW
    assert len(cut) == 3  # up to the whole second a day on, a full day, and the rest


def _pull_window(api: TaobaoOrderApi, start: dt.datetime, end: dt.datetime, between: Any = None) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = api.pull(SHOPS[0], start, end, cursor)
        ids += [o.platform_order_id for o in page.orders]
        if page.next_cursor is None:
            return ids
        assert len(page.next_cursor) <= increments.MAX_CURSOR_CHARS
        cursor = page.next_cursor
        if between is not None:
            between()


def test_a_cursor_resumed_mid_window_after_changes_leaves_no_gap_and_no_duplicate(fake: TaobaoFake) -> None:
    end = fake.now - dt.timedelta(minutes=5)
    start = end - dt.timedelta(hours=20)
    before = _in_window(fake, SHOPS[0], start, end)
    first = _api(fake).pull(SHOPS[0], start, end, None)
    second = _api(fake).pull(SHOPS[0], start, end, first.next_cursor)
    assert first.next_cursor and second.next_cursor
    read = {o.platform_order_id for o in [*first.orders, *second.orders]}
    # The platform moves on: orders already read and orders not yet read change, new ones arrive.
    fake.advance(seconds=30)
    mine = sorted(
        (o for o in fake.orders.values() if o.shop_code == SHOPS[0] and o.order_id in before),
        key=lambda o: o.order_id,
    )
    changed: set[str] = set()
    for order in (o for o in mine if o.order_id not in read):
        if len(changed) >= 12:
            break
        action = {"unpaid": fake.pay, "paid": fake.change_address}.get(order.state)
        if action is not None:
            action(order.order_id)
            changed.add(order.order_id)
    for order in [o for o in mine if o.order_id in read and o.state == "paid"][:3]:
        fake.cancel(order.order_id)
        changed.add(order.order_id)
    fake.new_order(SHOPS[0], paid=True)
    assert changed - read and changed & read  # changes both behind and ahead of the cursor
    # A new client (a new worker) resumes from the stored cursor text.
    rest: list[str] = []
    cursor: str | None = second.next_cursor
    resumed = _api(fake)
    while cursor is not None:
        page = resumed.pull(SHOPS[0], start, end, cursor)
        rest += [o.platform_order_id for o in page.orders]
        cursor = page.next_cursor
    window = [o.platform_order_id for o in [*first.orders, *second.orders]] + rest
    assert len(window) == len(set(window)), "an order came twice within the window"
    assert set(window) <= before
    assert (
        before - set(window) <= changed - read
    )  # only orders that changed unread are left to the next window
    fake.advance(minutes=1)
    later = {
        o.platform_order_id: o
        for o in _api(fake).pull_all(SHOPS[0], end, fake.now - dt.timedelta(seconds=30))
    }
    assert before <= set(window) | set(later), "an order was lost"
    for order_id in changed:
        assert later[order_id].updated_at == fake.orders[order_id].modified


def test_more_orders_in_one_second_than_a_page_are_read_once(fake: TaobaoFake) -> None:
    mine = [o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0]]
    fake.advance(seconds=5)
    fake.touch(*mine[:75])  # a bulk change: 75 orders share one modified second
    tied = fake.now
    fake.advance(minutes=2)
    start, end = tied - dt.timedelta(hours=1), tied + dt.timedelta(seconds=1)
    rng = random.Random(3)

    def meanwhile() -> None:  # a few orders of that second change between page reads, fewer than a page holds
        fake.advance(seconds=1)
        still = [i for i in mine[:75] if fake.orders[i].modified == tied]
        fake.touch(*rng.sample(still, k=min(len(still), 3)))

    before = _in_window(fake, SHOPS[0], start, end)
    ids = _pull_window(_api(fake), start, end, meanwhile)
    assert len(ids) == len(set(ids))
    changed = {i for i in before if fake.orders[i].modified >= end}
    assert before - changed <= set(ids) <= before


@pytest.mark.parametrize("seed", range(12))
def test_random_changes_while_pulling_never_lose_or_repeat_an_order(seed: int) -> None:
    rng = random.Random(seed)
    cred = credential("app-r", SECRET, ["s"])
    fake = TaobaoFake(cred, shop_codes=["s"], sku_codes=SKUS, seed=seed, orders_per_shop=rng.randint(0, 300))
    ids = list(fake.orders)
    for k in range(rng.randint(0, 3)):  # some seconds with many orders
        fake.advance(seconds=1)
        fake.touch(*ids[k * 40 : (k + 1) * 40])
    fake.advance(minutes=2)
    end = fake.now - dt.timedelta(seconds=30)
    start = end - dt.timedelta(hours=23)
    before = _in_window(fake, "s", start, end)
    api = TaobaoOrderApi(cred, fake.client(), clock=fake.time, page_size=rng.choice([8, 10, 20]))
    changed: set[str] = set()

    def meanwhile() -> None:
        fake.advance(seconds=rng.choice([0, 1]))
        for _ in range(rng.choice([0, 1, 3, 7])):
            order_id = rng.choice(list(fake.orders))
            fake.touch(order_id)
            changed.add(order_id)
        if rng.random() < 0.3:
            fake.new_order("s")

    got: list[str] = []
    cursor: str | None = None
    while True:
        page = api.pull("s", start, end, cursor)
        got += [o.platform_order_id for o in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        meanwhile()
    assert not [i for i, n in Counter(got).items() if n > 1]
    assert set(got) <= before
    assert before - changed <= set(got)


def test_a_cursor_of_another_window_is_refused(fake: TaobaoFake) -> None:
    end = fake.now
    start = end - dt.timedelta(hours=12)
    page = _api(fake).pull(SHOPS[0], start, end, None)
    assert page.next_cursor
    with pytest.raises(ValueError, match="same start and end"):
        _api(fake).pull(SHOPS[0], start + dt.timedelta(hours=1), end, page.next_cursor)
    with pytest.raises(ValueError, match="cursor"):
        _api(fake).pull(SHOPS[0], start, end, "not-a-cursor")


# --- the mapping -------------------------------------------------------------------------------------


def _trade(**over: Any) -> dict[str, Any]:
    trade: dict[str, Any] = {
        "tid": 4012345678901234567,
        "tid_str": "4012345678901234567",
        "status": "WAIT_SELLER_SEND_GOODS",
        "type": "fixed",
        "created": "2026-11-11 00:05:00",
        "pay_time": "2026-11-11 00:06:30",
        "modified": "2026-11-11 00:06:31",
        "receiver_name": "王小红",
        "receiver_mobile": "13812345678",
        "receiver_state": "江苏省",
        "receiver_city": "苏州市",
        "receiver_district": "常熟市",
        "receiver_town": "虞山街道",
        "receiver_address": "海虞北路88号",
        "orders": {
            "order": [{"oid": 1, "outer_sku_id": "CS-101-M", "num": 2, "title": "羊毛衫", "status": "x"}]
        },
    }
    trade.update(over)
    return trade


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("WAIT_BUYER_PAY", OrderStatus.CREATED),
        ("TRADE_NO_CREATE_PAY", OrderStatus.CREATED),
        ("PAID_FORBID_CONSIGN", OrderStatus.CREATED),
        ("WAIT_SELLER_SEND_GOODS", OrderStatus.PAID),
        ("SELLER_CONSIGNED_PART", OrderStatus.SHIPPED),
        ("WAIT_BUYER_CONFIRM_GOODS", OrderStatus.SHIPPED),
        ("TRADE_BUYER_SIGNED", OrderStatus.SHIPPED),
        ("TRADE_FINISHED", OrderStatus.COMPLETED),
        ("TRADE_CLOSED", OrderStatus.CANCELLED),
        ("TRADE_CLOSED_BY_TAOBAO", OrderStatus.CANCELLED),
    ],
)
def test_trade_status_maps_to_canonical(status: str, expected: OrderStatus) -> None:
    order = taobao.to_canonical("s", _trade(status=status))
    assert order.status is expected
    assert order.cancel_reason == (status if expected is OrderStatus.CANCELLED else None)


def test_times_are_converted_from_beijing_time_to_utc_and_the_address_is_kept() -> None:
    order = taobao.to_canonical("s", _trade())
    assert order.platform_order_id == "4012345678901234567"
    assert order.created_at == dt.datetime(2026, 11, 10, 16, 5, 0)
    assert order.paid_at == dt.datetime(2026, 11, 10, 16, 6, 30)
    assert order.updated_at == dt.datetime(2026, 11, 10, 16, 6, 31)
    assert order.address is not None
    assert (order.address.province, order.address.city, order.address.district) == (
        "江苏省",
        "苏州市",
        "常熟市",
    )
    assert order.address.detail == "虞山街道海虞北路88号"
    assert (order.address.name, order.address.phone) == ("王小红", "13812345678")


def test_a_county_level_city_in_receiver_district_becomes_the_city() -> None:
    order = taobao.to_canonical(
        "s", _trade(receiver_state="河南省", receiver_city="", receiver_district="济源市")
    )
    assert order.address is not None
    assert (order.address.city, order.address.district) == ("济源市", "")


def test_lines_use_the_shops_code_and_fall_back_to_platform_ids_and_skip_closed_sub_orders() -> None:
    subs = [
        {"oid": 1, "outer_sku_id": "CS-1", "outer_iid": "CS", "num": 1, "status": "WAIT_SELLER_SEND_GOODS"},
        {"oid": 2, "outer_iid": "CS-2", "sku_id": "555", "num": 2, "status": "WAIT_SELLER_SEND_GOODS"},
        {"oid": 3, "sku_id": "777", "num_iid": 9, "num": 3, "status": "WAIT_SELLER_SEND_GOODS"},
        {"oid": 4, "outer_sku_id": "CS-4", "num": 1, "status": "TRADE_CLOSED"},  # refunded before shipping
    ]
    order = taobao.to_canonical("s", _trade(orders={"order": subs}))
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        ("CS-1", 1),
        ("CS-2", 2),
        ("777", 3),
    ]
    closed = taobao.to_canonical(
        "s", _trade(status="TRADE_CLOSED", orders=[{**subs[3]}])
    )  # plain list works too
    assert [line.platform_sku_code for line in closed.lines] == ["CS-4"]


def test_presale_and_ship_by() -> None:
    paid = dt.datetime(2026, 11, 10, 16, 6, 30)
    order = taobao.to_canonical(
        "s",
        _trade(type="step", step_trade_status="FRONT_PAID_FINAL_PAID", est_con_time="2026-11-20 18:00:00"),
    )
    assert order.presale and order.ship_by == dt.datetime(2026, 11, 20, 10, 0, 0)
    assert taobao.ship_by_of("2026-11-20", paid) == dt.datetime(2026, 11, 20, 15, 59, 59)
    assert taobao.ship_by_of("付款后15天内", paid) == paid + dt.timedelta(days=15)
    assert taobao.ship_by_of("尽快发货", paid) is None
    assert taobao.to_canonical("s", _trade()).presale is False


def test_an_unreadable_trade_is_a_non_retryable_error() -> None:
    with pytest.raises(ApiError, match="unknown trade status") as caught:
        taobao.to_canonical("s", _trade(status="SOMETHING_NEW"))
    assert caught.value.retryable is False and caught.value.code == "bad_response"
    with pytest.raises(ApiError, match="no orders"):
        taobao.to_canonical("s", _trade(orders={"order": []}))


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "sub_code", "retryable"),
    [
        (7, "accesscontrol.limited-by-app-access-count", True),
        (5, None, True),
        (10, None, True),
        (15, "isp.top-remote-connection-timeout", True),
        (15, "isv.trade-not-exist", False),
        (27, "invalid-sessionkey", False),
        (25, None, False),
        (41, "isv.invalid-parameter", False),
    ],
)
def test_platform_errors_map_to_retryable_or_not(
    fake: TaobaoFake, code: int, sub_code: str | None, retryable: bool
) -> None:
    fake.fail_next(fake.error(code, "from the platform", sub_code))
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], next(iter(fake.orders)))
    assert caught.value.retryable is retryable
    assert caught.value.code == (f"{code}:{sub_code}" if sub_code else str(code))


def test_a_wrong_secret_is_rejected_by_the_fake_as_top_does(fake: TaobaoFake) -> None:
    wrong = AppCredential("taobao", "23456789", "not-the-secret", fake.credentials[0].extra)
    for method in ("md5", "hmac", "hmac-sha256"):
        with pytest.raises(ApiError) as caught:
            _api(fake, wrong, sign_method=method).fetch_order(SHOPS[0], next(iter(fake.orders)))
        assert (caught.value.code, caught.value.retryable) == ("25", False)
    for method in ("md5", "hmac", "hmac-sha256"):  # the right secret passes with every method
        order_id = next(o.order_id for o in fake.orders.values() if o.shop_code == SHOPS[0])
        assert _api(fake, sign_method=method).fetch_order(SHOPS[0], order_id).platform_order_id == order_id


def test_a_tampered_request_fails_verification(fake: TaobaoFake) -> None:
    api = _api(fake)
    form = api.signed_params("taobao.trade.fullinfo.get", SHOPS[0], {"fields": "tid", "tid": "1"})
    form["tid"] = "2"
    answer = fake.handler(httpx.Request("POST", taobao.DEFAULT_URL, data=form))
    assert json.loads(answer.content)["error_response"]["code"] == 25


def test_a_stale_timestamp_an_unknown_session_and_an_unknown_app_are_refused(fake: TaobaoFake) -> None:
    order_id = next(iter(fake.orders))
    with pytest.raises(ApiError) as stale:
        _api(fake, clock=lambda: fake.time() - 11 * 60).fetch_order(SHOPS[0], order_id)
    assert (stale.value.code, stale.value.retryable) == ("31:isv.invalid-timestamp", False)
    other = AppCredential("taobao", "23456789", SECRET, {"session": "not-a-session"})
    with pytest.raises(ApiError) as session:
        _api(fake, other).fetch_order(SHOPS[0], order_id)
    assert session.value.code is not None and session.value.code.startswith("27")
    with pytest.raises(ApiError) as app:
        _api(fake, AppCredential("taobao", "999", SECRET, fake.credentials[0].extra)).fetch_order(
            SHOPS[0], order_id
        )
    assert app.value.code == "29"
    with pytest.raises(ValueError, match="session"):
        _api(fake, AppCredential("taobao", "23456789", SECRET, {})).fetch_order(SHOPS[0], order_id)


@pytest.mark.parametrize(
    ("respond", "code", "retryable"),
    [
        (lambda r: httpx.Response(502, text="bad gateway"), "http_502", True),
        (lambda r: httpx.Response(429, text="slow down"), "http_429", True),
        (lambda r: httpx.Response(403, text="forbidden"), "http_403", False),
        (lambda r: httpx.Response(200, text="<html>maintenance</html>"), "bad_response", True),
    ],
)
def test_http_failures_map_to_api_errors(respond: Any, code: str, retryable: bool) -> None:
    api = TaobaoOrderApi(credential("1", SECRET, ["s"]), httpx.Client(transport=httpx.MockTransport(respond)))
    with pytest.raises(ApiError) as caught:
        api.fetch_order("s", "1")
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_a_connection_failure_is_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = TaobaoOrderApi(credential("1", SECRET, ["s"]), httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(ApiError) as caught:
        api.fetch_order("s", "1")
    assert (caught.value.code, caught.value.retryable) == ("transport", True)


@pytest.mark.parametrize("kind", Failure.ALL)
def test_the_fakes_faults_are_retryable_api_errors(fake: TaobaoFake, kind: str) -> None:
    fake.fail_next(kind)
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], "1")
    assert caught.value.retryable is True
    expected = {Failure.SERVER_ERROR: "http_503", Failure.TIMEOUT: "timeout", Failure.GARBAGE: "bad_response"}
    assert caught.value.code == expected.get(kind, "7:accesscontrol.limited-by-app-access-count")


# --- order detail and ship confirmation ---------------------------------------------------------------


def _first(fake: TaobaoFake, state: str, shop: str = SHOPS[0]) -> str:
    return next(o.order_id for o in fake.orders.values() if o.shop_code == shop and o.state == state)


def test_fetch_order_reads_fullinfo(fake: TaobaoFake) -> None:
    order_id = _first(fake, "paid")
    order = _api(fake).fetch_order(SHOPS[0], order_id)
    assert order.status is OrderStatus.PAID and order.platform_order_id == order_id
    assert order.address == fake.orders[order_id].address
    with pytest.raises(ApiError) as caught:
        _api(fake).fetch_order(SHOPS[0], _first(fake, "paid", SHOPS[1]))  # another seller's trade
    assert (caught.value.code, caught.value.retryable) == ("15:isv.trade-not-exist", False)


def test_ship_confirmation_is_recorded_once_and_a_repeat_is_a_success(fake: TaobaoFake) -> None:
    order_id = _first(fake, "paid")
    api = _api(fake)
    api.confirm_shipment(SHOPS[0], order_id, "ZTO", "73100000000001", "parcel-1")
    api.confirm_shipment(
        SHOPS[0], order_id, "ZTO", "73100000000001", "parcel-1"
    )  # a retry after a lost answer
    assert [(s.order_id, s.company, s.tracking) for s in fake.shipments.values()] == [
        (order_id, "ZTO", "73100000000001")
    ]
    assert fake.confirmations == [Confirmation(order_id, "ZTO", "73100000000001")]
    assert fake.orders[order_id].state == "shipped"
    assert api.fetch_order(SHOPS[0], order_id).status is OrderStatus.SHIPPED
    with pytest.raises(ApiError) as other:
        api.confirm_shipment(SHOPS[0], order_id, "ZTO", "73100000000999", "parcel-2")
    assert other.value.retryable is False
    assert fake.shipments[order_id].tracking == "73100000000001"


def test_ship_confirmation_refusals(fake: TaobaoFake) -> None:
    api = _api(fake)
    with pytest.raises(ApiError) as unpaid:
        api.confirm_shipment(SHOPS[0], _first(fake, "unpaid"), "YTO", "YT1", "p")
    assert unpaid.value.retryable is False
    with pytest.raises(ApiError) as courier:
        api.confirm_shipment(SHOPS[0], _first(fake, "paid"), "DHL", "1", "p")
    assert courier.value.code == "unknown_courier"
    assert not fake.shipments


def test_company_codes_map_canonical_couriers_and_can_be_overridden() -> None:
    cred = credential("1", SECRET, ["s"])
    assert [taobao.company_code(cred, c) for c in ("ZTO", "YTO", "YUNDA", "STO", "SF", "EMS")] == [
        "ZTO",
        "YTO",
        "YUNDA",
        "STO",
        "SF",
        "EMS",
    ]
    custom = AppCredential("taobao", "1", SECRET, {"company_codes": json.dumps({"JT": "JT"})})
    assert taobao.company_code(custom, "JT") == "JT"


# --- the fake itself ---------------------------------------------------------------------------------


def test_the_fake_is_deterministic_by_seed() -> None:
    def build(seed: int) -> list[dict[str, Any]]:
        f = TaobaoFake(
            credential("1", SECRET, ["s"]), shop_codes=["s"], sku_codes=SKUS, seed=seed, orders_per_shop=20
        )
        return [f.trade(o) for o in f.orders.values()]

    assert build(1) == build(1)
    assert build(1) != build(2)


def test_the_fake_pages_with_has_next_when_asked(fake: TaobaoFake) -> None:
    api = _api(fake)
    params = {
        "fields": "tid,modified",
        "start_modified": "2026-11-09 00:00:00",
        "end_modified": "2026-11-10 00:00:00",
        "page_no": 1,
        "page_size": 10,
        "use_has_next": "true",
    }
    form = api.signed_params("taobao.trades.sold.increment.get", SHOPS[0], params)
    body = json.loads(fake.handler(httpx.Request("POST", taobao.DEFAULT_URL, data=form)).content)
    answer = body["trades_sold_increment_get_response"]
    assert answer["has_next"] is True and "total_results" not in answer
    assert set(answer["trades"]["trade"][0]) == {"tid", "modified"}
    modified = [t["modified"] for t in answer["trades"]["trade"]]
    assert modified == sorted(modified, reverse=True)
