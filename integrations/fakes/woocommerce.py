"""A fake WooCommerce store: signed order webhooks (the full order), the unsigned ping, and the REST API v3.

From ``../shared/docs/protocols.md``: ``X-WC-Webhook-Signature = base64(HMAC-SHA256(secret, body))`` plus
``X-WC-Webhook-Topic/Resource/Event/ID/Delivery-ID/Source``; saving a webhook sends the unsigned form body
``webhook_id=N``. The REST API (``/wp-json/wc/v3``) takes HTTP basic auth with the consumer key and secret
(401 ``woocommerce_rest_cannot_view`` otherwise) and answers errors as ``{code, message, data: {status}}``.
Updating ``meta_data`` without an ``id`` replaces the meta with that key, as WooCommerce does. A tracking
number newly written to ``_fulfil_tracking_numbers`` counts as a ship confirmation (once per number).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations.base import OrderStatus, PushEvent
from integrations.fakes import (
    Confirmation,
    FakeEvent,
    FakeOrder,
    FakePlatform,
    FakeShipment,
    Push,
    json_response,
)

STATUSES: Mapping[OrderStatus, str] = {
    OrderStatus.CREATED: "pending",
    OrderStatus.PAID: "processing",
    OrderStatus.SHIPPED: "completed",
    OrderStatus.COMPLETED: "completed",
    OrderStatus.CANCELLED: "cancelled",
}
FROM_WOO: Mapping[str, OrderStatus] = {
    "pending": OrderStatus.CREATED,
    "on-hold": OrderStatus.CREATED,
    "processing": OrderStatus.PAID,
    "completed": OrderStatus.SHIPPED,
    "cancelled": OrderStatus.CANCELLED,
    "refunded": OrderStatus.CANCELLED,
    "failed": OrderStatus.CANCELLED,
}
TRACKING_META = "_fulfil_tracking_numbers"
SITE_OFFSET = dt.timedelta(hours=-4)  # the store's WordPress timezone: local dates carry no offset
_PATH = re.compile(r"^/wp-json/wc/v3/orders/(\d+)(/notes)?$")
_NOTE = re.compile(r"Shipped with (\S+), tracking number (\S+)")
USER_AGENT = "WooCommerce/8.9.1 Hookshot (WordPress/6.5.3)"


def _stamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat()


def _error(request: httpx.Request, status: int, code: str, message: str) -> httpx.Response:
    return json_response({"code": code, "message": message, "data": {"status": status}}, status, request)


class WooCommerceFake(FakePlatform):
    """WooCommerce store(s); shop codes are the stores' hosts."""

    platform = "woocommerce"
    western = True
    max_lines = 3
    max_per_push = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meta: dict[str, list[dict[str, Any]]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self._ids = 0
        consumer = f"{self.credential.app_key}:{self.credential.extra.get('consumer_secret', '')}"
        self._basic = consumer

    def new_order_id(self, n: int) -> str:
        return str(1000 + (self.seed % 1000) * 10**6 + n)

    def new_message_id(self, n: int) -> str:
        return hashlib.md5(f"{self.seed}:{n}".encode()).hexdigest()

    def webhook_id(self, shop_code: str) -> int:
        return self.factory.shop_codes.index(shop_code) + 1

    def _next_id(self) -> int:
        self._ids += 1
        return 90_000 + self._ids

    def order_json(self, order: FakeOrder) -> dict[str, Any]:
        """The order as ``GET /wp-json/wc/v3/orders/<id>`` (and an order webhook) writes it."""
        address = order.address
        first, _, last = address.name.partition(" ")
        address_1, _, rest = address.detail.partition(", ")
        postcode = rest.split(", ")[0] if rest else ""
        postal = {
            "first_name": first,
            "last_name": last,
            "company": "",
            "address_1": address_1,
            "address_2": "",
            "city": address.city,
            "state": address.province,
            "postcode": postcode,
            "country": address.country or "CN",
            "phone": address.phone,
        }
        shipped_at = order.shipments[0].at if order.shipments else None
        total = sum(line.price_fen * line.quantity for line in order.lines)
        return {
            "id": int(order.order_id),
            "number": order.order_id,
            "status": STATUSES[order.status],
            "currency": "USD",
            "date_created": _stamp(order.created_at + SITE_OFFSET),
            "date_created_gmt": _stamp(order.created_at),
            "date_modified": _stamp(order.updated_at + SITE_OFFSET),
            "date_modified_gmt": _stamp(order.updated_at),
            "date_paid": _stamp(order.paid_at + SITE_OFFSET) if order.paid_at else None,
            "date_paid_gmt": _stamp(order.paid_at),
            "date_completed_gmt": _stamp(shipped_at),
            "total": f"{total / 100:.2f}",
            "billing": {**postal, "email": f"buyer{order.order_id}@example.com"},
            "shipping": postal,
            "line_items": [
                {
                    "id": int(order.order_id) * 10 + index,
                    "name": line.title,
                    "product_id": 500 + index,
                    "variation_id": 0,
                    "quantity": line.quantity,
                    "sku": line.sku_code,
                    "price": line.price_fen / 100,
                }
                for index, line in enumerate(order.lines)
            ],
            "meta_data": [dict(meta) for meta in self.meta.get(order.order_id, [])],
        }

    # --- pushes -------------------------------------------------------------------------------------------

    def push(self, events: FakeEvent | Sequence[FakeEvent]) -> Push:
        event = self._one(events)
        order = event.order
        created = event.event is PushEvent.CREATED or (
            event.event is PushEvent.PAID and event.at == order.created_at
        )
        action = "created" if created else "updated"
        body = json.dumps(self.order_json(order), separators=(",", ":")).encode("utf-8")
        digest = hmac.new(self.credential.secret.encode(), body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-WC-Webhook-Source": f"https://{order.shop_code}/",
            "X-WC-Webhook-Topic": f"order.{action}",
            "X-WC-Webhook-Resource": "order",
            "X-WC-Webhook-Event": action,
            "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-WC-Webhook-ID": str(self.webhook_id(order.shop_code)),
            "X-WC-Webhook-Delivery-ID": event.message_id,
        }
        return headers, body

    def ping(self, shop_code: str | None = None) -> Push:
        """The unsigned form ping WooCommerce sends when a webhook is saved."""
        webhook = self.webhook_id(shop_code or self.factory.shop_codes[0])
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT}
        return headers, f"webhook_id={webhook}".encode()

    # --- API ----------------------------------------------------------------------------------------------

    def rate_limited(self, request: httpx.Request) -> httpx.Response:
        return _error(
            request, 429, "woocommerce_rest_too_many_requests", "Too many requests. Try again later."
        )

    def _authorised(self, request: httpx.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given.encode(), self._basic.encode())

    def answer(self, request: httpx.Request) -> httpx.Response:
        match = _PATH.match(request.url.path)
        if request.url.host not in self.factory.shop_codes or match is None:
            return _error(
                request, 404, "rest_no_route", "No route was found matching the URL and request method."
            )
        if not self._authorised(request):
            return _error(
                request, 401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."
            )
        order = self.orders.get(match.group(1))
        if order is None or order.shop_code != request.url.host:
            return _error(request, 404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        if match.group(2):
            if request.method == "POST":
                return self._add_note(request, order)
            if request.method == "GET":
                return json_response(self.notes.get(order.order_id, []), 200, request)
        elif request.method == "GET":
            return json_response(self.order_json(order), 200, request)
        elif request.method in ("PUT", "POST"):
            return self._update(request, order)
        return _error(
            request, 404, "rest_no_route", "No route was found matching the URL and request method."
        )

    def _add_note(self, request: httpx.Request, order: FakeOrder) -> httpx.Response:
        try:
            data = json.loads(request.content)
            note = str(data["note"])
        except (ValueError, KeyError, TypeError):
            return _error(request, 400, "rest_missing_callback_param", "Missing parameter(s): note")
        record = {
            "id": self._next_id(),
            "author": "WooCommerce",
            "date_created_gmt": _stamp(self.tick()),
            "note": note,
            "customer_note": bool(data.get("customer_note", False)),
        }
        self.notes.setdefault(order.order_id, []).append(record)
        return json_response(record, 201, request)

    def _update(self, request: httpx.Request, order: FakeOrder) -> httpx.Response:
        try:
            data = json.loads(request.content)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            return _error(request, 400, "rest_invalid_json", "Invalid JSON body passed.")
        status = data.get("status")
        if status is not None and status not in FROM_WOO:
            return _error(request, 400, "rest_invalid_param", "Invalid parameter(s): status")
        metas = self.meta.setdefault(order.order_id, [])
        for item in data.get("meta_data") or []:
            existing = next((m for m in metas if m["key"] == item.get("key")), None)
            if existing is not None:
                existing["value"] = item.get("value")
            else:
                metas.append({"id": self._next_id(), "key": item.get("key"), "value": item.get("value")})
        now = self.tick()
        courier = self._last_courier(order)
        recorded = {s.tracking_number for s in order.shipments}
        for number in self._tracking(order):
            if number not in recorded:
                order.shipments.append(FakeShipment(courier, number, now))
                self.confirmations.append(Confirmation(order.order_id, courier, number))
                recorded.add(number)
        if status is not None:
            order.status = FROM_WOO[status]
        order.updated_at = now
        return json_response(self.order_json(order), 200, request)

    def _tracking(self, order: FakeOrder) -> list[str]:
        for meta in self.meta.get(order.order_id, []):
            if meta["key"] == TRACKING_META and isinstance(meta["value"], list):
                return [str(v) for v in meta["value"]]
        return []

    def _last_courier(self, order: FakeOrder) -> str:
        for note in reversed(self.notes.get(order.order_id, [])):
            found = _NOTE.search(note["note"])
            if found:
                return found.group(1)
        return ""
