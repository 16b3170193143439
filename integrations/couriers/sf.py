"""SF Express 顺丰 (丰桥 open platform): waybills, pickups (a courier visit), and route pushes.

Credential: ``app_key`` = partnerID (顾客编码), ``secret`` = checkWord (校验码); ``extra["monthly_card"]`` the
monthly-account card (月结卡号), optional ``extra["express_type_id"]`` (default ``"2"``, 顺丰标快) and
``extra["pay_method"]`` (default ``"1"``, sender pays).

What this relies on:
- ``../shared/docs/protocols.md`` [C]: a form ``POST`` of ``partnerID, requestID, serviceCode, timestamp,
  msgDigest, msgData`` with ``msgDigest = base64(MD5_raw(urlencode_plus(msgData + timestamp + checkWord)))``,
  URL-encoded *before* the MD5; ``EXP_RECE_CREATE_ORDER`` with ``contactInfoList`` (contactType 1 sender,
  2 receiver), ``cargoDetails``, ``parcelQty``, ``totalWeight``, ``monthlyCard``, ``payMethod``,
  ``expressTypeId``; ``isDocall: 1`` and ``sendStartTm`` for a courier visit [3P].
- SF's own samples (Java ``URLEncoder.encode(.., "UTF-8")``, Python ``quote_plus``) and third-party SDKs [3P]:
  production ``https://bspgw.sf-express.com/std/service`` (sandbox ``https://sfapi-sbox.sf-express.com/std/
  service``); the answer ``{apiResultCode, apiErrorMsg, apiResponseID, apiResultData}`` with ``A1000`` for a
  request the gateway accepted and ``apiResultData`` a JSON *string* ``{success, errorCode, errorMsg,
  msgData}``; ``msgData.waybillNoInfoList[{waybillType, waybillNo}]`` (type 1 = the main waybill); business
  code ``8016`` for an ``orderId`` already used, after which ``EXP_RECE_SEARCH_ORDER_RESP`` with the same
  ``orderId`` gives the first order's waybill — so a retry returns the first number, never a second parcel.
- Gateway codes [3P]: A1001 missing parameter, A1002 request expired, A1003 IP, A1004 no permission,
  A1006 digest invalid; A1005 throttled, A1009 target unreachable and A1099 system error are transient.

The encoding is Java's ``URLEncoder`` (SF's gateway runs Java): letters, digits and ``.-*_`` stay, a space
becomes ``+``, every other UTF-8 byte ``%XX``. Python's ``quote_plus`` differs on ``*`` and ``~`` only.

Unconfirmed [U], kept in this module:
- the route push (below, :class:`SfRouteReceiver`): SF's documented route push is not on the protocols page.
  Assumed: ``POST`` of the JSON ``{"Body": {"WaybillRoute": [{id, mailno, orderid, acceptTime, acceptAddress,
  remark, opCode}]}}`` with headers ``partnerID``, ``timestamp`` and ``msgDigest`` computed over the raw body
  with the API's own formula; the answer ``{"return_code": "0000", "return_msg": "成功"}``; the opCodes in
  :data:`OP_CODES`;
- a pickup booking is an order of the site's parcels with ``isDocall: 1`` and only the sender's contact; SF
  takes a start time, not a window, so the booking reports back the window asked for;
- ``timestamp`` in milliseconds (SF's Java sample; its Python sample sends seconds, and both are accepted).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus

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

COURIER = "SF"
DEFAULT_BASE_URL = "https://bspgw.sf-express.com/std/service"
CREATE_ORDER = "EXP_RECE_CREATE_ORDER"
SEARCH_ORDER = "EXP_RECE_SEARCH_ORDER_RESP"
GATEWAY_OK = "A1000"
GATEWAY_RETRYABLE = frozenset({"A1005", "A1009", "A1099"})
DUPLICATE_ORDER = "8016"
MAIN_WAYBILL = 1
GOODS_NAME = "服装"  # what a belt ships; SF wants a cargo name on every order

# [U] route-push opCodes: 50 picked up (收件), 80/8000 signed for (签收/结单), 70/33/99/648/607 failed,
# held or returned; anything else is a movement between SF sites.
OP_CODES: Mapping[str, TrackingStatus] = {
    "50": TrackingStatus.PICKED_UP,
    "80": TrackingStatus.DELIVERED,
    "8000": TrackingStatus.DELIVERED,
    "70": TrackingStatus.EXCEPTION,
    "33": TrackingStatus.EXCEPTION,
    "99": TrackingStatus.EXCEPTION,
    "648": TrackingStatus.EXCEPTION,
    "607": TrackingStatus.EXCEPTION,
}


def urlencode_plus(data: bytes) -> bytes:
    """UTF-8 bytes encoded as Java's ``URLEncoder.encode(s, "UTF-8")`` does.

    Python's ``quote_plus`` keeps ``~`` and encodes ``*``; Java does the opposite, and SF checks with Java.
    """
    return quote_plus(data, safe="*").replace("~", "%7E").encode("ascii")


def digest(msg_data: bytes, timestamp: str, check_word: str) -> str:
    """``msgDigest``: base64 of the raw MD5 of the URL-encoded ``msgData + timestamp + checkWord``."""
    return wire.md5_base64(urlencode_plus(msg_data + timestamp.encode() + check_word.encode()))


def _contact(kind: int, address: Address) -> dict[str, Any]:
    return {
        "contactType": kind,
        "contact": address.name,
        "mobile": address.phone,
        "province": address.province,
        "city": address.city,
        "county": address.district,
        "address": address.detail,
        "country": address.country or "CN",
    }


class SfApi(SignedClient):
    """SF's order API over an injected client: one order per waybill, ``orderId`` = our request id."""

    courier = COURIER
    verified = True
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, service: str, request_id: str, msg: Mapping[str, Any]) -> httpx.Request:
        msg_data = wire.compact(msg)
        timestamp = str(int(self.clock() * 1000))
        form = {
            "partnerID": self.credential.app_key,
            "requestID": request_id,
            "serviceCode": service,
            "timestamp": timestamp,
            "msgDigest": digest(msg_data.encode("utf-8"), timestamp, self.credential.secret),
            "msgData": msg_data,
        }
        return self.client.build_request("POST", self.base_url, data=form)

    def call(self, service: str, request_id: str, msg: Mapping[str, Any]) -> tuple[bool, str, str, Any]:
        """``(success, errorCode, errorMsg, msgData)`` of a call the gateway accepted; ApiError otherwise."""
        what = f"sf {service}"
        answer = self.exchange(self.build_request(service, request_id, msg), what)
        code = str(answer.get("apiResultCode") or "")
        if code != GATEWAY_OK:
            text = answer.get("apiErrorMsg") or ""
            raise ApiError(
                f"{what}: gateway {code} {text}".strip(),
                retryable=code in GATEWAY_RETRYABLE,
                code=code or None,
            )
        raw = answer.get("apiResultData")
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ApiError(
                f"{what}: apiResultData is not a JSON object", retryable=False, code="bad_response"
            )
        success = data.get("success") in (True, "true")
        return success, str(data.get("errorCode") or ""), str(data.get("errorMsg") or ""), data.get("msgData")

    def _order(self, request_id: str, msg: Mapping[str, Any]) -> Mapping[str, Any]:
        """The order's msgData: created now, or the first one's when ``orderId`` was used already."""
        success, code, text, data = self.call(CREATE_ORDER, request_id, msg)
        if not success and code == DUPLICATE_ORDER:
            # The first attempt went through and its answer was lost: read that order instead of a new one.
            query = {"orderId": request_id, "searchType": 1, "language": "zh-CN"}
            success, code, text, data = self.call(SEARCH_ORDER, f"{request_id}:search", query)
        if not success:
            raise wire.refused(f"sf order {request_id}", code, text)
        if not isinstance(data, dict):
            raise wire.bad_response(f"sf order {request_id}", "msgData")
        return data

    def _base(self, request_id: str) -> dict[str, Any]:
        extra = self.credential.extra
        return {
            "language": "zh-CN",
            "orderId": request_id,
            "monthlyCard": extra.get("monthly_card", ""),
            "payMethod": int(extra.get("pay_method", "1")),
            "expressTypeId": int(extra.get("express_type_id", "2")),
        }

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        msg = {
            **self._base(request.request_id),
            "contactInfoList": [_contact(1, request.sender), _contact(2, request.receiver)],
            "cargoDetails": [
                {"name": item.name, "count": item.count, "weight": wire.kg(item.weight_g)}
                for item in request.items
            ],
            "parcelQty": 1,
            "totalWeight": wire.kg(request.weight_g),
            "isDocall": 0,
            "remark": request.parcel_ref,
        }
        number = _main_waybill(self._order(request.request_id, msg), request.request_id)
        return Waybill(tracking_number=number)

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        msg = {
            **self._base(request.request_id),
            "contactInfoList": [_contact(1, request.sender)],
            "cargoDetails": [
                {"name": GOODS_NAME, "count": request.parcel_count, "weight": wire.kg(request.total_weight_g)}
            ],
            "parcelQty": request.parcel_count,
            "totalWeight": wire.kg(request.total_weight_g),
            "isDocall": 1,
            "sendStartTm": format_gmt8(request.window_start),
            "remark": request.site_ref,
        }
        return wire.booked(request, _main_waybill(self._order(request.request_id, msg), request.request_id))


def _main_waybill(data: Mapping[str, Any], request_id: str) -> str:
    numbers = data.get("waybillNoInfoList")
    if isinstance(numbers, list):
        main = [n for n in numbers if isinstance(n, dict) and n.get("waybillType") in (MAIN_WAYBILL, "1")]
        for item in main or [n for n in numbers if isinstance(n, dict)]:
            if item.get("waybillNo"):
                return str(item["waybillNo"])
    raise wire.bad_response(f"sf order {request_id}", "waybillNo")


class SfRouteReceiver:
    """SF route pushes [U]: JSON ``{"Body": {"WaybillRoute": [...]}}``, ``msgDigest`` over the raw body."""

    courier = COURIER

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        timestamp = header(headers, "timestamp") or ""
        given = (header(headers, "msgDigest") or "").strip()
        partner = header(headers, "partnerID")
        return wire.verify_any(
            credentials,
            given,
            lambda credential: digest(body, timestamp, credential.secret),
            what="sf route push",
            account=partner or None,
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        data = wire.json_body(body, "sf route push")
        envelope = data.get("Body") if isinstance(data, dict) else None
        routes = envelope.get("WaybillRoute") if isinstance(envelope, dict) else None
        if not isinstance(routes, list):
            raise PayloadError("sf route push: no Body.WaybillRoute list")
        events: list[TrackingEvent] = []
        for index, route in enumerate(wire.objects(routes, "sf route push: WaybillRoute")):
            where = f"sf route {index}"
            op_code = wire.text_field(route, "opCode", where)
            events.append(
                TrackingEvent(
                    courier=COURIER,
                    event_id=wire.text_field(route, "id", where),
                    tracking_number=wire.text_field(route, "mailno", where),
                    status=OP_CODES.get(op_code, TrackingStatus.IN_TRANSIT),
                    occurred_at=wire.gmt8_time(route, "acceptTime", where),
                    description=str(route.get("remark") or ""),
                )
            )
        return events

    def success(self) -> tuple[int, bytes, str]:
        return 200, wire.compact({"return_code": "0000", "return_msg": "成功"}).encode(), "application/json"


receiver = SfRouteReceiver()
