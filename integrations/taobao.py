"""Taobao / Tmall open platform (TOP): API signing, the Qimen signature, order increments, order detail, ship
confirmation, and the mapping to canonical orders.

Credential: ``app_key`` / ``secret`` are the app's key and secret. The seller's session key (TOP's access
token) is ``extra["session.<shop_code>"]`` for that shop, else ``extra["session"]``; optional
``extra["sign_method"]`` (``md5`` default, ``hmac``, ``hmac-sha256``) and ``extra["company_codes"]`` (a JSON
object overriding :data:`COMPANY_CODES`). Shop code = our code for the seller's shop; TOP knows the shop by
the session.

What this relies on:
- ``../shared/docs/protocols.md`` [C]: sort every parameter except ``sign`` (and byte values), concatenate
  ``k1v1k2v2...``; ``md5`` = ``UPPER hex(MD5(secret + s + secret))``, ``hmac`` = ``UPPER hex(HMAC-MD5(secret,
  s))``, ``hmac-sha256`` likewise; ``timestamp`` ``yyyy-MM-dd HH:mm:ss`` GMT+8 accepted ±10 min; ``v=2.0``.
  Qimen: ``UPPER hex(MD5(secret + sorted_kv + body + secret))``.
- TOP's worked signing example (open.taobao.com docId=101617, secret ``helloworld`` → ``66987CB1...4FB8``)
  [C], reproduced in ``tests/test_taobao.py``. The official SDK skips empty values when concatenating [C].
- ``taobao.trades.sold.increment.get`` [C, the API text as carried by the SDK mirror ``bububa/opentaobao``]:
  ``fields, start_modified, end_modified`` (``yyyy-MM-dd HH:mm:ss``, span ≤ 1 day), ``page_no``, ``page_size``
  (1..100, 40-50 advised), ``use_has_next``; newest modified first, and
  "必须采用倒序的分页方式（从最后一页往回取）才能避免漏单问题" — hence :mod:`integrations.increments`. Answer
  ``trades_sold_increment_get_response`` with ``total_results`` (``has_next`` instead when
  ``use_has_next=true``) and ``trades.trade[]``.
- The Trade structure [C, same mirror]: ``tid``/``tid_str, status`` (values in :data:`TRADE_STATUS`),
  ``created, pay_time, modified, consign_time, end_time`` (GMT+8), ``step_trade_status`` (pre-sale deposits),
  ``est_con_time``, ``receiver_name/mobile/phone/state/city/district/town/address`` (a county-level city may
  sit in ``receiver_district`` with no ``receiver_city``), ``orders.order[]`` with ``oid, num_iid, sku_id,
  outer_iid, outer_sku_id, title, num, status, invoice_no``. ``taobao.trade.fullinfo.get`` (``fields, tid``)
  answers ``trade_fullinfo_get_response.trade``; ``taobao.logistics.offline.send`` (``tid, out_sid,
  company_code``) answers ``logistics_offline_send_response.shipping.is_success``.
- Platform error codes [C, TOP's error table as copied by several sites]: 4-8 call limits, 10 service
  unavailable, 15 remote service error, 25 invalid signature, 27 invalid session, 29 invalid app key, 31
  invalid timestamp, 40/41 missing/invalid arguments; a ``sub_code`` starting ``isp.`` is a server-side fault
  to retry later, ``isv.`` the caller's fault.

Unconfirmed [U], kept here and in the constants right below:
- :data:`COMPANY_CODES` (Cainiao-style codes; J&T as ``JTSD`` and JD as ``JD`` are third-party usage);
- both ends of ``start_modified``/``end_modified`` are read as inclusive; the client keeps exactly [start,
  end);
- the increment answer carries the receiver and lines when asked in ``fields`` (the live platform may mask the
  receiver; :meth:`TaobaoOrderApi.fetch_order` reads ``fullinfo``);
- ``est_con_time`` is a date-time, a date, or "付款后N天内" (N days after payment); anything else gives no
  ship-by;
- ``PAID_FORBID_CONSIGN`` (paid, shipping forbidden) is read as CREATED so nothing is produced for it;
- a repeated offline send is refused with an ``isv.`` error; the client then reads the trade and treats the
  call as done when our tracking number (``invoice_no``) is on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from integrations import increments
from integrations.base import (
    Address,
    ApiError,
    AppCredential,
    CanonicalOrder,
    IncrementPage,
    OrderLine,
    OrderStatus,
)
from integrations.signing import GMT8_FORMAT, equal, format_gmt8, from_unix, parse_gmt8

PLATFORM = "taobao"
DEFAULT_URL = "https://eco.taobao.com/router/rest"
API_VERSION = "2.0"
SIGN_METHODS = ("md5", "hmac", "hmac-sha256")
MAX_WINDOW = dt.timedelta(days=1)
TIMESTAMP_TOLERANCE = dt.timedelta(minutes=10)
MAX_PAGE_SIZE = 100

TRADE_STATUS: Mapping[str, OrderStatus] = {
    "TRADE_NO_CREATE_PAY": OrderStatus.CREATED,
    "WAIT_BUYER_PAY": OrderStatus.CREATED,
    "PAY_PENDING": OrderStatus.CREATED,
    "WAIT_PRE_AUTH_CONFIRM": OrderStatus.CREATED,
    "PAID_FORBID_CONSIGN": OrderStatus.CREATED,  # [U] paid but the platform forbids shipping (group buying)
    "WAIT_SELLER_SEND_GOODS": OrderStatus.PAID,
    "SELLER_CONSIGNED_PART": OrderStatus.SHIPPED,
    "WAIT_BUYER_CONFIRM_GOODS": OrderStatus.SHIPPED,
    "TRADE_BUYER_SIGNED": OrderStatus.SHIPPED,
    "TRADE_FINISHED": OrderStatus.COMPLETED,
    "TRADE_CLOSED": OrderStatus.CANCELLED,
    "TRADE_CLOSED_BY_TAOBAO": OrderStatus.CANCELLED,
}
CLOSED = frozenset({"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO"})
COMPANY_CODES: Mapping[str, str] = {  # [U] canonical courier -> TOP company_code
    "ZTO": "ZTO",
    "YTO": "YTO",
    "YUNDA": "YUNDA",
    "STO": "STO",
    "JT": "JTSD",
    "SF": "SF",
    "JD": "JD",
    "EMS": "EMS",
}
RETRYABLE_CODES = frozenset({4, 5, 6, 7, 8, 10})  # call limits and "service currently unavailable"
TRADE_FIELDS = (
    "tid,tid_str,status,type,step_trade_status,created,pay_time,modified,consign_time,end_time,est_con_time,"
    "receiver_name,receiver_mobile,receiver_phone,receiver_state,receiver_city,receiver_district,receiver_town,"
    "receiver_address,orders"
)
_DAYS_AFTER_PAYMENT = re.compile(r"付款后\s*(\d+)\s*天")


# --- signing --------------------------------------------------------------------------------------


def sign_base(params: Mapping[str, Any]) -> str:
    """``k1v1k2v2...`` over the parameters sorted by name, without ``sign``, byte values and empty values."""
    return "".join(
        f"{key}{value}"
        for key, value in sorted(params.items())
        if key != "sign"
        and value is not None
        and not isinstance(value, bytes | bytearray)
        and str(value) != ""
    )


def sign(params: Mapping[str, Any], secret: str, method: str = "md5") -> str:
    """The TOP signature of a request's parameters with ``sign_method`` = ``method``."""
    base = sign_base(params).encode("utf-8")
    key = secret.encode("utf-8")
    if method == "md5":
        return hashlib.md5(key + base + key).hexdigest().upper()
    if method == "hmac":
        return hmac.new(key, base, hashlib.md5).hexdigest().upper()
    if method == "hmac-sha256":
        return hmac.new(key, base, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown TOP sign_method {method!r}; use one of {', '.join(SIGN_METHODS)}")


def verify(params: Mapping[str, Any], secret: str) -> bool:
    """Whether ``params["sign"]`` is the signature of ``params`` under their own ``sign_method``."""
    method = str(params.get("sign_method") or "md5")
    if method not in SIGN_METHODS or not params.get("sign"):
        return False
    return equal(sign(params, secret, method), str(params["sign"]).upper())


def qimen_sign(params: Mapping[str, Any], body: str | bytes, secret: str) -> str:
    """The Qimen (奇门) signature: like ``md5`` with the raw body before the closing secret."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    key = secret.encode("utf-8")
    return hashlib.md5(key + sign_base(params).encode("utf-8") + raw + key).hexdigest().upper()


def qimen_verify(params: Mapping[str, Any], body: str | bytes, secret: str) -> bool:
    given = params.get("sign")
    return bool(given) and equal(qimen_sign(params, body, secret), str(given).upper())


def timestamp(unix_seconds: float) -> str:
    """TOP's ``timestamp``: ``yyyy-MM-dd HH:mm:ss`` in GMT+8."""
    return format_gmt8(from_unix(int(unix_seconds)))


# --- the mapping to canonical orders --------------------------------------------------------------


def status_of(trade_status: str) -> OrderStatus:
    try:
        return TRADE_STATUS[trade_status]
    except KeyError:
        raise ValueError(f"unknown trade status {trade_status!r}") from None


def _time(trade: Mapping[str, Any], name: str) -> dt.datetime | None:
    value = trade.get(name)
    if value in (None, ""):
        return None
    return parse_gmt8(str(value))


def _sub_orders(trade: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    orders = trade.get("orders")
    if isinstance(orders, Mapping):  # TOP's default JSON wraps lists: {"orders": {"order": [...]}}
        orders = orders.get("order")
    if not isinstance(orders, list):
        return []
    return [o for o in orders if isinstance(o, Mapping)]


def ship_by_of(est_con_time: Any, paid_at: dt.datetime | None) -> dt.datetime | None:
    """The promised ship time in ``est_con_time`` [U]: a GMT+8 date-time, a date, or 付款后N天内."""
    text = str(est_con_time or "").strip()
    if not text:
        return None
    try:
        return parse_gmt8(text)
    except ValueError:
        pass
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        match = _DAYS_AFTER_PAYMENT.search(text)
        if match and paid_at is not None:
            return paid_at + dt.timedelta(days=int(match.group(1)))
        return None
    return parse_gmt8((day + dt.timedelta(days=1, seconds=-1)).strftime(GMT8_FORMAT))


def to_canonical(shop_code: str, trade: Mapping[str, Any]) -> CanonicalOrder:
    """A TOP ``Trade`` as a canonical order. ApiError (not retryable) if it cannot be read."""
    try:
        return _to_canonical(shop_code, trade)
    except (KeyError, TypeError, ValueError) as exc:
        tid = trade.get("tid_str") or trade.get("tid") if isinstance(trade, Mapping) else None
        raise ApiError(
            f"taobao trade {tid}: unreadable trade: {exc}", retryable=False, code="bad_response"
        ) from None


def _to_canonical(shop_code: str, trade: Mapping[str, Any]) -> CanonicalOrder:
    tid = str(trade.get("tid_str") or trade.get("tid") or "")
    if not tid:
        raise ValueError("tid is missing")
    raw_status = str(trade.get("status") or "")
    status = status_of(raw_status)
    created = _time(trade, "created")
    modified = _time(trade, "modified")
    if created is None or modified is None:
        raise ValueError("created or modified is missing")
    paid = _time(trade, "pay_time")
    subs = _sub_orders(trade)
    open_subs = [o for o in subs if str(o.get("status") or "") not in CLOSED]
    # A sub-order refunded before shipping is not to be made; when every line is closed, the trade is too.
    lines = [_line(tid, o) for o in (open_subs or subs)]
    if not lines:
        raise ValueError("the trade has no orders (ask for the 'orders' field)")
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=shop_code,
        platform_order_id=tid,
        status=status,
        created_at=created,
        paid_at=paid,
        updated_at=modified,
        lines=lines,
        address=_address(trade),
        ship_by=ship_by_of(trade.get("est_con_time"), paid),
        presale=bool(trade.get("step_trade_status")) or trade.get("type") == "step",
        cancel_reason=raw_status if status is OrderStatus.CANCELLED else None,
    )


def _line(tid: str, order: Mapping[str, Any]) -> OrderLine:
    # The shop's own code when it set one; else TOP's numeric SKU (or item) id, which a mapping can name too.
    code = order.get("outer_sku_id") or order.get("outer_iid") or order.get("sku_id") or order.get("num_iid")
    if not code:
        raise ValueError(f"sub-order {order.get('oid')} of trade {tid} names no SKU")
    quantity = int(order.get("num") or 0)
    if quantity <= 0:
        raise ValueError(f"sub-order {order.get('oid')} of trade {tid} has quantity {quantity}")
    return OrderLine(platform_sku_code=str(code), quantity=quantity, title=str(order.get("title") or ""))


def _address(trade: Mapping[str, Any]) -> Address | None:
    if not trade.get("receiver_name") and not trade.get("receiver_address"):
        return None
    detail = str(trade.get("receiver_address") or "")
    town = str(trade.get("receiver_town") or "")
    if town and not detail.startswith(town):
        detail = town + detail
    district = str(trade.get("receiver_district") or "")
    return Address(
        name=str(trade.get("receiver_name") or ""),
        phone=str(trade.get("receiver_mobile") or trade.get("receiver_phone") or ""),
        province=str(trade.get("receiver_state") or ""),
        city=str(trade.get("receiver_city") or district),
        district=district if trade.get("receiver_city") else "",
        detail=detail,
    )


def api_error(api_method: str, error: Mapping[str, Any]) -> ApiError:
    """TOP's ``error_response`` as an ApiError; call limits, unavailability, ``isp.`` faults are retryable."""
    code = str(error.get("code", ""))
    sub = str(error.get("sub_code") or "")
    text = " ".join(str(error.get(k) or "") for k in ("msg", "sub_code", "sub_msg")).strip()
    retryable = (code.isdigit() and int(code) in RETRYABLE_CODES) or sub.startswith("isp.")
    return ApiError(
        f"taobao {api_method}: code {code} {text}", retryable=retryable, code=f"{code}:{sub}" if sub else code
    )


def response_key(api_method: str) -> str:
    """The key TOP wraps an answer in: ``taobao.trade.fullinfo.get`` → ``trade_fullinfo_get_response``."""
    name = api_method.removeprefix("taobao.")
    return name.replace(".", "_") + "_response"


def company_code(credential: AppCredential, courier_code: str) -> str:
    return increments.courier_id(
        credential, courier_code, COMPANY_CODES, "company_codes", "taobao: no company_code"
    )


# --- the client -----------------------------------------------------------------------------------


class TaobaoOrderApi(increments.RouterClient):
    """TOP's order increments, order detail and offline ship confirmation over an injected ``httpx.Client``.

    Implements :class:`integrations.base.IncrementApi` and :class:`integrations.base.OrderApi`. A pull window
    longer than one day is refused (ValueError naming the limit); :meth:`pull_all` cuts longer spans.
    """

    platform = PLATFORM
    default_url = DEFAULT_URL
    max_page_size = MAX_PAGE_SIZE
    default_page_size = 50
    token_name = "session"

    def __init__(
        self,
        credential: AppCredential,
        client: httpx.Client,
        *,
        url: str | None = None,
        clock: Callable[[], float] = time.time,
        page_size: int | None = None,
        sign_method: str | None = None,
    ) -> None:
        super().__init__(credential, client, url=url, clock=clock, page_size=page_size)
        self.sign_method = sign_method or credential.extra.get("sign_method") or "md5"
        if self.sign_method not in SIGN_METHODS:
            raise ValueError(
                f"unknown TOP sign_method {self.sign_method!r}; use one of {', '.join(SIGN_METHODS)}"
            )

    def signed_params(self, api_method: str, shop_code: str, params: Mapping[str, Any]) -> dict[str, str]:
        form = {k: str(v) for k, v in params.items() if v is not None}
        form.update(
            method=api_method,
            app_key=self.credential.app_key,
            session=self.token(shop_code),
            timestamp=timestamp(self.clock()),
            format="json",
            v=API_VERSION,
            sign_method=self.sign_method,
        )
        form["sign"] = sign(form, self.credential.secret, self.sign_method)
        return form

    def call(self, api_method: str, shop_code: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The unwrapped answer of a successful call; :class:`ApiError` otherwise."""
        answer = increments.post_form(
            self.client, self.url, self.signed_params(api_method, shop_code, params), f"taobao {api_method}"
        )
        if isinstance(answer.get("error_response"), Mapping):
            raise api_error(api_method, answer["error_response"])
        body = answer.get(response_key(api_method))
        if not isinstance(body, Mapping):
            raise ApiError(
                f"taobao {api_method}: the answer has no {response_key(api_method)}",
                retryable=False,
                code="bad_response",
            )
        return body

    # IncrementApi

    def pull(self, shop_code: str, start: dt.datetime, end: dt.datetime, cursor: str | None) -> IncrementPage:
        increments.check_window(start, end, MAX_WINDOW, "taobao.trades.sold.increment.get")

        def fetch(
            low: dt.datetime, high: dt.datetime, page: int, size: int
        ) -> increments.RawPage[Mapping[str, Any]]:
            body = self.call(
                "taobao.trades.sold.increment.get",
                shop_code,
                {
                    "fields": TRADE_FIELDS,
                    "start_modified": format_gmt8(low),
                    "end_modified": format_gmt8(high),
                    "page_no": page,
                    "page_size": size,
                    # The last page is read first, so the total is needed: has_next cannot say where it is.
                    "use_has_next": "false",
                },
            )
            trades = body.get("trades")
            if isinstance(trades, Mapping):
                trades = trades.get("trade")
            items = [t for t in trades or [] if isinstance(t, Mapping)]
            return increments.RawPage(items, int(body.get("total_results") or 0))

        raws, nxt = increments.pull_page(fetch, _key, start, end, cursor, self.page_size)
        return IncrementPage([to_canonical(shop_code, t) for t in raws], nxt)

    def pull_all(self, shop_code: str, start: dt.datetime, end: dt.datetime) -> Iterator[CanonicalOrder]:
        """Every order changed in [start, end), cut into one-day windows."""
        return increments.pull_all(self, shop_code, start, end, MAX_WINDOW)

    # OrderApi

    def trade(self, shop_code: str, platform_order_id: str) -> Mapping[str, Any]:
        body = self.call(
            "taobao.trade.fullinfo.get", shop_code, {"fields": TRADE_FIELDS, "tid": platform_order_id}
        )
        trade = body.get("trade")
        if not isinstance(trade, Mapping):
            raise ApiError(
                f"taobao trade {platform_order_id}: the answer has no trade",
                retryable=False,
                code="bad_response",
            )
        return trade

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self.trade(shop_code, platform_order_id))

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """``taobao.logistics.offline.send``. TOP takes no idempotency key: a refused repeat counts as done
        when the trade already carries this tracking number (``request_id`` is for the caller's own
        bookkeeping)."""
        params = {
            "tid": platform_order_id,
            "out_sid": tracking_number,
            "company_code": company_code(self.credential, courier_code),
        }
        try:
            body = self.call("taobao.logistics.offline.send", shop_code, params)
        except ApiError as exc:
            if exc.retryable or not self._carries(shop_code, platform_order_id, tracking_number):
                raise
            return
        shipping = body.get("shipping")
        if not isinstance(shipping, Mapping) or shipping.get("is_success") not in (True, "true"):
            raise ApiError(
                f"taobao logistics.offline.send {platform_order_id}: not confirmed: {dict(body)}",
                retryable=False,
                code="not_confirmed",
            )

    def _carries(self, shop_code: str, platform_order_id: str, tracking_number: str) -> bool:
        try:
            trade = self.trade(shop_code, platform_order_id)
        except ApiError:
            return False
        return any(str(o.get("invoice_no") or "") == tracking_number for o in _sub_orders(trade))


def _key(trade: Mapping[str, Any]) -> tuple[str, dt.datetime]:
    try:
        modified = parse_gmt8(str(trade["modified"]))
    except (KeyError, ValueError):
        raise ApiError(
            f"taobao trade {trade.get('tid')}: no readable modified time",
            retryable=False,
            code="bad_response",
        ) from None
    return str(trade.get("tid_str") or trade.get("tid") or ""), modified
