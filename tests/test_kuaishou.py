"""Kuaishou: push decryption and appKey check, heartbeat, API signing, mapping, and the fake. No network.

Ciphertexts are made here with ``cryptography`` (AES/CBC/PKCS7, zero IV) and signatures with hashlib/hmac
from the published formulas, never by the adapter.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from integrations import kuaishou
from integrations.base import ApiError, AppCredential, OrderStatus, PayloadError, PushEvent, SignatureError
from integrations.fakes import Failure
from integrations.fakes.kuaishou import KuaishouFake

APP_KEY = "ks669064233797003102"
SIGN_SECRET = "ks-sign-secret-1"
KEY = b"0123456789abcdef0123456789abcdef"  # AES-256
NEW_KEY = b"fedcba9876543210"  # AES-128 (a rotated app)
TOKEN = "ks-token-1"
SKUS = [f"KS-{i:03d}" for i in range(30)]
SHOPS = ["12342323", "2161524184"]
T0_MS = 1718712000000  # 2024-06-18 12:00:00 UTC


def cred(key: bytes = KEY, app_key: str = APP_KEY, secret: str = SIGN_SECRET, **extra: str) -> AppCredential:
    fields = {"message_key": base64.b64encode(key).decode(), "access_token": TOKEN, **extra}
    return AppCredential("kuaishou", app_key, secret, fields)


def encrypt(plaintext: bytes, key: bytes = KEY) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize())


EVENT = {
    "eventId": "243_4027_2375715766426",
    "bizId": 2607602240240301,
    "userId": 2161524184,
    "openId": "f1b68e8f2a4995ed14bf57245903fd9a",
    "appKey": APP_KEY,
    "event": "kwaishop_order_paySuccess",
    "info": json.dumps({"oid": 2607602240240301, "sellerId": 2161524184, "status": 30, "updateTime": T0_MS}),
    "createTime": T0_MS + 1500,
    "test": False,
}
PLAIN = json.dumps(EVENT, ensure_ascii=False).encode()


def fake(seed: int = 5) -> KuaishouFake:
    return KuaishouFake(cred(), sku_codes=SKUS, shop_codes=SHOPS, seed=seed)


def api_for(
    platform: KuaishouFake,
    credential: AppCredential | None = None,
    *,
    access_token: str | None = None,
    sign_method: str | None = None,
) -> kuaishou.KuaishouOrderApi:
    client = httpx.Client(transport=platform.transport())
    return kuaishou.KuaishouOrderApi(
        credential or cred(), client, access_token=access_token, sign_method=sign_method
    )


# --- push: decryption and appKey ---


def test_known_ciphertext_decrypts_and_parses() -> None:
    body = encrypt(PLAIN)
    assert kuaishou.decrypt(body, base64.b64encode(KEY).decode()) == PLAIN
    credential = kuaishou.push.verify({"Content-Type": "text/plain;charset=utf-8"}, body, [cred()])
    assert credential == cred()
    (message,) = kuaishou.push.parse({}, body, credential)
    assert message.message_id == "243_4027_2375715766426"
    assert (message.topic, message.event) == ("kwaishop_order_paySuccess", PushEvent.PAID)
    assert (message.platform_order_id, message.shop_code) == ("2607602240240301", "2161524184")
    assert message.occurred_at == dt.datetime(2024, 6, 18, 12, 0, 1, 500000)
    assert message.raw == PLAIN


def test_pinned_vector() -> None:
    # AES-256-CBC, zero IV, PKCS#7 of '{"test":true}' under KEY (computed once with cryptography, pinned).
    body = b"ABgnYsy5I3eo6bV1rgesQw=="
    assert encrypt(b'{"test":true}') == body
    assert kuaishou.decrypt(body, base64.b64encode(KEY).decode()) == b'{"test":true}'
    assert (
        kuaishou.push.parse({}, body, kuaishou.push.verify({}, body, [cred()]))[0].event
        is PushEvent.HEARTBEAT
    )


def test_body_split_over_lines_still_decrypts() -> None:
    body = encrypt(PLAIN)
    wrapped = b"\n".join(body[i : i + 76] for i in range(0, len(body), 76)) + b"\n"
    assert kuaishou.push.verify({}, wrapped, [cred()]) == cred()


@pytest.mark.parametrize(
    "body",
    [
        encrypt(PLAIN, b"k" * 32),  # another app's key
        encrypt(json.dumps({**EVENT, "appKey": "ks000000000000000001"}).encode()),  # decrypts, not our app
        encrypt(b"not json at all"),
        b"!!!not base64!!!",
        b"",
        base64.b64encode(b"short"),
        json.dumps(EVENT).encode(),  # plaintext event, not encrypted
    ],
    ids=["wrong-key", "other-app", "not-json", "not-base64", "empty", "not-blocks", "plaintext-event"],
)
def test_verify_refuses(body: bytes) -> None:
    with pytest.raises(SignatureError):
        kuaishou.push.verify({}, body, [cred()])


def test_tampered_ciphertext_is_refused() -> None:
    raw = bytearray(base64.b64decode(encrypt(PLAIN)))
    raw[5] ^= 0x40  # CBC: garbles the first block's plaintext
    with pytest.raises(SignatureError):
        kuaishou.push.verify({}, base64.b64encode(bytes(raw)), [cred()])


def test_rotation_tries_every_active_message_key() -> None:
    old, new = cred(KEY), cred(NEW_KEY)
    assert kuaishou.push.verify({}, encrypt(PLAIN, NEW_KEY), [old, new]) == new
    assert kuaishou.push.verify({}, encrypt(PLAIN, KEY), [new, old]) == old
    without_key = AppCredential("kuaishou", APP_KEY, SIGN_SECRET, {})
    with pytest.raises(SignatureError):
        kuaishou.push.verify({}, encrypt(PLAIN), [without_key])


@pytest.mark.parametrize("encrypted", [True, False])
def test_heartbeat_is_one_heartbeat_message_with_the_same_answer(encrypted: bool) -> None:
    body = encrypt(b'{"test":true}') if encrypted else b'{"test":true}'
    credential = kuaishou.push.verify({}, body, [cred()])
    (message,) = kuaishou.push.parse({}, body, credential)
    assert message.event is PushEvent.HEARTBEAT and message.platform_order_id is None
    answer = kuaishou.push.success()
    assert (answer.status, json.loads(answer.body)) == (200, {"result": 1})


@pytest.mark.parametrize(
    "event, reason",
    [
        ({**EVENT, "eventId": ""}, "missing eventId"),
        ({**EVENT, "event": None}, "missing event name"),
        ({**EVENT, "info": "{broken"}, "info is not valid JSON"),
        ({**EVENT, "info": {"oid": 1}}, "info is not a JSON string"),
        ({**EVENT, "info": "[1,2]"}, "info is not a JSON object"),
        ({**EVENT, "createTime": "soon"}, "createTime"),
    ],
)
def test_parse_errors_name_the_reason(event: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        kuaishou.push.parse({}, encrypt(json.dumps(event).encode()), cred())


def test_parse_error_carries_the_event_id() -> None:
    with pytest.raises(PayloadError) as caught:
        kuaishou.push.parse({}, encrypt(json.dumps({**EVENT, "info": "{x"}).encode()), cred())
    assert getattr(caught.value, "message_id", None) == "243_4027_2375715766426"


# --- API signing ---

PARAMS = {
    "access_token": TOKEN,
    "appkey": APP_KEY,
    "method": "open.order.detail",
    "param": '{"oid":2607602240240301}',
    "signMethod": "MD5",
    "timestamp": str(T0_MS),
    "version": "1",
}
SIGN_TEXT = (
    f'access_token={TOKEN}&appkey={APP_KEY}&method=open.order.detail&param={{"oid":2607602240240301}}'
    f"&signMethod=MD5&timestamp={T0_MS}&version=1&signSecret={SIGN_SECRET}"
)


def test_md5_sign_known_answer() -> None:
    expected = hashlib.md5(SIGN_TEXT.encode()).hexdigest()
    assert kuaishou.api_sign(PARAMS, SIGN_SECRET, "MD5") == expected


def test_hmac_sha256_sign_known_answer() -> None:
    params = {**PARAMS, "signMethod": "HMAC_SHA256"}
    text = SIGN_TEXT.replace("signMethod=MD5", "signMethod=HMAC_SHA256")
    expected = base64.b64encode(
        hmac.new(SIGN_SECRET.encode(), text.encode(), hashlib.sha256).digest()
    ).decode()
    assert kuaishou.api_sign(params, SIGN_SECRET, "HMAC_SHA256") == expected
    with pytest.raises(ValueError):
        kuaishou.api_sign(params, SIGN_SECRET, "SHA1")


@pytest.mark.parametrize("sign_method", ["MD5", "HMAC_SHA256"])
def test_detail_request_carries_the_signed_parameters(sign_method: str) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": 24, "error_msg": "AUTHORIZATION_REVOKED"})

    client = httpx.Client(transport=httpx.MockTransport(record))
    api = kuaishou.KuaishouOrderApi(cred(), client, sign_method=sign_method, clock=lambda: T0_MS / 1000)
    with pytest.raises(ApiError) as caught:
        api.fetch_order("2161524184", "2607602240240301")
    assert (caught.value.code, caught.value.retryable) == ("24", False)
    request = seen[0]
    assert (request.method, request.url.host, request.url.path) == (
        "GET",
        "openapi.kwaixiaodian.com",
        "/open/order/detail",
    )
    text = SIGN_TEXT.replace("signMethod=MD5", f"signMethod={sign_method}")
    if sign_method == "MD5":
        expected = hashlib.md5(text.encode()).hexdigest()
    else:
        expected = base64.b64encode(
            hmac.new(SIGN_SECRET.encode(), text.encode(), hashlib.sha256).digest()
        ).decode()
    assert dict(request.url.params) == {**PARAMS, "signMethod": sign_method, "sign": expected}


def test_delivery_is_a_signed_form_post() -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    api_for(platform).confirm_shipment(event.shop_code, event.order_id, "YTO", "YT7500000000001", "p-1")
    request = platform.calls[-1]
    assert (request.method, request.url.path) == ("POST", "/open/seller/order/goods/deliver")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert json.loads(form["param"]) == {
        "orderId": int(event.order_id),
        "expressNo": "YT7500000000001",
        "expressCode": 6,
    }


# --- mapping ---

DETAIL = {
    "orderBaseInfo": {
        "oid": 2607602240240301,
        "status": 30,
        "createTime": T0_MS,
        "payTime": T0_MS + 30_000,
        "updateTime": T0_MS + 60_000,
        "validPromiseShipmentTimeStamp": T0_MS + 48 * 3600 * 1000,
        "preSale": 0,
    },
    "orderItemInfo": {"skuId": 3456, "skuNick": "KS-KNIT-01", "num": 3, "itemTitle": "羊毛开衫"},
    "orderAddress": {
        "consignee": "李娜",
        "mobile": "15900001111",
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "address": "文三路90号",
    },
    "orderLogisticsInfo": [],
}


def test_detail_maps_to_canonical_order() -> None:
    order = kuaishou.to_canonical("2161524184", DETAIL)
    assert (order.platform, order.shop_code, order.platform_order_id) == (
        "kuaishou",
        "2161524184",
        "2607602240240301",
    )
    assert order.status is OrderStatus.PAID
    assert order.created_at == dt.datetime(2024, 6, 18, 12, 0, 0)
    assert order.paid_at == dt.datetime(2024, 6, 18, 12, 0, 30)
    assert order.updated_at == dt.datetime(2024, 6, 18, 12, 1, 0)
    assert order.ship_by == dt.datetime(2024, 6, 20, 12, 0, 0)
    assert [(line.platform_sku_code, line.quantity, line.title) for line in order.lines] == [
        ("KS-KNIT-01", 3, "羊毛开衫")
    ]
    assert (
        order.address is not None
        and order.address.detail == "文三路90号"
        and order.address.district == "西湖区"
    )
    assert order.presale is False


@pytest.mark.parametrize(
    "status, expected",
    [
        (10, OrderStatus.CREATED),
        (40, OrderStatus.SHIPPED),
        (50, OrderStatus.COMPLETED),
        (70, OrderStatus.COMPLETED),
        (80, OrderStatus.CANCELLED),
    ],
)
def test_status_codes(status: int, expected: OrderStatus) -> None:
    base = {**DETAIL["orderBaseInfo"], "status": status, "preSale": 1}  # type: ignore[dict-item]
    order = kuaishou.to_canonical("1", {**DETAIL, "orderBaseInfo": base})
    assert order.status is expected and order.presale is True


def test_sku_falls_back_to_sku_id_and_bad_details_are_api_errors() -> None:
    item = {"skuId": 3456, "skuNick": "", "num": 1}
    assert kuaishou.to_canonical("1", {**DETAIL, "orderItemInfo": item}).lines[0].platform_sku_code == "3456"
    for broken in (
        {**DETAIL, "orderItemInfo": {"num": 1}},
        {**DETAIL, "orderBaseInfo": {"oid": 1, "status": 99}},
        {},
    ):
        with pytest.raises(ApiError) as caught:
            kuaishou.to_canonical("1", broken)
        assert caught.value.retryable is False


# --- API against the fake ---


@pytest.mark.parametrize("sign_method", ["MD5", "HMAC_SHA256"])
def test_fetch_order_through_the_fake(sign_method: str) -> None:
    platform = fake()
    event = platform.create_orders(4)[2]
    order = api_for(platform, sign_method=sign_method).fetch_order(event.shop_code, event.order_id)
    truth = platform.orders[event.order_id]
    assert order.status is OrderStatus.PAID and order.address == truth.address
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        (truth.lines[0].sku_code, truth.lines[0].quantity)
    ]


def test_fake_refuses_a_wrong_sign_secret() -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    with pytest.raises(ApiError) as caught:
        api_for(platform, cred(secret="wrong")).fetch_order(event.shop_code, event.order_id)
    assert caught.value.retryable is False and caught.value.code == "28"
    with pytest.raises(ApiError) as caught:
        api_for(platform, access_token="revoked").fetch_order(event.shop_code, event.order_id)
    assert (caught.value.code, caught.value.retryable) == ("24", False)


@pytest.mark.parametrize(
    "failure, code",
    [
        (Failure.RATE_LIMIT, "1017"),
        (Failure.SERVER_ERROR, "http_503"),
        (Failure.TIMEOUT, "timeout"),
        (Failure.GARBAGE, "bad_response"),
    ],
)
def test_transient_failures_are_retryable(failure: str, code: str) -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    platform.fail_next(failure)
    with pytest.raises(ApiError) as caught:
        api_for(platform).fetch_order(event.shop_code, event.order_id)
    assert (caught.value.code, caught.value.retryable) == (code, True)


def test_delivery_is_idempotent_by_tracking_number() -> None:
    platform = fake()
    event = platform.create_orders(1)[0]
    api = api_for(platform)
    api.confirm_shipment(event.shop_code, event.order_id, "JT", "JT0001234567", "p-1")
    api.confirm_shipment(event.shop_code, event.order_id, "JT", "JT0001234567", "p-1")
    assert [(c.courier, c.tracking_number) for c in platform.confirmations] == [("109", "JT0001234567")]
    assert api.fetch_order(event.shop_code, event.order_id).status is OrderStatus.SHIPPED
    with pytest.raises(ApiError) as caught:
        api.confirm_shipment(event.shop_code, event.order_id, "JT", "JT0009999999", "p-2")
    assert caught.value.retryable is False and len(platform.confirmations) == 1
    with pytest.raises(ApiError) as caught:
        api.confirm_shipment(event.shop_code, event.order_id, "UPS", "1Z", "p-3")
    assert caught.value.code == "unknown_courier"


# --- the fake's pushes ---


def test_fake_pushes_decrypt_with_the_adapter_and_follow_state_changes() -> None:
    platform = fake()
    created = platform.create_orders(1, paid=False)[0]
    paid = platform.pay(created.order_id)
    failed = platform.cancel(created.order_id)
    for event, expected in (
        (failed, PushEvent.CANCELLED),
        (created, PushEvent.CREATED),
        (paid, PushEvent.PAID),
    ):
        headers, body = platform.push(event)
        assert headers["Content-Type"].startswith("text/plain")
        plaintext = kuaishou.decrypt(body, base64.b64encode(KEY).decode())
        assert json.loads(plaintext)["appKey"] == APP_KEY
        (message,) = kuaishou.push.parse(
            headers, body, kuaishou.push.verify(headers, body, [cred(NEW_KEY), cred()])
        )
        assert (message.event, message.platform_order_id, message.message_id) == (
            expected,
            created.order_id,
            event.message_id,
        )
    assert (
        json.loads(
            json.loads(kuaishou.decrypt(platform.push(failed)[1], base64.b64encode(KEY).decode()))["info"]
        )["status"]
        == 80
    )
    with pytest.raises(ValueError):
        platform.push([created, paid])
    headers, body = platform.heartbeat()
    assert (
        kuaishou.push.parse(headers, body, kuaishou.push.verify(headers, body, [cred()]))[0].event
        is PushEvent.HEARTBEAT
    )


def test_fake_needs_numeric_seller_ids_and_a_message_key() -> None:
    with pytest.raises(ValueError):
        KuaishouFake(cred(), sku_codes=SKUS, shop_codes=["shop-a"])
    with pytest.raises(ValueError):
        KuaishouFake(AppCredential("kuaishou", APP_KEY, SIGN_SECRET, {}), sku_codes=SKUS, shop_codes=SHOPS)
