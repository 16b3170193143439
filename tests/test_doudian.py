"""Douyin shop (doudian): push signature, push parsing, the signed API, mapping, and the fake. No network.

Expected signatures are computed here from the published formulas with hashlib/hmac, never by the adapter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable

import httpx
import pytest

from integrations import doudian
from integrations.base import ApiError, AppCredential, OrderStatus, PayloadError, PushEvent, SignatureError
from integrations.fakes import Failure
from integrations.fakes.doudian import DoudianFake

APP_KEY = "7000000000000000001"
SECRET = "d7f1c2a9-secret-one"
NEW_SECRET = "0b8e44d1-secret-two"
TOKEN = "access-token-77977"
SKUS = [f"CS-{i:04d}" for i in range(40)]
SHOPS = ["77977", "88001"]
T0 = 1718712000  # 2024-06-18 12:00:00 UTC (20:00 in Changshu)


def cred(secret: str = SECRET, token: str = TOKEN) -> AppCredential:
    return AppCredential("doudian", APP_KEY, secret, {"access_token": token})


def md5_sign(body: bytes, secret: str = SECRET, app_key: str = APP_KEY) -> str:
    return hashlib.md5(app_key.encode() + body + secret.encode()).hexdigest()


def fake(seed: int = 7, paid_tag: str = "101") -> DoudianFake:
    return DoudianFake(cred(), sku_codes=SKUS, shop_codes=SHOPS, seed=seed, paid_tag=paid_tag)


def api_for(platform: DoudianFake, credential: AppCredential | None = None) -> doudian.DoudianOrderApi:
    client = httpx.Client(transport=platform.transport())
    return doudian.DoudianOrderApi(credential or cred(), client)


PAID_BODY = (
    b'[{"tag":"101","msg_id":"7300000000000000001",'
    b'"data":"{\\"p_id\\":4800000000000000001,\\"s_ids\\":[4800000000000000001],\\"shop_id\\":77977,'
    b'\\"order_status\\":2,\\"pay_amount\\":12900,\\"pay_time\\":1718712000,\\"pay_type\\":1}"}]'
)


# --- push signature ---


def test_push_sign_is_plain_md5_of_key_body_secret() -> None:
    expected = hashlib.md5(f"{APP_KEY}{PAID_BODY.decode()}{SECRET}".encode()).hexdigest()
    assert doudian.push_sign(APP_KEY, PAID_BODY, SECRET) == expected
    # Pinned: a change in the formula (or in how the body is fed to it) must break this.
    pinned = hashlib.md5(b"7000000000000000001" + PAID_BODY + b"d7f1c2a9-secret-one").hexdigest()
    assert expected == pinned and len(expected) == 32 and expected == expected.lower()


def test_verify_accepts_the_known_answer_and_headers_in_any_case() -> None:
    sign = md5_sign(PAID_BODY)
    assert doudian.push.verify({"app-id": APP_KEY, "event-sign": sign}, PAID_BODY, [cred()]) == cred()
    assert doudian.push.verify({"App-Id": APP_KEY, "EVENT-SIGN": sign.upper()}, PAID_BODY, [cred()]) == cred()


@pytest.mark.parametrize(
    "headers, body",
    [
        ({"app-id": APP_KEY, "event-sign": md5_sign(PAID_BODY, "wrong-secret")}, PAID_BODY),
        ({"app-id": APP_KEY, "event-sign": md5_sign(PAID_BODY)}, PAID_BODY.replace(b"12900", b"12901")),
        ({"app-id": APP_KEY}, PAID_BODY),
        ({"event-sign": md5_sign(PAID_BODY)}, PAID_BODY),
        (
            {
                "app-id": "7000000000000000002",
                "event-sign": md5_sign(PAID_BODY, app_key="7000000000000000002"),
            },
            PAID_BODY,
        ),
        ({"app-id": APP_KEY, "event-sign": ""}, PAID_BODY),
    ],
    ids=["wrong-secret", "tampered-body", "missing-sign", "missing-app-id", "unknown-app", "empty-sign"],
)
def test_verify_refuses(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(SignatureError):
        doudian.push.verify(headers, body, [cred()])


def test_verify_accepts_either_secret_during_rotation() -> None:
    old, new = cred(SECRET), cred(NEW_SECRET)
    assert (
        doudian.push.verify(
            {"app-id": APP_KEY, "event-sign": md5_sign(PAID_BODY, NEW_SECRET)}, PAID_BODY, [old, new]
        )
        == new
    )
    assert (
        doudian.push.verify(
            {"app-id": APP_KEY, "event-sign": md5_sign(PAID_BODY, SECRET)}, PAID_BODY, [new, old]
        )
        == old
    )
    with pytest.raises(SignatureError):
        doudian.push.verify({"app-id": APP_KEY, "event-sign": md5_sign(PAID_BODY, SECRET)}, PAID_BODY, [new])


# --- push parsing ---


def test_parse_reads_ids_times_and_keeps_each_message_raw() -> None:
    first = (
        '{"tag": "100", "msg_id": "m-1", '
        '"data": "{\\"p_id\\":11,\\"shop_id\\":77977,\\"create_time\\":1718712000}"}'
    )
    body = (
        f"[\n  {first},\n"
        '  {"tag": "106", "msg_id": "m-2", "data": "{\\"p_id\\":12,\\"shop_id\\":\\"77977\\",'
        '\\"cancel_reason\\":\\"不想要了\\",\\"cancel_time\\":\\"2024-06-18 21:30:00\\"}"},\n'
        '  {"tag": 110, "msg_id": 3, "data": "{\\"p_id\\":\\"13\\",\\"pay_time\\":1718712060}"},\n'
        '  {"tag": "999", "msg_id": "m-4", "data": "{}"}\n]'
    ).encode()
    messages = doudian.push.parse({}, body, cred())
    assert [m.message_id for m in messages] == ["m-1", "m-2", "3", "m-4"]
    assert [m.event for m in messages] == [
        PushEvent.CREATED,
        PushEvent.CANCELLED,
        PushEvent.PAID,
        PushEvent.UPDATED,
    ]
    assert [m.topic for m in messages] == ["100", "106", "110", "999"]
    assert [m.platform_order_id for m in messages] == ["11", "12", "13", None]
    assert [m.shop_code for m in messages] == ["77977", "77977", None, None]
    assert messages[0].occurred_at == dt.datetime(2024, 6, 18, 12, 0, 0)
    assert messages[1].occurred_at == dt.datetime(2024, 6, 18, 13, 30, 0)  # GMT+8 text → UTC
    assert messages[2].occurred_at == dt.datetime(2024, 6, 18, 12, 1, 0)
    assert messages[3].occurred_at is None
    assert messages[0].raw == first.encode()
    assert all(m.platform == "doudian" for m in messages)
    for message in messages:
        assert json.loads(message.raw)["msg_id"] in ("m-1", "m-2", 3, "m-4")


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json", "not a JSON array"),
        (b'{"tag":"101"}', "not a JSON array"),
        (b"[]", "no messages"),
        (b'[{"tag":"101","msg_id":"m","data":"{}"}] trailing', "extra data"),
        (b'[{"tag":"101","msg_id":"m","data":"{}"},]', "not valid JSON"),
        (b'[{"tag":"101","data":"{}"}]', "missing msg_id"),
        (b'[{"msg_id":"m","data":"{}"}]', "tag"),
        (b'[{"tag":"101","msg_id":"m","data":{"p_id":1}}]', "not a JSON string"),
        (b'[{"tag":"101","msg_id":"m","data":"{oops"}]', "not valid JSON"),
        (b'[{"tag":"101","msg_id":"m","data":"[1]"}]', "not a JSON object"),
        (b'[{"tag":"101","msg_id":"m","data":"{\\"pay_time\\":\\"yesterday\\"}"}]', "time"),
        (b'["just text"]', "not an object"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_parse_errors_name_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        doudian.push.parse({}, body, cred())


def test_parse_error_carries_the_message_id_when_known() -> None:
    with pytest.raises(PayloadError) as caught:
        doudian.push.parse({}, b'[{"tag":"101","msg_id":"m-9","data":"{oops"}]', cred())
    assert getattr(caught.value, "message_id", None) == "m-9"


def test_success_and_failure_answers_are_the_platform_contract() -> None:
    answer = doudian.push.success()
    assert (answer.status, json.loads(answer.body), answer.media_type) == (
        200,
        {"code": 0, "msg": "success"},
        "application/json",
    )
    assert json.loads(doudian.push.failure().body) == {"code": 1, "msg": "fail"}


# --- API signing ---


def test_param_json_is_sorted_recursively_compact_and_unescaped() -> None:
    params = {"shop_order_id": "48", "b": {"z": 1, "a": "常熟<羊毛衫>&"}, "a": [{"y": 2, "x": 1}]}
    assert (
        doudian.param_json(params)
        == '{"a":[{"x":1,"y":2}],"b":{"a":"常熟<羊毛衫>&","z":1},"shop_order_id":"48"}'
    )
    assert doudian.method_name("/order/orderDetail") == "order.orderDetail"


def test_api_sign_known_answer() -> None:
    param_json = '{"shop_order_id":"4800000000000000001"}'
    pattern = f"{SECRET}app_key{APP_KEY}methodorder.orderDetailparam_json{param_json}timestamp{T0}v2{SECRET}"
    expected = hmac.new(SECRET.encode(), pattern.encode(), hashlib.sha256).hexdigest()
    assert doudian.api_sign(APP_KEY, SECRET, "order.orderDetail", param_json, str(T0)) == expected


def test_request_carries_the_signed_parameters() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": 60000, "msg": "限流"})

    api = doudian.DoudianOrderApi(
        cred(), httpx.Client(transport=httpx.MockTransport(record)), clock=lambda: T0 + 0.9
    )
    with pytest.raises(ApiError):
        api.fetch_order("77977", "4800000000000000001")
    request = seen[0]
    body = '{"shop_order_id":"4800000000000000001"}'
    pattern = f"{SECRET}app_key{APP_KEY}methodorder.orderDetailparam_json{body}timestamp{T0}v2{SECRET}"
    assert request.method == "POST"
    assert (request.url.scheme, request.url.host, request.url.path) == (
        "https",
        "openapi-fxg.jinritemai.com",
        "/order/orderDetail",
    )
    assert request.content.decode() == body
    assert dict(request.url.params) == {
        "app_key": APP_KEY,
        "method": "order.orderDetail",
        "timestamp": str(T0),
        "v": "2",
        "sign": hmac.new(SECRET.encode(), pattern.encode(), hashlib.sha256).hexdigest(),
        "sign_method": "hmac-sha256",
        "access_token": TOKEN,
    }


# --- mapping ---

DETAIL = {
    "order_id": "6919111122223333444",
    "shop_id": 77977,
    "order_status": 2,
    "create_time": 1718712000,
    "update_time": 1718712300,
    "pay_time": 1718712060,
    "exp_ship_time": 1718884800,
    "cancel_reason": "",
    "post_receiver": "王芳",
    "post_tel": "13812345678",
    "post_addr": {
        "province": {"name": "江苏省", "id": "32"},
        "city": {"name": "苏州市", "id": "3205"},
        "town": {"name": "常熟市", "id": "320581"},
        "street": {"name": "虞山街道", "id": "320581001"},
        "detail": "海虞北路88号3栋1202室",
    },
    "sku_order_list": [
        {
            "order_id": "6919111122223333444",
            "code": "CS-KNIT-BLK-M",
            "item_num": 2,
            "product_name": "羊毛衫 黑 M",
            "pre_sale_type": 0,
            "exp_ship_time": 1718884800,
        },
        {
            "order_id": "6919111122223333445",
            "code": "",
            "out_sku_id": "OUT-77",
            "item_num": 1,
            "product_name": "围巾",
            "pre_sale_type": 1,
            "exp_ship_time": 1719576000,
        },
        {
            "order_id": "6919111122223333446",
            "code": "",
            "out_sku_id": "",
            "sku_id": 1734567,
            "item_num": 1,
            "product_name": "赠品",
        },
    ],
}


def test_detail_maps_to_canonical_order() -> None:
    order = doudian.to_canonical("fallback", DETAIL)
    assert order.platform == "doudian" and order.shop_code == "77977"
    assert order.platform_order_id == "6919111122223333444"
    assert order.status is OrderStatus.PAID
    assert order.created_at == dt.datetime(2024, 6, 18, 12, 0, 0)
    assert order.paid_at == dt.datetime(2024, 6, 18, 12, 1, 0)
    assert order.updated_at == dt.datetime(2024, 6, 18, 12, 5, 0)
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        ("CS-KNIT-BLK-M", 2),
        ("OUT-77", 1),
        ("1734567", 1),
    ]
    assert order.presale is True
    assert order.ship_by == dt.datetime(2024, 6, 28, 12, 0, 0)  # the latest line's promise (a pre-sale line)
    assert order.address is not None
    assert (order.address.name, order.address.phone) == ("王芳", "13812345678")
    assert (order.address.province, order.address.city, order.address.district) == (
        "江苏省",
        "苏州市",
        "常熟市",
    )
    assert order.address.detail == "虞山街道海虞北路88号3栋1202室"
    assert order.cancel_reason is None


@pytest.mark.parametrize(
    "status, expected",
    [
        (1, OrderStatus.CREATED),
        (105, OrderStatus.PAID),
        (101, OrderStatus.SHIPPED),
        (3, OrderStatus.SHIPPED),
        (4, OrderStatus.CANCELLED),
        (5, OrderStatus.COMPLETED),
    ],
)
def test_status_codes(status: int, expected: OrderStatus) -> None:
    order = doudian.to_canonical(
        "77977", {**DETAIL, "order_status": status, "cancel_reason": "不想要了", "pay_time": 0}
    )
    assert order.status is expected
    assert order.paid_at is None
    assert order.cancel_reason == ("不想要了" if expected is OrderStatus.CANCELLED else None)


@pytest.mark.parametrize(
    "change",
    [
        {"order_status": 77},
        {"create_time": 0},
        {"sku_order_list": []},
        {"order_id": ""},
        {"sku_order_list": [{"code": "A", "item_num": 0}]},
    ],
)
def test_unreadable_detail_is_a_non_retryable_api_error(change: dict[str, object]) -> None:
    with pytest.raises(ApiError) as caught:
        doudian.to_canonical("77977", {**DETAIL, **change})
    assert caught.value.retryable is False and caught.value.code == "bad_response"


# --- API against the fake ---


def test_fetch_order_through_the_fake_matches_the_fakes_order() -> None:
    platform = fake()
    event = platform.create_orders(5)[3]
    order = api_for(platform).fetch_order(event.shop_code, event.order_id)
    truth = platform.orders[event.order_id]
    assert order.platform_order_id == truth.order_id and order.shop_code == truth.shop_code
    assert order.status is OrderStatus.PAID
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        (line.sku_code, line.quantity) for line in truth.lines
    ]
    assert order.address == truth.address
    assert order.created_at == truth.created_at.replace(microsecond=0)
    assert order.presale == truth.presale
    assert order.ship_by == (truth.ship_by.replace(microsecond=0) if truth.ship_by else None)


def test_search_list_request_is_signed_over_its_sorted_parameters() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"code": 10000, "msg": "success", "data": {"shop_order_list": [], "total": 0}}
        )

    api = doudian.DoudianOrderApi(
        cred(), httpx.Client(transport=httpx.MockTransport(record)), clock=lambda: T0
    )
    start = dt.datetime(2024, 6, 18, 12, 0, 0)
    page = api.changed_orders(start, start + dt.timedelta(seconds=30), 2)
    assert (page.orders, page.total, page.page_size) == ([], 0, 100)
    body = (
        '{"order_asc":true,"order_by":"update_time","page":2,"size":100,'
        f'"update_time_end":{T0 + 30},"update_time_start":{T0}}}'
    )
    pattern = f"{SECRET}app_key{APP_KEY}methodorder.searchListparam_json{body}timestamp{T0}v2{SECRET}"
    request = seen[0]
    assert request.url.path == "/order/searchList" and request.content.decode() == body
    assert request.url.params["method"] == "order.searchList"
    assert (
        request.url.params["sign"] == hmac.new(SECRET.encode(), pattern.encode(), hashlib.sha256).hexdigest()
    )


def test_search_list_pages_through_a_window_both_ends_included() -> None:
    platform = fake()
    platform.step = dt.timedelta(seconds=1)
    events = platform.create_orders(250)
    api = api_for(platform)
    first, last = platform.orders[events[10].order_id], platform.orders[events[229].order_id]
    window = (first.updated_at.replace(microsecond=0), last.updated_at.replace(microsecond=0))
    pages = [api.changed_orders(*window, page) for page in range(4)]
    assert [p.total for p in pages] == [220] * 4
    assert [len(p.orders) for p in pages] == [100, 100, 20, 0]
    listed = [o.platform_order_id for p in pages for o in p.orders]
    assert listed == [e.order_id for e in events[10:230]]  # oldest change first, nothing twice
    one = pages[0].orders[0]
    truth = platform.orders[one.platform_order_id]
    assert one.shop_code == truth.shop_code and one.address == truth.address
    assert [(line.platform_sku_code, line.quantity) for line in one.lines] == [
        (line.sku_code, line.quantity) for line in truth.lines
    ]
    # a change moves an order to the end of the listing: it is listed by its newest update
    cancelled = platform.cancel(events[10].order_id, at=last.updated_at + dt.timedelta(seconds=30))
    later = api.changed_orders(window[0], window[1] + dt.timedelta(seconds=30), 2)
    assert later.orders[-1].platform_order_id == cancelled.order_id
    assert later.orders[-1].status is OrderStatus.CANCELLED


def test_search_list_leaves_out_an_unreadable_order_and_refuses_a_bad_answer() -> None:
    platform = fake()
    events = platform.create_orders(2)
    details = [platform.detail(platform.orders[e.order_id]) for e in events]
    details[0]["order_status"] = 999
    answers = iter(
        [
            {"code": 10000, "msg": "success", "data": {"shop_order_list": details, "total": 2}},
            {"code": 10000, "msg": "success", "data": {"orders": []}},
        ]
    )
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(answers))))
    api = doudian.DoudianOrderApi(cred(), client)
    t = dt.datetime(2024, 6, 18)
    page = api.changed_orders(t, t, 0)
    assert [o.platform_order_id for o in page.orders] == [events[1].order_id] and page.total == 2
    with pytest.raises(ApiError, match="no shop_order_list") as caught:
        api.changed_orders(t, t, 0)
    assert not caught.value.retryable


def test_fake_search_list_refuses_pages_over_a_hundred_and_a_window_backwards() -> None:
    api = api_for(fake())
    window = {"update_time_start": T0, "update_time_end": T0 + 60, "page": 0}
    assert api.call("/order/searchList", {**window, "size": 100})["total"] == 0
    with pytest.raises(ApiError, match="40003"):
        api.call("/order/searchList", {**window, "size": 101})
    with pytest.raises(ApiError, match="40003"):
        api.call("/order/searchList", {**window, "size": 10, "update_time_end": T0 - 1})


def test_fake_refuses_a_wrong_secret_and_a_wrong_token() -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    with pytest.raises(ApiError) as caught:
        api_for(platform, cred(secret="not-the-secret")).fetch_order(event.shop_code, event.order_id)
    assert (caught.value.code, caught.value.retryable) == ("40003", False)
    assert "isv.signature-invalid" in str(caught.value)
    with pytest.raises(ApiError) as caught:
        api_for(platform, cred(token="stale")).fetch_order(event.shop_code, event.order_id)
    assert "access-token" in str(caught.value) and caught.value.retryable is False


def test_fake_refuses_param_json_that_is_not_sorted() -> None:
    platform = fake()
    body = '{"shop_order_id":"1","a":"x"}'  # signed as sent, but the platform signs the sorted form
    query = {
        "app_key": APP_KEY,
        "method": "order.orderDetail",
        "timestamp": str(T0),
        "v": "2",
        "sign_method": "hmac-sha256",
        "access_token": TOKEN,
        "sign": doudian.api_sign(APP_KEY, SECRET, "order.orderDetail", body, str(T0)),
    }
    request = httpx.Request(
        "POST", "https://openapi-fxg.jinritemai.com/order/orderDetail", params=query, content=body
    )
    answer = platform.handler(request).json()
    assert (answer["code"], answer["sub_code"]) == (40003, "isv.signature-invalid")


@pytest.mark.parametrize(
    "failure, code",
    [
        (Failure.RATE_LIMIT, "60000"),
        (Failure.SERVER_ERROR, "http_503"),
        (Failure.TIMEOUT, "timeout"),
        (Failure.GARBAGE, "bad_response"),
    ],
)
def test_transient_failures_are_retryable(failure: str, code: str) -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    platform.fail_next(failure)
    api = api_for(platform)
    with pytest.raises(ApiError) as caught:
        api.fetch_order(event.shop_code, event.order_id)
    assert (caught.value.code, caught.value.retryable) == (code, True)
    assert api.fetch_order(event.shop_code, event.order_id).platform_order_id == event.order_id


def test_unknown_order_is_not_retryable() -> None:
    with pytest.raises(ApiError) as caught:
        api_for(fake()).fetch_order("77977", "4800000000000099999")
    assert (caught.value.code, caught.value.retryable) == ("50002", False)


def test_ship_confirmation_is_idempotent_by_tracking_number() -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    api = api_for(platform)
    api.confirm_shipment(event.shop_code, event.order_id, "ZTO", "78412345678901", "parcel-1")
    api.confirm_shipment(
        event.shop_code, event.order_id, "ZTO", "78412345678901", "parcel-1"
    )  # platform refuses; we see it done
    assert [(c.order_id, c.courier, c.tracking_number) for c in platform.confirmations] == [
        (event.order_id, "zhongtong", "78412345678901")
    ]
    assert api.fetch_order(event.shop_code, event.order_id).status is OrderStatus.SHIPPED
    with pytest.raises(ApiError) as caught:
        api.confirm_shipment(event.shop_code, event.order_id, "ZTO", "78400000000000", "parcel-2")
    assert caught.value.retryable is False and len(platform.confirmations) == 1


def test_ship_confirmation_refusals() -> None:
    platform = fake()
    paid, cancelled = platform.create_orders(2)
    platform.cancel(cancelled.order_id)
    api = api_for(platform)
    with pytest.raises(ApiError) as caught:
        api.confirm_shipment(paid.shop_code, paid.order_id, "DHL", "1", "r")
    assert caught.value.code == "unknown_courier" and caught.value.retryable is False
    with pytest.raises(ApiError) as caught:
        api.confirm_shipment(cancelled.shop_code, cancelled.order_id, "SF", "SF100", "r")
    assert caught.value.retryable is False
    assert platform.confirmations == []


# --- the fake's pushes ---


def test_fake_push_of_a_hundred_messages_verifies_and_parses() -> None:
    platform = fake()
    events = platform.create_orders(100)
    headers, body = platform.push(events)
    assert headers["event-sign"] == md5_sign(body)  # the fake's signature, checked against the formula
    credential = doudian.push.verify(headers, body, [cred(NEW_SECRET), cred()])
    messages = doudian.push.parse(headers, body, credential)
    assert len(messages) == 100 and len({m.message_id for m in messages}) == 100
    assert [m.platform_order_id for m in messages] == [e.order_id for e in events]
    assert {m.event for m in messages} == {PushEvent.PAID}
    assert {m.shop_code for m in messages} <= set(SHOPS)


def test_state_changes_make_follow_up_pushes_and_keep_their_own_state() -> None:
    platform = fake(paid_tag="110")
    created = platform.create_orders(1, paid=False)[0]
    paid = platform.pay(created.order_id)
    moved = platform.change_address(created.order_id)
    cancelled = platform.cancel(created.order_id, reason="拍错了/多拍了")
    # Delivered out of order: cancel first, creation last.
    pushes = [platform.push(e) for e in (cancelled, moved, paid, created)]
    parsed = [doudian.push.parse(h, b, doudian.push.verify(h, b, [cred()]))[0] for h, b in pushes]
    assert [m.event for m in parsed] == [
        PushEvent.CANCELLED,
        PushEvent.UPDATED,
        PushEvent.PAID,
        PushEvent.CREATED,
    ]
    assert [m.topic for m in parsed] == ["106", "105", "110", "100"]
    assert json.loads(json.loads(pushes[0][1])[0]["data"])["cancel_reason"] == "拍错了/多拍了"
    assert (created.order.status, paid.order.status, cancelled.order.status) == (
        OrderStatus.CREATED,
        OrderStatus.PAID,
        OrderStatus.CANCELLED,
    )
    assert api_for(platform).fetch_order(created.shop_code, created.order_id).status is OrderStatus.CANCELLED
    with pytest.raises(ValueError):
        platform.pay(created.order_id)


def test_fake_is_deterministic_by_seed() -> None:
    def bodies(seed: int) -> list[bytes]:
        platform = fake(seed)
        return [b for _, b in platform.pushes(platform.create_orders(30), 10)]

    assert bodies(3) == bodies(3)
    assert bodies(3) != bodies(4)


def test_fake_needs_skus_and_shops() -> None:
    make: Callable[..., DoudianFake] = DoudianFake
    with pytest.raises(ValueError):
        make(cred(), sku_codes=[], shop_codes=SHOPS)
    with pytest.raises(ValueError):
        make(cred(), sku_codes=SKUS, shop_codes=[])
