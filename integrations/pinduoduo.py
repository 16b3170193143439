"""Pinduoduo (拼多多, the PDD open platform): API signing, order increments, order detail, online shipment,
and the mapping to canonical orders.

Credential: ``app_key`` is the ``client_id``, ``secret`` the ``client_secret``. The shop's access token is
``extra["access_token.<shop_code>"]`` for that shop, else ``extra["access_token"]``; optional
``extra["logistics_ids"]`` (a JSON object overriding :data:`LOGISTICS_IDS`). Shop code = our code for the PDD
shop (the mall); PDD knows the shop by the token.

What this relies on:
- ``../shared/docs/protocols.md`` [3P]: ``UPPER hex(MD5(client_secret + sorted(k+v, non-null) +
  client_secret))`` over ``type, client_id, access_token, timestamp (unix s, ±10 min), data_type=JSON`` and
  the business parameters.
- PDD's worked signing example (open.pinduoduo.com access guide, as recorded in public code) [C]: secret
  ``testSecret`` over ``pdd.order.number.list.get`` parameters gives ``E4DE3ED21002510DED352819E7AE6775`` —
  reproduced in ``tests/test_pinduoduo.py``.
- PDD's API pages, as captured in public repositories [C]: the gateway ``https://gw-api.pinduoduo.com/api/
  router``; the timestamp must be within 10 minutes of PDD's clock; ``error_response`` {``error_code,
  error_msg, sub_code, sub_msg``} with 10019 expired token, 20004 signature, 20032 token or client id, 50000 /
  50002 / 52001 / 52002 internal, 52101 throttled, 52102 / 52103 degraded, 70031 too frequent, 70033
  maintenance; "使用最后更新时间范围增量同步时，必须采用倒序的分页方式（从最后一页往回取）才能避免漏单问题".
- The SDK models of ``niltor/open-pdd-net-sdk`` and PDD's PHP SDK examples [3P]:
  ``pdd.order.number.list.increment.get`` takes ``is_lucky_flag`` (0 all), ``order_status`` (5 all),
  ``refund_status`` (5 all), ``start_updated_at, end_updated_at`` (unix s, at most 30 minutes apart),
  ``page``, ``page_size`` (≤ 100), ``use_has_next``; it answers ``order_sn_increment_get_response``
  {``total_count, has_next, order_sn_list[]``}; ``pdd.order.information.get`` (``order_sn``) answers
  ``order_info_get_response.order_info``; ``pdd.logistics.online.send`` (``order_sn, logistics_id,
  tracking_number``) answers ``logistics_online_send_response.is_success``. An order carries ``order_sn,
  order_status`` (1 to ship, 2 shipped, 3 received), ``confirm_status`` (0 not concluded, 1 concluded,
  2 cancelled), ``refund_status`` (1 none, 2 after-sale, 3 refunding, 4 refunded), ``created_time, pay_time,
  confirm_time, updated_at, last_ship_time`` (the promised ship time), ``is_pre_sale, pre_sale_time``,
  ``receiver_name, receiver_phone, province, city, town, receiver_address`` (without the regions),
  ``tracking_number, logistics_id`` and ``item_list[]`` with ``outer_id`` (the shop's SKU code),
  ``outer_goods_id, sku_id, goods_name, goods_count``; PDD's ``pdd.logistics.companies.get`` list gives
  STO 1, SF 44, YTO 85, ZTO 115, EMS 118, JD 120, YUNDA 121.

Unconfirmed [U], kept here and in the constants right below:
- the order times are ``yyyy-MM-dd HH:mm:ss`` in GMT+8; both ends of the window inclusive; newest first
  (checked on every page: an unsorted page is an error);
- ``use_has_next=false`` keeps ``total_count`` in the answer (the last page is read first, so the total is
  needed);
- an order not yet concluded (``confirm_status`` 0, e.g. a group still forming) is read as CREATED: PDD
  forbids shipping it and refunds it if the group fails; a refund that succeeded before shipping
  (``refund_status`` 4, ``order_status`` 1) is CANCELLED; after shipping a refund is a return and the order
  stays SHIPPED/COMPLETED; a refund in progress leaves the order PAID (the platform has not decided);
- J&T has no known ``logistics_id``: set it in ``extra["logistics_ids"]``;
- a refused repeat shipment: the client reads the order and treats the call as done when ``tracking_number``
  is ours.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

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
from integrations.signing import equal, parse_gmt8, to_unix

PLATFORM = "pinduoduo"
DEFAULT_URL = "https://gw-api.pinduoduo.com/api/router"
INCREMENT_TYPE = "pdd.order.number.list.increment.get"
DETAIL_TYPE = "pdd.order.information.get"
SHIP_TYPE = "pdd.logistics.online.send"
MAX_WINDOW = dt.timedelta(minutes=30)
MAX_PAGE_SIZE = 100
TIMESTAMP_TOLERANCE = dt.timedelta(minutes=10)

LOGISTICS_IDS: Mapping[str, str] = {  # canonical courier -> PDD logistics_id [3P]; J&T unknown [U]
    "STO": "1",
    "SF": "44",
    "YTO": "85",
    "ZTO": "115",
    "EMS": "118",
    "JD": "120",
    "YUNDA": "121",
}
RETRYABLE_CODES = frozenset({50000, 50002, 52001, 52002, 52101, 52102, 52103, 70031, 70033})
ORDER_STATUS: Mapping[int, OrderStatus] = {
    1: OrderStatus.PAID,
    2: OrderStatus.SHIPPED,
    3: OrderStatus.COMPLETED,
}
REFUNDED = 4
CANCELLED_CONFIRM = 2
NOT_CONCLUDED = 0


# --- signing ----------------------------------------------------------------------------------------


def sign_base(params: Mapping[str, Any]) -> str:
    """``k1v1k2v2...`` over the parameters sorted by name, without ``sign`` and null values."""
    return "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v is not None)


def sign(params: Mapping[str, Any], secret: str) -> str:
    """PDD's signature: ``UPPER hex(MD5(client_secret + sorted k+v + client_secret))``."""
    return hashlib.md5((secret + sign_base(params) + secret).encode("utf-8")).hexdigest().upper()


def verify(params: Mapping[str, Any], secret: str) -> bool:
    given = params.get("sign")
    return bool(given) and equal(sign(params, secret), str(given).upper())


def timestamp(unix_seconds: float) -> str:
    """PDD's ``timestamp``: whole unix seconds."""
    return str(int(unix_seconds))


# --- the mapping to canonical orders ---------------------------------------------------------------


def status_of(order: Mapping[str, Any]) -> OrderStatus:
    """The canonical status from ``order_status``, ``confirm_status`` and ``refund_status``."""
    order_status = int(order["order_status"])
    if order_status not in ORDER_STATUS:
        raise ValueError(f"unknown order_status {order_status}")
    confirm = order.get("confirm_status")
    refund = order.get("refund_status")
    if confirm is not None and int(confirm) == CANCELLED_CONFIRM:
        return OrderStatus.CANCELLED
    if order_status == 1 and refund is not None and int(refund) == REFUNDED:
        return OrderStatus.CANCELLED
    if order_status == 1 and confirm is not None and int(confirm) == NOT_CONCLUDED:
        return OrderStatus.CREATED
    return ORDER_STATUS[order_status]


def _time(order: Mapping[str, Any], name: str) -> dt.datetime | None:
    value = order.get(name)
    if value in (None, ""):
        return None
    return parse_gmt8(str(value))


def to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    """A PDD order (``order_info`` or an ``order_sn_list`` item) as a canonical order.

    ApiError (not retryable) if it cannot be read.
    """
    try:
        return _to_canonical(shop_code, order)
    except (KeyError, TypeError, ValueError) as exc:
        order_sn = order.get("order_sn") if isinstance(order, Mapping) else None
        raise ApiError(
            f"pdd order {order_sn}: unreadable order: {exc}", retryable=False, code="bad_response"
        ) from None


def _to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    order_sn = str(order.get("order_sn") or "")
    if not order_sn:
        raise ValueError("order_sn is missing")
    status = status_of(order)
    created = _time(order, "created_time")
    updated = _time(order, "updated_at")
    if created is None or updated is None:
        raise ValueError("created_time or updated_at is missing")
    lines = [_line(order_sn, item) for item in order.get("item_list") or [] if isinstance(item, Mapping)]
    if not lines:
        raise ValueError("item_list is empty")
    presale = int(order.get("is_pre_sale") or 0) == 1
    cancel_reason = None
    if status is OrderStatus.CANCELLED:
        cancel_reason = "已取消" if int(order.get("confirm_status") or 0) == CANCELLED_CONFIRM else "退款成功"
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=shop_code,
        platform_order_id=order_sn,
        status=status,
        created_at=created,
        paid_at=_time(order, "pay_time"),
        updated_at=updated,
        lines=lines,
        address=_address(order),
        ship_by=_time(order, "last_ship_time") or (_time(order, "pre_sale_time") if presale else None),
        presale=presale,
        cancel_reason=cancel_reason,
    )


def _line(order_sn: str, item: Mapping[str, Any]) -> OrderLine:
    # The shop's own SKU code when it set one; else its goods code, else PDD's sku id (a mapping can name it).
    code = item.get("outer_id") or item.get("outer_goods_id") or item.get("sku_id")
    if not code:
        raise ValueError(f"an item of order {order_sn} names no SKU")
    quantity = int(item.get("goods_count") or 0)
    if quantity <= 0:
        raise ValueError(f"item {code} of order {order_sn} has quantity {quantity}")
    return OrderLine(platform_sku_code=str(code), quantity=quantity, title=str(item.get("goods_name") or ""))


def _address(order: Mapping[str, Any]) -> Address | None:
    if not order.get("receiver_name") and not (order.get("receiver_address") or order.get("address")):
        return None
    province, city, district = (str(order.get(k) or "") for k in ("province", "city", "town"))
    detail = str(order.get("receiver_address") or "")
    if not detail:  # ``address`` is the whole address: keep its street part
        detail = str(order.get("address") or "")
        for part in (province, city, district):
            if part and detail.startswith(part):
                detail = detail[len(part) :]
    return Address(
        name=str(order.get("receiver_name") or ""),
        phone=str(order.get("receiver_phone") or ""),
        province=province,
        city=city,
        district=district,
        detail=detail,
    )


def api_error(api_type: str, error: Mapping[str, Any]) -> ApiError:
    """PDD's ``error_response`` as an ApiError: internal faults, throttling and maintenance are retryable."""
    raw = error.get("error_code")
    code = int(raw) if isinstance(raw, int | str) and str(raw).lstrip("-").isdigit() else None
    text = " ".join(str(error.get(k) or "") for k in ("error_msg", "sub_code", "sub_msg")).strip()
    return ApiError(f"pdd {api_type}: code {raw} {text}", retryable=code in RETRYABLE_CODES, code=str(raw))


def logistics_id(credential: AppCredential, courier_code: str) -> str:
    return increments.courier_id(
        credential, courier_code, LOGISTICS_IDS, "logistics_ids", "pdd: no logistics_id"
    )


# --- the client -------------------------------------------------------------------------------------


class PinduoduoOrderApi(increments.RouterClient):
    """PDD order increments, order detail and online shipment over an injected ``httpx.Client``.

    Implements :class:`integrations.base.IncrementApi` and :class:`integrations.base.OrderApi`. A pull window
    longer than 30 minutes is refused (ValueError naming the limit); :meth:`pull_all` cuts longer spans.
    """

    platform = PLATFORM
    default_url = DEFAULT_URL
    max_page_size = default_page_size = MAX_PAGE_SIZE

    def signed_params(self, api_type: str, shop_code: str, params: Mapping[str, Any]) -> dict[str, str]:
        form = {k: str(v) for k, v in params.items() if v is not None}
        form.update(
            type=api_type,
            client_id=self.credential.app_key,
            access_token=self.token(shop_code),
            timestamp=timestamp(self.clock()),
            data_type="JSON",
        )
        form["sign"] = sign(form, self.credential.secret)
        return form

    def call(
        self, api_type: str, shop_code: str, params: Mapping[str, Any], answer_key: str
    ) -> Mapping[str, Any]:
        """The unwrapped answer of a successful call; :class:`ApiError` otherwise."""
        form = self.signed_params(api_type, shop_code, params)
        answer = increments.post_form(self.client, self.url, form, f"pdd {api_type}")
        if isinstance(answer.get("error_response"), Mapping):
            raise api_error(api_type, answer["error_response"])
        body = answer.get(answer_key)
        if not isinstance(body, Mapping):
            raise ApiError(
                f"pdd {api_type}: the answer has no {answer_key}", retryable=False, code="bad_response"
            )
        return body

    # IncrementApi

    def pull(self, shop_code: str, start: dt.datetime, end: dt.datetime, cursor: str | None) -> IncrementPage:
        increments.check_window(start, end, MAX_WINDOW, INCREMENT_TYPE)

        def fetch(
            low: dt.datetime, high: dt.datetime, page: int, size: int
        ) -> increments.RawPage[Mapping[str, Any]]:
            body = self.call(
                INCREMENT_TYPE,
                shop_code,
                {
                    "is_lucky_flag": 0,
                    "order_status": 5,
                    "refund_status": 5,
                    "start_updated_at": to_unix(low),
                    "end_updated_at": to_unix(high),
                    "page": page,
                    "page_size": size,
                    "use_has_next": "false",  # [U] keeps total_count, which finding the last page needs
                },
                "order_sn_increment_get_response",
            )
            items = [o for o in body.get("order_sn_list") or [] if isinstance(o, Mapping)]
            return increments.RawPage(items, int(body.get("total_count") or 0))

        raws, nxt = increments.pull_page(fetch, _key, start, end, cursor, self.page_size)
        return IncrementPage([to_canonical(shop_code, o) for o in raws], nxt)

    def pull_all(self, shop_code: str, start: dt.datetime, end: dt.datetime) -> Iterator[CanonicalOrder]:
        """Every order changed in [start, end), cut into 30-minute windows."""
        return increments.pull_all(self, shop_code, start, end, MAX_WINDOW)

    # OrderApi

    def order(self, shop_code: str, platform_order_id: str) -> Mapping[str, Any]:
        body = self.call(DETAIL_TYPE, shop_code, {"order_sn": platform_order_id}, "order_info_get_response")
        info = body.get("order_info")
        if not isinstance(info, Mapping):
            raise ApiError(
                f"pdd order {platform_order_id}: the answer has no order_info",
                retryable=False,
                code="bad_response",
            )
        return info

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self.order(shop_code, platform_order_id))

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """``pdd.logistics.online.send``. PDD takes no idempotency key: a refused repeat counts as done when
        the order already carries this tracking number (``request_id`` is for the caller's own
        bookkeeping)."""
        params = {
            "order_sn": platform_order_id,
            "logistics_id": logistics_id(self.credential, courier_code),
            "tracking_number": tracking_number,
        }
        try:
            body = self.call(SHIP_TYPE, shop_code, params, "logistics_online_send_response")
            if body.get("is_success") not in (True, "true"):
                raise ApiError(
                    f"pdd shipment {platform_order_id}: not confirmed: {dict(body)}",
                    retryable=False,
                    code="refused",
                )
        except ApiError as exc:
            if exc.retryable or not self._carries(shop_code, platform_order_id, tracking_number):
                raise

    def _carries(self, shop_code: str, platform_order_id: str, tracking_number: str) -> bool:
        try:
            order = self.order(shop_code, platform_order_id)
        except ApiError:
            return False
        return str(order.get("tracking_number") or "") == tracking_number


def _key(order: Mapping[str, Any]) -> tuple[str, dt.datetime]:
    try:
        updated = parse_gmt8(str(order["updated_at"]))
    except (KeyError, ValueError):
        raise ApiError(
            f"pdd order {order.get('order_sn')}: no readable updated_at", retryable=False, code="bad_response"
        ) from None
    return str(order.get("order_sn") or ""), updated
