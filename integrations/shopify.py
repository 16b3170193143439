"""Shopify (cross-border stores): webhooks, the Admin REST order API, and the mapping to canonical orders.

Credential: ``secret`` is the app's client secret (it signs webhooks); ``extra["access_token"]`` the Admin
API access token (header ``X-Shopify-Access-Token``); optional ``extra["api_version"]`` (default
:data:`DEFAULT_API_VERSION`). Shop code = the shop's domain (``belt-store.myshopify.com``); the API base URL
is ``https://<shop domain>`` unless ``base_url`` is given.

What this relies on:
- ``../shared/docs/protocols.md`` [C]: ``X-Shopify-Hmac-SHA256 = base64(HMAC-SHA256(client_secret,
  raw_body))``, dedupe on ``X-Shopify-Webhook-Id``, ``X-Shopify-Topic``, ``X-Shopify-Shop-Domain``,
  ``X-Shopify-Triggered-At``; any 2xx is success; during rotation the old secret stays valid for an hour.
- shopify.dev, REST Admin "Fulfillment" resource [C]: ``POST /admin/api/<version>/fulfillments.json``
  creates a fulfillment for one or many fulfillment orders (``line_items_by_fulfillment_order``,
  ``tracking_info{number, company}``, ``notify_customer``), ``GET orders/<id>/fulfillments.json`` lists
  them, one tracking number per fulfillment; the REST Admin API is legacy since 2024-10-01 (new public apps
  must use GraphQL from 2025-04-01; custom apps still call it). Order JSON ``{"order": {id, created_at,
  updated_at, processed_at, cancelled_at, cancel_reason, financial_status, fulfillment_status,
  line_items[{sku, variant_id, quantity, current_quantity, title}], shipping_address{name, phone, address1,
  address2, city, province, zip, country_code}}}``; ``financial_status`` pending, authorized,
  partially_paid, paid, partially_refunded, refunded, voided [C, several SDKs]; ``GET
  orders/<id>/fulfillment_orders.json`` with ``status`` open / in_progress / closed ...; errors
  401/403/404/422 as such, 429 when throttled.

Unconfirmed [U], kept here and in the constants right below:
- the tracking company names for Chinese couriers (Shopify accepts any text; only known names get a link);
- ``processed_at`` taken as the payment time of a paid order (the REST order has no ``paid_at``);
- an ``authorized`` payment counts as paid (captured at fulfilment); ``refunded``/``voided`` without a
  cancellation count as cancelled; ``orders/delete`` counts as a cancellation.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

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

PLATFORM = "shopify"
DEFAULT_API_VERSION = "2024-07"

TOPIC_EVENTS: Mapping[str, PushEvent] = {
    "orders/create": PushEvent.CREATED,
    "orders/paid": PushEvent.PAID,
    "orders/cancelled": PushEvent.CANCELLED,
    "orders/fulfilled": PushEvent.SHIPPED,
    "orders/updated": PushEvent.UPDATED,
    "orders/edited": PushEvent.UPDATED,
    "orders/delete": PushEvent.CANCELLED,  # [U]
    "refunds/create": PushEvent.REFUND,
}
PAID_STATES = frozenset({"paid", "partially_refunded", "authorized"})  # [U] authorized
VOID_STATES = frozenset({"refunded", "voided"})  # [U]
OPEN_FULFILLMENT_ORDER_STATES = frozenset({"open", "in_progress"})
COURIER_NAMES: Mapping[str, str] = {  # [U] canonical courier -> tracking company text
    "ZTO": "ZTO Express",
    "YTO": "YTO Express",
    "YUNDA": "Yunda Express",
    "STO": "STO Express",
    "JT": "J&T Express",
    "SF": "SF Express",
    "JD": "JD Logistics",
    "EMS": "China EMS (ePacket)",
}

_SUCCESS = HttpAnswer(200, b'{"ok":true}', "application/json")


def webhook_hmac(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-SHA256``: base64 of HMAC-SHA256 keyed with the client secret over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class ShopifyPush:
    """Shopify webhooks: verify the HMAC over the raw bytes; one order (the full order JSON) per delivery."""

    platform = PLATFORM

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[AppCredential]
    ) -> AppCredential:
        given = header(headers, "X-Shopify-Hmac-Sha256")
        if not given:
            raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
        matched: AppCredential | None = None
        for credential in credentials:
            if equal(webhook_hmac(body, credential.secret), given.strip()):
                matched = matched or credential
        if matched is None:
            raise SignatureError("X-Shopify-Hmac-Sha256 does not match any active secret")
        return matched

    def parse(self, headers: Mapping[str, str], body: bytes, credential: AppCredential) -> list[PushMessage]:
        topic = header(headers, "X-Shopify-Topic")
        webhook_id = header(headers, "X-Shopify-Webhook-Id")
        if not topic:
            raise PayloadError("missing X-Shopify-Topic header")
        if not webhook_id:
            raise PayloadError("missing X-Shopify-Webhook-Id header")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise MessagePayloadError(f"body is not valid JSON: {exc}", webhook_id.strip()) from None
        if not isinstance(data, dict):
            raise MessagePayloadError("body is not a JSON object", webhook_id.strip())
        if topic.startswith("orders/"):
            order_id = data.get("id")
            if order_id in (None, "") or isinstance(order_id, bool):
                raise MessagePayloadError(f"{topic}: the order has no id", webhook_id.strip())
        else:
            order_id = data.get("order_id")
        try:
            triggered = header(headers, "X-Shopify-Triggered-At")
            stamp = triggered or data.get("updated_at") or data.get("created_at")
            occurred = parse_iso_utc(stamp) if isinstance(stamp, str) and stamp else None
        except ValueError as exc:
            raise MessagePayloadError(f"{topic}: bad timestamp: {exc}", webhook_id.strip()) from None
        return [
            PushMessage(
                platform=PLATFORM,
                message_id=webhook_id.strip(),
                topic=topic,
                event=TOPIC_EVENTS.get(topic, PushEvent.UPDATED),
                shop_code=header(headers, "X-Shopify-Shop-Domain") or None,
                platform_order_id=None if order_id in (None, "") else str(order_id),
                occurred_at=occurred,
                raw=body,
            )
        ]

    def success(self) -> HttpAnswer:
        return _SUCCESS


push = ShopifyPush()


def _time(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return parse_iso_utc(value)


def to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    """A Shopify order (REST JSON, as in the API and in order webhooks) as a canonical order.

    ApiError (not retryable) if it cannot be read.
    """
    try:
        return _to_canonical(shop_code, order)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        order_id = order.get("id") if isinstance(order, Mapping) else None
        raise ApiError(
            f"shopify order {order_id}: unreadable order: {exc!r}", retryable=False, code="bad_response"
        ) from None


def _to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    order_id = str(order["id"])
    created = _time(order.get("created_at"))
    if created is None:
        raise ValueError("created_at is missing")
    financial = order.get("financial_status") or "pending"
    cancel_reason: str | None = None
    if order.get("cancelled_at"):
        status = OrderStatus.CANCELLED
        cancel_reason = order.get("cancel_reason") or "cancelled"
    elif financial in VOID_STATES:
        status = OrderStatus.CANCELLED
        cancel_reason = financial
    elif order.get("fulfillment_status") == "fulfilled":
        status = OrderStatus.SHIPPED
    elif financial in PAID_STATES:
        status = OrderStatus.PAID
    else:
        status = OrderStatus.CREATED
    lines: list[OrderLine] = []
    for item in order.get("line_items") or []:
        quantity = item.get("current_quantity", item.get("quantity"))
        quantity = int(quantity or 0)
        if quantity <= 0:
            continue  # removed by an order edit: no longer part of the order
        code = item.get("sku") or (str(item["variant_id"]) if item.get("variant_id") else "")
        if not code:
            raise ValueError(f"line item {item.get('id')} has neither sku nor variant_id")
        lines.append(OrderLine(platform_sku_code=str(code), quantity=quantity, title=item.get("title") or ""))
    if not lines and status is not OrderStatus.CANCELLED:
        raise ValueError("the order has no line items")
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=shop_code,
        platform_order_id=order_id,
        status=status,
        created_at=created,
        paid_at=_time(order.get("processed_at")) if financial in PAID_STATES | {"refunded"} else None,
        updated_at=_time(order.get("updated_at")) or created,
        lines=lines,
        address=_address(order.get("shipping_address")),
        ship_by=None,
        presale=False,
        cancel_reason=cancel_reason,
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


def _address(value: Any) -> Address | None:
    if not value:
        return None
    name = value.get("name") or " ".join(p for p in (value.get("first_name"), value.get("last_name")) if p)
    parts = (value.get("address1"), value.get("address2"), value.get("zip"), value.get("country_code"))
    return Address(
        name=str(name or ""),
        phone=str(value.get("phone") or ""),
        province=str(value.get("province") or ""),
        country=str(value.get("country_code") or ""),
        city=str(value.get("city") or ""),
        district="",
        detail=", ".join(str(p) for p in parts if p),
    )


class ShopifyOrderApi:
    """Shopify Admin REST: fetch an order, fulfil it with tracking. Over an injected ``httpx.Client``."""

    platform = PLATFORM

    def __init__(
        self,
        credential: AppCredential,
        client: httpx.Client,
        *,
        base_url: str | None = None,
        api_version: str | None = None,
        access_token: str | None = None,
        notify_customer: bool = True,
    ) -> None:
        self.credential = credential
        self.client = client
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_version = api_version or credential.extra.get("api_version") or DEFAULT_API_VERSION
        self.access_token = (
            access_token if access_token is not None else credential.extra.get("access_token", "")
        )
        self.notify_customer = notify_customer

    def url(self, shop_code: str, path: str) -> str:
        base = self.base_url or f"https://{shop_code}"
        return f"{base}/admin/api/{self.api_version}/{path.lstrip('/')}"

    def request(self, method: str, shop_code: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of an Admin API call; :class:`ApiError` for anything but 2xx."""
        headers = {"X-Shopify-Access-Token": self.access_token or "", "Accept": "application/json"}
        what = f"shopify {method} {path}"
        request = self.client.build_request(method, self.url(shop_code, path), headers=headers, json=body)
        response = http.send(self.client, request, what)
        status = response.status_code
        if status >= 300:
            detail = _errors(response)
            code = {404: "not_found", 422: "invalid"}.get(status, f"http_{status}")
            raise ApiError(f"{what}: HTTP {status} {detail}".strip(), retryable=False, code=code)
        return http.json_answer(response, what, object_only=False)

    def _order(self, shop_code: str, platform_order_id: str) -> Mapping[str, Any]:
        answer = self.request("GET", shop_code, f"orders/{platform_order_id}.json")
        order = answer.get("order") if isinstance(answer, dict) else None
        if not isinstance(order, dict):
            raise ApiError(
                f"shopify order {platform_order_id}: no order in answer", retryable=False, code="bad_response"
            )
        return order

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self._order(shop_code, platform_order_id))

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """A fulfillment with tracking for every open fulfillment order; no-op if the number exists."""
        company = COURIER_NAMES.get(courier_code)
        if company is None:
            raise ApiError(
                f"shopify: no company for courier {courier_code!r}", retryable=False, code="unknown_courier"
            )
        answer = self.request("GET", shop_code, f"orders/{platform_order_id}/fulfillments.json")
        for fulfillment in answer.get("fulfillments") or [] if isinstance(answer, dict) else []:
            numbers = set(fulfillment.get("tracking_numbers") or [])
            numbers.add(fulfillment.get("tracking_number"))
            if tracking_number in numbers and fulfillment.get("status") != "cancelled":
                return
        answer = self.request("GET", shop_code, f"orders/{platform_order_id}/fulfillment_orders.json")
        open_orders = [
            fo["id"]
            for fo in (answer.get("fulfillment_orders") or [] if isinstance(answer, dict) else [])
            if fo.get("status") in OPEN_FULFILLMENT_ORDER_STATES
        ]
        if not open_orders:
            raise ApiError(
                f"shopify order {platform_order_id}: nothing left to fulfil (no open fulfillment order)",
                retryable=False,
                code="not_fulfillable",
            )
        body = {
            "fulfillment": {
                "line_items_by_fulfillment_order": [{"fulfillment_order_id": fo_id} for fo_id in open_orders],
                "tracking_info": {"number": tracking_number, "company": company},
                "notify_customer": self.notify_customer,
            }
        }
        self.request("POST", shop_code, "fulfillments.json", body)


def _errors(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict) and "errors" in data:
        return json.dumps(data["errors"], ensure_ascii=False)[:300]
    return json.dumps(data, ensure_ascii=False)[:300]
