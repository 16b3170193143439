"""Shopify: webhook HMAC, parsing, the Admin REST client against the fake, mapping. No network.

Expected HMACs are computed here with hmac/hashlib/base64 from the published formula, never by the adapter.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest

from integrations import shopify
from integrations.base import ApiError, AppCredential, OrderStatus, PayloadError, PushEvent, SignatureError
from integrations.fakes import Failure
from integrations.fakes.shopify import ShopifyFake

SECRET = "shpss_client_secret_one"
NEW_SECRET = "shpss_client_secret_two"
TOKEN = "shpat_admin_token"
SHOP = "changshu-knit.myshopify.com"
SKUS = [f"KNIT-{i:03d}" for i in range(25)]


def cred(secret: str = SECRET, token: str = TOKEN) -> AppCredential:
    return AppCredential("shopify", "client-id-1", secret, {"access_token": token})


def expected_hmac(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def fake(seed: int = 11) -> ShopifyFake:
    return ShopifyFake(cred(), sku_codes=SKUS, shop_codes=[SHOP, "other-store.myshopify.com"], seed=seed)


def api_for(platform: ShopifyFake, credential: AppCredential | None = None) -> shopify.ShopifyOrderApi:
    return shopify.ShopifyOrderApi(credential or cred(), httpx.Client(transport=platform.transport()))


ORDER = {
    "id": 5890123456789,
    "name": "#1042",
    "created_at": "2024-06-18T08:00:00-04:00",
    "updated_at": "2024-06-18T08:05:00-04:00",
    "processed_at": "2024-06-18T08:00:30-04:00",
    "cancelled_at": None,
    "cancel_reason": None,
    "financial_status": "paid",
    "fulfillment_status": None,
    "line_items": [
        {
            "id": 1,
            "sku": "KNIT-001",
            "variant_id": 44000000001,
            "quantity": 2,
            "current_quantity": 2,
            "title": "Cardigan",
        },
        {"id": 2, "sku": "", "variant_id": 44000000002, "quantity": 1, "title": "Scarf"},
        {
            "id": 3,
            "sku": "KNIT-003",
            "variant_id": 44000000003,
            "quantity": 1,
            "current_quantity": 0,
            "title": "Removed",
        },
    ],
    "shipping_address": {
        "name": "Emma Smith",
        "phone": "+1 212-555-0100",
        "address1": "12 Main St",
        "address2": "Apt 4",
        "city": "New York",
        "province": "New York",
        "zip": "10001",
        "country_code": "US",
    },
}
BODY = json.dumps(ORDER).encode()
HEADERS = {
    "X-Shopify-Topic": "orders/paid",
    "X-Shopify-Hmac-Sha256": expected_hmac(BODY),
    "X-Shopify-Shop-Domain": SHOP,
    "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    "X-Shopify-Triggered-At": "2024-06-18T12:05:01.123456Z",
}


# --- webhook HMAC ---


def test_hmac_known_answer() -> None:
    body = b'{"id":5890123456789,"financial_status":"paid"}'
    digest = hmac.new(b"shpss_client_secret_one", body, hashlib.sha256).digest()
    assert shopify.webhook_hmac(body, SECRET) == base64.b64encode(digest).decode()
    headers = {"x-shopify-hmac-sha256": base64.b64encode(digest).decode()}
    assert shopify.push.verify(headers, body, [cred()]) == cred()


@pytest.mark.parametrize(
    "headers, body",
    [
        ({**HEADERS, "X-Shopify-Hmac-Sha256": expected_hmac(BODY, "wrong")}, BODY),
        (HEADERS, BODY.replace(b"paid", b"pend")),
        ({k: v for k, v in HEADERS.items() if k != "X-Shopify-Hmac-Sha256"}, BODY),
        ({**HEADERS, "X-Shopify-Hmac-Sha256": ""}, BODY),
    ],
    ids=["wrong-secret", "tampered-body", "missing-header", "empty-header"],
)
def test_verify_refuses(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(SignatureError):
        shopify.push.verify(headers, body, [cred()])


def test_old_and_new_secret_are_both_accepted_during_rotation() -> None:
    old, new = cred(SECRET), cred(NEW_SECRET)
    assert (
        shopify.push.verify(
            {**HEADERS, "X-Shopify-Hmac-Sha256": expected_hmac(BODY, NEW_SECRET)}, BODY, [old, new]
        )
        == new
    )
    assert shopify.push.verify(HEADERS, BODY, [new, old]) == old


# --- parsing ---


def test_parse_reads_the_webhook() -> None:
    (message,) = shopify.push.parse({k.lower(): v for k, v in HEADERS.items()}, BODY, cred())
    assert message.message_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert (message.topic, message.event) == ("orders/paid", PushEvent.PAID)
    assert (message.shop_code, message.platform_order_id) == (SHOP, "5890123456789")
    assert message.occurred_at == dt.datetime(2024, 6, 18, 12, 5, 1, 123456)
    assert message.raw == BODY


@pytest.mark.parametrize(
    "topic, event",
    [
        ("orders/create", PushEvent.CREATED),
        ("orders/cancelled", PushEvent.CANCELLED),
        ("orders/fulfilled", PushEvent.SHIPPED),
        ("orders/updated", PushEvent.UPDATED),
        ("orders/partially_fulfilled", PushEvent.UPDATED),
    ],
)
def test_topics(topic: str, event: PushEvent) -> None:
    assert shopify.push.parse({**HEADERS, "X-Shopify-Topic": topic}, BODY, cred())[0].event is event


def test_refund_webhook_names_its_order() -> None:
    body = b'{"id":991,"order_id":5890123456789,"created_at":"2024-06-18T09:00:00-04:00"}'
    (message,) = shopify.push.parse({**HEADERS, "X-Shopify-Topic": "refunds/create"}, body, cred())
    assert (message.event, message.platform_order_id) == (PushEvent.REFUND, "5890123456789")
    assert shopify.order_from_push(SHOP, body) is None


@pytest.mark.parametrize(
    "headers, body, reason",
    [
        ({k: v for k, v in HEADERS.items() if k != "X-Shopify-Topic"}, BODY, "X-Shopify-Topic"),
        ({k: v for k, v in HEADERS.items() if k != "X-Shopify-Webhook-Id"}, BODY, "X-Shopify-Webhook-Id"),
        (HEADERS, b"not json", "not valid JSON"),
        (HEADERS, b"[1]", "not a JSON object"),
        (HEADERS, b'{"name":"#1"}', "no id"),
        ({**HEADERS, "X-Shopify-Triggered-At": "yesterday"}, BODY, "bad timestamp"),
    ],
)
def test_parse_errors_name_the_reason(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        shopify.push.parse(headers, body, cred())


def test_success_is_a_2xx() -> None:
    assert 200 <= shopify.push.success().status < 300


# --- mapping ---


def test_order_maps_to_canonical_order() -> None:
    order = shopify.order_from_push(SHOP, BODY)
    assert order is not None
    assert (order.platform, order.shop_code, order.platform_order_id) == ("shopify", SHOP, "5890123456789")
    assert order.status is OrderStatus.PAID
    assert order.created_at == dt.datetime(2024, 6, 18, 12, 0, 0)
    assert order.paid_at == dt.datetime(2024, 6, 18, 12, 0, 30)
    assert order.updated_at == dt.datetime(2024, 6, 18, 12, 5, 0)
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        ("KNIT-001", 2),
        ("44000000002", 1),
    ]
    assert order.address is not None
    assert (order.address.name, order.address.province, order.address.city) == (
        "Emma Smith",
        "New York",
        "New York",
    )
    assert order.address.detail == "12 Main St, Apt 4, 10001, US"
    assert order.ship_by is None and order.presale is False


@pytest.mark.parametrize(
    "change, status, reason",
    [
        ({"financial_status": "pending"}, OrderStatus.CREATED, None),
        ({"financial_status": "authorized"}, OrderStatus.PAID, None),
        ({"fulfillment_status": "fulfilled"}, OrderStatus.SHIPPED, None),
        (
            {"cancelled_at": "2024-06-18T09:00:00-04:00", "cancel_reason": "customer"},
            OrderStatus.CANCELLED,
            "customer",
        ),
        ({"financial_status": "refunded"}, OrderStatus.CANCELLED, "refunded"),
        ({"financial_status": "voided"}, OrderStatus.CANCELLED, "voided"),
    ],
)
def test_statuses(change: dict[str, object], status: OrderStatus, reason: str | None) -> None:
    order = shopify.to_canonical(SHOP, {**ORDER, **change})
    assert (order.status, order.cancel_reason) == (status, reason)
    # A refunded or cancelled order was paid; a pending or voided one never was.
    assert (order.paid_at is None) == (order.cancel_reason == "voided" or order.status is OrderStatus.CREATED)


def test_unreadable_order_is_a_non_retryable_api_error() -> None:
    for broken in (
        {**ORDER, "created_at": None},
        {**ORDER, "line_items": []},
        {**ORDER, "created_at": "June"},
    ):
        with pytest.raises(ApiError) as caught:
            shopify.to_canonical(SHOP, broken)
        assert caught.value.retryable is False


# --- Admin REST against the fake ---


def test_fetch_order_uses_the_token_and_versioned_path() -> None:
    platform = fake()
    event = platform.create_orders(3, shop_code=SHOP)[1]
    order = api_for(platform).fetch_order(SHOP, event.order_id)
    request = platform.calls[-1]
    assert (request.url.host, request.url.path) == (SHOP, f"/admin/api/2024-07/orders/{event.order_id}.json")
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    truth = platform.orders[event.order_id]
    assert order.status is OrderStatus.PAID and order.address == truth.address
    assert [(line.platform_sku_code, line.quantity) for line in order.lines] == [
        (x.sku_code, x.quantity) for x in truth.lines
    ]
    assert order.created_at == truth.created_at


def test_wrong_token_unknown_order_and_other_shop_are_not_retryable() -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    with pytest.raises(ApiError) as caught:
        api_for(platform, cred(token="shpat_wrong")).fetch_order(SHOP, event.order_id)
    assert (caught.value.code, caught.value.retryable) == ("http_401", False)
    with pytest.raises(ApiError) as caught:
        api_for(platform).fetch_order(SHOP, "5890000000999")
    assert (caught.value.code, caught.value.retryable) == ("not_found", False)
    with pytest.raises(ApiError) as caught:
        api_for(platform).fetch_order("other-store.myshopify.com", event.order_id)
    assert caught.value.code == "not_found"


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


def test_fulfilment_with_tracking_is_idempotent() -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    api = api_for(platform)
    api.confirm_shipment(SHOP, event.order_id, "SF", "SF1400000000001", "parcel-1")
    api.confirm_shipment(SHOP, event.order_id, "SF", "SF1400000000001", "parcel-1")
    assert [(c.courier, c.tracking_number) for c in platform.confirmations] == [
        ("SF Express", "SF1400000000001")
    ]
    posts = [r for r in platform.calls if r.method == "POST"]
    assert len(posts) == 1
    body = json.loads(posts[0].content)["fulfillment"]
    assert body["tracking_info"] == {"number": "SF1400000000001", "company": "SF Express"}
    assert body["line_items_by_fulfillment_order"] == [
        {"fulfillment_order_id": platform.fulfillment_order_id(platform.orders[event.order_id])}
    ]
    assert api.fetch_order(SHOP, event.order_id).status is OrderStatus.SHIPPED
    with pytest.raises(ApiError) as caught:
        api.confirm_shipment(SHOP, event.order_id, "SF", "SF1400000000002", "parcel-2")
    assert (caught.value.code, caught.value.retryable) == ("not_fulfillable", False)


def test_cancelled_order_is_not_fulfilled() -> None:
    platform = fake()
    event = platform.create_orders(1, shop_code=SHOP)[0]
    platform.cancel(event.order_id)
    with pytest.raises(ApiError) as caught:
        api_for(platform).confirm_shipment(SHOP, event.order_id, "ZTO", "ZT1", "p")
    assert caught.value.code == "not_fulfillable" and platform.confirmations == []
    with pytest.raises(ApiError):
        api_for(platform).confirm_shipment(SHOP, event.order_id, "DHL", "ZT1", "p")


# --- the fake's webhooks ---


def test_fake_webhooks_verify_and_carry_the_order_as_it_was() -> None:
    platform = fake()
    created = platform.create_orders(1, paid=False, shop_code=SHOP)[0]
    paid = platform.pay(created.order_id)
    cancelled = platform.cancel(created.order_id)
    for event, topic, status in (
        (cancelled, "orders/cancelled", OrderStatus.CANCELLED),
        (created, "orders/create", OrderStatus.CREATED),
        (paid, "orders/paid", OrderStatus.PAID),
    ):
        headers, body = platform.push(event)
        assert headers["X-Shopify-Hmac-Sha256"] == expected_hmac(body)
        (message,) = shopify.push.parse(
            headers, body, shopify.push.verify(headers, body, [cred(NEW_SECRET), cred()])
        )
        assert (message.topic, message.message_id, message.shop_code) == (topic, event.message_id, SHOP)
        order = shopify.order_from_push(SHOP, body)
        assert order is not None and order.status is status
