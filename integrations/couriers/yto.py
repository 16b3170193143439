"""YTO 圆通 — UNVERIFIED. ``verified = False``: its signing scheme and wire format are assumptions.

The protocols page marks YTO [U]: signing variants conflict in public code. This adapter keeps YTO behind the
courier interface so that dispatch can use it once the scheme is confirmed against YTO's own documents (or a
sandbox); until then YTO's waybills can go through Cainiao (``adapter_for("YTO", verified_only=True)``).
Everything assumed is in this module, and the signing in ONE function, :func:`sign`.

Credential: ``app_key`` the app key, ``secret`` the secret; ``extra["user_id"]`` the customer code YTO's
paths carry.

Assumed [U] (one public variant, not confirmed):
- ``POST {base}/{method}/{v}/{app_key}/{user_id}`` with the JSON ``{timestamp (ms), param (the request as a
  JSON string), sign, format: "JSON"}``; ``sign`` in :func:`sign`; production base
  ``https://openapi.yto.net.cn:11443/open``; waybills by ``privacy_create_adapter`` version ``v1`` keyed by
  ``logisticsNo`` (our request id), a repeat answering the first ``mailNo``;
- the answer ``{mailNo, ...}`` on success, ``{success: false, code, reason}`` on a refusal;
- no pickup booking endpoint is known: ``book_pickup`` raises :class:`PickupNotOffered` (YTO's point collects
  at its standing time);
- trace pushes: JSON ``{mailNo, infoContent, acceptTime, remark}`` with a ``sign`` header computed by
  :func:`sign` over the raw body with method :data:`PUSH_METHOD`; actions ``GOT, ARRIVAL, DEPARTURE,
  SENT_SCAN, SIGNED, FAILED, TMS_RETURN``; answered ``{"success": true}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations.base import Address, PayloadError
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
from integrations.signing import header

COURIER = "YTO"
DEFAULT_BASE_URL = "https://openapi.yto.net.cn:11443/open"
CREATE_METHOD = "privacy_create_adapter"
PUSH_METHOD = "trace_push"
VERSION = "v1"

ACTIONS: Mapping[str, TrackingStatus] = {
    "GOT": TrackingStatus.PICKED_UP,
    "SIGNED": TrackingStatus.DELIVERED,
    "FAILED": TrackingStatus.EXCEPTION,
    "TMS_RETURN": TrackingStatus.EXCEPTION,
}
SCAN = wire.ScanFields(action="infoContent", time="acceptTime", description="remark")


def sign(param: bytes, method: str, version: str, secret: str) -> str:
    """UNCONFIRMED [U]: base64 of the raw MD5 of ``param + method + version + secret``.

    One of the variants seen in third-party code (others hex-encode the MD5, or put the secret first). YTO's
    own documents have not been checked; change the scheme here and only here.
    """
    return wire.md5_base64(param + method.encode() + version.encode() + secret.encode())


def _party(role: str, address: Address) -> dict[str, str]:
    return {
        f"{role}Name": address.name,
        f"{role}Mobile": address.phone,
        f"{role}ProvinceName": address.province,
        f"{role}CityName": address.city,
        f"{role}CountyName": address.district,
        f"{role}Address": address.detail,
    }


class YtoApi(SignedClient):
    """YTO's waybill API over an injected client (UNVERIFIED); ``logisticsNo`` = our request id."""

    courier = COURIER
    verified = False
    default_base_url = DEFAULT_BASE_URL

    def build_request(self, method: str, params: Mapping[str, Any]) -> httpx.Request:
        param = wire.compact(params)
        body = {
            "timestamp": str(int(self.clock() * 1000)),
            "param": param,
            "sign": sign(param.encode("utf-8"), method, VERSION, self.credential.secret),
            "format": "JSON",
        }
        user = self.credential.extra.get("user_id", "")
        url = self.url(f"/{method}/{VERSION}/{self.credential.app_key}/{user}")
        content = wire.compact(body).encode("utf-8")
        return self.client.build_request(
            "POST", url, content=content, headers={"Content-Type": "application/json"}
        )

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        params = {
            "logisticsNo": request.request_id,
            **_party("sender", request.sender),
            **_party("recipient", request.receiver),
            "weight": wire.kg(request.weight_g),
            "goods": [{"name": item.name, "quantity": item.count} for item in request.items],
            "remark": request.parcel_ref,
        }
        what = f"yto {CREATE_METHOD}"
        answer = self.exchange(self.build_request(CREATE_METHOD, params), what)
        number = answer.get("mailNo")
        if answer.get("success") is False or not number:
            text = str(answer.get("reason") or answer.get("message") or "no mailNo")
            raise wire.refused(what, str(answer.get("code") or ""), text)
        return Waybill(tracking_number=str(number))

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        raise PickupNotOffered("no YTO pickup booking API is known; its point collects at its standing time")


class YtoTraceReceiver:
    """YTO trace pushes (UNVERIFIED): JSON, ``sign`` header by :func:`sign` over the raw body."""

    courier = COURIER

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        return wire.verify_any(
            credentials,
            (header(headers, "sign") or "").strip(),
            lambda credential: sign(body, PUSH_METHOD, VERSION, credential.secret),
            what="yto trace push",
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        scan = wire.json_body(body, "yto trace push")
        if not isinstance(scan, dict):
            raise PayloadError("yto trace push: body is not a JSON object")
        where = "yto trace push"
        number = wire.text_field(scan, "mailNo", where)
        return [wire.scan_event(COURIER, number, scan, where, SCAN, ACTIONS)]

    def success(self) -> tuple[int, bytes, str]:
        return 200, b'{"success":true}', "application/json"


receiver = YtoTraceReceiver()
