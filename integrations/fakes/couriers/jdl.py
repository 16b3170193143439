"""A fake JD Logistics 京东物流: ECAP precheck (pickup slices) and create behind the md5-salt sign, and signed
trace pushes.

From ``../shared/docs/protocols.md`` and a published test against JD's pre-release host [3P]: query
``LOP-DN, access_token, app_key, timestamp (yyyy-MM-dd HH:mm:ss, GMT+8), v=2.0, sign, algorithm=md5-salt``;
``sign = UPPER hex(MD5(secret + "access_token"T + "app_key"K + "method"path + "param_json"body +
"timestamp"TS + "v2.0" + secret))``; the body a JSON array of one request; answers ``{code, msg, subCode,
subMsg, success, data}``; a repeated ``orderId`` answers code 0 with subCode ``0_0001`` and the first
waybill. Pickup slices are hourly, 09:00–22:00 Beijing time, today (from the next full hour of the request's
timestamp) and the two days after. Gateway error codes are illustrative. Trace pushes are the adapter's
assumption: one scan as JSON, md5-salt signed with an empty token, method ``/ecap/v1/orders/trace/push``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import httpx

from integrations.couriers.base import TrackingStatus
from integrations.fakes.couriers.base import (
    GMT8,
    FakeCourier,
    Push,
    Scan,
    compact,
    from_ms,
    gmt8_text,
    parse_gmt8_text,
)

PRECHECK = "/ecap/v1/orders/precheck"
CREATE = "/ecap/v1/orders/create"
PUSH_METHOD = "/ecap/v1/orders/trace/push"
FIRST_HOUR, LAST_HOUR = 9, 22
CATEGORIES: Mapping[TrackingStatus, tuple[int, str, str]] = {
    TrackingStatus.PICKED_UP: (420, "200001", "已揽收"),
    TrackingStatus.IN_TRANSIT: (430, "200076", "运输中"),
    TrackingStatus.DELIVERED: (510, "10034", "妥投"),
    TrackingStatus.EXCEPTION: (530, "-1", "异常"),
}


def _sign(secret: str, token: str, app_key: str, method: str, body: bytes, timestamp: str) -> str:
    text = f"{secret}access_token{token}app_key{app_key}method{method}param_json".encode()
    text += body + f"timestamp{timestamp}v2.0{secret}".encode()
    return hashlib.md5(text).hexdigest().upper()


def _answer(code: int, msg: str, data: Any = None, **more: str) -> httpx.Response:
    return httpx.Response(200, json={"code": code, "msg": msg, "success": code == 0, "data": data, **more})


class JdlFake(FakeCourier):
    courier = "JD"
    host = "api.jdl.com"

    def number_format(self, carrier: str, digits: str) -> str:
        return "JDVE" + digits[:11]

    def order_ref(self, key: str) -> str:
        return "EO" + self.digits(f"order:{key}", 13)

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        query = request.url.params
        path = request.url.path
        extra = self.credential.extra
        if query.get("app_key") != self.credential.app_key or query.get("access_token") != extra.get(
            "access_token", ""
        ):
            return _answer(1003, "app_key或access_token无效")
        if query.get("LOP-DN") != "ECAP" or query.get("v") != "2.0" or query.get("algorithm") != "md5-salt":
            return _answer(1002, "公共参数错误")
        timestamp = query.get("timestamp", "")
        expected = _sign(
            self.credential.secret, query["access_token"], query["app_key"], path, request.content, timestamp
        )
        if not self.signature_ok(query.get("sign", ""), expected):
            return _answer(1004, "签名验证失败")
        try:
            now = parse_gmt8_text(timestamp)
            items = json.loads(request.content)
        except ValueError:
            return _answer(1005, "timestamp或请求体格式错误")
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            return _answer(1005, "请求体应为一个请求的JSON数组")
        order = items[0]
        if path == PRECHECK:
            return _answer(0, "成功", {"pickupSliceTimes": self.slices(now)})
        if path != CREATE:
            return httpx.Response(404, json={"code": 404, "msg": "API不存在"})
        key = str(order.get("orderId") or "")
        if not key or not (order.get("senderContact") or {}).get("fullAddress"):
            return _answer(2001, "orderId和寄件人地址不能为空")
        if key in self.waybills:
            first = self.waybills[key]
            data = {"waybillCode": first.tracking_number, "orderCode": first.order_ref}
            return _answer(0, "成功", data, subCode="0_0001", subMsg="商家订单号已被使用")
        if refuse:
            return _answer(2005, "收件地址超区，无法配送")
        if "pickupStartTime" in order:
            start, end = order.get("pickupStartTime"), order.get("pickupEndTime")
            if not isinstance(start, int) or not isinstance(end, int) or end <= start:
                return _answer(2002, "pickupStartTime/pickupEndTime应为毫秒时间戳且结束晚于开始")
            quantity = sum(int(c.get("quantity") or 0) for c in order.get("cargoes") or [])
            self.book(key, from_ms(start), from_ms(end), quantity, order)
        elif not (order.get("receiverContact") or {}).get("fullAddress"):
            return _answer(2001, "收件人地址不能为空")
        waybill, _ = self.issue(key, self.courier, order)
        return _answer(0, "成功", {"waybillCode": waybill.tracking_number, "orderCode": waybill.order_ref})

    def slices(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Hourly slices in Beijing time from the next full hour after ``now`` (naive UTC), three days."""
        local = now + GMT8
        days = []
        for offset in range(3):
            date = (local + dt.timedelta(days=offset)).date()
            first = FIRST_HOUR if offset else max(FIRST_HOUR, local.hour + 1)
            pieces = [
                {
                    "startTime": f"{hour:02d}:00:00",
                    "endTime": f"{hour + 1:02d}:00:00",
                    "name": f"{hour:02d}:00-{hour + 1:02d}:00",
                }
                for hour in range(first, LAST_HOUR)
            ]
            if pieces:
                days.append({"dateKey": date.isoformat(), "pickupSliceTimes": pieces, "timeInterval": 1})
        return days

    def busy(self, request: httpx.Request) -> httpx.Response:
        return _answer(-1, "系统繁忙，请稍后重试")

    def signed_push(self, scan: Scan, secret: str) -> Push:
        category, state, name = CATEGORIES[scan.status]
        body = compact(
            {
                "waybillCode": scan.tracking_number,
                "orderId": scan.order_key,
                "operationTime": gmt8_text(scan.at),
                "category": category,
                "categoryName": name,
                "state": state,
                "operationTitle": name,
                "operationRemark": scan.description or f"您的快件{name}",
            }
        ).encode()
        timestamp = gmt8_text(self.now)
        key = self.credential.app_key
        signed = _sign(secret, "", key, PUSH_METHOD, body, timestamp)
        return {
            "Content-Type": "application/json",
            "app_key": key,
            "timestamp": timestamp,
            "sign": signed,
        }, body
