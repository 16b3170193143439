"""A fake JD open platform (JOS) for tests and the demo: POP orders in JD's shapes, its signed router API.

It answers ``jingdong.pop.order.enSearch``, ``jingdong.pop.order.enGet`` and ``jingdong.pop.order.shipment``
as an ``httpx.MockTransport`` handler, checking the app key, the timestamp (±6 minutes of its own clock),
``v`` and the signature, then the access token, with JD's gateway codes (an unknown app key is answered as an
invalid signature: without its secret nothing can be verified). The search lists both ends inclusive by
modified time (``dateType`` 0; 1 is by creation), newest first (ties by order id), at most 100 pages. Unpaid
orders are not shown, as JD lists POP orders from payment on. A second shipment for a shipped order is
refused; each shipment is recorded once in :attr:`shipments`.

    cred = credential("app", "secret", ["shop-1"])
    fake = JdFake(cred, shop_codes=["shop-1"], sku_codes=["A-1", "B-2"])
    api = JdOrderApi(cred, fake.client(), clock=fake.time)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations import jd
from integrations.base import AppCredential
from integrations.fakes.pulled import PulledOrder, PulledPlatformFake, make_credential, stable_number
from integrations.signing import format_gmt8, parse_gmt8

_OK = {"success": True, "englishErrCode": "success", "chineseErrCode": "成功", "numberCode": 10100000}
_IDS = frozenset(jd.LOGISTICS_IDS.values())


def jos_sign(params: Mapping[str, str], secret: str) -> str:
    """JOS's signature, written here apart from the adapter's so that each checks the other."""
    pairs = "".join(k + v for k, v in sorted(params.items()) if k != "sign")
    return hashlib.md5((secret + pairs + secret).encode()).hexdigest().upper()


def credential(app_key: str, secret: str, shop_codes: Sequence[str]) -> AppCredential:
    """A JD credential with one access token per shop (``extra["access_token.<shop_code>"]``)."""
    return make_credential(jd.PLATFORM, app_key, secret, shop_codes, "access_token")


class JdFake(PulledPlatformFake):
    platform = jd.PLATFORM
    token_key = "access_token"

    def new_id(self, created: dt.datetime) -> str:
        return str(self.factory.rng.randrange(2 * 10**11, 3 * 10**11))

    def default_company(self) -> str:
        return "1499"

    def visible(self, order: PulledOrder) -> bool:
        return order.paid is not None

    # --- JD's shapes ------------------------------------------------------------------------------

    @staticmethod
    def order_state(order: PulledOrder) -> str:
        if order.state == "paid" and order.refunding:
            return "LOCKED"
        return {
            "paid": "WAIT_SELLER_STOCK_OUT",
            "shipped": "WAIT_GOODS_RECEIVE_CONFIRM",
            "completed": "FINISHED_L",
            "cancelled": "TRADE_CANCELED",
        }[order.state]

    def order_info(self, order: PulledOrder, fields: str | None = None) -> dict[str, Any]:
        address = order.address
        info: dict[str, Any] = {
            "orderId": order.order_id,
            "venderId": order.shop_code,
            "orderState": self.order_state(order),
            "orderStateRemark": order.cancel_reason or "",
            "orderStartTime": format_gmt8(order.created),
            "paymentConfirmTime": format_gmt8(order.paid) if order.paid else "",
            "modified": format_gmt8(order.modified),
            "orderEndTime": format_gmt8(order.ended) if order.ended else "",
            "consigneeInfo": {
                "fullname": address.name,
                "mobile": address.phone,
                "telephone": "",
                "province": address.province,
                "city": address.city,
                "county": address.district,
                "town": "",
                "fullAddress": address.province + address.city + address.district + address.detail,
            },
            "itemInfoList": [
                {
                    "skuId": str(stable_number("jd-sku:" + line.sku_code, 11)),
                    "outerSkuId": line.sku_code,
                    "skuName": line.title,
                    "itemTotal": str(line.quantity),
                    "wareId": line.sku_code.split("-")[0],
                }
                for line in order.lines
            ],
            "waybill": order.tracking or "",
            "logisticsId": order.company or "",
        }
        if fields:
            wanted = {f.strip() for f in fields.split(",")} | {"orderId"}
            info = {k: v for k, v in info.items() if k in wanted}
        return info

    @staticmethod
    def error(code: str, zh: str, en: str) -> dict[str, Any]:
        """JD's gateway ``error_response`` (also what to hand :meth:`fail_next`)."""
        return {"error_response": {"code": code, "zh_desc": zh, "en_desc": en}}

    @staticmethod
    def _refused(method: str, name: str, zh: str, en: str, number: int) -> dict[str, Any]:
        result = {"success": False, "chineseErrCode": zh, "englishErrCode": en, "numberCode": number}
        if name == "sopjosshipment_result":
            return {jd.response_key(method): {"code": "0", name: result}}
        return {jd.response_key(method): {"code": "0", name: {"apiResult": result}}}

    def rate_limit_body(self) -> dict[str, Any]:
        return self.error("2", "限制时间内调用失败次数", "App Call Limited")

    # --- the router -------------------------------------------------------------------------------

    def answer(self, params: dict[str, str]) -> httpx.Response:
        self.methods.append(params.get("method", ""))
        refused = self._refuse(params)
        if refused is not None:
            return self.json(refused)
        shop = self.tokens[params["access_token"]][1]
        try:
            business = json.loads(params.get("360buy_param_json") or "{}")
        except ValueError:
            return self.json(self.error("30", "业务参数格式错误", "Invalid 360buy_param_json"))
        method = params["method"]
        if method == jd.SEARCH_METHOD:
            return self.json(self._search(shop, business))
        if method == jd.GET_METHOD:
            return self.json(self._detail(shop, business))
        if method == jd.SHIP_METHOD:
            return self.json(self._ship(shop, business))
        return self.json(self.error("15", "不存在的方法名", "Invalid Method"))

    def _refuse(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        cred = self.credential(params.get("app_key", ""))
        if not params.get("method"):
            return self.error("14", "缺少方法名参数", "Missing Method")
        if not params.get("sign"):
            return self.error("11", "缺少签名参数", "Missing Signature")
        if not params.get("timestamp"):
            return self.error("7", "缺少时间戳参数", "Missing Timestamp")
        try:
            sent = parse_gmt8(params["timestamp"])
        except ValueError:
            return self.error("8", "非法的时间戳参数", "Invalid Timestamp")
        if abs(sent - self.now) > jd.TIMESTAMP_TOLERANCE:
            return self.error("8", "非法的时间戳参数", "Invalid Timestamp")
        if not params.get("v"):
            return self.error("4", "缺少版本参数", "Missing Version")
        if params["v"] != jd.API_VERSION:
            return self.error("5", "不支持的版本号", "Unsupported Version")
        if cred is None or not hmac.compare_digest(jos_sign(params, cred.secret), params["sign"].upper()):
            return self.error("12", "无效签名", "Invalid Signature")
        owner = self.tokens.get(params.get("access_token", ""))
        if owner is None or owner[0].app_key != cred.app_key:
            return self.error("19", "无效access_token", "Invalid access_token")
        return None

    def _search(self, shop: str, business: Mapping[str, Any]) -> dict[str, Any]:
        method = jd.SEARCH_METHOD
        try:
            low, high = parse_gmt8(str(business["start_date"])), parse_gmt8(str(business["end_date"]))
            page, size = int(business.get("page") or 1), int(business.get("page_size") or 20)
        except (KeyError, ValueError):
            return self._refused(method, "searchorderinfo_result", "参数错误", "invalid parameter", 10400001)
        if high < low or high - low > jd.MAX_WINDOW or page < 1 or not 1 <= size <= jd.MAX_PAGE_SIZE:
            return self._refused(
                method, "searchorderinfo_result", "查询参数超出范围", "out of range", 10400002
            )
        states = set(str(business.get("order_state") or "").split(","))
        by_created = str(business.get("dateType") or "0") == "1"
        if by_created:
            found = [
                o
                for o in self.orders.values()
                if o.shop_code == shop and low <= o.created <= high and self.visible(o)
            ]
            found.sort(key=lambda o: (o.created, o.order_id), reverse=True)
        else:
            found = self.listing(shop, low, high)
        found = [o for o in found if self.order_state(o) in states]
        chunk = found[(page - 1) * size : page * size] if page <= jd.MAX_PAGES else []
        fields = str(business.get("optional_fields") or "")
        result = {
            "apiResult": _OK,
            "orderInfoList": [self.order_info(o, fields) for o in chunk],
            "orderTotal": len(found),
        }
        return {jd.response_key(method): {"code": "0", "searchorderinfo_result": result}}

    def _own(self, shop: str, order_id: str) -> PulledOrder | None:
        order = self.orders.get(order_id)
        return order if order is not None and order.shop_code == shop and self.visible(order) else None

    def _detail(self, shop: str, business: Mapping[str, Any]) -> dict[str, Any]:
        order = self._own(shop, str(business.get("orderId") or ""))
        if order is None:
            return self._refused(jd.GET_METHOD, "orderDetailInfo", "订单不存在", "order not found", 10400404)
        result = {
            "apiResult": _OK,
            "orderInfo": self.order_info(order, str(business.get("optionalFields") or "")),
        }
        return {jd.response_key(jd.GET_METHOD): {"code": "0", "orderDetailInfo": result}}

    def _ship(self, shop: str, business: Mapping[str, Any]) -> dict[str, Any]:
        method, name = jd.SHIP_METHOD, "sopjosshipment_result"
        order = self._own(shop, str(business.get("orderId") or ""))
        company, number = str(business.get("logiCoprId") or ""), str(business.get("logiNo") or "")
        if order is None:
            return self._refused(method, name, "订单不存在", "order not found", 10400404)
        if company not in _IDS or not number:
            return self._refused(method, name, "物流公司或运单号错误", "invalid logistics", 10400100)
        if order.state in ("shipped", "completed"):
            return self._refused(method, name, "订单已出库", "order already shipped", 10400200)
        if order.state != "paid" or order.refunding:
            return self._refused(method, name, "订单状态不允许出库", "order state forbids shipment", 10400201)
        self.ship(order.order_id, company, number)
        return {jd.response_key(method): {"code": "0", name: {**_OK}}}
