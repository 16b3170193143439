"""Yunda 韵达 (open platform): electronic waybills, pickup orders and trace pushes.

Credential: ``app_key`` = app-key, ``secret`` = app-secret; ``extra["partner_id"]`` and
``extra["partner_secret"]`` the electronic-waybill account of a Yunda point (白马账号 and its password),
needed for waybills; optional ``extra["back_url"]`` where Yunda calls back about pickup orders.

What this relies on:
- ``../shared/docs/protocols.md`` [3P]: headers ``app-key``, ``req-time`` (ms) and ``sign = md5hex(body +
  "_" + appSecret)``; the pickup order with ``sender``, ``receiver``, ``sendstarttime``/``sendendtime``,
  ``weight`` and ``items``.
- Third-party clients [3P, several agree]: production ``https://openapi.yundaex.com`` (test
  ``https://u-openapi.yundasys.com``); pickup orders at ``/openapi-api/v1/order/pushOrder`` keyed by
  ``orderid`` with ``appid`` in the body and times as ``yyyy-MM-dd HH:mm:ss``; waybills at
  ``/openapi-api/v1/accountOrder/createBmOrder`` with ``appid, partner_id, secret, orders[{order_serial_no,
  khddh, sender, receiver, weight, items[{name, number}], order_type: "common", node_id: "350"}]``; contacts
  ``{name, mobile, province, city, county, address}``; the answer ``{result, code, message, data}`` with
  ``code "0000"``, a waybill's ``data`` a list of ``{order_serial_no, mail_no, status, msg}``.

Unconfirmed [U], kept in this module: weights in kilograms; a repeated ``order_serial_no`` answers the first
order's ``mail_no``; a pickup order's ``data`` holds ``orderid`` (taken as the booking reference); the error
codes (a failure is retried when its text says the system is busy); trace pushes — assumed ``POST`` of JSON
``{mailno, steps[{time, action, station_name, description}]}`` signed like an API call (headers ``app-key``,
``req-time``, ``sign`` over the raw body), answered ``{"result": true, "code": "0000"}``, with the actions in
:data:`ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations.base import Address, ApiError, PayloadError
from integrations.couriers import wire
from integrations.couriers.base import (
    CourierCredential,
    PickupBooking,
    PickupRequest,
    TrackingEvent,
    TrackingStatus,
    Waybill,
    WaybillRequest,
)
from integrations.couriers.client import SignedClient
from integrations.signing import format_gmt8, header

COURIER = "YUNDA"
DEFAULT_BASE_URL = "https://openapi.yundaex.com"
WAYBILL_PATH = "/openapi-api/v1/accountOrder/createBmOrder"
PICKUP_PATH = "/openapi-api/v1/order/pushOrder"
SUCCESS_CODE = "0000"
GOODS_NAME = "服装"

# [U] scan actions of a trace push; anything else is a movement.
ACTIONS: Mapping[str, TrackingStatus] = {
    "GOT": TrackingStatus.PICKED_UP,
    "SIGNED": TrackingStatus.DELIVERED,
    "FAILED": TrackingStatus.EXCEPTION,
    "RETURN": TrackingStatus.EXCEPTION,
    "REJECT": TrackingStatus.EXCEPTION,
}
STEP = wire.ScanFields(action="action", time="time", description="description")  # in a push's steps


def sign(body: bytes, secret: str) -> str:
    """``sign`` header: lowercase hex MD5 of the raw body, ``_`` and the app secret."""
    return wire.md5_hex(body + b"_" + secret.encode())


def _person(address: Address) -> dict[str, str]:
    return {
        "name": address.name,
        "mobile": address.phone,
        "province": address.province,
        "city": address.city,
        "county": address.district,
        "address": address.detail,
    }


class YundaApi(SignedClient):
    """Yunda's order API over an injected client: ``order_serial_no`` / ``orderid`` = our request id."""

    courier = COURIER
    verified = True
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, path: str, params: Mapping[str, Any]) -> httpx.Request:
        body = wire.compact({"appid": self.credential.app_key, **params}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "app-key": self.credential.app_key,
            "req-time": str(int(self.clock() * 1000)),
            "sign": sign(body, self.credential.secret),
        }
        return self.client.build_request("POST", self.url(path), content=body, headers=headers)

    def call(self, path: str, params: Mapping[str, Any]) -> Any:
        """``data`` of a successful call; ApiError with Yunda's ``code`` otherwise."""
        what = f"yunda {path}"
        answer = self.exchange(self.build_request(path, params), what)
        code = str(answer.get("code") or "")
        if answer.get("result") not in (True, "true") or code != SUCCESS_CODE:
            raise wire.refused(what, code, str(answer.get("message") or ""))
        return answer.get("data")

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        extra = self.credential.extra
        order = {
            "order_serial_no": request.request_id,
            "khddh": request.parcel_ref,
            "sender": _person(request.sender),
            "receiver": _person(request.receiver),
            "weight": wire.kg(request.weight_g),
            "items": [{"name": item.name, "number": item.count} for item in request.items],
            "order_type": "common",
            "node_id": "350",
        }
        params = {
            "partner_id": extra.get("partner_id", ""),
            "secret": extra.get("partner_secret", ""),
            "orders": [order],
        }
        data = self.call(WAYBILL_PATH, params)
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
        if first is None:
            raise wire.bad_response(f"yunda order {request.request_id}", "order")
        number = first.get("mail_no") or first.get("mailno")
        if str(first.get("status", "1")) != "1" or not number:
            text = str(first.get("msg") or "no mail_no")
            raise ApiError(
                f"yunda order {request.request_id}: {text}", retryable=wire.busy(text), code="order_refused"
            )
        return Waybill(tracking_number=str(number))

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        params = {
            "orderid": request.request_id,
            "backurl": self.credential.extra.get("back_url", ""),
            "sender": _person(request.sender),
            "sendstarttime": format_gmt8(request.window_start),
            "sendendtime": format_gmt8(request.window_end),
            "weight": wire.kg(request.total_weight_g),
            "items": [{"name": GOODS_NAME, "number": request.parcel_count}],
            "remark": request.site_ref,
        }
        data = self.call(PICKUP_PATH, params)
        ref = data.get("orderid") if isinstance(data, dict) else None
        return wire.booked(request, str(ref or request.request_id))


class YundaTraceReceiver:
    """Yunda trace pushes [U]: JSON ``{mailno, steps[...]}``, signed like an API call over the raw body."""

    courier = COURIER

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        app_key = header(headers, "app-key")
        return wire.verify_any(
            credentials,
            (header(headers, "sign") or "").strip().lower(),
            lambda credential: sign(body, credential.secret),
            what="yunda trace push",
            account=app_key or None,
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        push = wire.json_body(body, "yunda trace push")
        if not isinstance(push, dict):
            raise PayloadError("yunda trace push: body is not a JSON object")
        number = wire.text_field(push, "mailno", "yunda trace push")
        return [
            wire.scan_event(COURIER, number, step, f"yunda trace push step {index}", STEP, ACTIONS)
            for index, step in enumerate(wire.objects(push.get("steps"), "yunda trace push: steps"))
        ]

    def success(self) -> tuple[int, bytes, str]:
        return 200, b'{"result":true,"code":"0000","message":"success"}', "application/json"


receiver = YundaTraceReceiver()
