"""A fake Shopify store: HMAC-signed order webhooks (the full order) and the Admin REST API with a token.

From ``../shared/docs/protocols.md``: ``X-Shopify-Hmac-SHA256 = base64(HMAC-SHA256(client_secret, body))``,
``X-Shopify-Webhook-Id`` (the dedupe key), ``X-Shopify-Topic``, ``X-Shopify-Shop-Domain``,
``X-Shopify-Triggered-At``. The API checks ``X-Shopify-Access-Token`` (401 otherwise), answers only for its
shops' domains, and fulfils through fulfillment orders (``POST fulfillments.json``) like Admin REST does: a
fulfillment order that is no longer open refuses another fulfillment (422). Times are written with a
``-04:00`` offset, as a US-facing store would.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations.base import OrderStatus, PushEvent
from integrations.fakes import FakeEvent, FakeOrder, FakePlatform, Push, json_response

TOPICS: Mapping[PushEvent, str] = {
    PushEvent.CREATED: "orders/create",
    PushEvent.PAID: "orders/paid",
    PushEvent.CANCELLED: "orders/cancelled",
    PushEvent.SHIPPED: "orders/fulfilled",
    PushEvent.ADDRESS_CHANGED: "orders/updated",
    PushEvent.UPDATED: "orders/updated",
}
STORE_OFFSET = dt.timezone(dt.timedelta(hours=-4))
_ID_BASE = 5_890_000_000_000
_PATH = re.compile(r"^/admin/api/(\d{4}-\d{2})/(.+)$")


def iso(value: dt.datetime | None) -> str | None:
    """Naive UTC as ISO 8601 in the store's offset."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).astimezone(STORE_OFFSET).isoformat()


_COUNTRY_NAMES = {"US": "United States", "CN": "China"}


class ShopifyFake(FakePlatform):
    """Shopify store(s); shop codes are ``*.myshopify.com`` domains."""

    platform = "shopify"
    western = True
    max_lines = 3
    max_per_push = 1

    def __init__(self, *args: Any, api_version: str = "2024-07", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_version = api_version
        self.access_token = self.credential.extra.get("access_token")
        self.fulfillments: dict[str, list[dict[str, Any]]] = {}

    def new_order_id(self, n: int) -> str:
        return str(_ID_BASE + (self.seed % 1000) * 10**9 + n)

    def new_message_id(self, n: int) -> str:
        return str(uuid.UUID(int=((self.seed % 2**32) << 64) + n))

    @staticmethod
    def fulfillment_order_id(order: FakeOrder) -> int:
        return int(order.order_id) + 1_000_000_000_000

    def order_json(self, order: FakeOrder) -> dict[str, Any]:
        """The order as Admin REST writes it (and as order webhooks carry it)."""
        number = int(order.order_id) - _ID_BASE
        if order.status is OrderStatus.CREATED:
            financial = "pending"
        elif order.status is OrderStatus.CANCELLED:
            financial = "refunded" if order.paid_at else "voided"
        else:
            financial = "paid"
        address = order.address
        first, _, last = address.name.partition(" ")
        address1, _, rest = address.detail.partition(", ")
        zip_code = rest.split(", ")[0] if rest else ""
        total = sum(line.price_fen * line.quantity for line in order.lines)
        shipped = order.status is OrderStatus.SHIPPED
        return {
            "id": int(order.order_id),
            "name": f"#{1000 + number % 1_000_000_000}",
            "email": f"buyer{number}@example.com",
            "created_at": iso(order.created_at),
            "updated_at": iso(order.updated_at),
            "processed_at": iso(order.paid_at or order.created_at),
            "cancelled_at": iso(order.updated_at) if order.status is OrderStatus.CANCELLED else None,
            "cancel_reason": "customer" if order.status is OrderStatus.CANCELLED else None,
            "closed_at": None,
            "financial_status": financial,
            "fulfillment_status": "fulfilled" if shipped else None,
            "currency": "USD",
            "total_price": f"{total / 100:.2f}",
            "line_items": [
                {
                    "id": int(order.order_id) * 10 + index,
                    "variant_id": 44_000_000_000 + index,
                    "sku": line.sku_code,
                    "title": line.title,
                    "quantity": line.quantity,
                    "current_quantity": 0 if order.status is OrderStatus.CANCELLED else line.quantity,
                    "fulfillable_quantity": 0 if shipped else line.quantity,
                    "price": f"{line.price_fen / 100:.2f}",
                    "requires_shipping": True,
                }
                for index, line in enumerate(order.lines)
            ],
            "shipping_address": {
                "first_name": first,
                "last_name": last,
                "name": address.name,
                "phone": address.phone,
                "address1": address1,
                "address2": None,
                "city": address.city,
                "province": address.province,
                "province_code": address.province,
                "zip": zip_code,
                "country": _COUNTRY_NAMES.get(address.country or "CN", address.country),
                "country_code": address.country or "CN",
            },
        }

    # --- pushes -------------------------------------------------------------------------------------------

    def push(self, events: FakeEvent | Sequence[FakeEvent]) -> Push:
        event = self._one(events)
        body = json.dumps(self.order_json(event.order), separators=(",", ":")).encode("utf-8")
        digest = hmac.new(self.credential.secret.encode(), body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": TOPICS[event.event],
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Shop-Domain": event.order.shop_code,
            "X-Shopify-Webhook-Id": event.message_id,
            "X-Shopify-Triggered-At": iso(event.at) or "",
            "X-Shopify-API-Version": self.api_version,
        }
        return headers, body

    # --- API ----------------------------------------------------------------------------------------------

    def rate_limited(self, request: httpx.Request) -> httpx.Response:
        response = json_response({"errors": "Exceeded 2 calls per second for api client."}, 429, request)
        response.headers["Retry-After"] = "2.0"
        return response

    def answer(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        match = _PATH.match(request.url.path)
        if host not in self.factory.shop_codes or match is None:
            return json_response({"errors": "Not Found"}, 404, request)
        token = request.headers.get("X-Shopify-Access-Token", "")
        if not self.access_token or not hmac.compare_digest(token, self.access_token):
            message = "[API] Invalid API key or access token (unrecognized login or wrong password)"
            return json_response({"errors": message}, 401, request)
        path = match.group(2)
        if request.method == "POST" and path == "fulfillments.json":
            return self._fulfil(request, host)
        found = re.fullmatch(r"orders/(\d+)(\.json|/fulfillment_orders\.json|/fulfillments\.json)", path)
        if request.method != "GET" or found is None:
            return json_response({"errors": "Not Found"}, 404, request)
        order = self.orders.get(found.group(1))
        if order is None or order.shop_code != host:
            return json_response({"errors": "Not Found"}, 404, request)
        if found.group(2) == ".json":
            return json_response({"order": self.order_json(order)}, 200, request)
        if found.group(2) == "/fulfillments.json":
            return json_response({"fulfillments": self.fulfillments.get(order.order_id, [])}, 200, request)
        return json_response({"fulfillment_orders": [self.fulfillment_order(order)]}, 200, request)

    def fulfillment_order(self, order: FakeOrder) -> dict[str, Any]:
        status = {OrderStatus.SHIPPED: "closed", OrderStatus.CANCELLED: "cancelled"}.get(order.status, "open")
        return {
            "id": self.fulfillment_order_id(order),
            "order_id": int(order.order_id),
            "status": status,
            "line_items": [
                {"id": self.fulfillment_order_id(order) * 10 + i, "quantity": line.quantity}
                for i, line in enumerate(order.lines)
            ],
        }

    def _fulfil(self, request: httpx.Request, host: str) -> httpx.Response:
        try:
            fulfillment = json.loads(request.content)["fulfillment"]
            groups = fulfillment["line_items_by_fulfillment_order"]
            tracking = fulfillment.get("tracking_info") or {}
            fo_ids = [int(group["fulfillment_order_id"]) for group in groups]
        except (ValueError, KeyError, TypeError):
            return json_response({"errors": {"fulfillment": ["is invalid"]}}, 400, request)
        by_fo = {self.fulfillment_order_id(o): o for o in self.orders.values() if o.shop_code == host}
        orders = {by_fo[fo_id].order_id: by_fo[fo_id] for fo_id in fo_ids if fo_id in by_fo}
        if not fo_ids or len(orders) != 1 or len(fo_ids) != sum(1 for fo_id in fo_ids if fo_id in by_fo):
            return json_response({"errors": ["Fulfillment order does not exist."]}, 404, request)
        order = next(iter(orders.values()))
        if order.status is not OrderStatus.PAID:
            status = self.fulfillment_order(order)["status"]
            message = f"Fulfillment order {fo_ids[0]} has an unfulfillable status= {status}."
            return json_response({"errors": [message]}, 422, request)
        number = str(tracking.get("number") or "")
        company = str(tracking.get("company") or "")
        self._confirm(order, company, number)
        record = {
            "id": 4_000_000_000_000 + len(self.confirmations),
            "order_id": int(order.order_id),
            "status": "success",
            "tracking_company": company,
            "tracking_number": number or None,
            "tracking_numbers": [number] if number else [],
            "created_at": iso(order.updated_at),
        }
        self.fulfillments.setdefault(order.order_id, []).append(record)
        return json_response({"fulfillment": record}, 201, request)
