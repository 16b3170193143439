"""JD (京东, JOS open platform, POP shops): API signing, order search by modified time, order detail,
shipment, and the mapping to canonical orders.

Credential: ``app_key`` / ``secret`` are the app's key and secret. The shop's access token is
``extra["access_token.<shop_code>"]`` for that shop, else ``extra["access_token"]``; optional
``extra["logistics_ids"]`` (a JSON object overriding :data:`LOGISTICS_IDS`). Shop code = our code for the JD
shop (the vender); JD knows the shop by the token.

What this relies on:
- ``../shared/docs/protocols.md`` [3P]: ``sign = UPPER hex(MD5(app_secret + sorted(k+v) + app_secret))`` over
  ``method, app_key, access_token, timestamp (yyyy-MM-dd HH:mm:ss), v=2.0, sign_method=md5,
  360buy_param_json``.
- JD's worked signing example (open.jd.com dev guide, listId=2643, as recorded in public code) [C]: secret
  ``yourappSecret`` over ``360buy_param_json, access_token, app_key, method, timestamp, v`` gives
  ``D70825340F4084360B9362B60DFD7930`` — reproduced in ``tests/test_jd.py``.
- JD's official Java SDK (``com.jd.open.api.sdk``, decompiled in public repositories) [C]:
  ``PopOrderEnSearch`` answers ``searchorderinfo_result`` {``apiResult, orderInfoList, orderTotal``};
  ``PopOrderEnGet`` answers ``orderDetailInfo`` {``apiResult, orderInfo``}; ``PopOrderShipment`` takes
  ``orderId, logiCoprId, logiNo`` and answers ``sopjosshipment_result`` {``success, chineseErrCode,
  englishErrCode``}; the order's ``itemInfoList[]`` items carry ``skuId, outerSkuId, skuName, itemTotal,
  wareId`` and ``consigneeInfo`` carries ``fullname, telephone, mobile, fullAddress, province, city, county,
  town``.
- Third-party code [3P]: the search parameters ``start_date, end_date, order_state, optional_fields, page,
  page_size, dateType`` in ``360buy_param_json``; the answer wrapped as ``<method with _>_responce`` (JD's
  spelling); order states ``WAIT_SELLER_STOCK_OUT, WAIT_SELLER_DELIVERY, WAIT_GOODS_RECEIVE_CONFIRM,
  FINISHED_L, TRADE_CANCELED, LOCKED, PAUSE`` …; times ``orderStartTime, paymentConfirmTime, modified`` in
  GMT+8; ``error_response`` {``code, zh_desc, en_desc``} with 2 = call limit, 8 = invalid timestamp (±6
  minutes), 12 = invalid signature, 19 = invalid access_token; at most 100 pages are served; logistics company
  ids (ZTO 1499, YUNDA 1327, STO 470, YTO 463, SF 467, EMS 465, JD 2087).

Unconfirmed [U], kept here and in the constants right below:
- :data:`SEARCH_METHOD` / :data:`GET_METHOD` are the encrypted-era ``enSearch`` / ``enGet``; the live platform
  returns the consignee encrypted (JD's TDE), which this adapter does not decrypt;
- ``dateType=0`` selects by modified time, results come newest first (checked on every page: an unsorted page
  is an error), both ends of the window inclusive, the window at most :data:`MAX_WINDOW`;
- whether the gateway counts ``sign_method`` into the signature: the worked example has none; we send it and
  sign it, as protocols.md lists it;
- the ``enGet`` parameter names ``orderId, optionalFields``;
- ``LOCKED`` and ``PAUSE`` are read as PAID (a lock is usually a pending cancellation, which ends as
  ``TRADE_CANCELED``); J&T has no known ``logiCoprId``: set it in ``extra["logistics_ids"]``;
- a refused repeat shipment: the client reads the order and treats the call as done when ``waybill`` is ours;
- which other gateway codes are worth retrying: only 2 is, besides HTTP 429/5xx and transport faults.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
from integrations.signing import equal, format_gmt8, from_unix, parse_gmt8

PLATFORM = "jd"
DEFAULT_URL = "https://api.jd.com/routerjson"
API_VERSION = "2.0"
SEARCH_METHOD = "jingdong.pop.order.enSearch"
GET_METHOD = "jingdong.pop.order.enGet"
SHIP_METHOD = "jingdong.pop.order.shipment"
MAX_WINDOW = dt.timedelta(days=30)  # [U]
MAX_PAGES = 100  # [3P]
MAX_PAGE_SIZE = 100
TIMESTAMP_TOLERANCE = dt.timedelta(minutes=6)  # [3P]

ORDER_STATE: Mapping[str, OrderStatus] = {
    "WAIT_SELLER_STOCK_OUT": OrderStatus.PAID,
    "WAIT_SELLER_DELIVERY": OrderStatus.PAID,  # cross-border: waiting for domestic dispatch
    "LOCKED": OrderStatus.PAID,  # [U]
    "PAUSE": OrderStatus.PAID,  # [U]
    "POP_ORDER_PAUSE": OrderStatus.PAID,  # [U]
    "SEND_TO_DISTRIBUTION_CENER": OrderStatus.SHIPPED,  # sic, JD's spelling
    "DISTRIBUTION_CENTER_RECEIVED": OrderStatus.SHIPPED,
    "WAIT_GOODS_RECEIVE_CONFIRM": OrderStatus.SHIPPED,
    "RECEIPTS_CONFIRM": OrderStatus.COMPLETED,
    "FINISHED_L": OrderStatus.COMPLETED,
    "TRADE_CANCELED": OrderStatus.CANCELLED,
}
SEARCH_STATES = ",".join(ORDER_STATE)
LOGISTICS_IDS: Mapping[str, str] = {  # canonical courier -> JD logiCoprId [3P]; J&T unknown [U]
    "ZTO": "1499",
    "YUNDA": "1327",
    "STO": "470",
    "YTO": "463",
    "SF": "467",
    "EMS": "465",
    "JD": "2087",
}
RETRYABLE_CODES = frozenset({"2"})
ORDER_FIELDS = (
    "orderId,venderId,orderState,orderStateRemark,orderStartTime,paymentConfirmTime,modified,orderEndTime,"
    "consigneeInfo,itemInfoList,waybill,logisticsId,orderRemark"
)


# --- signing ----------------------------------------------------------------------------------------


def sign_base(params: Mapping[str, Any]) -> str:
    """``k1v1k2v2...`` over the parameters sorted by name, without ``sign`` and missing values."""
    return "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v is not None)


def sign(params: Mapping[str, Any], secret: str) -> str:
    """The JOS signature: ``UPPER hex(MD5(secret + sorted k+v + secret))``."""
    return hashlib.md5((secret + sign_base(params) + secret).encode("utf-8")).hexdigest().upper()


def verify(params: Mapping[str, Any], secret: str) -> bool:
    given = params.get("sign")
    return bool(given) and equal(sign(params, secret), str(given).upper())


def timestamp(unix_seconds: float) -> str:
    """JD's ``timestamp``: ``yyyy-MM-dd HH:mm:ss`` in GMT+8."""
    return format_gmt8(from_unix(int(unix_seconds)))


def param_json(params: Mapping[str, Any]) -> str:
    """``360buy_param_json``: the business parameters as compact JSON, Chinese kept as is."""
    return json.dumps(params, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# --- the mapping to canonical orders ---------------------------------------------------------------


def status_of(order_state: str) -> OrderStatus:
    try:
        return ORDER_STATE[order_state]
    except KeyError:
        raise ValueError(f"unknown orderState {order_state!r}") from None


def _time(order: Mapping[str, Any], name: str) -> dt.datetime | None:
    value = order.get(name)
    if value in (None, ""):
        return None
    return parse_gmt8(str(value))


def to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    """A JD ``orderInfo`` as a canonical order. ApiError (not retryable) if it cannot be read."""
    try:
        return _to_canonical(shop_code, order)
    except (KeyError, TypeError, ValueError) as exc:
        order_id = order.get("orderId") if isinstance(order, Mapping) else None
        raise ApiError(
            f"jd order {order_id}: unreadable order: {exc}", retryable=False, code="bad_response"
        ) from None


def _to_canonical(shop_code: str, order: Mapping[str, Any]) -> CanonicalOrder:
    order_id = str(order.get("orderId") or "")
    if not order_id:
        raise ValueError("orderId is missing")
    state = str(order.get("orderState") or "")
    status = status_of(state)
    created = _time(order, "orderStartTime")
    modified = _time(order, "modified")
    if created is None or modified is None:
        raise ValueError("orderStartTime or modified is missing")
    lines = [_line(order_id, item) for item in order.get("itemInfoList") or [] if isinstance(item, Mapping)]
    if not lines:
        raise ValueError("itemInfoList is empty (ask for it in optional_fields)")
    return CanonicalOrder(
        platform=PLATFORM,
        shop_code=shop_code,
        platform_order_id=order_id,
        status=status,
        created_at=created,
        paid_at=_time(order, "paymentConfirmTime"),
        updated_at=modified,
        lines=lines,
        address=_address(order.get("consigneeInfo")),
        cancel_reason=str(order.get("orderStateRemark") or state)
        if status is OrderStatus.CANCELLED
        else None,
    )


def _line(order_id: str, item: Mapping[str, Any]) -> OrderLine:
    # The shop's own code when it set one; else JD's sku id, which a mapping can name too.
    code = item.get("outerSkuId") or item.get("skuId")
    if not code:
        raise ValueError(f"an item of order {order_id} names no SKU")
    quantity = int(item.get("itemTotal") or 0)
    if quantity <= 0:
        raise ValueError(f"item {code} of order {order_id} has quantity {quantity}")
    return OrderLine(platform_sku_code=str(code), quantity=quantity, title=str(item.get("skuName") or ""))


def _address(consignee: Any) -> Address | None:
    if not isinstance(consignee, Mapping) or not (consignee.get("fullname") or consignee.get("fullAddress")):
        return None
    parts = [str(consignee.get(k) or "") for k in ("province", "city", "county", "town")]
    detail = str(consignee.get("fullAddress") or "")
    for part in parts:  # fullAddress repeats the regions: keep the street part
        if part and detail.startswith(part):
            detail = detail[len(part) :]
    return Address(
        name=str(consignee.get("fullname") or ""),
        phone=str(consignee.get("mobile") or consignee.get("telephone") or ""),
        province=parts[0],
        city=parts[1],
        district=parts[2],
        detail=(parts[3] + detail) if parts[3] and not detail.startswith(parts[3]) else detail,
    )


def response_key(api_method: str) -> str:
    """JD wraps an answer as ``jingdong_pop_order_shipment_responce`` (sic)."""
    return api_method.replace(".", "_") + "_responce"


def api_error(api_method: str, error: Mapping[str, Any]) -> ApiError:
    code = str(error.get("code", ""))
    text = " ".join(str(error.get(k) or "") for k in ("en_desc", "zh_desc")).strip()
    return ApiError(f"jd {api_method}: code {code} {text}", retryable=code in RETRYABLE_CODES, code=code)


def logistics_id(credential: AppCredential, courier_code: str) -> str:
    return increments.courier_id(
        credential, courier_code, LOGISTICS_IDS, "logistics_ids", "jd: no logiCoprId"
    )


# --- the client -------------------------------------------------------------------------------------


class JdOrderApi(increments.RouterClient):
    """JOS order search by modified time, order detail and shipment over an injected ``httpx.Client``.

    Implements :class:`integrations.base.IncrementApi` and :class:`integrations.base.OrderApi`. A pull window
    longer than :data:`MAX_WINDOW` is refused (ValueError naming the limit); :meth:`pull_all` cuts longer
    spans, and halves windows holding more orders than JD pages through.
    """

    platform = PLATFORM
    default_url = DEFAULT_URL
    max_page_size = default_page_size = MAX_PAGE_SIZE

    def signed_params(self, api_method: str, shop_code: str, params: Mapping[str, Any]) -> dict[str, str]:
        form = {
            "method": api_method,
            "app_key": self.credential.app_key,
            "access_token": self.token(shop_code),
            "timestamp": timestamp(self.clock()),
            "v": API_VERSION,
            "sign_method": "md5",
            "360buy_param_json": param_json(params),
        }
        form["sign"] = sign(form, self.credential.secret)
        return form

    def call(self, api_method: str, shop_code: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The unwrapped answer of a successful call; :class:`ApiError` otherwise."""
        form = self.signed_params(api_method, shop_code, params)
        answer = increments.post_form(self.client, self.url, form, f"jd {api_method}")
        if isinstance(answer.get("error_response"), Mapping):
            raise api_error(api_method, answer["error_response"])
        body = answer.get(response_key(api_method))
        if not isinstance(body, Mapping):
            raise ApiError(
                f"jd {api_method}: the answer has no {response_key(api_method)}",
                retryable=False,
                code="bad_response",
            )
        return body

    @staticmethod
    def _result(api_method: str, body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        result = body.get(name)
        if not isinstance(result, Mapping):
            raise ApiError(f"jd {api_method}: the answer has no {name}", retryable=False, code="bad_response")
        api_result = result.get("apiResult")
        if isinstance(api_result, Mapping) and api_result.get("success") not in (True, "true"):
            code = str(api_result.get("numberCode") or api_result.get("englishErrCode") or "api_result")
            text = api_result.get("chineseErrCode") or api_result.get("englishErrCode") or ""
            raise ApiError(f"jd {api_method}: {code} {text}", retryable=False, code=code)
        return result

    # IncrementApi

    def pull(self, shop_code: str, start: dt.datetime, end: dt.datetime, cursor: str | None) -> IncrementPage:
        increments.check_window(start, end, MAX_WINDOW, SEARCH_METHOD)

        def fetch(
            low: dt.datetime, high: dt.datetime, page: int, size: int
        ) -> increments.RawPage[Mapping[str, Any]]:
            body = self.call(
                SEARCH_METHOD,
                shop_code,
                {
                    "start_date": format_gmt8(low),
                    "end_date": format_gmt8(high),
                    "order_state": SEARCH_STATES,
                    "optional_fields": ORDER_FIELDS,
                    "page": str(page),
                    "page_size": str(size),
                    "dateType": "0",  # [U] by modified time
                },
            )
            result = self._result(SEARCH_METHOD, body, "searchorderinfo_result")
            items = [o for o in result.get("orderInfoList") or [] if isinstance(o, Mapping)]
            return increments.RawPage(items, int(result.get("orderTotal") or 0))

        raws, nxt = increments.pull_page(fetch, _key, start, end, cursor, self.page_size, max_pages=MAX_PAGES)
        return IncrementPage([to_canonical(shop_code, o) for o in raws], nxt)

    def pull_all(self, shop_code: str, start: dt.datetime, end: dt.datetime) -> Iterator[CanonicalOrder]:
        """Every order changed in [start, end), in windows JD allows."""
        return increments.pull_all(self, shop_code, start, end, MAX_WINDOW)

    # OrderApi

    def order(self, shop_code: str, platform_order_id: str) -> Mapping[str, Any]:
        body = self.call(
            GET_METHOD, shop_code, {"orderId": platform_order_id, "optionalFields": ORDER_FIELDS}
        )
        order = self._result(GET_METHOD, body, "orderDetailInfo").get("orderInfo")
        if not isinstance(order, Mapping):
            raise ApiError(
                f"jd order {platform_order_id}: the answer has no orderInfo",
                retryable=False,
                code="bad_response",
            )
        return order

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder:
        return to_canonical(shop_code, self.order(shop_code, platform_order_id))

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """``jingdong.pop.order.shipment``. JD takes no idempotency key: a refused repeat counts as done when
        the order already carries this waybill (``request_id`` is for the caller's own bookkeeping)."""
        params = {
            "orderId": platform_order_id,
            "logiCoprId": logistics_id(self.credential, courier_code),
            "logiNo": tracking_number,
        }
        try:
            body = self.call(SHIP_METHOD, shop_code, params)
            result = body.get("sopjosshipment_result")
            if not isinstance(result, Mapping) or result.get("success") not in (True, "true"):
                detail = dict(result) if isinstance(result, Mapping) else dict(body)
                raise ApiError(
                    f"jd shipment {platform_order_id}: refused: {detail}", retryable=False, code="refused"
                )
        except ApiError as exc:
            if exc.retryable or not self._carries(shop_code, platform_order_id, tracking_number):
                raise

    def _carries(self, shop_code: str, platform_order_id: str, tracking_number: str) -> bool:
        try:
            order = self.order(shop_code, platform_order_id)
        except ApiError:
            return False
        return tracking_number in str(order.get("waybill") or "").split(",")


def _key(order: Mapping[str, Any]) -> tuple[str, dt.datetime]:
    try:
        modified = parse_gmt8(str(order["modified"]))
    except (KeyError, ValueError):
        raise ApiError(
            f"jd order {order.get('orderId')}: no readable modified time",
            retryable=False,
            code="bad_response",
        ) from None
    return str(order.get("orderId") or ""), modified
