"""Cainiao 菜鸟 electronic waybills (``TMS_WAYBILL_GET``) for couriers without an adapter of their own, and
Cainiao's trace pushes.

Cainiao issues the waybill of another courier (its ``cpCode``): STO, J&T and EMS go through here, and YTO may.
It takes no pickup bookings: the courier's point collects at its standing time (:class:`PickupNotOffered`).

Credential (courier ``CAINIAO``): ``app_key`` = ``logistic_provider_id`` (the merchant's token on the
Cainiao link), ``secret`` = the app's secret; ``extra["user_id"]`` (``userId``), ``extra["template_url"]``
(the cloud-print template), optional ``extra["order_channels_type"]`` (default ``"OTHERS"``) and
``extra["cp_code"]`` for requests that name no carrier.

What this relies on:
- ``../shared/docs/protocols.md`` [C]: a form ``POST`` of ``msg_type=TMS_WAYBILL_GET``,
  ``logistic_provider_id``, ``logistics_interface=<JSON>``, ``data_digest = base64(MD5_raw(
  logistics_interface + secret))``; the body ``{cpCode, sender{name, mobile, address{province, city,
  district, detail}}, tradeOrderInfoDtos[{objectId, orderInfo{orderChannelsType, tradeOrderList},
  packageInfo{id, items[{name, count}]}, recipient, templateUrl, userId}]}``; the answer carries a waybill
  number and ``printData``.
- Cainiao's SDKs [3P, several agree]: the gateway ``https://link.cainiao.com/gateway/link.do``; the answer
  ``{success, errorCode, errorMsg, waybillCloudPrintResponseList[{objectId, waybillCode, printData}]}`` with
  ``success`` as a boolean or the text ``"true"``; link error codes S01 bad JSON, S02 bad signature, S03
  unknown partner, S06 network timeout and S07 system error (the last two transient).
- cpCodes [3P]: ``STO``, ``YTO``, ``ZTO``, ``YUNDA``, ``EMS``, ``SF``, and ``JTSD`` for J&T.

Unconfirmed [U], kept in this module: a repeated ``objectId`` (our request id) for the same carrier answers
the first waybill (Cainiao documents reuse per order and package id; both carry our ids too); trace pushes — a
form with ``msg_type``, ``logistic_provider_id``, ``data_digest`` (the API's digest over
``logistics_interface``) and ``logistics_interface`` = ``{cpCode, mailNo, action, time, desc}`` in Beijing
time, answered ``{"success": "true"}``, with the actions in :data:`ACTIONS`.
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
    PickupNotOffered,
    PickupRequest,
    TrackingEvent,
    TrackingStatus,
    Waybill,
    WaybillRequest,
)
from integrations.couriers.client import SignedClient

ADAPTER = "CAINIAO"
DEFAULT_BASE_URL = "https://link.cainiao.com/gateway/link.do"
MSG_TYPE = "TMS_WAYBILL_GET"
RETRYABLE_CODES = frozenset({"S06", "S07"})

# Our courier codes as Cainiao's cpCodes, and back.
CP_CODES: Mapping[str, str] = {
    "STO": "STO",
    "JT": "JTSD",
    "EMS": "EMS",
    "YTO": "YTO",
    "ZTO": "ZTO",
    "YUNDA": "YUNDA",
    "SF": "SF",
}
COURIERS_BY_CP: Mapping[str, str] = {cp: courier for courier, cp in CP_CODES.items()}

# [U] trace actions; anything else is a movement.
ACTIONS: Mapping[str, TrackingStatus] = {
    "GOT": TrackingStatus.PICKED_UP,
    "ACCEPT": TrackingStatus.PICKED_UP,
    "SIGNED": TrackingStatus.DELIVERED,
    "SIGN": TrackingStatus.DELIVERED,
    "AGENT_SIGN": TrackingStatus.DELIVERED,
    "FAILED": TrackingStatus.EXCEPTION,
    "REJECT": TrackingStatus.EXCEPTION,
    "TMS_RETURN": TrackingStatus.EXCEPTION,
}
SCAN = wire.ScanFields(action="action", time="time", description="desc")  # in logistics_interface


def digest(logistics_interface: bytes, secret: str) -> str:
    """``data_digest``: base64 of the raw MD5 of ``logistics_interface + secret``."""
    return wire.md5_base64(logistics_interface + secret.encode())


def _person(address: Address) -> dict[str, Any]:
    return {
        "name": address.name,
        "mobile": address.phone,
        "address": {
            "province": address.province,
            "city": address.city,
            "district": address.district,
            "detail": address.detail,
        },
    }


class CainiaoApi(SignedClient):
    """Cainiao's ``TMS_WAYBILL_GET`` over an injected client; ``objectId`` = our request id. (The clock goes
    unused: Cainiao signs no time.)"""

    courier = ADAPTER
    verified = True
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, msg_type: str, content: Mapping[str, Any]) -> httpx.Request:
        text = wire.compact(content)
        form = {
            "msg_type": msg_type,
            "logistic_provider_id": self.credential.app_key,
            "logistics_interface": text,
            "data_digest": digest(text.encode("utf-8"), self.credential.secret),
        }
        return self.client.build_request("POST", self.base_url, data=form)

    def cp_code(self, request: WaybillRequest) -> str:
        carrier = request.carrier or self.credential.extra.get("cp_code", "")
        code = CP_CODES.get(carrier) or (carrier if carrier in COURIERS_BY_CP else None)
        if not code:
            raise ApiError(
                f"cainiao: no cpCode for carrier {carrier!r} (request {request.request_id})",
                retryable=False,
                code="unknown_carrier",
            )
        return code

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        extra = self.credential.extra
        cp_code = self.cp_code(request)
        content = {
            "cpCode": cp_code,
            "sender": _person(request.sender),
            "tradeOrderInfoDtos": [
                {
                    "objectId": request.request_id,
                    "orderInfo": {
                        "orderChannelsType": extra.get("order_channels_type", "OTHERS"),
                        "tradeOrderList": [request.parcel_ref],
                    },
                    "packageInfo": {
                        "id": request.parcel_ref,
                        "items": [{"name": item.name, "count": item.count} for item in request.items],
                        "weight": request.weight_g,
                    },
                    "recipient": _person(request.receiver),
                    "templateUrl": extra.get("template_url", ""),
                    "userId": extra.get("user_id", ""),
                }
            ],
        }
        what = f"cainiao {MSG_TYPE} {cp_code}"
        answer = self.exchange(self.build_request(MSG_TYPE, content), what)
        if answer.get("success") not in (True, "true"):
            code = str(answer.get("errorCode") or "")
            raise wire.refused(what, code, str(answer.get("errorMsg") or ""), RETRYABLE_CODES)
        for item in answer.get("waybillCloudPrintResponseList") or []:
            if (
                isinstance(item, dict)
                and item.get("waybillCode")
                and item.get("objectId") in (None, request.request_id)
            ):
                print_data = item.get("printData")
                return Waybill(
                    tracking_number=str(item["waybillCode"]), print_data=print_data and str(print_data)
                )
        raise wire.bad_response(what, f"waybillCode for {request.request_id}")

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        raise PickupNotOffered(
            "Cainiao issues waybills only; the courier's point collects at its standing time"
        )


class CainiaoTraceReceiver:
    """Cainiao trace pushes [U]: a form; ``logistics_interface`` is one scan, ``data_digest`` signs it."""

    courier = ADAPTER

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        fields, content = wire.signed_form(body, "logistics_interface", "cainiao push")
        return wire.verify_any(
            credentials,
            fields.get("data_digest", "").strip(),
            lambda credential: digest(content, credential.secret),
            what="cainiao push",
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        fields = wire.push_form(body, "cainiao push", PayloadError)
        scan = wire.json_body(
            fields.get("logistics_interface", "").encode("utf-8"), "cainiao logistics_interface"
        )
        if not isinstance(scan, dict):
            raise PayloadError("cainiao push: logistics_interface is not a JSON object")
        where = "cainiao push"
        cp_code = wire.text_field(scan, "cpCode", where)
        courier = COURIERS_BY_CP.get(cp_code)
        if courier is None:
            raise PayloadError(f"{where}: unknown cpCode {cp_code!r}")
        number = wire.text_field(scan, "mailNo", where)
        return [wire.scan_event(courier, number, scan, where, SCAN, ACTIONS, key=(cp_code,))]

    def success(self) -> tuple[int, bytes, str]:
        return 200, b'{"success":"true","errorCode":"","errorMsg":""}', "application/json"


receiver = CainiaoTraceReceiver()
