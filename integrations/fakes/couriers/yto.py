"""A fake YTO 圆通 speaking the adapter's UNVERIFIED assumption (``integrations/couriers/yto.py``): ``POST
/open/{method}/v1/{app_key}/{user_id}`` with ``{timestamp, param, sign, format}``, ``sign =
base64(MD5_raw(param + method + v + secret))``. It checks a client against the same assumption, nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers.base import FakeCourier, Push, Scan, compact, gmt8_text, md5_base64

CREATE_METHOD = "privacy_create_adapter"
PUSH_METHOD = "trace_push"
ACTIONS: Mapping[TrackingStatus, str] = {
    TrackingStatus.PICKED_UP: "GOT",
    TrackingStatus.IN_TRANSIT: "DEPARTURE",
    TrackingStatus.DELIVERED: "SIGNED",
    TrackingStatus.EXCEPTION: "FAILED",
}


def _sign(param: bytes, method: str, secret: str) -> str:
    return md5_base64(param + method.encode() + b"v1" + secret.encode())


def _refusal(code: str, reason: str) -> httpx.Response:
    return httpx.Response(200, json={"success": False, "code": code, "reason": reason})


class YtoFake(FakeCourier):
    courier = "YTO"
    host = "openapi.yto.net.cn"

    def number_format(self, carrier: str, digits: str) -> str:
        return "YT" + digits

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        user = self.credential.extra.get("user_id", "")
        if len(parts) < 4 or parts[-3:] != ["v1", self.credential.app_key, user]:
            return _refusal("S01", "非法的请求路径或客户编码")
        method = parts[-4]
        try:
            envelope = json.loads(request.content)
        except ValueError:
            return _refusal("S01", "请求体不是合法的JSON")
        param = envelope.get("param") if isinstance(envelope, dict) else None
        if not isinstance(param, str):
            return _refusal("S01", "param不能为空")
        expected = _sign(param.encode(), method, self.credential.secret)
        if not self.signature_ok(str(envelope.get("sign", "")), expected):
            return _refusal("S02", "签名错误")
        if method != CREATE_METHOD:
            return _refusal("S03", "接口不存在")
        try:
            order: Any = json.loads(param)
        except ValueError:
            order = None
        if not isinstance(order, dict) or not order.get("logisticsNo") or not order.get("recipientAddress"):
            return _refusal("S04", "logisticsNo和收件地址不能为空")
        if refuse:
            return _refusal("B01", "收件地址不在服务范围")
        waybill, _ = self.issue(str(order["logisticsNo"]), self.courier, order)
        return httpx.Response(200, json={"logisticsNo": waybill.key, "mailNo": waybill.tracking_number})

    def busy(self, request: httpx.Request) -> httpx.Response:
        return _refusal("9999", "系统繁忙")

    def signed_push(self, scan: Scan, secret: str) -> Push:
        action = ACTIONS[scan.status]
        body = compact(
            {
                "mailNo": scan.tracking_number,
                "infoContent": action,
                "acceptTime": gmt8_text(scan.at),
                "remark": scan.description or action,
            }
        ).encode()
        return {"Content-Type": "application/json", "sign": _sign(body, PUSH_METHOD, secret)}, body
