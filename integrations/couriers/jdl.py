"""JD Logistics 京东物流 (LOP open platform, ECAP express orders): waybills, door pickups, trace pushes.

Credential: ``app_key`` / ``secret`` the app's; ``extra["access_token"]`` the merchant's token,
``extra["customer_code"]`` the merchant code (商家编码); optional ``extra["product_code"]`` (default
``"ed-m-0001"``, 京东标快) and ``extra["settle_type"]`` (default ``"3"``, monthly account).

What this relies on:
- ``../shared/docs/protocols.md`` [C-ish]: ``sign = UPPER hex(MD5(secret + "access_token"T + "app_key"K +
  "method"path + "param_json"body + "timestamp"TS + "v" "2.0" + secret))`` with ``algorithm=md5-salt``;
  precheck ``/ecap/v1/orders/precheck`` returns ``pickupSliceTimes``; create ``/ecap/v1/orders/create`` takes
  ``senderContact``, ``cargoes[{quantity, weight, volume}]``, ``pickupStartTime``/``pickupEndTime`` (ms) and
  ``pickupType: 1`` (door pickup).
- A published integration test against JD's pre-release host [3P]: production ``https://api.jdl.com``; the
  query carries ``LOP-DN=ECAP, access_token, app_key, timestamp, v=2.0, sign, algorithm``; ``timestamp`` is
  ``yyyy-MM-dd HH:mm:ss`` in the zone of header ``lop-tz`` (we send 8); the body is a JSON *array* holding the
  one request; contacts are ``{name, mobile, fullAddress}``; the answer ``{code, msg, subCode, subMsg,
  success, data{waybillCode, orderCode}}`` with ``code`` 0 for success — also when ``orderId`` was used
  before (``subCode 0_0001``, "商家订单号已被使用"), which then carries the first order's waybill;
  ``pickupSliceTimes[{dateKey, pickupSliceTimes[{startTime, endTime}]}]`` in Beijing time; trace pushes as
  JSON ``{waybillCode, orderId, operationTime, category, categoryName, state, operationTitle,
  operationRemark}`` with categories 390 pickup assigned, 420 picked up, 430 in transit, 440 out for delivery,
  510 delivered.

Unconfirmed [U], kept in this module: how a trace push is signed — assumed the API's own md5-salt formula
over the raw body, the method being :data:`PUSH_METHOD`, ``app_key``, ``timestamp`` and ``sign`` in headers
and an empty access token; the exception categories in :data:`CATEGORIES`; gateway error codes (a failure is
retried when its text says the system is busy); the answer to a push (``{"code": 0, "msg": "success"}``).
Scans before the pickup (category 390 and below) say nothing about the parcel and are left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
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
from integrations.signing import GMT8_FORMAT, from_unix, gmt8_to_utc, header, to_unix_ms, utc_to_gmt8

COURIER = "JD"
DEFAULT_BASE_URL = "https://api.jdl.com"
DOMAIN = "ECAP"
VERSION = "2.0"
ALGORITHM = "md5-salt"
PRECHECK = "/ecap/v1/orders/precheck"
CREATE = "/ecap/v1/orders/create"
PUSH_METHOD = "/ecap/v1/orders/trace/push"  # [U]
DOOR_PICKUP = 1
ORDER_ORIGIN = 1  # a merchant's order (B2C)
GOODS_NAME = "服装"
RETRYABLE_CODES = frozenset({"-1", "1", "500"})  # [U] gateway "system error" answers

# Trace categories [3P]; 480 refused and 530 exception are [U]. Below PICKED_UP_FROM nothing has moved yet.
CATEGORIES: Mapping[int, TrackingStatus] = {
    420: TrackingStatus.PICKED_UP,
    430: TrackingStatus.IN_TRANSIT,
    440: TrackingStatus.IN_TRANSIT,
    480: TrackingStatus.EXCEPTION,
    510: TrackingStatus.DELIVERED,
    530: TrackingStatus.EXCEPTION,
}
PICKED_UP_FROM = 420


def sign(secret: str, access_token: str, app_key: str, method: str, param_json: bytes, timestamp: str) -> str:
    """md5-salt ``sign``: upper hex MD5 of the secret-wrapped, name-prefixed parameters."""
    content = (
        f"{secret}access_token{access_token}app_key{app_key}method{method}param_json".encode()
        + param_json
        + f"timestamp{timestamp}v{VERSION}{secret}".encode()
    )
    return hashlib.md5(content).hexdigest().upper()


def _contact(address: Address) -> dict[str, str]:
    return {
        "name": address.name,
        "mobile": address.phone,
        "fullAddress": f"{address.province}{address.city}{address.district}{address.detail}",
    }


def _gmt8_now(clock: Callable[[], float]) -> str:
    return utc_to_gmt8(from_unix(int(clock()))).strftime(GMT8_FORMAT)


class JdlApi(SignedClient):
    """JD Logistics ECAP orders over an injected client; ``orderId`` = our request id."""

    courier = COURIER
    verified = True
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, path: str, params: Mapping[str, Any]) -> httpx.Request:
        body = wire.compact([params]).encode("utf-8")
        timestamp = _gmt8_now(self.clock)
        token = self.credential.extra.get("access_token", "")
        query = {
            "LOP-DN": DOMAIN,
            "access_token": token,
            "app_key": self.credential.app_key,
            "timestamp": timestamp,
            "v": VERSION,
            "sign": sign(self.credential.secret, token, self.credential.app_key, path, body, timestamp),
            "algorithm": ALGORITHM,
        }
        headers = {"Content-Type": "application/json;charset=utf-8", "lop-tz": "8"}
        return self.client.build_request("POST", self.url(path), params=query, content=body, headers=headers)

    def call(self, path: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``data`` of a successful call; ApiError with JD's ``code`` otherwise."""
        what = f"jdl {path}"
        answer = self.exchange(self.build_request(path, params), what)
        content = (
            answer.get("response", {}).get("content") if isinstance(answer.get("response"), dict) else None
        )
        if isinstance(content, dict):
            answer = content  # the SDK's envelope, when a gateway hands it through
        code = answer.get("code")
        if code not in (0, "0") or answer.get("success") is False:
            text = f"{answer.get('msg') or ''} {answer.get('subMsg') or ''}".strip()
            raise wire.refused(what, str(code) if code is not None else "", text, RETRYABLE_CODES)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise wire.bad_response(what, "data")
        return data

    def _order(self, request_id: str) -> dict[str, Any]:
        extra = self.credential.extra
        return {
            "orderId": request_id,
            "orderOrigin": ORDER_ORIGIN,
            "customerCode": extra.get("customer_code", ""),
            "settleType": int(extra.get("settle_type", "3")),
            "productsReq": {"productCode": extra.get("product_code", "ed-m-0001")},
        }

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        params = {
            **self._order(request.request_id),
            "senderContact": _contact(request.sender),
            "receiverContact": _contact(request.receiver),
            "cargoes": [
                {
                    "name": ",".join(item.name for item in request.items) or GOODS_NAME,
                    "quantity": 1,
                    "weight": wire.kg(request.weight_g),
                    "volume": 0,
                }
            ],
            "pickupType": DOOR_PICKUP,
            "remark": request.parcel_ref,
        }
        data = self.call(CREATE, params)
        return Waybill(
            tracking_number=wire.required(data, "waybillCode", what=f"jdl order {request.request_id}"),
            courier_order_ref=wire.optional(data, "orderCode"),
        )

    def pickup_slices(self, request: PickupRequest) -> list[tuple[dt.datetime, dt.datetime]]:
        """The pickup slices JD offers the site, as naive UTC windows, earliest first."""
        params = {**self._order(request.request_id), **self._pickup_cargo(request)}
        data = self.call(PRECHECK, params)
        return slices(data.get("pickupSliceTimes"))

    def _pickup_cargo(self, request: PickupRequest) -> dict[str, Any]:
        return {
            "senderContact": _contact(request.sender),
            "cargoes": [
                {
                    "name": GOODS_NAME,
                    "quantity": request.parcel_count,
                    "weight": wire.kg(request.total_weight_g),
                    "volume": 0,
                }
            ],
        }

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        chosen = choose_slice(self.pickup_slices(request), request.window_start, request.window_end)
        if chosen is None:
            raise ApiError(
                f"jdl pickup {request.request_id}: no pickup slice meets "
                f"{request.window_start:%Y-%m-%d %H:%M}-{request.window_end:%H:%M} UTC",
                retryable=False,
                code="no_pickup_slice",
            )
        start, end = chosen
        params = {
            **self._order(request.request_id),
            **self._pickup_cargo(request),
            "pickupType": DOOR_PICKUP,
            "pickupStartTime": to_unix_ms(start),
            "pickupEndTime": to_unix_ms(end),
            "remark": request.site_ref,
        }
        data = self.call(CREATE, params)
        ref = wire.required(data, "orderCode", "waybillCode", what=f"jdl pickup {request.request_id}")
        return PickupBooking(booking_ref=ref, window_start=start, window_end=end)


def slices(value: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    """``pickupSliceTimes`` as naive UTC windows, earliest first; ApiError when unreadable."""
    windows: list[tuple[dt.datetime, dt.datetime]] = []
    try:
        for day in value or []:
            date = dt.date.fromisoformat(day["dateKey"])
            for piece in day.get("pickupSliceTimes") or []:
                start = dt.datetime.combine(date, dt.time.fromisoformat(piece["startTime"]))
                end = dt.datetime.combine(date, dt.time.fromisoformat(piece["endTime"]))
                windows.append((gmt8_to_utc(start), gmt8_to_utc(end)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ApiError(
            f"jdl precheck: unreadable pickupSliceTimes ({exc!r})", retryable=False, code="bad_response"
        ) from None
    return sorted(windows)


def choose_slice(
    offered: Sequence[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> tuple[dt.datetime, dt.datetime] | None:
    """The earliest slice inside [start, end]; else the earliest that overlaps it; else None."""
    inside = [s for s in offered if s[0] >= start and s[1] <= end]
    if inside:
        return min(inside)
    overlapping = [s for s in offered if s[0] < end and s[1] > start]
    return min(overlapping) if overlapping else None


class JdlTraceReceiver:
    """JD trace pushes [U signing]: one scan as JSON, signed md5-salt over the raw body in headers."""

    courier = COURIER

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        app_key = header(headers, "app_key") or ""
        timestamp = header(headers, "timestamp") or ""
        return wire.verify_any(
            credentials,
            (header(headers, "sign") or "").strip().upper(),
            lambda credential: sign(credential.secret, "", app_key, PUSH_METHOD, body, timestamp),
            what="jdl trace push",
            account=app_key or None,
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        scan = wire.json_body(body, "jdl trace push")
        if not isinstance(scan, dict):
            raise PayloadError("jdl trace push: body is not a JSON object")
        where = "jdl trace push"
        number = wire.text_field(scan, "waybillCode", where)
        category_text = wire.text_field(scan, "category", where)
        if not category_text.lstrip("-").isdigit():
            raise PayloadError(f"{where}: category {category_text!r} is not a number")
        category = int(category_text)
        occurred = wire.gmt8_time(scan, "operationTime", where)
        if category < PICKED_UP_FROM:
            return []
        state = str(scan.get("state") or category)
        description = str(scan.get("operationRemark") or scan.get("operationTitle") or "")
        return [
            TrackingEvent(
                courier=COURIER,
                event_id=wire.derived_event_id(number, state, str(scan["operationTime"])),
                tracking_number=number,
                status=CATEGORIES.get(category, TrackingStatus.IN_TRANSIT),
                occurred_at=occurred,
                description=description,
            )
        ]

    def success(self) -> tuple[int, bytes, str]:
        return 200, b'{"code":0,"msg":"success"}', "application/json"


receiver = JdlTraceReceiver()
