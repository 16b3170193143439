"""WooCommerce: webhook signature, the unsigned ping, parsing, the REST client against the fake, mapping.

Expected signatures are computed here with hmac/hashlib/base64 from the published formula. No network.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest

from integrations import woocommerce
from integrations.base import ApiError, AppCredential, OrderStatus, PayloadError, PushEvent, SignatureError
from integrations.fakes import Failure
from integrations.fakes.woocommerce import WooCommerceFake

SECRET = "wc-webhook-secret-1"
NEW_SECRET = "wc-webhook-secret-2"
CONSUMER_KEY = "ck_0123456789abcdef"
CONSUMER_SECRET = "cs_fedcba9876543210"
SHOP = "shop.changshu-knit.example"
SKUS = [f"WC-{i:03d}" for i in range(20)]


def cred(secret: str = SECRET, consumer_secret: str = CONSUMER_SECRET) -> AppCredential:
    return AppCredential("woocommerce", CONSUMER_KEY, secret, {"consumer_secret": consumer_secret})


def signature(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def fake(seed: int = 13) -> WooCommerceFake:
    return WooCommerceFake(cred(), sku_codes=SKUS, shop_codes=[SHOP, "other.example"], seed=seed)


def api_for(
    platform: WooCommerceFake, credential: AppCredential | None = None
) -> woocommerce.WooCommerceOrderApi:
    return woocommerce.WooCommerceOrderApi(credential or cred(), httpx.Client(transport=platform.transport()))


ORDER = {
    "id": 4750,
    "number": "4750",
    "status": "processing",
    "date_created": "2024-06-18T08:00:00",
    "date_created_gmt": "2024-06-18T12:00:00",
    "date_modified_gmt": "2024-06-18T12:10:00",
    "date_paid_gmt": "2024-06-18T12:01:00",
    "billing": {
        "first_name": "Liam",
        "last_name": "Brown",
        "address_1": "9 Oak Ave",
        "city": "Boston",
        "state": "MA",
        "postcode": "02108",
        "country": "US",
        "phone": "+1 617-555-0101",
    },
    "shipping": {
        "first_name": "",
        "last_name": "",
        "address_1": "",
        "city": "",
        "state": "",
        "postcode": "",
        "country": "",
        "phone": "",
    },
    "line_items": [
        {
            "id": 1,
            "name": "Cardigan - Black / M",
            "product_id": 501,
            "variation_id": 0,
            "quantity": 2,
            "sku": "WC-001",
        },
        {"id": 2, "name": "Scarf", "product_id": 502, "variation_id": 777, "quantity": 1, "sku": ""},
        {
            "id": 3,
            "name": "Refunded hat",
            "product_id": 503,
            "variation_id": 0,
            "quantity": 0,
            "sku": "WC-003",
        },
    ],
    "meta_data": [],
}
BODY = json.dumps(ORDER).encode()
HEADERS = {
    "X-WC-Webhook-Source": f"https://{SHOP}/",
    "X-WC-Webhook-Topic": "order.updated",
    "X-WC-Webhook-Resource": "order",
    "X-WC-Webhook-Event": "updated",
    "X-WC-Webhook-Signature": signature(BODY),
    "X-WC-Webhook-ID": "3",
    "X-WC-Webhook-Delivery-ID": "36e520ebabc2fa725092ff4a47acedf2",
}


# --- signature and ping ---


def test_signature_known_answer() -> None:
    body = b'{"id":4750,"status":"processing"}'
    expected = base64.b64encode(hmac.new(b"wc-webhook-secret-1", body, hashlib.sha256).digest()).decode()
    assert woocommerce.webhook_signature(body, SECRET) == expected
    assert woocommerce.push.verify({"x-wc-webhook-signature": expected}, body, [cred()]) == cred()


@pytest.mark.parametrize(
    "headers, body",
    [
        ({**HEADERS, "X-WC-Webhook-Signature": signature(BODY, "wrong")}, BODY),
        (HEADERS, BODY.replace(b"processing", b"completed!")),
        ({k: v for k, v in HEADERS.items() if k != "X-WC-Webhook-Signature"}, BODY),
        ({}, b"webhook_id=3"),
    ],
    ids=["wrong-secret", "tampered-body", "missing-header", "unsigned-ping"],
)
def test_verify_refuses(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(SignatureError):
        woocommerce.push.verify(headers, body, [cred()])


def test_rotation_accepts_either_secret() -> None:
    old, new = cred(SECRET), cred(NEW_SECRET)
    assert (
        woocommerce.push.verify(
            {**HEADERS, "X-WC-Webhook-Signature": signature(BODY, NEW_SECRET)}, BODY, [old, new]
        )
        == new
    )
    assert woocommerce.push.verify(HEADERS, BODY, [new, old]) == old


@pytest.mark.parametrize(
    "body, ping",
    [
        (b"webhook_id=3", True),
        (b"webhook_id=123\n", True),
        (BODY, False),
        (b"webhook_id=abc", False),
        (b"", False),
    ],
)
def test_the_unsigned_ping_is_recognised(body: bytes, ping: bool) -> None:
    assert woocommerce.push.is_ping({"Content-Type": "application/x-www-form-urlencoded"}, body) is ping
    assert 200 <= woocommerce.push.success().status < 300


# --- parsing ---


def test_parse_reads_the_delivery() -> None:
    (message,) = woocommerce.push.parse({k.lower(): v for k, v in HEADERS.items()}, BODY, cred())
    assert message.message_id == "36e520ebabc2fa725092ff4a47acedf2"
    assert (message.topic, message.event) == ("order.updated", PushEvent.PAID)
    assert (message.shop_code, message.platform_order_id) == (SHOP, "4750")
    assert message.occurred_at == dt.datetime(2024, 6, 18, 12, 10, 0)
    assert message.raw == BODY


@pytest.mark.parametrize(
    "topic, status, event",
    [
        ("order.created", "pending", PushEvent.CREATED),
        ("order.created", "processing", PushEvent.PAID),
        ("order.updated", "completed", PushEvent.SHIPPED),
        ("order.updated", "cancelled", PushEvent.CANCELLED),
        ("order.updated", "refunded", PushEvent.REFUND),
        ("order.updated", "on-hold", PushEvent.UPDATED),
        ("order.deleted", "trash", PushEvent.CANCELLED),
        ("order.restored", "processing", PushEvent.UPDATED),
    ],
)
def test_events(topic: str, status: str, event: PushEvent) -> None:
    body = json.dumps({**ORDER, "status": status, "date_paid_gmt": None}).encode()
    assert woocommerce.push.parse({**HEADERS, "X-WC-Webhook-Topic": topic}, body, cred())[0].event is event


def test_non_order_resources_are_updates_without_an_order() -> None:
    headers = {**HEADERS, "X-WC-Webhook-Topic": "product.updated", "X-WC-Webhook-Resource": "product"}
    (message,) = woocommerce.push.parse(headers, b'{"id":501,"sku":"WC-001"}', cred())
    assert (message.event, message.platform_order_id) == (PushEvent.UPDATED, None)


@pytest.mark.parametrize(
    "headers, body, reason",
    [
        ({k: v for k, v in HEADERS.items() if k != "X-WC-Webhook-Delivery-ID"}, BODY, "Delivery-ID"),
        ({k: v for k, v in HEADERS.items() if not k.endswith(("Topic", "Resource"))}, BODY, "Topic"),
        (HEADERS, b"{oops", "not valid JSON"),
        (HEADERS, b'"text"', "not a JSON object"),
        (HEADERS, b'{"status":"processing"}', "no id"),
        (HEADERS, json.dumps({**ORDER, "date_modified_gmt": "later"}).encode(), "bad timestamp"),
    ],
)
def test_parse_errors_name_the_reason(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason) as caught:
        woocommerce.push.parse(headers, body, cred())
    if "X-WC-Webhook-Delivery-ID" in headers and "X-WC-Webhook-Topic" in headers:
        assert getattr(caught.value, "message_id", None) == "36e520ebabc2fa725092ff4a47acedf2"


# --- mapping ---


def test_order_maps_to_canonical_order_shipping_to_billing_when_no_shipping_address() -> None:
    order = woocommerce.order_from_push(SHOP, BODY)
    assert order is not None
    assert (order.platform, order.shop_code, order.platform_order_id) == ("woocommerce", SHOP, "4750")
    assert order.status is OrderStatus.PAID
    assert order.created_at == dt.datetime(2024, 6, 18, 12, 0, 0)
    assert order.paid_at == dt.datetime(2024, 6, 18, 12, 1, 0)
    assert order.updated_at == dt.datetime(2024, 6, 18, 12, 10, 0)
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [("WC-001", 2), ("777", 1)]
    assert order.address is not None
    assert (order.address.name, order.address.phone, order.address.city) == (
        "Liam Brown",
        "+1 617-555-0101",
        "Boston",
    )
    assert order.address.detail == "9 Oak Ave, 02108, US"
    assert woocommerce.order_from_push(SHOP, b'{"id": 4750}') is None
    assert woocommerce.order_from_push(SHOP, b"webhook_id=3") is None


@pytest.mark.parametrize(
    "status, expected",
    [
        ("pending", OrderStatus.CREATED),
        ("on-hold", OrderStatus.CREATED),
        ("completed", OrderStatus.SHIPPED),
        ("cancelled", OrderStatus.CANCELLED),
        ("refunded", OrderStatus.CANCELLED),
        ("failed", OrderStatus.CANCELLED),
    ],
)
def test_statuses(status: str, expected: OrderStatus) -> None:
    order = woocommerce.to_canonical(SHOP, {**ORDER, "status": status})
    assert order.status is expected
    assert order.cancel_reason == (status if expected is OrderStatus.CANCELLED else None)


def test_unreadable_order_is_a_non_retryable_api_error() -> None:
    for broken in (
        {**ORDER, "status": "exotic"},
        {**ORDER, "date_created_gmt": None},
        {**ORDER, "line_items": []},
    ):
        with pytest.raises(ApiError) as caught:
            woocommerce.to_canonical(SHOP, broken)
        assert caught.value.retryable is False


# --- REST against the fake ---


def test_fetch_order_with_basic_auth() -> None:
    platform = fake()
    event = platform.create_orders(2, shop_code=SHOP)[1]
    order = api_for(platform).fetch_order(SHOP, event.order_id)
    request = platform.calls[-1]
    assert (request.url.host, request.url.path) == (SHOP, f"/wp-json/wc/v3/orders/{event.order_id}")
    expected = "Basic " + base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == expected
    truth = platform.orders[event.order_id]
    assert order.status is OrderStatus.PAID and order.address == truth.address
    assert order.created_at == truth.created_at.replace(microsecond=0)
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        (x.sku_code, x.quantity) for x in truth.lines
    ]


def test_wrong_consumer_secret_and_unknown_order_are_not_retryable() -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    with pytest.raises(ApiError) as caught:
        api_for(platform, cred(consumer_secret="cs_wrong")).fetch_order(SHOP, event.order_id)
    assert (caught.value.code, caught.value.retryable) == ("woocommerce_rest_cannot_view", False)
    with pytest.raises(ApiError) as caught:
        api_for(platform).fetch_order(SHOP, "999999")
    assert (caught.value.code, caught.value.retryable) == ("woocommerce_rest_shop_order_invalid_id", False)


@pytest.mark.parametrize(
    "failure, code",
    [
        (Failure.RATE_LIMIT, "http_429"),
        (Failure.SERVER_ERROR, "http_503"),
        (Failure.TIMEOUT, "timeout"),
        (Failure.GARBAGE, "bad_response"),
    ],
)
def test_transient_failures_are_retryable(failure: str, code: str) -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    platform.fail_next(failure)
    with pytest.raises(ApiError) as caught:
        api_for(platform).fetch_order(SHOP, event.order_id)
    assert (caught.value.code, caught.value.retryable) == (code, True)


def test_ship_confirmation_adds_a_note_records_tracking_and_completes_once() -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    api = api_for(platform)
    api.confirm_shipment(SHOP, event.order_id, "YUNDA", "4312000000001", "parcel-1")
    api.confirm_shipment(SHOP, event.order_id, "YUNDA", "4312000000001", "parcel-1")
    assert [(c.courier, c.tracking_number) for c in platform.confirmations] == [("YUNDA", "4312000000001")]
    notes = platform.notes[event.order_id]
    assert len(notes) == 1 and "4312000000001" in notes[0]["note"] and notes[0]["customer_note"] is True
    assert api.fetch_order(SHOP, event.order_id).status is OrderStatus.SHIPPED
    api.confirm_shipment(SHOP, event.order_id, "YUNDA", "4312000000002", "parcel-2")  # a second parcel
    assert [c.tracking_number for c in platform.confirmations] == ["4312000000001", "4312000000002"]
    order_json = platform.order_json(platform.orders[event.order_id])
    assert woocommerce.tracking_numbers(order_json) == ["4312000000001", "4312000000002"]


def test_cancelled_order_is_not_shipped() -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    platform.cancel(event.order_id)
    with pytest.raises(ApiError) as caught:
        api_for(platform).confirm_shipment(SHOP, event.order_id, "ZTO", "ZT1", "p")
    assert (caught.value.code, caught.value.retryable) == ("not_shippable", False)
    assert platform.confirmations == [] and event.order_id not in platform.notes


# --- the fake's webhooks ---


def test_fake_deliveries_verify_parse_and_carry_the_order_as_it_was() -> None:
    platform = fake()
    created = platform.create_orders(1, paid=False, shop_code=SHOP)[0]
    paid = platform.pay(created.order_id)
    cancelled = platform.cancel(created.order_id)
    for event, topic, expected in (
        (cancelled, "order.updated", PushEvent.CANCELLED),
        (paid, "order.updated", PushEvent.PAID),
        (created, "order.created", PushEvent.CREATED),
    ):
        headers, body = platform.push(event)
        assert headers["X-WC-Webhook-Signature"] == signature(body)
        (message,) = woocommerce.push.parse(
            headers, body, woocommerce.push.verify(headers, body, [cred(NEW_SECRET), cred()])
        )
        assert (message.topic, message.event, message.message_id, message.shop_code) == (
            topic,
            expected,
            event.message_id,
            SHOP,
        )
    headers, body = platform.ping(SHOP)
    assert woocommerce.push.is_ping(headers, body) and body == b"webhook_id=1"
