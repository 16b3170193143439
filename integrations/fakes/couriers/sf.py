"""A fake SF Express 顺丰: the form gateway (``EXP_RECE_CREATE_ORDER``, ``EXP_RECE_SEARCH_ORDER_RESP``) and
signed route pushes.

From ``../shared/docs/protocols.md``: ``msgDigest = base64(MD5_raw(urlencode_plus(msgData + timestamp +
checkWord)))``, URL-encoded before the MD5 as Java's ``URLEncoder`` does (SF's gateway runs Java); the
envelope ``{apiResultCode, apiErrorMsg, apiResponseID, apiResultData: "<JSON>"}`` with A1000 accepted, A1001
missing parameter, A1004 no permission, A1006 digest invalid, A1099 system error [3P]; business code 8016 for
an ``orderId`` used before, whose order the search service returns [3P]. Other business codes are
illustrative. Route pushes are the adapter's assumption: JSON ``{"Body": {"WaybillRoute": [...]}}`` with
``msgDigest`` over the raw body in a header.
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
    form_of,
    gmt8_text,
    md5_base64,
    ms_text,
    parse_gmt8_text,
)

OP_CODES: Mapping[TrackingStatus, str] = {
    TrackingStatus.PICKED_UP: "50",
    TrackingStatus.IN_TRANSIT: "30",
    TrackingStatus.DELIVERED: "80",
    TrackingStatus.EXCEPTION: "70",
}
_UNRESERVED = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")
# Java's URLEncoder, byte by byte: kept, "+" for a space, "%XX" for the rest.
_ENCODED = [bytes([b]) if b in _UNRESERVED else b"+" if b == 32 else f"%{b:02X}".encode() for b in range(256)]
_FIELDS = ("partnerID", "requestID", "serviceCode", "timestamp", "msgDigest", "msgData")


def _java_urlencode(data: bytes) -> bytes:
    return b"".join([_ENCODED[b] for b in data])


def _digest(data: bytes, secret: str) -> str:
    return md5_base64(_java_urlencode(data + secret.encode()))


class SfFake(FakeCourier):
    courier = "SF"
    host = "bspgw.sf-express.com"

    def number_format(self, carrier: str, digits: str) -> str:
        return "SF" + digits

    def _envelope(self, code: str, message: str, data: Mapping[str, Any] | None = None) -> httpx.Response:
        body = {
            "apiResultCode": code,
            "apiErrorMsg": message,
            "apiResponseID": self.digits(f"response:{len(self.waybills)}:{len(self.pickups)}", 16),
            "apiResultData": None if data is None else json.dumps(data, ensure_ascii=False),
        }
        return httpx.Response(200, json=body)

    def _result(
        self, msg_data: Mapping[str, Any] | None, code: str = "S0000", message: str = ""
    ) -> httpx.Response:
        ok = code == "S0000"
        data = {"success": ok, "errorCode": code, "errorMsg": message or None, "msgData": msg_data}
        return self._envelope("A1000", "", data)

    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        form = form_of(request)
        if form is None or any(not form.get(name) for name in _FIELDS):
            return self._envelope("A1001", "必传参数不可为空")
        if form["partnerID"] != self.credential.app_key:
            return self._envelope("A1004", "无对应服务权限")
        signed = (form["msgData"] + form["timestamp"]).encode()
        if not self.signature_ok(form["msgDigest"], _digest(signed, self.credential.secret)):
            return self._envelope("A1006", "数字签名无效")
        try:
            msg = json.loads(form["msgData"])
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or not msg.get("orderId"):
            return self._result(None, "1010", "orderId不能为空")
        key = str(msg["orderId"])
        if form["serviceCode"] == "EXP_RECE_SEARCH_ORDER_RESP":
            found = self.waybills.get(key)
            if found is None:
                return self._result(None, "8018", "未找到订单")
            return self._result(self._order_data(key, found.tracking_number))
        if form["serviceCode"] != "EXP_RECE_CREATE_ORDER":
            return self._envelope("A1004", "无对应服务权限")
        if key in self.waybills:
            return self._result(None, "8016", "重复下单")
        if refuse:
            return self._result(None, "1014", "到件方地址无法识别")
        return self._create(key, msg)

    def _create(self, key: str, msg: dict[str, Any]) -> httpx.Response:
        contacts = {c.get("contactType"): c for c in msg.get("contactInfoList") or [] if isinstance(c, dict)}
        if 1 not in contacts or not contacts[1].get("address"):
            return self._result(None, "1011", "寄件方地址不能为空")
        if msg.get("isDocall") == 1:
            try:
                start = parse_gmt8_text(str(msg.get("sendStartTm")))
            except ValueError:
                return self._result(None, "1020", "sendStartTm格式应为yyyy-MM-dd HH:mm:ss")
            self.book(key, start, None, int(msg.get("parcelQty") or 1), msg)
        elif 2 not in contacts or not contacts[2].get("address"):
            return self._result(None, "1014", "到件方地址不能为空")
        waybill, _ = self.issue(key, self.courier, msg)
        return self._result(self._order_data(key, waybill.tracking_number))

    def _order_data(self, key: str, number: str) -> dict[str, Any]:
        return {
            "orderId": key,
            "originCode": "512",
            "destCode": "010",
            "filterResult": 2,
            "waybillNoInfoList": [{"waybillType": 1, "waybillNo": number}],
        }

    def busy(self, request: httpx.Request) -> httpx.Response:
        return self._envelope("A1099", "系统异常")

    def signed_push(self, scan: Scan, secret: str) -> Push:
        number, when = scan.tracking_number, scan.at
        route = {
            "id": self.digits(f"route:{number}:{scan.status.value}:{when.isoformat()}", 16),
            "mailno": number,
            "orderid": scan.order_key,
            "acceptTime": gmt8_text(when),
            "acceptAddress": "苏州市",
            "remark": scan.description or f"opCode {OP_CODES[scan.status]}",
            "opCode": OP_CODES[scan.status],
        }
        body = json.dumps({"Body": {"WaybillRoute": [route]}}, ensure_ascii=False).encode()
        timestamp = ms_text(when)
        headers = {
            "Content-Type": "application/json",
            "partnerID": self.credential.app_key,
            "timestamp": timestamp,
            "msgDigest": _digest(body + timestamp.encode(), secret),
        }
        return headers, body
