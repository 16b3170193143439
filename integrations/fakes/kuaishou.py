"""A fake Kuaishou shop (快手电商): AES-encrypted pushes (one event each, heartbeats too) and the signed API.

From ``../shared/docs/protocols.md`` and the platform's developer pages: the body is base64 of
AES/CBC/PKCS5Padding under the app's message key (base64) with a zero IV, plaintext one event ``{eventId,
bizId, userId, openId, appKey, event, info (JSON string), createTime, test}``; API parameters
``access_token, appkey, method, param, signMethod, timestamp (ms), version=1`` signed over the sorted
``k=v&...&signSecret=<secret>`` with MD5 (hex) or HMAC_SHA256 (base64); answers ``{"result": 1, "data":
...}``. A repeated delivery with the same tracking number succeeds (the platform made it idempotent in
2024-11). The error ``result`` codes the fake answers with are [U] (only 24 AUTHORIZATION_REVOKED and the
``Exceed qps limit`` text are documented).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from integrations.base import OrderStatus, PushEvent
from integrations.fakes import FakeEvent, FakeOrder, FakePlatform, Push, json_response

EVENTS: Mapping[PushEvent, str] = {
    PushEvent.CREATED: "kwaishop_order_addOrder",
    PushEvent.PAID: "kwaishop_order_paySuccess",
    PushEvent.SHIPPED: "kwaishop_order_delivering",
    PushEvent.CANCELLED: "kwaishop_order_orderFail",
    PushEvent.ADDRESS_CHANGED: "kwaishop_order_addressUpdateAudit",
    PushEvent.UPDATED: "kwaishop_order_totalFeeChange",
}
STATUS_CODES: Mapping[OrderStatus, int] = {
    OrderStatus.CREATED: 10,
    OrderStatus.PAID: 30,
    OrderStatus.SHIPPED: 40,
    OrderStatus.COMPLETED: 70,
    OrderStatus.CANCELLED: 80,
}
EXPRESS_CODES = frozenset({2, 3, 4, 6, 9, 11, 14, 109})
# [U] error results: invented except 24 (AUTHORIZATION_REVOKED) and the rate-limit text.
SIGN_INVALID = {"result": 28, "error_msg": "sign verify failed"}
TOKEN_INVALID = {"result": 24, "error_msg": "AUTHORIZATION_REVOKED"}
PARAM_INVALID = {"result": 22, "error_msg": "param invalid"}
NOT_FOUND = {"result": 802, "error_msg": "order not found"}
NOT_DELIVERABLE = {"result": 803, "error_msg": "order status does not allow delivery"}
_EPOCH = dt.datetime(1970, 1, 1)
_ZERO_IV = bytes(16)


def _ms(value: dt.datetime | None) -> int:
    return 0 if value is None else int((value - _EPOCH).total_seconds() * 1000)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class KuaishouFake(FakePlatform):
    """Kuaishou shop: one SKU per order, one event per push, the heartbeat on demand."""

    platform = "kuaishou"
    max_lines = 1
    max_per_push = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = self.credential.extra.get("message_key")
        if not key:
            raise ValueError("a kuaishou credential needs extra['message_key'] (base64 AES key)")
        self._key = base64.b64decode(key)
        bad = [code for code in self.factory.shop_codes if not code.isdigit()]
        if bad:
            raise ValueError(f"kuaishou shop codes are seller ids (digits): {bad[:3]}")
        self.access_token = self.credential.extra.get("access_token")

    def new_order_id(self, n: int) -> str:
        return str(2_400_000_000_000_000 + (self.seed % 1000) * 10**10 + n)

    def new_message_id(self, n: int) -> str:
        return f"{243 + self.seed % 100}_{4027 + self.seed % 1000}_{2_375_715_000_000 + n}"

    # --- pushes -------------------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(_ZERO_IV)).encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize())

    def plaintext(self, event: FakeEvent) -> bytes:
        order = event.order
        name = EVENTS[event.event]
        info: dict[str, Any] = {"oid": int(order.order_id), "sellerId": int(order.shop_code)}
        if event.event is PushEvent.CREATED:
            info["createTime"] = _ms(order.created_at)
        else:
            info["status"] = STATUS_CODES[order.status]
            info["updateTime"] = _ms(event.at)
        message = {
            "eventId": event.message_id,
            "bizId": int(order.order_id),
            "userId": int(order.shop_code),
            "openId": f"f1b68e8f{int(order.shop_code):024x}",
            "appKey": self.credential.app_key,
            "event": name,
            "info": _compact(info),
            "createTime": _ms(event.at),
            "test": False,
        }
        return _compact(message).encode("utf-8")

    def push(self, events: FakeEvent | Sequence[FakeEvent]) -> Push:
        body = self.encrypt(self.plaintext(self._one(events)))
        return {"Content-Type": "text/plain;charset=utf-8"}, body

    def heartbeat(self, *, encrypted: bool = True) -> Push:
        """The ``{"test":true}`` heartbeat sent when the URL is saved and periodically."""
        plaintext = b'{"test":true}'
        return {"Content-Type": "text/plain;charset=utf-8"}, self.encrypt(
            plaintext
        ) if encrypted else plaintext

    # --- API ----------------------------------------------------------------------------------------------

    def rate_limited(self, request: httpx.Request) -> httpx.Response:
        key = f"apiId:{request.url.path};appkey:{self.credential.app_key}"
        text = f"Exceed qps limit, KEY [{key}], MAX_QPS [300.0]"
        return json_response({"result": 1017, "error_msg": text}, request=request)

    def expected_sign(self, params: Mapping[str, str]) -> str:
        signed = {k: v for k, v in params.items() if k != "sign"}
        text = "&".join(f"{k}={signed[k]}" for k in sorted(signed)) + f"&signSecret={self.credential.secret}"
        if params.get("signMethod") == "MD5":
            return hashlib.md5(text.encode()).hexdigest()
        digest = hmac.new(self.credential.secret.encode(), text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def answer(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        if request.method == "POST":
            params.update(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
        method = params.get("method", "")
        required = ("appkey", "method", "param", "timestamp", "version", "signMethod", "sign", "access_token")
        if any(not params.get(name) for name in required) or params.get("version") != "1":
            return json_response(PARAM_INVALID, request=request)
        if "/" + method.replace(".", "/") != request.url.path or params["appkey"] != self.credential.app_key:
            return json_response(PARAM_INVALID, request=request)
        if params["signMethod"] not in ("MD5", "HMAC_SHA256"):
            return json_response(PARAM_INVALID, request=request)
        if not hmac.compare_digest(self.expected_sign(params), params["sign"]):
            return json_response(SIGN_INVALID, request=request)
        if self.access_token and params["access_token"] != self.access_token:
            return json_response(TOKEN_INVALID, request=request)
        try:
            param = json.loads(params["param"])
        except ValueError:
            return json_response(PARAM_INVALID, request=request)
        if method == "open.order.detail" and request.method == "GET":
            order = self.orders.get(str(param.get("oid")))
            if order is None:
                return json_response(NOT_FOUND, request=request)
            return json_response({"result": 1, "data": self.detail(order)}, request=request)
        if method == "open.seller.order.goods.deliver" and request.method == "POST":
            return self._deliver(request, param)
        return json_response(PARAM_INVALID, request=request)

    def _deliver(self, request: httpx.Request, param: Mapping[str, Any]) -> httpx.Response:
        order = self.orders.get(str(param.get("orderId")))
        express_no, express_code = param.get("expressNo"), param.get("expressCode")
        if order is None:
            return json_response(NOT_FOUND, request=request)
        if express_code not in EXPRESS_CODES or not express_no or not isinstance(express_no, str):
            return json_response(PARAM_INVALID, request=request)
        if any(s.tracking_number == express_no for s in order.shipments):
            return json_response({"result": 1}, request=request)  # idempotent repeat
        if order.status is not OrderStatus.PAID:
            return json_response(NOT_DELIVERABLE, request=request)
        self._confirm(order, str(express_code), express_no)
        return json_response({"result": 1}, request=request)

    def detail(self, order: FakeOrder) -> dict[str, Any]:
        """The order as ``open.order.detail`` answers it (``data``)."""
        line = order.lines[0]
        address = order.address
        return {
            "orderBaseInfo": {
                "oid": int(order.order_id),
                "status": STATUS_CODES[order.status],
                "createTime": _ms(order.created_at),
                "payTime": _ms(order.paid_at),
                "updateTime": _ms(order.updated_at),
                "validPromiseShipmentTimeStamp": _ms(order.ship_by),
                "preSale": 1 if order.presale else 0,
                "totalFee": line.price_fen * line.quantity,
                "sellerOpenId": f"f1b68e8f{int(order.shop_code):024x}",
            },
            "orderItemInfo": {
                "skuId": 3_000_000 + zlib.crc32(line.sku_code.encode()) % 1_000_000,
                "skuNick": line.sku_code,
                "num": line.quantity,
                "itemTitle": line.title,
                "price": line.price_fen,
            },
            "orderAddress": {
                "consignee": address.name,
                "mobile": address.phone,
                "province": address.province,
                "city": address.city,
                "district": address.district,
                "address": address.detail,
            },
            "orderLogisticsInfo": [
                {"expressNo": s.tracking_number, "expressCode": int(s.courier)} for s in order.shipments
            ],
        }
