"""ZTO 中通 (ZOP open platform): waybills and pickup orders through ``zto.open.createOrder``, trace pushes.

Credential: ``app_key`` = x-appKey, ``secret`` = appSecret; optional ``extra["account_id"]`` /
``extra["account_password"]`` (an electronic-waybill account of a ZTO point, sent as ``accountInfo``) and
``extra["partner_type"]`` (default ``"2"``).

What this relies on:
- ``../shared/docs/protocols.md`` [C]: headers ``x-appKey`` and ``x-datadigest = base64(MD5_raw([x-timestamp
  +] json_body + appSecret))``; ``createOrder`` with ``senderInfo``, ``receiveInfo``, ``summaryInfo{quantity,
  startTime, endTime}`` (the pickup window) and ``orderItems[{name, weight, quantity}]``; the answer
  ``{status, statusCode, message, result{billCode, orderCode}}``.
- ZTO's SDK samples and public integration notes [3P]: production host ``https://japi.zto.com`` (test
  ``https://japi-test.zto.com``), the method name as the path; ``partnerOrderCode`` is the partner's own order
  key (our request id); ``orderType`` ``"1"`` 全网件 (a parcel the point's courier collects on its round) and
  ``"2"`` 预约件 (the system sends a courier in ``summaryInfo``'s window); ``startTime``/``endTime`` as
  ``yyyy-MM-dd HH:mm:ss`` Beijing time; item weight in grams; gateway codes S200 timed out, S202 backend
  exception, S203 unavailable, S206/S221 throttled (transient), S207 no such API, S208 missing field,
  S210 no permission, S211 bad signature, S214 bad timestamp.
- Trace pushes [3P, seen in one integration's logs]: a form ``POST`` of ``data`` (the scan as JSON:
  ``billCode, action, actionTime, desc, facilityName ...``), ``data_digest``, ``company_id`` (our app key) and
  ``msg_type=Traces``; actions ``GOT, DEPARTURE, ARRIVAL, DISPATCH, INBOUND, SIGNED, DEPARTURE_SIGNED,
  HANDOVERSCAN_SIGNED``.

Unconfirmed [U], kept in this module: ``data_digest`` of a trace push is the API's digest over the ``data``
field (``base64(MD5_raw(data + appSecret))``); the problem/return actions in :data:`ACTIONS`; the answer to a
push (``{"status": true, "message": "success"}``); a repeated ``partnerOrderCode`` answers the first order's
``billCode``; a pickup order carries the site as sender and no receiver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from integrations.base import Address, PayloadError
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
from integrations.signing import format_gmt8

COURIER = "ZTO"
DEFAULT_BASE_URL = "https://japi.zto.com"
CREATE_ORDER = "zto.open.createOrder"
NETWORK_ORDER = "1"  # 全网件: collected on the point's round
BOOKED_ORDER = "2"  # 预约件: a courier comes in the window
RETRYABLE_CODES = frozenset({"S200", "S202", "S203", "S206", "S221"})
GOODS_NAME = "服装"

# Scan actions of a trace push [3P]; the problem and return actions are [U].
ACTIONS: Mapping[str, TrackingStatus] = {
    "GOT": TrackingStatus.PICKED_UP,
    "SIGNED": TrackingStatus.DELIVERED,
    "DEPARTURE_SIGNED": TrackingStatus.DELIVERED,
    "HANDOVERSCAN_SIGNED": TrackingStatus.DELIVERED,
    "PROBLEM": TrackingStatus.EXCEPTION,
    "RETURNED": TrackingStatus.EXCEPTION,
    "RETURN_SCAN": TrackingStatus.EXCEPTION,
}
SCAN = wire.ScanFields(action="action", time="actionTime", description="desc")  # in a push's data


def digest(body: bytes, secret: str, timestamp: str | None = None) -> str:
    """``x-datadigest``: base64 of the raw MD5 of ``[x-timestamp +] body + appSecret``."""
    prefix = timestamp.encode() if timestamp else b""
    return wire.md5_base64(prefix + body + secret.encode())


def _person(role: str, address: Address) -> dict[str, str]:
    return {
        f"{role}Name": address.name,
        f"{role}Mobile": address.phone,
        f"{role}Province": address.province,
        f"{role}City": address.city,
        f"{role}District": address.district,
        f"{role}Address": address.detail,
    }


class ZtoApi(SignedClient):
    """ZTO's ``zto.open.createOrder`` over an injected client; ``partnerOrderCode`` = our request id."""

    courier = COURIER
    verified = True
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        credential: CourierCredential,
        client: httpx.Client,
        *,
        base_url: str | None = None,
        clock: Callable[[], float] = time.time,
        sign_timestamp: bool = False,
    ) -> None:
        super().__init__(credential, client, base_url=base_url, clock=clock)
        self.sign_timestamp = sign_timestamp  # the optional x-timestamp prefix; ZTO's SDK leaves it off

    def build_request(self, method: str, params: Mapping[str, Any]) -> httpx.Request:
        body = wire.compact(params).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=UTF-8", "x-appKey": self.credential.app_key}
        timestamp = str(int(self.clock() * 1000)) if self.sign_timestamp else None
        if timestamp:
            headers["x-timestamp"] = timestamp
        headers["x-dataDigest"] = digest(body, self.credential.secret, timestamp)
        return self.client.build_request("POST", self.url(f"/{method}"), content=body, headers=headers)

    def call(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``result`` of a successful call; ApiError with ZTO's ``statusCode`` otherwise."""
        what = f"zto {method}"
        answer = self.exchange(self.build_request(method, params), what)
        if answer.get("status") is not True:
            code = str(answer.get("statusCode") or "")
            raise wire.refused(what, code, str(answer.get("message") or ""), RETRYABLE_CODES)
        result = answer.get("result")
        if not isinstance(result, dict):
            raise wire.bad_response(what, "result")
        return result

    def _order(self, request_id: str, order_type: str) -> dict[str, Any]:
        extra = self.credential.extra
        order: dict[str, Any] = {
            "partnerType": extra.get("partner_type", "2"),
            "orderType": order_type,
            "partnerOrderCode": request_id,
        }
        if extra.get("account_id"):
            order["accountInfo"] = {
                "accountId": extra["account_id"],
                "accountPassword": extra.get("account_password", ""),
                "type": 1,
            }
        return order

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        params = {
            **self._order(request.request_id, NETWORK_ORDER),
            "senderInfo": _person("sender", request.sender),
            "receiveInfo": _person("receiver", request.receiver),
            "orderItems": [
                {"name": item.name, "weight": item.weight_g, "quantity": item.count} for item in request.items
            ],
            "summaryInfo": {"quantity": 1},
            "remark": request.parcel_ref,
        }
        result = self.call(CREATE_ORDER, params)
        return Waybill(
            tracking_number=wire.required(result, "billCode", what=f"zto order {request.request_id}"),
            courier_order_ref=wire.optional(result, "orderCode"),
        )

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        params = {
            **self._order(request.request_id, BOOKED_ORDER),
            "senderInfo": _person("sender", request.sender),
            "orderItems": [
                {"name": GOODS_NAME, "weight": request.total_weight_g, "quantity": request.parcel_count}
            ],
            "summaryInfo": {
                "quantity": request.parcel_count,
                "startTime": format_gmt8(request.window_start),
                "endTime": format_gmt8(request.window_end),
            },
            "remark": request.site_ref,
        }
        result = self.call(CREATE_ORDER, params)
        return wire.booked(
            request, wire.required(result, "orderCode", what=f"zto pickup {request.request_id}")
        )


class ZtoTraceReceiver:
    """ZTO trace pushes: a form whose ``data`` field is one scan, signed in ``data_digest``."""

    courier = COURIER

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        fields, data = wire.signed_form(body, "data", "zto trace push")
        return wire.verify_any(
            credentials,
            fields.get("data_digest", "").strip(),
            lambda credential: digest(data, credential.secret),
            what="zto trace push",
            account=fields.get("company_id") or None,
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        fields = wire.push_form(body, "zto trace push", PayloadError)
        scan = wire.json_body(fields.get("data", "").encode("utf-8"), "zto trace push data")
        if not isinstance(scan, dict):
            raise PayloadError("zto trace push: data is not a JSON object")
        where = "zto trace push"
        number = wire.text_field(scan, "billCode", where)
        return [wire.scan_event(COURIER, number, scan, where, SCAN, ACTIONS)]

    def success(self) -> tuple[int, bytes, str]:
        return 200, b'{"status":true,"message":"success"}', "application/json"


receiver = ZtoTraceReceiver()
