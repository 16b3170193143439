"""A fake Yunda 韵达: electronic waybills (``createBmOrder``) and pickup orders (``pushOrder``) behind
``app-key``/``req-time``/``sign``, and signed trace pushes.

From ``../shared/docs/protocols.md`` [3P]: ``sign = md5hex(body + "_" + appSecret)``; third-party clients
[3P]: ``{appid, partner_id, secret, orders[{order_serial_no, ...}]}`` answered ``{result, code: "0000",
message, data[{order_serial_no, mail_no, status, msg}]}``; pickup orders ``{appid, orderid, sender,
sendstarttime, sendendtime, weight, items}``. Error codes are illustrative. Trace pushes are the adapter's
assumption: JSON ``{mailno, steps[...]}`` signed like an API call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import httpx

from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers.base import FakeCourier, Push, Scan, gmt8_text, ms_text, parse_gmt8_text

WAYBILL_PATH = "/openapi-api/v1/accountOrder/createBmOrder"
PICKUP_PATH = "/openapi-api/v1/order/pushOrder"
ACTIONS: Mapping[TrackingStatus, str] = {
    TrackingStatus.PICKED_UP: "GOT",
    TrackingStatus.IN_TRANSIT: "TRANSIT",
    TrackingStatus.DELIVERED: "SIGNED",
    TrackingStatus.EXCEPTION: "FAILED",
}


def _sign(body: bytes, secret: str) -> str:
    return hashlib.md5(body + b"_" + secret.encode()).hexdigest()


def _answer(ok: bool, code: str, message: str, data: Any = None) -> httpx.Response:
    return httpx.Response(200, json={"result": ok, "code": code, "message": message, "data": data})


class YundaFake(FakeCourier):
    courier = "YUNDA"
    host = "openapi.yundaex.com"

    def number_format(self, carrier: str, digits: str) -> str:
        return "31" + digits

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        if request.headers.get("app-key") != self.credential.app_key or not request.headers.get("req-time"):
            return _answer(False, "1001", "app-key或req-time缺失")
        expected = _sign(request.content, self.credential.secret)
        if not self.signature_ok(request.headers.get("sign", ""), expected):
            return _answer(False, "1002", "签名验证失败")
        try:
            params = json.loads(request.content)
        except ValueError:
            return _answer(False, "1003", "请求体不是合法的JSON")
        if not isinstance(params, dict) or params.get("appid") != self.credential.app_key:
            return _answer(False, "1003", "appid与app-key不一致")
        if refuse:
            return _answer(False, "0005", "收件地址解析失败")
        if request.url.path == WAYBILL_PATH:
            return self._waybills(params)
        if request.url.path == PICKUP_PATH:
            return self._pickup(params)
        return httpx.Response(404, json={"result": False, "code": "404", "message": "接口不存在"})

    def _waybills(self, params: dict[str, Any]) -> httpx.Response:
        extra = self.credential.extra
        if params.get("partner_id") != extra.get("partner_id", "") or params.get("secret") != extra.get(
            "partner_secret", ""
        ):
            return _answer(False, "0013", "白马账号或密码错误")
        results = []
        for order in params.get("orders") or []:
            key = str(order.get("order_serial_no") or "")
            if not key or not (order.get("receiver") or {}).get("address"):
                results.append(
                    {"order_serial_no": key, "status": "0", "msg": "order_serial_no和收件地址不能为空"}
                )
                continue
            waybill, _ = self.issue(key, self.courier, order)
            results.append(
                {"order_serial_no": key, "mail_no": waybill.tracking_number, "status": "1", "msg": "成功"}
            )
        if not results:
            return _answer(False, "0004", "orders不能为空")
        return _answer(True, "0000", "请求成功", results)

    def _pickup(self, params: dict[str, Any]) -> httpx.Response:
        key = str(params.get("orderid") or "")
        if not key or not (params.get("sender") or {}).get("address"):
            return _answer(False, "0004", "orderid和寄件地址不能为空")
        try:
            start = parse_gmt8_text(str(params.get("sendstarttime")))
            end = parse_gmt8_text(str(params.get("sendendtime")))
        except ValueError:
            return _answer(False, "0006", "sendstarttime/sendendtime格式应为yyyy-MM-dd HH:mm:ss")
        count = sum(int(item.get("number") or 0) for item in params.get("items") or [])
        pickup, _ = self.book(key, start, end, count, params)
        return _answer(True, "0000", "请求成功", {"orderid": key, "order_no": pickup.booking_ref})

    def busy(self, request: httpx.Request) -> httpx.Response:
        return _answer(False, "9999", "系统繁忙，请稍后再试")

    def signed_push(self, scan: Scan, secret: str) -> Push:
        step = {
            "time": gmt8_text(scan.at),
            "action": ACTIONS[scan.status],
            "station_name": "江苏常熟公司",
            "description": scan.description or ACTIONS[scan.status],
        }
        body = json.dumps({"mailno": scan.tracking_number, "steps": [step]}, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "app-key": self.credential.app_key,
            "req-time": ms_text(self.now),
            "sign": _sign(body, secret),
        }
        return headers, body
