"""A fake Douyin shop (抖店): signed message pushes (a JSON array, many messages each) and the signed API.

From ``../shared/docs/protocols.md``: ``event-sign = md5hex(app_key + body + app_secret)`` with header
``app-id``; messages ``{"tag", "msg_id", "data": "<JSON string>"}``; API calls signed with HMAC-SHA256 over
``secret + "app_key"K + "method"M + "param_json"PJ + "timestamp"TS + "v2" + secret``, ``param_json`` sorted
recursively and compact — the fake re-serialises the body that way before checking the sign, as the platform
would, so a client that does not sort is refused. Answers use the platform's envelope ``{code, msg,
sub_code, sub_msg, log_id, data}`` with 10000 for success. Tag 105 for an address change is [U] (the adapter
reads every tag it does not know as "updated").
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from integrations.base import OrderStatus, PushEvent
from integrations.fakes import FakeEvent, FakeOrder, FakePlatform, Push, json_response

TAGS: Mapping[PushEvent, str] = {
    PushEvent.CREATED: "100",
    PushEvent.PAID: "101",
    PushEvent.SHIPPED: "102",
    PushEvent.CANCELLED: "106",
    PushEvent.ADDRESS_CHANGED: "105",
    PushEvent.UPDATED: "108",
}
STATUS_CODES: Mapping[OrderStatus, int] = {
    OrderStatus.CREATED: 1,
    OrderStatus.PAID: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.CANCELLED: 4,
    OrderStatus.COMPLETED: 5,
}
COMPANY_CODES = frozenset(
    {"zhongtong", "yuantong", "yunda", "shentong", "jtexpress", "shunfeng", "jd", "ems"}
)
_EPOCH = dt.datetime(1970, 1, 1)
SEARCH_MAX_SIZE = 100


def _unix(value: dt.datetime | None) -> int:
    return 0 if value is None else int((value - _EPOCH).total_seconds())


def _int_or_text(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class DoudianFake(FakePlatform):
    """Douyin shop. ``paid_tag`` chooses how payment is announced: ``"101"`` paid or ``"110"`` awaiting;
    ``listing=False`` answers ``order.searchList`` as an API the app may not call."""

    platform = "doudian"
    max_lines = 3
    max_per_push = None

    def __init__(self, *args: Any, paid_tag: str = "101", listing: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listing = listing  # False: order.searchList is not granted to the app (answered as off-line)
        if paid_tag not in ("101", "110"):
            raise ValueError("paid_tag must be '101' or '110'")
        self.paid_tag = paid_tag
        self.access_token = self.credential.extra.get("access_token")
        self._log_ids = 0
        self._by_update: tuple[tuple[int, int], list[tuple[int, str]]] = ((-1, -1), [])  # sorted (update, id)

    def new_order_id(self, n: int) -> str:
        return str(4_800_000_000_000_000_000 + (self.seed % 1000) * 10**13 + n)

    def new_message_id(self, n: int) -> str:
        return str(7_300_000_000_000_000_000 + (self.seed % 1000) * 10**13 + n)

    @staticmethod
    def sku_order_ids(order: FakeOrder) -> list[int]:
        base = int(order.order_id)
        return [base + index * 10**17 for index in range(len(order.lines))]

    # --- pushes -------------------------------------------------------------------------------------------

    def message(self, event: FakeEvent) -> dict[str, str]:
        order = event.order
        tag = self.paid_tag if event.event is PushEvent.PAID else TAGS[event.event]
        data: dict[str, Any] = {
            "p_id": int(order.order_id),
            "s_ids": self.sku_order_ids(order),
            "shop_id": _int_or_text(order.shop_code),
            "order_status": STATUS_CODES[order.status],
            "order_type": 0,
            "biz": 2,
        }
        if tag == "100":
            data["create_time"] = _unix(order.created_at)
        elif tag in ("101", "110"):
            data["pay_amount"] = sum(line.price_fen * line.quantity for line in order.lines)
            data["pay_time"] = _unix(order.paid_at or event.at)
            data["pay_type"] = 1
        elif tag == "106":
            data["cancel_reason"] = order.cancel_reason or ""
            data["cancel_time"] = _unix(event.at)
        else:
            data["update_time"] = _unix(event.at)
        return {"tag": tag, "msg_id": event.message_id, "data": _compact(data)}

    def push(self, events: FakeEvent | Sequence[FakeEvent]) -> Push:
        items = [events] if isinstance(events, FakeEvent) else list(events)
        if not items:
            raise ValueError("a push carries at least one message")
        body = _compact([self.message(event) for event in items]).encode("utf-8")
        key, secret = self.credential.app_key, self.credential.secret
        sign = hashlib.md5(key.encode() + body + secret.encode()).hexdigest()
        return {"app-id": key, "event-sign": sign, "Content-Type": "application/json"}, body

    # --- API ----------------------------------------------------------------------------------------------

    def _envelope(
        self, code: int, msg: str, data: Any = None, sub_code: str = "", sub_msg: str = ""
    ) -> dict[str, Any]:
        self._log_ids += 1
        return {
            "code": code,
            "msg": msg,
            "sub_code": sub_code,
            "sub_msg": sub_msg,
            "log_id": f"2024061820000001{self._log_ids:08d}",
            "data": {} if data is None else data,
        }

    def _error(
        self, request: httpx.Request, code: int, msg: str, sub_code: str, sub_msg: str
    ) -> httpx.Response:
        return json_response(self._envelope(code, msg, None, sub_code, sub_msg), request=request)

    def rate_limited(self, request: httpx.Request) -> httpx.Response:
        return self._error(request, 60000, "触发限流，请稍后重试", "isv.flow-limit", "调用频率超限")

    def expected_sign(self, method: str, param_json: str, timestamp: str) -> str:
        secret = self.credential.secret
        pattern = (
            f"{secret}app_key{self.credential.app_key}method{method}param_json{param_json}"
            f"timestamp{timestamp}v2{secret}"
        )
        return hmac.new(secret.encode(), pattern.encode(), hashlib.sha256).hexdigest()

    def answer(self, request: httpx.Request) -> httpx.Response:
        query = request.url.params
        path_method = request.url.path.strip("/").replace("/", ".")
        if query.get("app_key") != self.credential.app_key:
            return self._error(request, 40003, "非法的参数", "isv.app-id-invalid", "app_key不存在")
        if query.get("method") != path_method:
            return self._error(request, 40003, "非法的参数", "isv.method-invalid", "method与请求路径不一致")
        if query.get("v") != "2" or query.get("sign_method") != "hmac-sha256" or not query.get("timestamp"):
            return self._error(
                request, 40001, "缺少必选参数", "isv.parameter-missing", "v/sign_method/timestamp"
            )
        try:
            params = json.loads(request.content.decode("utf-8") or "{}")
        except ValueError:
            return self._error(
                request, 40003, "非法的参数", "isv.parameter-format-invalid", "业务参数json解析失败"
            )
        canonical = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        expected = self.expected_sign(path_method, canonical, query["timestamp"])
        if not hmac.compare_digest(expected, query.get("sign", "")):
            return self._error(request, 40003, "非法的参数", "isv.signature-invalid", "签名校验失败")
        if self.access_token and query.get("access_token") != self.access_token:
            return self._error(
                request, 40003, "非法的参数", "isv.access-token-no-existed", "access_token不存在"
            )
        if path_method == "order.orderDetail":
            return self._detail(request, params)
        if path_method == "order.logisticsAdd":
            return self._logistics_add(request, params)
        if path_method == "order.searchList" and self.listing:
            return self._search(request, params)
        return self._error(request, 70000, "接口服务已下线", "isp.api-service-off", "API不存在或API已下线")

    def _find(self, order_id: Any) -> FakeOrder | None:
        return self.orders.get(str(order_id)) if order_id is not None else None

    def _detail(self, request: httpx.Request, params: Mapping[str, Any]) -> httpx.Response:
        order = self._find(params.get("shop_order_id"))
        if order is None:
            return self._error(request, 50002, "业务处理失败", "isv.business-failed:100009", "订单不存在")
        return json_response(
            self._envelope(10000, "success", {"shop_order_detail": self.detail(order)}), request=request
        )

    def _invalid(self, request: httpx.Request, why: str) -> httpx.Response:
        return self._error(request, 40003, "非法的参数", "isv.parameter-invalid", why)

    def _search(self, request: httpx.Request, params: Mapping[str, Any]) -> httpx.Response:
        """``order.searchList`` by update time: both ends included, pages from 0, oldest change first."""
        start, end = params.get("update_time_start"), params.get("update_time_end")
        page, size = params.get("page", 0), params.get("size", 10)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, page, size)):
            return self._invalid(request, "时间、page、size须为整数")
        assert isinstance(start, int) and isinstance(end, int)
        assert isinstance(page, int) and isinstance(size, int)
        if page < 0 or not 0 < size <= SEARCH_MAX_SIZE or end < start:
            return self._invalid(request, "page/size/时间范围不合法")
        stamp = (self.version, len(self.orders))  # a test may also add or drop orders by hand
        if self._by_update[0] != stamp:
            ordered = sorted((_unix(o.updated_at), o.order_id) for o in self.orders.values())
            self._by_update = (stamp, ordered)
        index = self._by_update[1]
        lo = bisect.bisect_left(index, (start, ""))
        hi = bisect.bisect_left(index, (end + 1, ""))
        chosen = index[lo:hi][page * size : (page + 1) * size]
        data = {
            "shop_order_list": [self.detail(self.orders[order_id]) for _, order_id in chosen],
            "total": hi - lo,
            "page": page,
            "size": size,
        }
        return json_response(self._envelope(10000, "success", data), request=request)

    def _logistics_add(self, request: httpx.Request, params: Mapping[str, Any]) -> httpx.Response:
        order = self._find(params.get("order_id"))
        company, tracking = params.get("company_code"), params.get("logistics_code")
        if order is None:
            return self._error(request, 50002, "业务处理失败", "isv.business-failed:100009", "订单不存在")
        if company not in COMPANY_CODES:
            return self._error(request, 40004, "非法的参数", "isv.business-failed:900004", "物流公司不存在")
        if not tracking or not isinstance(tracking, str):
            return self._error(request, 40002, "缺少必选参数", "isv.parameter-missing", "logistics_code")
        if order.status is not OrderStatus.PAID:
            reason = (
                "订单已发货"
                if order.status is OrderStatus.SHIPPED
                else f"订单状态不允许发货({order.status.value})"
            )
            return self._error(request, 50002, "业务处理失败", "isv.business-failed:100025", reason)
        self._confirm(order, company, tracking)
        return json_response(self._envelope(10000, "success", {}), request=request)

    def detail(self, order: FakeOrder) -> dict[str, Any]:
        """The order as ``order.orderDetail`` answers it (``shop_order_detail``)."""
        address = order.address
        presale = 1 if order.presale else 0
        ship_by = _unix(order.ship_by)
        sku_orders = []
        for index, (line, sku_order_id) in enumerate(
            zip(order.lines, self.sku_order_ids(order), strict=True)
        ):
            sku_orders.append(
                {
                    "order_id": str(sku_order_id),
                    "parent_order_id": order.order_id,
                    "order_status": STATUS_CODES[order.status],
                    "code": line.sku_code,
                    "out_sku_id": "",
                    "sku_id": 1_700_000_000 + index,
                    "product_name": line.title,
                    "item_num": line.quantity,
                    "origin_amount": line.price_fen,
                    "pay_amount": line.price_fen * line.quantity,
                    "pre_sale_type": presale,
                    "exp_ship_time": ship_by,
                    "create_time": _unix(order.created_at),
                }
            )
        return {
            "order_id": order.order_id,
            "shop_id": _int_or_text(order.shop_code),
            "order_status": STATUS_CODES[order.status],
            "main_status": STATUS_CODES[order.status],
            "create_time": _unix(order.created_at),
            "update_time": _unix(order.updated_at),
            "pay_time": _unix(order.paid_at),
            "exp_ship_time": ship_by,
            "cancel_reason": order.cancel_reason or "",
            "order_amount": sum(line.price_fen * line.quantity for line in order.lines),
            "post_receiver": address.name,
            "post_tel": address.phone,
            "post_addr": {
                "province": {"name": address.province, "id": ""},
                "city": {"name": address.city, "id": ""},
                "town": {"name": address.district, "id": ""},
                "street": {"name": "", "id": ""},
                "detail": address.detail,
            },
            "logistics_info": [
                {"tracking_no": s.tracking_number, "company": s.courier, "ship_time": _unix(s.at)}
                for s in order.shipments
            ],
            "sku_order_list": sku_orders,
        }
