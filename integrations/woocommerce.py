"""WooCommerce (cross-border stores): webhooks, the REST order API (wc/v3), mapping to canonical orders.

Credential: ``secret`` is the webhook secret (it signs deliveries); ``app_key`` the REST consumer key
(``ck_...``) and ``extra["consumer_secret"]`` its consumer secret (HTTP basic auth); optional
``extra["base_url"]``. Shop code = the store's host (``shop.example.com``, from ``X-WC-Webhook-Source``);
the API base URL is ``https://<host>`` unless given.

What this relies on:
- ``../shared/docs/protocols.md`` [C]: ``X-WC-Webhook-Signature = base64(HMAC-SHA256(secret, raw_body))``;
  ``X-WC-Webhook-Topic/Resource/Event/ID/Delivery-ID/Source``; saving a webhook sends an unsigned form ping
  ``webhook_id=N`` that must get a 2xx; no automatic retry.
- WooCommerce REST API docs (woocommerce.github.io/woocommerce-rest-api-docs: orders, order notes) [C]:
  ``GET/PUT /wp-json/wc/v3/orders/<id>``, ``POST .../orders/<id>/notes`` (``note``, ``customer_note``);
  order fields ``id, status`` (pending, processing, on-hold, completed, cancelled, refunded, failed, trash,
  checkout-draft), ``date_created_gmt, date_modified_gmt, date_paid_gmt`` (UTC, no offset),
  ``line_items[{sku, product_id, variation_id, quantity, name}]``, ``shipping{first_name, last_name,
  address_1, address_2, city, state, postcode, country, phone}``, ``billing{..., phone}``, ``meta_data[{key,
  value}]``; errors ``{"code", "message", "data": {"status"}}``; topics ``order.created``,
  ``order.updated``, ``order.deleted``, ``order.restored``; a captured delivery (gist kornpow/bb34e50b…)
  shows the headers ``x-wc-webhook-delivery-id`` (32 hex), ``-id``, ``-signature``, ``-event``,
  ``-resource``, ``-topic``, ``-source`` [3P].

Unconfirmed [U], kept here and in the constants right below:
- the event a delivery stands for is read from the topic and the order's status (``order.updated`` with
  ``processing`` → paid, ``completed`` → shipped, ``cancelled``/``failed`` → cancelled, ``refunded`` →
  refund);
- ship confirmation adds a customer note, records the tracking number in our own order meta
  ``_fulfil_tracking_numbers`` (the idempotency check) and marks the order ``completed``; a crash between
  the note and the update may leave a duplicate note on retry;
- an order without a shipping address ships to its billing address.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from integrations import http
from integrations.base import (
    Address,
    ApiError,
    AppCredential,
    CanonicalOrder,
    HttpAnswer,
    OrderLine,
    OrderStatus,
    PayloadError,
    PushEvent,
    PushMessage,
    SignatureError,
)
from integrations.signing import MessagePayloadError, equal, header, parse_iso_utc

PLATFORM = "woocommerce"
API_PREFIX = "/wp-json/wc/v3"
TRACKING_META = "_fulfil_tracking_numbers"  # [U] our own meta key

ORDER_STATUS: Mapping[str, OrderStatus] = {
    "pending": OrderStatus.CREATED,
    "on-hold": OrderStatus.CREATED,
    "checkout-draft": OrderStatus.CREATED,
    "processing": OrderStatus.PAID,
    "completed": OrderStatus.SHIPPED,
    "cancelled": OrderStatus.CANCELLED,
    "failed": OrderStatus.CANCELLED,
    "refunded": OrderStatus.CANCELLED,
    "trash": OrderStatus.CANCELLED,
}
UPDATED_EVENTS: Mapping[str, PushEvent] = {  # [U] order.updated by the order's status
    "processing": PushEvent.PAID,
    "completed": PushEvent.SHIPPED,
    "cancelled": PushEvent.CANCELLED,
    "failed": PushEvent.CANCELLED,
    "refunded": PushEvent.REFUND,
}
NOT_SHIPPABLE = frozenset({"cancelled", "failed", "refunded", "trash"})
_PING = re.compile(rb"\s*webhook_id=\d+\s*")

_SUCCESS = HttpAnswer(200, b'{"ok":true}', "application/json")


def webhook_signature(body: bytes, secret: str) -> str:
    """``X-WC-Webhook-Signature``: base64 of HMAC-SHA256 keyed with the webhook secret over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shop_host(source: str | None) -> str | None:
    """The store's host from ``X-WC-Webhook-Source`` (``https://shop.example.com/`` → the host)."""
    if not source:
        return None
    parts = urlsplit(source.strip())
    return (parts.netloc or parts.path.strip("/")) or None


class WooCommercePush:
    """WooCommerce webhooks: the unsigned ping is recognised first, every other delivery is HMAC-checked."""

    platform = PLATFORM

    def is_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        """The unsigned ``webhook_id=N`` form ping sent when a webhook is saved: answer 2xx, store nothing."""
        return _PING.fullmatch(body) is not None

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[AppCredential]
    ) -> AppCredential:
        given = header(headers, "X-WC-Webhook-Signature")
        if not given:
            raise SignatureError("missing X-WC-Webhook-Signature header")
        matched: AppCredential | None = None
        for credential in credentials:
            if equal(webhook_signature(body, credential.secret), given.strip()):
                matched = matched or credential
        if matched is None:
            raise SignatureError("X-WC-Webhook-Signature does not match any active secret")
        return matched

    def parse(self, headers: Mapping[str, str], body: bytes, credential: AppCredential) -> list[PushMessage]:
        delivery = header(headers, "X-WC-Webhook-Delivery-ID")
        if not delivery:
            raise PayloadError("missing X-WC-Webhook-Delivery-ID header")
        resource = header(headers, "X-WC-Webhook-Resource")
        event_name = header(headers, "X-WC-Webhook-Event")
        topic = header(headers, "X-WC-Webhook-Topic") or (
            f"{resource}.{event_name}" if resource and event_name else None
        )
        if not topic:
            raise PayloadError("missing X-WC-Webhook-Topic header")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise MessagePayloadError(f"body is not valid JSON: {exc}", delivery.strip()) from None
        if not isinstance(data, dict):
            raise MessagePayloadError("body is not a JSON object", delivery.strip())
        order_id: str | None = None
        event = PushEvent.UPDATED
        if topic.startswith("order."):
            raw_id = data.get("id")
            if raw_id in (None, "", 0) or isinstance(raw_id, bool):
                raise MessagePayloadError(f"{topic}: the order has no id", delivery.strip())
            order_id = str(raw_id)
            event = _event(topic, data.get("status"), data.get("date_paid_gmt"))
        try:
            stamp = data.get("date_modified_gmt") or data.get("date_created_gmt")
            occurred = parse_iso_utc(stamp) if isinstance(stamp, str) and stamp else None
        except ValueError as exc:
            raise MessagePayloadError(f"{topic}: bad timestamp: {exc}", delivery.strip()) from None
        return [
            PushMessage(
                platform=PLATFORM,
                message_id=delivery.strip(),
                topic=topic,
                event=event,
                shop_code=shop_host(header(headers, "X-WC-Webhook-Source")),
                platform_order_id=order_id,
                occurred_at=occurred,
                raw=body,
            )
        ]

    def success(self) -> HttpAnswer:
        return _SUCCESS


def _event(topic: str, status: Any, paid: Any) -> PushEvent:
    if topic == "order.deleted":
        return PushEvent.CANCELLED
    if topic == "order.created":
        return PushEvent.PAID if status in ("processing", "completed") or paid else PushEvent.CREATED
    if topic == "order.updated" and isinstance(status, str):
        return UPDATED_EVENTS.get(status, PushEvent.UPDATED)
    return PushEvent.UPDATED


push = WooCommercePush()


def _time(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return parse_iso_utc(value)  # *_gmt fields carry no offset and are UTC


def to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    """A WooCommerce order (REST JSON, as in the API and in order webhooks) as a canonical order.

    ApiError (not retryable) if it cannot be read.
    """
    try:
        return _to_canonical(shop_code, order)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        order_id = order.get("id") if isinstance(order, Mapping) else None
        raise ApiError(
            f"woocommerce order {order_id}: unreadable order: {exc!r}", retryable=False, code="bad_response"
        ) from None


def _to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    order_id = str(order["id"])
    raw_status = str(order.get("status"))
    if raw_status not in ORDER_STATUS:
        raise ValueError(f"unknown status {raw_status!r}")
    status = ORDER_STATUS[raw_status]
    created = _time(order.get("date_created_gmt"))
    if created is None:
        raise ValueError("date_created_gmt is missing")
    lines: list[OrderLine] = []
    for item in order.get("line_items") or []:
        quantity = int(item.get("quantity") or 0)
        if quantity <= 0:
            continue  # a fully refunded or removed item is no longer to be made
        code = item.get("sku") or str(item.get("variation_id") or item.get("product_id") or "")
        if not code:
            raise ValueError(f"line item {item.get('id')} has no sku, variation_id or product_id")
        lines.append(OrderLine(platform_sku_code=str(code), quantity=quantity, title=item.get("name") or ""))
    if not lines and status is not OrderStatus.CANCELLED:
        raise ValueError("the order has no line items")
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=shop_code,
        platform_order_id=order_id,
        status=status,
        created_at=created,
        paid_at=_time(order.get("date_paid_gmt")),
        updated_at=_time(order.get("date_modified_gmt")) or created,
        lines=lines,
        address=_address(order),
        ship_by=None,
        presale=False,
        cancel_reason=raw_status if status is OrderStatus.CANCELLED else None,
    )


def order_from_push(shop_code: str, raw: bytes) -> CanonicalOrder | None:
    """The canonical order carried whole by an order webhook's raw body; None when the body is not a whole
    order (a deletion or refund carries only ids: fetch through the API then). ApiError (not retryable) when
    it is an order that cannot be read."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or "id" not in data or "line_items" not in data:
        return None
    return to_canonical(shop_code, data)


def _address(order: Mapping[str, Any]) -> Address | None:
    shipping = order.get("shipping") or {}
    billing = order.get("billing") or {}
    source = shipping if shipping.get("address_1") else billing
    if not source.get("address_1"):
        return None
    name = " ".join(p for p in (source.get("first_name"), source.get("last_name")) if p)
    parts = (source.get("address_1"), source.get("address_2"), source.get("postcode"), source.get("country"))
    return Address(
        name=name,
        phone=str(source.get("phone") or billing.get("phone") or ""),
        province=str(source.get("state") or ""),
        country=str(source.get("country") or ""),
        city=str(source.get("city") or ""),
        district="",
        detail=", ".join(str(p) for p in parts if p),
    )


class WooCommerceOrderApi:
    """WooCommerce REST (wc/v3): fetch an order; confirm a shipment (note, meta, completed)."""

    platform = PLATFORM

    def __init__(
        self, credential: AppCredential, client: httpx.Client, *, base_url: str | None = None
    ) -> None:
        self.credential = credential
        self.client = client
        base = base_url or credential.extra.get("base_url")
        self.base_url = base.rstrip("/") if base else None
        token = f"{credential.app_key}:{credential.extra.get('consumer_secret', '')}".encode()
        self._authorization = "Basic " + base64.b64encode(token).decode()

    def url(self, shop_code: str, path: str) -> str:
        base = self.base_url or f"https://{shop_code}"
        return f"{base}{API_PREFIX}/{path.lstrip('/')}"

    def request(self, method: str, shop_code: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of a REST call; :class:`ApiError` for anything but 2xx."""
        what = f"woocommerce {method} {path}"
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        request = self.client.build_request(method, self.url(shop_code, path), headers=headers, json=body)
        response = http.send(self.client, request, what)
        status = response.status_code
        if status >= 300:
            code, message = f"http_{status}", response.text[:200]
            try:
                error = response.json()
                if isinstance(error, dict):
                    code, message = str(error.get("code") or code), str(error.get("message") or message)
            except ValueError:
                pass
            raise ApiError(f"{what}: HTTP {status} {code}: {message}", retryable=False, code=code)
        return http.json_answer(response, what, object_only=False)

    def _order(self, shop_code: str, platform_order_id: str) -> Mapping[str, Any]:
        order = self.request("GET", shop_code, f"orders/{platform_order_id}")
        if not isinstance(order, dict) or "id" not in order:
            raise ApiError(
                f"woocommerce order {platform_order_id}: answer is not an order",
                retryable=False,
                code="bad_response",
            )
        return order

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self._order(shop_code, platform_order_id))

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """Note for the customer, tracking number in the order's meta, status ``completed``; idempotent."""
        order = self._order(shop_code, platform_order_id)
        recorded = tracking_numbers(order)
        if tracking_number in recorded:
            return
        if order.get("status") in NOT_SHIPPABLE:
            raise ApiError(
                f"woocommerce order {platform_order_id} is {order.get('status')}: not shipping it",
                retryable=False,
                code="not_shippable",
            )
        note = {
            "note": f"Shipped with {courier_code}, tracking number {tracking_number}",
            "customer_note": True,
        }
        self.request("POST", shop_code, f"orders/{platform_order_id}/notes", note)
        update = {
            "status": "completed",
            "meta_data": [{"key": TRACKING_META, "value": [*recorded, tracking_number]}],
        }
        self.request("PUT", shop_code, f"orders/{platform_order_id}", update)


def tracking_numbers(order: Mapping[str, Any]) -> list[str]:
    """Tracking numbers this system already recorded on the order."""
    for meta in order.get("meta_data") or []:
        if isinstance(meta, Mapping) and meta.get("key") == TRACKING_META:
            value = meta.get("value")
            if isinstance(value, list):
                return [str(v) for v in value]
            if isinstance(value, str) and value:
                return [v for v in value.split(",") if v]
    return []
