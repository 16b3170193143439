"""A fake ZTO 中通: ``zto.open.createOrder`` behind ``x-appKey``/``x-dataDigest``, and signed trace pushes.

From ``../shared/docs/protocols.md``: ``x-datadigest = base64(MD5_raw([x-timestamp +] body + appSecret))``;
answers ``{status, statusCode, message, result{billCode, orderCode}}``; gateway codes S207 no such API, S208
missing field, S210 no permission, S211 bad signature, S203 unavailable [3P]. A repeated
``partnerOrderCode`` gets the first order back. The business refusal's code is illustrative. Trace pushes are
the adapter's assumption: a form of ``data``, ``data_digest``, ``company_id``, ``msg_type=Traces``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers.base import (
    FakeCourier,
    Push,
    Scan,
    compact,
    form_push,
    gmt8_text,
    md5_base64,
    parse_gmt8_text,
)

ACTIONS: Mapping[TrackingStatus, str] = {
    TrackingStatus.PICKED_UP: "GOT",
    TrackingStatus.IN_TRANSIT: "DEPARTURE",
    TrackingStatus.DELIVERED: "SIGNED",
    TrackingStatus.EXCEPTION: "PROBLEM",
}
_SENDER_FIELDS = ("senderName", "senderMobile", "senderProvince", "senderCity", "senderAddress")
_RECEIVER_FIELDS = ("receiverName", "receiverMobile", "receiverProvince", "receiverCity", "receiverAddress")


def _digest(data: bytes, secret: str) -> str:
    return md5_base64(data + secret.encode())


def _answer(status: bool, code: str, message: str, result: Any = None) -> httpx.Response:
    body = {"status": status, "statusCode": code, "message": message, "result": result}
    return httpx.Response(200, json=body)


class ZtoFake(FakeCourier):
    courier = "ZTO"
    host = "japi.zto.com"

    def number_format(self, carrier: str, digits: str) -> str:
        return "73" + digits[:12]

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        method = request.url.path.strip("/")
        if request.headers.get("x-appKey") != self.credential.app_key:
            return _answer(False, "S210", "无权限访问")
        body = request.content
        timestamp = request.headers.get("x-timestamp", "").encode()
        expected = _digest(timestamp + body, self.credential.secret)
        if not self.signature_ok(request.headers.get("x-dataDigest", ""), expected):
            return _answer(False, "S211", "签名错误")
        if method != "zto.open.createOrder":
            return _answer(False, "S207", "API不存在")
        try:
            order = json.loads(body)
        except ValueError:
            return _answer(False, "S208", "请求体不是合法的JSON")
        if not isinstance(order, dict):
            return _answer(False, "S208", "请求体不是JSON对象")
        key = order.get("partnerOrderCode")
        sender = order.get("senderInfo") or {}
        missing = [name for name in ("partnerOrderCode", "orderType") if not order.get(name)]
        missing += [name for name in _SENDER_FIELDS if not sender.get(name)]
        if missing:
            return _answer(False, "S208", f"{missing[0]}不能为空")
        if refuse:
            return _answer(False, "E1004", "收件人地址信息不完整，无法分配网点")
        if order["orderType"] == "2":
            return self._pickup(str(key), order)
        receiver = order.get("receiveInfo") or {}
        missing = [name for name in _RECEIVER_FIELDS if not receiver.get(name)]
        if missing:
            return _answer(False, "S208", f"{missing[0]}不能为空")
        waybill, _ = self.issue(str(key), self.courier, order)
        result = {
            "billCode": waybill.tracking_number,
            "orderCode": waybill.order_ref,
            "partnerOrderCode": key,
            "siteCode": "51201",
            "siteName": "常熟",
        }
        return _answer(True, "0000", "成功", result)

    def _pickup(self, key: str, order: dict[str, Any]) -> httpx.Response:
        summary = order.get("summaryInfo") or {}
        try:
            start = parse_gmt8_text(str(summary.get("startTime")))
            end = parse_gmt8_text(str(summary.get("endTime")))
        except ValueError:
            return _answer(False, "S208", "summaryInfo.startTime/endTime格式应为yyyy-MM-dd HH:mm:ss")
        if end <= start:
            return _answer(False, "S208", "预约结束时间应晚于开始时间")
        pickup, _ = self.book(key, start, end, int(summary.get("quantity") or 0), order)
        return _answer(True, "0000", "成功", {"orderCode": pickup.booking_ref, "partnerOrderCode": key})

    def busy(self, request: httpx.Request) -> httpx.Response:
        return _answer(False, "S203", "服务暂不可用")

    def signed_push(self, scan: Scan, secret: str) -> Push:
        action = ACTIONS[scan.status]
        data = compact(
            {
                "billCode": scan.tracking_number,
                "action": action,
                "actionTime": gmt8_text(scan.at),
                "facilityName": "常熟虞山",
                "desc": scan.description or f"【苏州市】{action}",
            }
        )
        form = {
            "data": data,
            "data_digest": _digest(data.encode(), secret),
            "company_id": self.credential.app_key,
            "msg_type": "Traces",
        }
        return form_push(form)
