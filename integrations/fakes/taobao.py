"""A fake Taobao/Tmall open platform (TOP) for tests and the demo: trades in TOP's shapes, its router API.

It answers ``taobao.trades.sold.increment.get``, ``taobao.trade.fullinfo.get`` and
``taobao.logistics.offline.send`` as an ``httpx.MockTransport`` handler, checking the app key, the timestamp
(±10 min of its own clock), ``v``, ``sign_method`` and the signature, then the session, with TOP's error
codes. Increments list both ends inclusive, newest modified first (ties by tid), with ``total_results`` (or
``has_next`` when ``use_has_next=true``). A second offline send for a shipped trade is refused, as TOP does;
each shipment is recorded once in :attr:`shipments`.

    cred = credential("app", "secret", ["shop-1"])
    fake = TaobaoFake(cred, shop_codes=["shop-1"], sku_codes=["A-1", "B-2"])
    api = TaobaoOrderApi(cred, fake.client(), clock=fake.time)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations import taobao
from integrations.base import AppCredential
from integrations.fakes.pulled import PulledOrder, PulledPlatformFake, make_credential, stable_number
from integrations.signing import format_gmt8, parse_gmt8

_COMPANIES = frozenset(taobao.COMPANY_CODES.values())


def top_sign(params: Mapping[str, str], secret: str, method: str) -> str:
    """TOP's signature, written here apart from the adapter's so that each checks the other."""
    pairs = "".join(k + v for k, v in sorted(params.items()) if k != "sign" and v != "").encode()
    key = secret.encode()
    if method == "hmac":
        return hmac.new(key, pairs, hashlib.md5).hexdigest().upper()
    if method == "hmac-sha256":
        return hmac.new(key, pairs, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(key + pairs + key).hexdigest().upper()


def credential(app_key: str, secret: str, shop_codes: Sequence[str]) -> AppCredential:
    """A TOP credential with one session per shop (``extra["session.<shop_code>"]``)."""
    return make_credential(taobao.PLATFORM, app_key, secret, shop_codes, "session")


class TaobaoFake(PulledPlatformFake):
    platform = taobao.PLATFORM
    token_key = "session"

    def new_id(self, created: dt.datetime) -> str:
        return str(self.factory.rng.randrange(10**18, 4 * 10**18))

    def default_company(self) -> str:
        return "ZTO"

    # --- TOP's shapes -----------------------------------------------------------------------------

    @staticmethod
    def trade_status(order: PulledOrder) -> str:
        if order.state == "cancelled":
            return "TRADE_CLOSED" if order.paid else "TRADE_CLOSED_BY_TAOBAO"
        return {
            "unpaid": "WAIT_BUYER_PAY",
            "paid": "WAIT_SELLER_SEND_GOODS",
            "shipped": "WAIT_BUYER_CONFIRM_GOODS",
            "completed": "TRADE_FINISHED",
        }[order.state]

    def trade(self, order: PulledOrder, fields: str | None = None) -> dict[str, Any]:
        """The order as a TOP ``Trade`` (only ``fields`` when given, as TOP does)."""
        status = self.trade_status(order)
        sub_status = status
        subs = [
            {
                "oid": int(line.line_id),
                "num_iid": stable_number("item:" + line.sku_code.split("-")[0], 12),
                "sku_id": str(stable_number("sku:" + line.sku_code, 13)),
                "outer_iid": line.sku_code.split("-")[0],
                "outer_sku_id": line.sku_code,
                "title": line.title,
                "num": line.quantity,
                "status": sub_status,
                "refund_status": "WAIT_SELLER_AGREE" if order.refunding else "NO_REFUND",
                "invoice_no": order.tracking or "",
                "logistics_company": order.company or "",
            }
            for line in order.lines
        ]
        trade: dict[str, Any] = {
            "tid": int(order.order_id),
            "tid_str": order.order_id,
            "status": status,
            "type": "step" if order.presale else "fixed",
            "created": format_gmt8(order.created),
            "modified": format_gmt8(order.modified),
            "receiver_name": order.address.name,
            "receiver_mobile": order.address.phone,
            "receiver_state": order.address.province,
            "receiver_city": order.address.city,
            "receiver_district": order.address.district,
            "receiver_address": order.address.detail,
            "orders": {"order": subs},
        }
        if order.paid:
            trade["pay_time"] = format_gmt8(order.paid)
        if order.shipped:
            trade["consign_time"] = format_gmt8(order.shipped)
        if order.ended:
            trade["end_time"] = format_gmt8(order.ended)
        if order.presale:
            trade["step_trade_status"] = (
                "FRONT_PAID_FINAL_PAID" if order.paid else "FRONT_NOPAID_FINAL_NOPAID"
            )
            if order.ship_by:
                trade["est_con_time"] = format_gmt8(order.ship_by)
        if fields:
            wanted = {f.strip().split(".")[0] for f in fields.split(",")}
            trade = {k: v for k, v in trade.items() if k in wanted}
        return trade

    def error(
        self, code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None
    ) -> dict[str, Any]:
        """TOP's ``error_response`` body (also what to hand :meth:`fail_next`)."""
        body: dict[str, Any] = {"code": code, "msg": msg, "request_id": f"fake{len(self.calls):08d}"}
        if sub_code:
            body["sub_code"] = sub_code
        if sub_msg:
            body["sub_msg"] = sub_msg
        return {"error_response": body}

    def rate_limit_body(self) -> dict[str, Any]:
        return self.error(
            7,
            "App Call Limited",
            "accesscontrol.limited-by-app-access-count",
            "This ban will last for 1 more seconds",
        )

    # --- the router -------------------------------------------------------------------------------

    def answer(self, params: dict[str, str]) -> httpx.Response:
        self.methods.append(params.get("method", ""))
        refused = self._refuse(params)
        if refused is not None:
            return self.json(refused)
        shop = self.tokens[params["session"]][1]
        method = params["method"]
        if method == "taobao.trades.sold.increment.get":
            return self.json(self._increment(shop, params))
        if method == "taobao.trade.fullinfo.get":
            return self.json(self._fullinfo(shop, params))
        if method == "taobao.logistics.offline.send":
            return self.json(self._offline_send(shop, params))
        return self.json(self.error(22, "Invalid Method", "isv.invalid-method", f"no method {method}"))

    def _refuse(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        app_key = params.get("app_key")
        if not app_key:
            return self.error(28, "Missing App Key")
        cred = self.credential(app_key)
        if cred is None:
            return self.error(29, "Invalid App Key")
        if not params.get("method"):
            return self.error(21, "Missing Method")
        if not params.get("sign"):
            return self.error(24, "Missing Signature")
        if not params.get("timestamp"):
            return self.error(30, "Missing Timestamp")
        try:
            sent = parse_gmt8(params["timestamp"])
        except ValueError:
            return self.error(
                31, "Invalid Timestamp", "isv.invalid-timestamp", "yyyy-MM-dd HH:mm:ss expected"
            )
        if abs(sent - self.now) > taobao.TIMESTAMP_TOLERANCE:
            return self.error(31, "Invalid Timestamp", "isv.invalid-timestamp", "timestamp out of range")
        if not params.get("v"):
            return self.error(32, "Missing Version")
        if params["v"] != taobao.API_VERSION:
            return self.error(34, "Unsupported Version")
        method = params.get("sign_method", "md5")
        if method not in ("md5", "hmac", "hmac-sha256"):
            return self.error(25, "Invalid Signature", "isv.invalid-sign-method")
        if not hmac.compare_digest(top_sign(params, cred.secret, method), params["sign"].upper()):
            return self.error(25, "Invalid Signature")
        session = params.get("session")
        if not session:
            return self.error(26, "Missing Session")
        owner = self.tokens.get(session)
        if owner is None or owner[0].app_key != app_key:
            return self.error(
                27, "Invalid Session", "invalid-sessionkey", "session does not belong to this app"
            )
        return None

    def _missing(self, params: Mapping[str, str], *names: str) -> dict[str, Any] | None:
        for name in names:
            if not params.get(name):
                return self.error(40, "Missing Required Arguments", f"isv.missing-parameter:{name}")
        return None

    def _increment(self, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
        missing = self._missing(params, "fields", "start_modified", "end_modified")
        if missing:
            return missing
        try:
            low, high = parse_gmt8(params["start_modified"]), parse_gmt8(params["end_modified"])
            page, size = int(params.get("page_no") or 1), int(params.get("page_size") or 40)
        except ValueError as exc:
            return self.error(41, "Invalid Arguments", "isv.invalid-parameter", str(exc))
        if high < low or high - low > taobao.MAX_WINDOW:
            return self.error(
                41, "Invalid Arguments", "isv.invalid-parameter:end_modified", "时间跨度不能大于一天"
            )
        if page < 1 or not 1 <= size <= taobao.MAX_PAGE_SIZE:
            return self.error(41, "Invalid Arguments", "isv.invalid-parameter:page_size", "page out of range")
        found = self.listing(shop, low, high)
        chunk = found[(page - 1) * size : page * size]
        body: dict[str, Any] = {"request_id": f"fake{len(self.calls):08d}"}
        if params.get("use_has_next") == "true":
            body["has_next"] = page * size < len(found)
        else:
            body["total_results"] = len(found)
        if chunk:
            body["trades"] = {"trade": [self.trade(o, params["fields"]) for o in chunk]}
        return {"trades_sold_increment_get_response": body}

    def _own(self, shop: str, tid: str) -> PulledOrder | None:
        order = self.orders.get(tid)
        return order if order is not None and order.shop_code == shop else None

    def _fullinfo(self, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
        missing = self._missing(params, "fields", "tid")
        if missing:
            return missing
        order = self._own(shop, params["tid"])
        if order is None:
            return self.error(15, "Remote service error", "isv.trade-not-exist", "交易不存在")
        return {"trade_fullinfo_get_response": {"trade": self.trade(order, params["fields"])}}

    def _offline_send(self, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
        missing = self._missing(params, "tid", "out_sid", "company_code")
        if missing:
            return missing
        order = self._own(shop, params["tid"])
        if order is None:
            return self.error(15, "Remote service error", "isv.trade-not-exist", "交易不存在")
        if params["company_code"] not in _COMPANIES:
            return self.error(
                15, "Remote service error", "isv.logistics-offline-service-error", "物流公司编码不存在"
            )
        if order.state in ("shipped", "completed"):
            return self.error(15, "Remote service error", "isv.logistics-offline-service-error", "订单已发货")
        if order.state != "paid":
            return self.error(
                15, "Remote service error", "isv.logistics-offline-service-error", "订单当前状态不允许发货"
            )
        self.ship(order.order_id, params["company_code"], params["out_sid"])
        return {"logistics_offline_send_response": {"shipping": {"is_success": True}}}
