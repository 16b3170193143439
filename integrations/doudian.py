"""Douyin shop (抖店, doudian): message push, the signed order API, and the mapping to canonical orders.

Credential: ``app_key`` / ``secret`` are the app's key and secret; ``extra["access_token"]`` is the shop's
access token for API calls (or pass ``access_token=`` to :class:`DoudianOrderApi`). Shop code = Douyin
``shop_id``.

What this relies on:
- ``../shared/docs/protocols.md`` [C]: push headers ``app-id`` and ``event-sign = md5hex(app_key + raw_body
  + app_secret)``; the body is a JSON array of ``{tag, msg_id, data}`` with ``data`` a JSON string; tags 100
  created, 101 paid, 102 shipped, 106 cancelled, 110 paid-awaiting; success ``{"code":0,"msg":"success"}``;
  API signing.
- The official Go SDK (mirror ``zsmhub/doudian-sdk``) [C]: ``core/doudian_op_api_client.go`` — query
  parameters ``app_key, method, timestamp`` (unix seconds), ``v=2, sign, sign_method=hmac-sha256,
  access_token``, the body is ``param_json``, ``method`` is the URL path with ``/`` → ``.``, host
  ``https://openapi-fxg.jinritemai.com``; ``utils/sign_util.go`` — the pattern, and ``Marshal`` (via a map:
  keys sorted recursively, compact, ``SetEscapeHTML(false)``); ``api/order_orderDetail`` — parameter
  ``shop_order_id``, answer ``data.shop_order_detail`` with ``order_id, shop_id, order_status`` (1 unpaid,
  105 paid, 2 preparing, 101 partly shipped, 3 shipped, 4 cancelled, 5 completed), ``create_time,
  update_time, pay_time, exp_ship_time`` (unix s), ``cancel_reason, post_receiver, post_tel,
  post_addr{province,city,town,street:{name,id},detail}``, ``logistics_info[{tracking_no, company}]``,
  ``sku_order_list[{code, out_sku_id, sku_id, item_num, product_name, pre_sale_type, exp_ship_time}]``;
  ``api/order_logisticsAdd`` — ``order_id, company_code, logistics_code``; the base answer ``code, msg,
  sub_code, sub_msg, log_id`` with 10000 = success.
- Error codes [3P] (several third-party tables agree): 20000/20001 service unavailable or timed out,
  30001/30002 permission, 40001/40003 platform parameter checks (``isv.signature-invalid``,
  ``isv.access-token-expired``), 40004/50002 business, 60000 rate limit.

Unconfirmed [U], kept here and in the constants right below:
- logistics company codes for the canonical couriers (kuaidi100-style names, seen in third-party code only);
- order_status 101 (partly shipped) is read as SHIPPED;
- the receiver's name, phone and street are read from the plaintext fields; the live platform returns them
  encrypted (``encrypt_post_*``) and decrypting through ``order.batchDecrypt`` is not implemented here;
- a repeated ``order.logisticsAdd`` for an order already shipped answers a business error: the client then
  reads the order and treats the call as done when our tracking number is on it;
- ``data`` time fields of a push may be unix seconds or ``yyyy-MM-dd HH:mm:ss`` in GMT+8; both are accepted;
- ``order.searchList`` (not on the protocols page; parameter names from the official SDK's generated
  ``OrderSearchListParam``): ``update_time_start``/``update_time_end`` in unix seconds, both ends included,
  ``page`` from 0, ``size`` at most 100, ``order_by``/``order_asc``; the answer's ``data`` holds ``total`` and
  ``shop_order_list`` whose items have the ``shop_order_detail`` shape. Normalisation uses it only to save
  calls: an order it does not bring is fetched with ``order.orderDetail``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from integrations import http
from integrations.base import (
    Address,
    ApiError,
    AppCredential,
    CanonicalOrder,
    HttpAnswer,
    OrderLine,
    OrderListPage,
    OrderStatus,
    PayloadError,
    PushEvent,
    PushMessage,
    SignatureError,
)
from integrations.signing import MessagePayloadError, equal, from_unix, header, parse_gmt8, to_unix

PLATFORM = "doudian"
DEFAULT_BASE_URL = "https://openapi-fxg.jinritemai.com"

TAG_EVENTS: Mapping[str, PushEvent] = {
    "100": PushEvent.CREATED,
    "101": PushEvent.PAID,
    "102": PushEvent.SHIPPED,
    "106": PushEvent.CANCELLED,
    "110": PushEvent.PAID,
}
# Which data field says when the event happened, per tag; others fall back through _TIME_FIELDS.
_TAG_TIME_FIELD: Mapping[str, str] = {"100": "create_time", "101": "pay_time", "106": "cancel_time"}
_TIME_FIELDS = ("update_time", "cancel_time", "pay_time", "create_time")

ORDER_STATUS: Mapping[int, OrderStatus] = {
    1: OrderStatus.CREATED,
    105: OrderStatus.PAID,
    2: OrderStatus.PAID,
    101: OrderStatus.SHIPPED,  # [U] partly shipped
    3: OrderStatus.SHIPPED,
    4: OrderStatus.CANCELLED,
    5: OrderStatus.COMPLETED,
}
COURIER_CODES: Mapping[str, str] = {  # [U] canonical courier -> Douyin company_code
    "ZTO": "zhongtong",
    "YTO": "yuantong",
    "YUNDA": "yunda",
    "STO": "shentong",
    "JT": "jtexpress",
    "SF": "shunfeng",
    "JD": "jd",
    "EMS": "ems",
}
SEARCH_PAGE_SIZE = 100  # [U] the largest page order.searchList gives
SUCCESS_CODE = 10000
RETRYABLE_CODES = frozenset({20000, 20001, 60000})
ALREADY_DONE_CODES = frozenset({40004, 50002})  # [U] business refusals that may mean "already shipped"

_SUCCESS = HttpAnswer(200, b'{"code":0,"msg":"success"}', "application/json")
_FAILURE = HttpAnswer(200, b'{"code":1,"msg":"fail"}', "application/json")
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


def push_sign(app_key: str, body: bytes, secret: str) -> str:
    """``event-sign`` of a push: lowercase hex MD5 of app_key + raw body + secret (plain MD5, not HMAC)."""
    return hashlib.md5(app_key.encode() + body + secret.encode()).hexdigest()


def param_json(params: Mapping[str, Any]) -> str:
    """Business parameters as the platform signs them: keys sorted recursively, compact, nothing escaped."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def method_name(path: str) -> str:
    """API method from its URL path: ``/order/orderDetail`` → ``order.orderDetail``."""
    return path.strip("/").replace("/", ".")


def api_sign(app_key: str, secret: str, method: str, param_json_text: str, timestamp: str) -> str:
    """``sign`` of an API call: hex HMAC-SHA256 keyed with the secret over the pattern of protocols.md."""
    pattern = (
        f"{secret}app_key{app_key}method{method}param_json{param_json_text}timestamp{timestamp}v2{secret}"
    )
    return hmac.new(secret.encode(), pattern.encode(), hashlib.sha256).hexdigest()


def _time(value: Any) -> dt.datetime | None:
    """A Douyin time (unix seconds as number or text, or GMT+8 text) as naive UTC; None when unset."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return from_unix(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return None if int(text) == 0 else from_unix(int(text))
        return parse_gmt8(text)
    raise ValueError(f"not a time: {value!r}")


def _id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an id: {value!r}")
    return str(value)


class DoudianPush:
    """Douyin shop message push: verify ``event-sign`` over the raw bytes, split the array into messages."""

    platform = PLATFORM

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[AppCredential]
    ) -> AppCredential:
        app_id = header(headers, "app-id")
        signature = header(headers, "event-sign")
        if not app_id:
            raise SignatureError("missing app-id header")
        if not signature:
            raise SignatureError("missing event-sign header")
        given = signature.strip().lower()
        matched: AppCredential | None = None
        for credential in credentials:
            # Every candidate is checked, so timing does not tell which secret of a rotation matched.
            if credential.app_key == app_id and equal(push_sign(app_id, body, credential.secret), given):
                matched = matched or credential
        if matched is None:
            raise SignatureError(f"event-sign does not match any active secret of app {app_id}")
        return matched

    def parse(self, headers: Mapping[str, str], body: bytes, credential: AppCredential) -> list[PushMessage]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"body is not UTF-8: {exc}") from None
        messages: list[PushMessage] = []
        for index, (item, raw) in enumerate(_array_items(text)):
            messages.append(self._message(index, item, raw))
        return messages

    def _message(self, index: int, item: Any, raw: str) -> PushMessage:
        where = f"message {index}"
        if not isinstance(item, dict):
            raise PayloadError(f"{where} is not an object")
        tag, msg_id, data_text = item.get("tag"), item.get("msg_id"), item.get("data")
        if tag is None or isinstance(tag, bool) or not isinstance(tag, str | int):
            raise PayloadError(f"{where}: missing or bad tag")
        if not msg_id or not isinstance(msg_id, str | int) or isinstance(msg_id, bool):
            raise PayloadError(f"{where}: missing msg_id")
        if not isinstance(data_text, str):
            raise MessagePayloadError(f"{where} (msg_id {msg_id}): data is not a JSON string", str(msg_id))
        try:
            data = json.loads(data_text)
        except ValueError as exc:
            raise MessagePayloadError(
                f"{where} (msg_id {msg_id}): data is not valid JSON: {exc}", str(msg_id)
            ) from None
        if not isinstance(data, dict):
            raise MessagePayloadError(f"{where} (msg_id {msg_id}): data is not a JSON object", str(msg_id))
        tag_text = str(tag)
        try:
            order_id = _id(data.get("p_id"))
            shop_id = _id(data.get("shop_id"))
            occurred = _time(data.get(_TAG_TIME_FIELD.get(tag_text, "")))
            for name in _TIME_FIELDS:
                if occurred is not None:
                    break
                occurred = _time(data.get(name))
        except ValueError as exc:
            raise MessagePayloadError(f"{where} (msg_id {msg_id}): {exc}", str(msg_id)) from None
        return PushMessage(
            platform=PLATFORM,
            message_id=str(msg_id),
            topic=tag_text,
            event=TAG_EVENTS.get(tag_text, PushEvent.UPDATED),
            shop_code=shop_id,
            platform_order_id=order_id,
            occurred_at=occurred,
            raw=raw.encode("utf-8"),
        )

    def success(self) -> HttpAnswer:
        return _SUCCESS

    def failure(self) -> HttpAnswer:
        """The platform's failure answer (it then redelivers)."""
        return _FAILURE


def _array_items(text: str) -> list[tuple[Any, str]]:
    """The elements of a JSON array, each with its exact source text (each message keeps its raw bytes)."""
    pos = 0
    end = len(text)
    while pos < end and text[pos] in _WHITESPACE:
        pos += 1
    if pos >= end or text[pos] != "[":
        raise PayloadError("body is not a JSON array of messages")
    pos += 1
    items: list[tuple[Any, str]] = []
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos < end and text[pos] == "]" and not items:
            pos += 1
            break
        try:
            value, stop = _DECODER.raw_decode(text, pos)
        except ValueError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        items.append((value, text[pos:stop]))
        pos = stop
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos < end and text[pos] == ",":
            pos += 1
            continue
        if pos < end and text[pos] == "]":
            pos += 1
            break
        raise PayloadError(f"body is not valid JSON: expected ',' or ']' at character {pos}")
    if text[pos:].strip(_WHITESPACE):
        raise PayloadError(f"body is not valid JSON: extra data at character {pos}")
    if not items:
        raise PayloadError("push carries no messages")
    return items


push = DoudianPush()


def to_canonical(shop_code: str, detail: Mapping[str, Any]) -> CanonicalOrder:
    """A ``shop_order_detail`` as a canonical order. ApiError (not retryable) if it cannot be read."""
    try:
        return _to_canonical(shop_code, detail)
    except (KeyError, TypeError, ValueError) as exc:
        order_id = detail.get("order_id") if isinstance(detail, Mapping) else None
        raise ApiError(
            f"doudian order {order_id}: unreadable order detail: {exc!r}",
            retryable=False,
            code="bad_response",
        ) from None


def _to_canonical(shop_code: str, detail: Mapping[str, Any]) -> CanonicalOrder:
    order_id = _id(detail["order_id"])
    if order_id is None:
        raise ValueError("order_id is empty")
    raw_status = int(detail["order_status"])
    if raw_status not in ORDER_STATUS:
        raise ValueError(f"unknown order_status {raw_status}")
    created = _time(detail.get("create_time"))
    if created is None:
        raise ValueError("create_time is missing")
    lines: list[OrderLine] = []
    presale = False
    ship_by = _time(detail.get("exp_ship_time"))
    for sku in detail.get("sku_order_list") or []:
        code = sku.get("code") or sku.get("out_sku_id") or _id(sku.get("sku_id"))
        if not code:
            raise ValueError(f"sku order {sku.get('order_id')} has no SKU code")
        quantity = int(sku.get("item_num") or 0)
        if quantity <= 0:
            raise ValueError(f"sku order {sku.get('order_id')} has quantity {quantity}")
        lines.append(
            OrderLine(platform_sku_code=str(code), quantity=quantity, title=sku.get("product_name") or "")
        )
        if int(sku.get("pre_sale_type") or 0) != 0:
            presale = True
        line_ship_by = _time(sku.get("exp_ship_time"))
        if line_ship_by is not None and (ship_by is None or line_ship_by > ship_by):
            ship_by = line_ship_by  # the order ships when its latest line may ship
    if not lines:
        raise ValueError("sku_order_list is empty")
    status = ORDER_STATUS[raw_status]
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=_id(detail.get("shop_id")) or shop_code,
        platform_order_id=order_id,
        status=status,
        created_at=created,
        paid_at=_time(detail.get("pay_time")),
        updated_at=_time(detail.get("update_time")) or created,
        lines=lines,
        address=_address(detail),
        ship_by=ship_by,
        presale=presale,
        cancel_reason=(detail.get("cancel_reason") or None) if status is OrderStatus.CANCELLED else None,
    )


def _address(detail: Mapping[str, Any]) -> Address | None:
    post = detail.get("post_addr")
    if not post:
        return None

    def name(part: str) -> str:
        value = post.get(part)
        return str(value.get("name") or "") if isinstance(value, Mapping) else ""

    street = name("street")
    detail_text = str(post.get("detail") or "")
    if street and not detail_text.startswith(street):
        detail_text = street + detail_text
    return Address(
        name=str(detail.get("post_receiver") or ""),
        phone=str(detail.get("post_tel") or ""),
        province=name("province"),
        city=name("city"),
        district=name("town"),
        detail=detail_text,
    )


class DoudianOrderApi:
    """Douyin shop order API (``order.orderDetail``, ``order.logisticsAdd``) over an injected client."""

    platform = PLATFORM

    def __init__(
        self,
        credential: AppCredential,
        client: httpx.Client,
        *,
        base_url: str = DEFAULT_BASE_URL,
        access_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credential = credential
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token if access_token is not None else credential.extra.get("access_token")
        self.clock = clock

    def build_request(self, path: str, params: Mapping[str, Any]) -> httpx.Request:
        """The signed request for an API path such as ``/order/orderDetail``."""
        method = method_name(path)
        body = param_json(params)
        timestamp = str(int(self.clock()))
        query = {
            "app_key": self.credential.app_key,
            "method": method,
            "timestamp": timestamp,
            "v": "2",
            "sign": api_sign(self.credential.app_key, self.credential.secret, method, body, timestamp),
            "sign_method": "hmac-sha256",
        }
        if self.access_token:
            query["access_token"] = self.access_token
        return self.client.build_request(
            "POST",
            f"{self.base_url}/{path.strip('/')}",
            params=query,
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )

    def call(self, path: str, params: Mapping[str, Any]) -> Any:
        """``data`` of a successful call; :class:`ApiError` otherwise."""
        method = method_name(path)
        what = f"doudian {method}"
        answer = http.json_answer(http.send(self.client, self.build_request(path, params), what), what)
        code = answer.get("code")
        if code == SUCCESS_CODE:
            return answer.get("data")
        sub = answer.get("sub_code") or ""
        text = answer.get("sub_msg") or answer.get("msg") or ""
        retryable = isinstance(code, int) and code in RETRYABLE_CODES
        raise ApiError(
            f"doudian {method}: code {code} {sub} {text}".strip(), retryable=retryable, code=str(code)
        )

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self._detail(platform_order_id))

    def changed_orders(self, start: dt.datetime, end: dt.datetime, page: int) -> OrderListPage:
        """``order.searchList``: one page of the orders updated in [start, end], oldest change first."""
        params = {
            "update_time_start": to_unix(start),
            "update_time_end": to_unix(end),
            "page": page,
            "size": SEARCH_PAGE_SIZE,
            "order_by": "update_time",
            "order_asc": True,
        }
        data = self.call("/order/searchList", params)
        listed = data.get("shop_order_list") if isinstance(data, dict) else None
        total = data.get("total") if isinstance(data, dict) else None
        if not isinstance(listed, list) or isinstance(total, bool) or not isinstance(total, int):
            raise ApiError(
                "doudian order.searchList: answer has no shop_order_list and total",
                retryable=False,
                code="bad_response",
            )
        orders: list[CanonicalOrder] = []
        for detail in listed:
            if not isinstance(detail, dict):
                continue
            try:
                orders.append(to_canonical("", detail))
            except ApiError:
                continue  # fetched on its own later, where its reason is recorded against its message
        return OrderListPage(orders, total, SEARCH_PAGE_SIZE)

    def _detail(self, platform_order_id: str) -> Mapping[str, Any]:
        data = self.call("/order/orderDetail", {"shop_order_id": str(platform_order_id)})
        detail = data.get("shop_order_detail") if isinstance(data, dict) else None
        if not isinstance(detail, dict):
            raise ApiError(
                f"doudian order {platform_order_id}: answer has no shop_order_detail",
                retryable=False,
                code="bad_response",
            )
        return detail

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """``order.logisticsAdd``; a repeat with the same tracking number is a no-op."""
        company = COURIER_CODES.get(courier_code)
        if company is None:
            raise ApiError(
                f"doudian: no company_code for courier {courier_code!r}",
                retryable=False,
                code="unknown_courier",
            )
        params = {
            "order_id": str(platform_order_id),
            "company_code": company,
            "logistics_code": tracking_number,
        }
        try:
            self.call("/order/logisticsAdd", params)
        except ApiError as exc:
            refused = exc.code is not None and exc.code.isdigit() and int(exc.code) in ALREADY_DONE_CODES
            if not refused or not self._already_shipped(platform_order_id, tracking_number):
                raise

    def _already_shipped(self, platform_order_id: str, tracking_number: str) -> bool:
        """Whether the order already carries this tracking number (a refused repeat is then a success)."""
        try:
            detail = self._detail(platform_order_id)
        except ApiError:
            return False
        return tracking_number in {
            str(item.get("tracking_no")) for item in detail.get("logistics_info") or []
        }
