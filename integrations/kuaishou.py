"""Kuaishou shop (快手电商): encrypted message push, the signed order API, mapping to canonical orders.

Credential: ``app_key`` is the app's ``appkey`` (``ks...``), ``secret`` its ``signSecret`` (API signing);
``extra["message_key"]`` the base64 AES key for decrypting pushes, ``extra["access_token"]`` the shop's
token (or pass ``access_token=``), optional ``extra["sign_method"]`` ``HMAC_SHA256`` (default) or ``MD5``.
Shop code = the seller's id (``userId`` / ``sellerId``).

What this relies on:
- ``../shared/docs/protocols.md`` [C]: the body is base64 of AES/CBC/PKCS5 with a zero IV under the app's
  message key, no signature header, check ``appKey``; ``{"result":1}`` within 3 s; the ``{"test":true}``
  heartbeat; API signing over sorted ``k=v&...&signSecret=<secret>`` — MD5 hex or base64 HMAC-SHA256.
- The platform's own developer pages, mirrored in ``AndersonBY/kwaixiaodian-python-sdk`` [C]: 消息服务说明
  (event fields ``eventId, bizId, userId, openId, appKey, event, info, createTime, test``; the Java decrypt
  routine); API调用说明 (host ``https://openapi.kwaixiaodian.com``, path = method with ``.`` → ``/``,
  parameters ``appkey, method, version=1, param, access_token, timestamp`` (ms) ``, signMethod, sign``; POST
  as form body); 物流公司编号 (``expressCode``: EMS 2, STO 3, SF 4, YTO 6, ZTO 9, YUNDA 11, JD 14, J&T 109);
  K0006 (error answer ``{"result":24,"error_msg":"AUTHORIZATION_REVOKED"}``); K1008 (rate limit texts
  ``Exceed qps limit`` / ``exceed quota limit``); ``open.seller.order.goods.deliver`` (``orderId, expressNo,
  expressCode``; since 2024-11-25 a repeat with the same tracking number succeeds idempotently).
- Third-party SDKs [3P]: ``open.order.detail`` (param ``oid``) answers ``data.orderBaseInfo{oid, status,
  createTime, payTime, updateTime, validPromiseShipmentTimeStamp, preSale}``, ``data.orderItemInfo{skuNick,
  skuId, num, itemTitle}`` (one item per order), ``data.orderAddress{consignee, mobile, province, city,
  district, address}``, ``data.orderLogisticsInfo[{expressNo, expressCode}]``; status 10 unpaid, 30 paid, 40
  shipped, 50 signed for, 70 succeeded, 80 failed (a cancelled order turns "failed"); events
  ``kwaishop_order_addOrder, paySuccess, delivering, deliverySuccess, orderSuccess, orderFail``; ``info``
  carries ``oid, sellerId, status, updateTime`` (ms).

Unconfirmed [U], kept here and in the constants right below:
- whether the heartbeat is encrypted: both an encrypted and a plaintext ``{"test":true}`` are accepted (the
  latter stores nothing about orders, so accepting it unsigned is harmless);
- which ``result`` codes are transient: only rate-limit texts, HTTP 429/5xx and transport failures are
  retried;
- a repeated delivery answered with an error is checked against the order's logistics for our tracking
  number;
- ``skuNick`` is the shop's SKU code (falls back to ``skuId``); receiver fields are read in plaintext (the
  live platform returns them encrypted and decrypting via ``open.order.desensitise.batch`` is not
  implemented here).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from integrations import http
from integrations.base import (
    Address,
    ApiError,
    AppCredential,
    CanonicalOrder,
    HttpAnswer,
    OrderLine,
    OrderStatus,
    PayloadError,
    PushEvent,
    PushMessage,
    SignatureError,
)
from integrations.signing import MessagePayloadError, equal, from_unix_ms

PLATFORM = "kuaishou"
DEFAULT_BASE_URL = "https://openapi.kwaixiaodian.com"
_ZERO_IV = bytes(16)

EVENTS: Mapping[str, PushEvent] = {
    "kwaishop_order_addOrder": PushEvent.CREATED,
    "kwaishop_order_paySuccess": PushEvent.PAID,
    "kwaishop_order_delivering": PushEvent.SHIPPED,
    "kwaishop_order_deliverySuccess": PushEvent.SHIPPED,
    "kwaishop_order_orderFail": PushEvent.CANCELLED,
}
ORDER_STATUS: Mapping[int, OrderStatus] = {
    10: OrderStatus.CREATED,
    30: OrderStatus.PAID,
    40: OrderStatus.SHIPPED,
    50: OrderStatus.COMPLETED,
    70: OrderStatus.COMPLETED,
    80: OrderStatus.CANCELLED,
}
COURIER_CODES: Mapping[str, int] = {
    "EMS": 2,
    "STO": 3,
    "SF": 4,
    "YTO": 6,
    "ZTO": 9,
    "YUNDA": 11,
    "JD": 14,
    "JT": 109,
}
SIGN_METHODS = ("HMAC_SHA256", "MD5")
RETRYABLE_TEXTS = ("exceed qps limit", "exceed quota limit", "系统繁忙", "timeout")  # [U]

_SUCCESS = HttpAnswer(200, b'{"result":1}', "application/json")


def decrypt(body: bytes, message_key: str) -> bytes:
    """Plaintext of a push: base64 → AES/CBC (zero IV) → PKCS#5 unpadding. ValueError if it cannot."""
    try:
        key = base64.b64decode(message_key, validate=True)
        ciphertext = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None
    if len(key) not in (16, 24, 32):
        raise ValueError(f"message key is {len(key)} bytes, not an AES key")
    if not ciphertext or len(ciphertext) % 16:
        raise ValueError("ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _event_json(plaintext: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(plaintext)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_heartbeat(event: Mapping[str, Any]) -> bool:
    return event.get("test") is True and not event.get("event")


def sign_base(params: Mapping[str, str]) -> str:
    """Sorted ``k=v&...`` of the signed parameters (None values left out), before ``&signSecret=``."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if params[key] is not None)


def api_sign(params: Mapping[str, str], sign_secret: str, sign_method: str) -> str:
    """``sign``: MD5 hex, or base64 HMAC-SHA256 keyed with the sign secret, of ``base&signSecret=<s>``."""
    text = f"{sign_base(params)}&signSecret={sign_secret}".encode()
    if sign_method == "MD5":
        return hashlib.md5(text).hexdigest()
    if sign_method == "HMAC_SHA256":
        return base64.b64encode(hmac.new(sign_secret.encode(), text, hashlib.sha256).digest()).decode()
    raise ValueError(f"unknown signMethod {sign_method!r}")


def method_path(method: str) -> str:
    """URL path of an API method: ``open.order.detail`` → ``/open/order/detail``."""
    return "/" + method.replace(".", "/")


class KuaishouPush:
    """Kuaishou message push: decrypt with each active app's message key, accept only our ``appKey``."""

    platform = PLATFORM

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[AppCredential]
    ) -> AppCredential:
        if not body.strip():
            raise SignatureError("empty body")
        if body.lstrip().startswith(b"{"):
            plain = _event_json(body)
            if plain is not None and _is_heartbeat(plain):
                if not credentials:
                    raise SignatureError("no active kuaishou app")
                return credentials[0]  # [U] a plaintext heartbeat: nothing about orders is stored for it
            raise SignatureError("body is plaintext JSON, not an encrypted event")
        matched: AppCredential | None = None
        wrong_app: str | None = None
        for credential in credentials:
            key = credential.extra.get("message_key")
            if not key:
                continue
            try:
                event = _event_json(decrypt(body, key))
            except ValueError:
                continue
            if event is None:
                continue
            app_key = event.get("appKey")
            ours = isinstance(app_key, str) and equal(app_key, credential.app_key)
            if ours or (app_key is None and _is_heartbeat(event)):
                matched = matched or credential
            else:
                wrong_app = str(app_key)
        if matched is not None:
            return matched
        if wrong_app is not None:
            raise SignatureError(f"decrypted event is for appKey {wrong_app}, not ours")
        raise SignatureError("body does not decrypt with any active message key")

    def parse(self, headers: Mapping[str, str], body: bytes, credential: AppCredential) -> list[PushMessage]:
        if body.lstrip().startswith(b"{"):
            plaintext = body.strip()
        else:
            try:
                plaintext = decrypt(body, credential.extra.get("message_key", ""))
            except ValueError as exc:
                raise PayloadError(f"does not decrypt: {exc}") from None
        event = _event_json(plaintext)
        if event is None:
            raise PayloadError("decrypted body is not a JSON object")
        occurred = _ms(event.get("createTime"), "createTime")
        if _is_heartbeat(event):
            message_id = str(event.get("eventId") or "heartbeat")
            return [
                PushMessage(
                    PLATFORM, message_id, "test", PushEvent.HEARTBEAT, None, None, occurred, plaintext
                )
            ]
        event_id, name, info_text = event.get("eventId"), event.get("event"), event.get("info")
        if not event_id or not isinstance(event_id, str | int):
            raise PayloadError("missing eventId")
        if not name or not isinstance(name, str):
            raise MessagePayloadError(f"event {event_id}: missing event name", str(event_id))
        info: dict[str, Any] = {}
        if info_text not in (None, ""):
            if not isinstance(info_text, str):
                raise MessagePayloadError(f"event {event_id}: info is not a JSON string", str(event_id))
            try:
                parsed = json.loads(info_text)
            except ValueError as exc:
                raise MessagePayloadError(
                    f"event {event_id}: info is not valid JSON: {exc}", str(event_id)
                ) from None
            if not isinstance(parsed, dict):
                raise MessagePayloadError(f"event {event_id}: info is not a JSON object", str(event_id))
            info = parsed
        order_id = info.get("oid", event.get("bizId"))
        seller = event.get("userId", info.get("sellerId"))
        return [
            PushMessage(
                platform=PLATFORM,
                message_id=str(event_id),
                topic=name,
                event=EVENTS.get(name, PushEvent.UPDATED),
                shop_code=None if seller in (None, "") else str(seller),
                platform_order_id=None if order_id in (None, "") else str(order_id),
                occurred_at=occurred,
                raw=plaintext,
            )
        ]

    def success(self) -> HttpAnswer:
        return _SUCCESS


def _ms(value: Any, name: str) -> dt.datetime | None:
    if value in (None, "", 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{name} is not a time: {value!r}")
    try:
        return from_unix_ms(float(value))
    except (ValueError, OverflowError, OSError):
        raise PayloadError(f"{name} is not a time: {value!r}") from None


push = KuaishouPush()


def _time_ms(value: Any) -> dt.datetime | None:
    if value in (None, "", 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a time: {value!r}")
    return from_unix_ms(float(value))


def to_canonical(shop_code: str, data: Mapping[str, Any]) -> CanonicalOrder:
    """``open.order.detail``'s ``data`` as a canonical order; ApiError (not retryable) if unreadable."""
    try:
        return _to_canonical(shop_code, data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ApiError(
            f"kuaishou order: unreadable order detail: {exc!r}", retryable=False, code="bad_response"
        ) from None


def _to_canonical(shop_code: str, data: Mapping[str, Any]) -> CanonicalOrder:
    base = data["orderBaseInfo"]
    order_id = str(base["oid"])
    raw_status = int(base["status"])
    if raw_status not in ORDER_STATUS:
        raise ValueError(f"order {order_id}: unknown status {raw_status}")
    created = _time_ms(base.get("createTime"))
    if created is None:
        raise ValueError(f"order {order_id}: createTime is missing")
    items = data.get("orderItemInfo")
    item_list = items if isinstance(items, list) else [items] if items else []
    lines: list[OrderLine] = []
    for item in item_list:
        code = item.get("skuNick") or (str(item["skuId"]) if item.get("skuId") else "")
        if not code:
            raise ValueError(f"order {order_id}: item without skuNick or skuId")
        quantity = int(item.get("num") or 0)
        if quantity <= 0:
            raise ValueError(f"order {order_id}: item {code} has quantity {quantity}")
        lines.append(
            OrderLine(platform_sku_code=str(code), quantity=quantity, title=item.get("itemTitle") or "")
        )
    if not lines:
        raise ValueError(f"order {order_id}: no orderItemInfo")
    status = ORDER_STATUS[raw_status]
    address = data.get("orderAddress")
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=shop_code,
        platform_order_id=order_id,
        status=status,
        created_at=created,
        paid_at=_time_ms(base.get("payTime")),
        updated_at=_time_ms(base.get("updateTime")) or created,
        lines=lines,
        address=None
        if not address
        else Address(
            name=str(address.get("consignee") or ""),
            phone=str(address.get("mobile") or ""),
            province=str(address.get("province") or ""),
            city=str(address.get("city") or ""),
            district=str(address.get("district") or ""),
            detail=str(address.get("address") or ""),
        ),
        ship_by=_time_ms(base.get("validPromiseShipmentTimeStamp")),
        presale=int(base.get("preSale") or 0) != 0,
        cancel_reason=None,
    )


class KuaishouOrderApi:
    """Kuaishou order API (``open.order.detail``, ``open.seller.order.goods.deliver``) over httpx."""

    platform = PLATFORM

    def __init__(
        self,
        credential: AppCredential,
        client: httpx.Client,
        *,
        base_url: str = DEFAULT_BASE_URL,
        access_token: str | None = None,
        sign_method: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.access_token = (
            access_token if access_token is not None else credential.extra.get("access_token", "")
        )
        self.sign_method = sign_method or credential.extra.get("sign_method", "HMAC_SHA256")
        if self.sign_method not in SIGN_METHODS:
            raise ValueError(f"kuaishou signMethod must be one of {SIGN_METHODS}, not {self.sign_method!r}")
        self.clock = clock

    def signed_params(self, method: str, param: Mapping[str, Any]) -> dict[str, str]:
        params = {
            "access_token": self.access_token or "",
            "appkey": self.credential.app_key,
            "method": method,
            "param": json.dumps(param, separators=(",", ":"), ensure_ascii=False),
            "signMethod": self.sign_method,
            "timestamp": str(int(self.clock() * 1000)),
            "version": "1",
        }
        params["sign"] = api_sign(params, self.credential.secret, self.sign_method)
        return params

    def build_request(self, http_method: str, method: str, param: Mapping[str, Any]) -> httpx.Request:
        params = self.signed_params(method, param)
        url = self.base_url + method_path(method)
        if http_method == "GET":
            return self.client.build_request("GET", url, params=params)
        return self.client.build_request("POST", url, data=params)

    def call(self, http_method: str, method: str, param: Mapping[str, Any]) -> Any:
        """``data`` of a successful call (``result == 1``); :class:`ApiError` otherwise."""
        what = f"kuaishou {method}"
        request = self.build_request(http_method, method, param)
        answer = http.json_answer(http.send(self.client, request, what), what)
        result = answer.get("result")
        if result == 1:
            return answer.get("data")
        text = str(answer.get("error_msg") or answer.get("msg") or "")
        retryable = any(marker in text.lower() for marker in RETRYABLE_TEXTS)
        raise ApiError(
            f"kuaishou {method}: result {result} {text}".strip(), retryable=retryable, code=str(result)
        )

    def _detail(self, platform_order_id: str) -> Mapping[str, Any]:
        data = self.call("GET", "open.order.detail", {"oid": _oid(platform_order_id)})
        if not isinstance(data, dict) or not isinstance(data.get("orderBaseInfo"), dict):
            raise ApiError(
                f"kuaishou order {platform_order_id}: answer has no orderBaseInfo",
                retryable=False,
                code="bad_response",
            )
        return data

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self._detail(platform_order_id))

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """``open.seller.order.goods.deliver``; repeating it with the same tracking number is a no-op."""
        express_code = COURIER_CODES.get(courier_code)
        if express_code is None:
            raise ApiError(
                f"kuaishou: no expressCode for courier {courier_code!r}",
                retryable=False,
                code="unknown_courier",
            )
        param = {
            "orderId": _oid(platform_order_id),
            "expressNo": tracking_number,
            "expressCode": express_code,
        }
        try:
            self.call("POST", "open.seller.order.goods.deliver", param)
        except ApiError as exc:
            if exc.retryable or not self._already_shipped(platform_order_id, tracking_number):
                raise

    def _already_shipped(self, platform_order_id: str, tracking_number: str) -> bool:
        """Whether the order already carries this tracking number (a refused repeat is then a success)."""
        try:
            logistics = self._detail(platform_order_id).get("orderLogisticsInfo") or []
        except ApiError:
            return False
        return tracking_number in {str(item.get("expressNo")) for item in logistics}


def _oid(platform_order_id: str) -> int | str:
    """Kuaishou order ids are 64-bit integers on the wire."""
    text = str(platform_order_id)
    return int(text) if text.isdigit() else text
