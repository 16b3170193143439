"""A fake Pinduoduo open platform for tests and the demo: orders in PDD's shapes, its signed router API.

It answers ``pdd.order.number.list.increment.get``, ``pdd.order.information.get`` and
``pdd.logistics.online.send`` as an ``httpx.MockTransport`` handler, checking the client id, the timestamp
(unix seconds, ±10 minutes of its own clock) and the signature, then the access token, with PDD's error codes.
Increments list both ends inclusive by ``updated_at``, newest first (ties by order_sn), at most 30 minutes
apart, with ``total_count`` (and ``has_next``). Orders show from payment on, as PDD lists them; a paid order
promises shipment within 48 hours (``last_ship_time``) unless it is a pre-sale. A second shipment for a
shipped order is refused; each shipment is recorded once in :attr:`shipments`.

    cred = credential("client-id", "client-secret", ["mall-1"])
    fake = PinduoduoFake(cred, shop_codes=["mall-1"], sku_codes=["A-1", "B-2"])
    api = PinduoduoOrderApi(cred, fake.client(), clock=fake.time)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations import pinduoduo
from integrations.base import AppCredential
from integrations.fakes.pulled import PulledOrder, PulledPlatformFake, make_credential, stable_number
from integrations.signing import format_gmt8, from_unix, utc_to_gmt8

STANDARD_SHIP_WITHIN = dt.timedelta(hours=48)
_IDS = frozenset(pinduoduo.LOGISTICS_IDS.values())


def credential(client_id: str, client_secret: str, shop_codes: Sequence[str]) -> AppCredential:
    """A PDD credential with one access token per shop (``extra["access_token.<shop_code>"]``)."""
    return make_credential(pinduoduo.PLATFORM, client_id, client_secret, shop_codes, "access_token")


def pdd_sign(params: Mapping[str, str], secret: str) -> str:
    """PDD's signature, written here apart from the adapter's so that each checks the other."""
    pairs = "".join(k + v for k, v in sorted(params.items()) if k != "sign")
    return hashlib.md5((secret + pairs + secret).encode()).hexdigest().upper()


class PinduoduoFake(PulledPlatformFake):
    platform = pinduoduo.PLATFORM
    token_key = "access_token"

    def new_id(self, created: dt.datetime) -> str:
        return f"{utc_to_gmt8(created):%y%m%d}-{self.factory.rng.randrange(10**14, 10**15)}"

    def default_company(self) -> str:
        return "115"

    def visible(self, order: PulledOrder) -> bool:
        return order.paid is not None

    def _on_paid(self, order: PulledOrder) -> None:
        if not order.presale and order.paid is not None:
            order.ship_by = order.paid + STANDARD_SHIP_WITHIN

    # --- PDD's shapes -----------------------------------------------------------------------------

    def order_info(self, order: PulledOrder) -> dict[str, Any]:
        shipped = order.state in ("shipped", "completed")
        refunded = order.state == "cancelled"
        address = order.address
        return {
            "order_sn": order.order_id,
            "order_status": {"shipped": 2, "completed": 3}.get(order.state, 1),
            "confirm_status": 1,
            "group_status": 1,
            "refund_status": 4 if refunded else 3 if order.refunding else 1,
            "is_lucky_flag": 1,
            "trade_type": 0,
            "created_time": format_gmt8(order.created),
            "pay_time": format_gmt8(order.paid) if order.paid else "",
            "confirm_time": format_gmt8(order.paid) if order.paid else "",
            "updated_at": format_gmt8(order.modified),
            "last_ship_time": format_gmt8(order.ship_by) if order.ship_by else "",
            "shipping_time": format_gmt8(order.shipped) if order.shipped else "",
            "receive_time": format_gmt8(order.ended) if order.state == "completed" and order.ended else "",
            "is_pre_sale": 1 if order.presale else 0,
            "pre_sale_time": format_gmt8(order.ship_by) if order.presale and order.ship_by else "",
            "receiver_name": address.name,
            "receiver_phone": address.phone if order.state == "paid" else address.phone[:7] + "****",
            "country": "中国",
            "province": address.province,
            "city": address.city,
            "town": address.district,
            "receiver_address": address.detail,
            "address": address.province + address.city + address.district + address.detail,
            "tracking_number": order.tracking or "" if shipped else "",
            "logistics_id": int(order.company) if shipped and order.company else 0,
            "item_list": [
                {
                    "goods_id": stable_number("pdd-goods:" + line.sku_code.split("-")[0], 10),
                    "sku_id": stable_number("pdd-sku:" + line.sku_code, 11),
                    "outer_id": line.sku_code,
                    "outer_goods_id": line.sku_code.split("-")[0],
                    "goods_name": line.title,
                    "goods_count": line.quantity,
                }
                for line in order.lines
            ],
        }

    def error(self, code: int, msg: str, sub_msg: str = "") -> dict[str, Any]:
        """PDD's ``error_response`` body (also what to hand :meth:`fail_next`)."""
        return {
            "error_response": {
                "error_code": code,
                "error_msg": msg,
                "sub_code": str(code),
                "sub_msg": sub_msg,
                "request_id": f"fake{len(self.calls):08d}",
            }
        }

    def rate_limit_body(self) -> dict[str, Any]:
        return self.error(52101, "当前接口被限流，请稍后重试")

    # --- the router -------------------------------------------------------------------------------

    def answer(self, params: dict[str, str]) -> httpx.Response:
        self.methods.append(params.get("type", ""))
        refused = self._refuse(params)
        if refused is not None:
            return self.json(refused)
        shop = self.tokens[params["access_token"]][1]
        api_type = params["type"]
        if api_type == pinduoduo.INCREMENT_TYPE:
            return self.json(self._increment(shop, params))
        if api_type == pinduoduo.DETAIL_TYPE:
            return self.json(self._detail(shop, params))
        if api_type == pinduoduo.SHIP_TYPE:
            return self.json(self._ship(shop, params))
        return self.json(self.error(10017, "type不正确", api_type))

    def _refuse(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        cred = self.credential(params.get("client_id", ""))
        if cred is None:
            return self.error(10016, "client下线或者clientId不正确")
        if not params.get("type") or not params.get("sign") or not params.get("timestamp"):
            return self.error(10001, "公共参数错误", "type, timestamp and sign are required")
        try:
            sent = from_unix(int(params["timestamp"]))
        except ValueError:
            return self.error(10001, "公共参数错误", "timestamp")
        if abs(sent - self.now) > pinduoduo.TIMESTAMP_TOLERANCE:
            return self.error(10001, "公共参数错误", "timestamp out of range")
        if not hmac.compare_digest(pdd_sign(params, cred.secret), params["sign"].upper()):
            return self.error(20004, "签名sign校验失败")
        owner = self.tokens.get(params.get("access_token", ""))
        if owner is None or owner[0].app_key != cred.app_key:
            return self.error(20032, "access_token或client_id错误")
        return None

    def _increment(self, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
        if not params.get("start_updated_at") or not params.get("end_updated_at"):
            return self.error(21002, "请求参数不能为空", "start_updated_at, end_updated_at")
        try:
            low, high = from_unix(int(params["start_updated_at"])), from_unix(int(params["end_updated_at"]))
            page, size = int(params.get("page") or 1), int(params.get("page_size") or 100)
        except ValueError as exc:
            return self.error(21001, "请求参数错误", str(exc))
        if high < low or high - low > pinduoduo.MAX_WINDOW:
            return self.error(21001, "请求参数错误", "开始时间结束时间间距不超过30分钟")
        if page < 1 or not 1 <= size <= pinduoduo.MAX_PAGE_SIZE:
            return self.error(21001, "请求参数错误", "page_size")
        found = self.listing(shop, low, high)
        chunk = found[(page - 1) * size : page * size]
        body = {
            "total_count": len(found),
            "has_next": page * size < len(found),
            "order_sn_list": [self.order_info(o) for o in chunk],
        }
        return {"order_sn_increment_get_response": body}

    def _own(self, shop: str, order_sn: str) -> PulledOrder | None:
        order = self.orders.get(order_sn)
        return order if order is not None and order.shop_code == shop and self.visible(order) else None

    def _detail(self, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._own(shop, params.get("order_sn", ""))
        if order is None:
            return self.error(21001, "请求参数错误", "订单不存在")
        return {"order_info_get_response": {"order_info": self.order_info(order)}}

    def _ship(self, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._own(shop, params.get("order_sn", ""))
        company, number = params.get("logistics_id", ""), params.get("tracking_number", "")
        if order is None:
            return self.error(21001, "请求参数错误", "订单不存在")
        if company not in _IDS or not number:
            return self.error(21001, "请求参数错误", "快递公司或运单号错误")
        if order.state in ("shipped", "completed"):
            return self.error(50001, "业务服务错误", "订单已发货")
        if order.state != "paid" or order.refunding:
            return self.error(50001, "业务服务错误", "订单状态不允许发货")
        self.ship(order.order_id, company, number)
        return {"logistics_online_send_response": {"is_success": True}}
