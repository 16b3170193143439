"""Fake platforms, built from ``../shared/docs/protocols.md``, for tests, the demo and the load simulator.

A fake holds orders generated deterministically from a seed (plausible Chinese buyers and addresses, or
Western ones for the cross-border stores), changes their state (pay, cancel, change the address, ship) and
records each change as a :class:`FakeEvent`. ``fake.push(events)`` turns events into a correctly signed (or
encrypted) push ``(headers, body)`` exactly as the platform would send it; ``fake.handler`` answers the
platform's API as an ``httpx.MockTransport`` handler, checks each request's signature (or token) like the
platform does and answers the platform's own error when it is wrong, and records ship confirmations once per
tracking number. Out-of-order delivery is the caller's to make: events carry the order's state as it was when
they happened, so pushes can be built and sent in any order.

The fakes sign with their own few lines of ``hashlib``/``hmac`` code, not with the adapters' functions, so a
test running an adapter against a fake checks two implementations of the published formula against each other.
Nothing here touches the network or the database.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.base import Address, AppCredential, OrderStatus, PushEvent

DEFAULT_START = dt.datetime(2024, 6, 18, 12, 0, 0)  # naive UTC: 20:00 in Changshu, a live-stream evening
STANDARD_SHIP_WITHIN = dt.timedelta(hours=48)  # Douyin's standard promise from payment

Push = tuple[dict[str, str], bytes]


@dataclass
class FakeLine:
    sku_code: str
    quantity: int
    title: str
    price_fen: int


@dataclass
class FakeShipment:
    courier: str  # the platform's own logistics company code
    tracking_number: str
    at: dt.datetime


@dataclass
class FakeOrder:
    order_id: str
    shop_code: str
    status: OrderStatus
    created_at: dt.datetime  # naive UTC
    paid_at: dt.datetime | None
    updated_at: dt.datetime
    lines: list[FakeLine]
    address: Address
    presale: bool = False
    ship_by: dt.datetime | None = None
    cancel_reason: str | None = None
    shipments: list[FakeShipment] = field(default_factory=list)

    def snapshot(self) -> FakeOrder:
        """A copy that later state changes do not reach (what a push carries)."""
        clone = object.__new__(FakeOrder)  # faster than copy.copy: pushes are built by the hundred thousand
        clone.__dict__.update(self.__dict__)
        clone.shipments = list(self.shipments)  # the only list that changes after creation
        return clone


@dataclass(frozen=True)
class FakeEvent:
    """Something that happened to an order, with the order as it then was."""

    event: PushEvent
    order: FakeOrder  # snapshot at the time of the event
    at: dt.datetime
    message_id: str

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def shop_code(self) -> str:
        return self.order.shop_code


@dataclass(frozen=True)
class Confirmation:
    """A ship confirmation the fake accepted through its API."""

    order_id: str
    courier: str
    tracking_number: str


class Failure:
    """Faults a fake can be told to answer with before its next API calls (``fake.fail_next``)."""

    SERVER_ERROR = "server_error"  # HTTP 503
    RATE_LIMIT = "rate_limit"  # the platform's own throttling answer
    TIMEOUT = "timeout"  # httpx.ReadTimeout raised inside the transport
    GARBAGE = "garbage"  # HTTP 200 with a body that is not JSON
    ALL = (SERVER_ERROR, RATE_LIMIT, TIMEOUT, GARBAGE)


# --- deterministic buyers and addresses -------------------------------------------------------------------

_PLACES = (
    ("江苏省", "苏州市", "常熟市"),
    ("江苏省", "南京市", "鼓楼区"),
    ("浙江省", "杭州市", "西湖区"),
    ("浙江省", "宁波市", "鄞州区"),
    ("广东省", "广州市", "天河区"),
    ("广东省", "深圳市", "南山区"),
    ("上海市", "上海市", "浦东新区"),
    ("北京市", "北京市", "朝阳区"),
    ("天津市", "天津市", "南开区"),
    ("重庆市", "重庆市", "渝中区"),
    ("四川省", "成都市", "武侯区"),
    ("湖北省", "武汉市", "洪山区"),
    ("湖南省", "长沙市", "岳麓区"),
    ("山东省", "青岛市", "市南区"),
    ("河南省", "郑州市", "金水区"),
    ("福建省", "厦门市", "思明区"),
    ("陕西省", "西安市", "雁塔区"),
    ("安徽省", "合肥市", "蜀山区"),
    ("河北省", "石家庄市", "长安区"),
    ("辽宁省", "沈阳市", "和平区"),
    ("云南省", "昆明市", "五华区"),
    ("广西壮族自治区", "南宁市", "青秀区"),
)
_STREETS = (
    "虞山街道",
    "琴川街道",
    "碧溪街道",
    "五一路",
    "人民路",
    "解放路",
    "建设路",
    "中山路",
    "长江路",
    "和平路",
)
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂玲华飞鹏辉宇婷雪琳晨浩欣怡佳"
_WORDS = (
    "连衣裙",
    "针织开衫",
    "羊毛衫",
    "卫衣",
    "牛仔裤",
    "衬衫",
    "T恤",
    "半身裙",
    "羽绒服",
    "风衣",
    "阔腿裤",
    "毛呢外套",
)
_WORDS_EN = ("Knit Dress", "Cardigan", "Wool Sweater", "Hoodie", "Jeans", "Shirt", "T-Shirt", "Midi Skirt")
_COLOURS_EN = ("Black", "White", "Beige", "Navy", "Burgundy", "Oatmeal", "Haze Blue", "Khaki")
_COLOURS = ("黑色", "白色", "米色", "藏青", "酒红", "燕麦色", "雾霾蓝", "卡其")
_SIZES = ("S", "M", "L", "XL", "XXL")
_WEST_FIRST = (
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Mia",
    "Lucas",
    "Sophia",
    "Ethan",
    "Chloe",
    "Mason",
    "Zoe",
)
_WEST_LAST = ("Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martin", "Lopez", "Clark", "Lewis")
_WEST_PLACES = (
    ("New York", "NY", "10001"),
    ("Los Angeles", "CA", "90012"),
    ("Chicago", "IL", "60601"),
    ("Houston", "TX", "77002"),
    ("Seattle", "WA", "98101"),
    ("Miami", "FL", "33101"),
    ("Boston", "MA", "02108"),
    ("Denver", "CO", "80202"),
)
_WEST_STREETS = ("Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Blvd", "Pine St", "Elm St", "Lake Rd")
CANCEL_REASONS = ("不想要了", "拍错了/多拍了", "地址信息填写错误", "协商一致退款", "其他")


class OrderFactory:
    """Plausible orders from a seed: shops, SKU codes skewed like a live stream (a few hits), addresses.

    ``max_lines`` bounds the lines per order (Kuaishou orders carry one item). Everything comes from one
    ``random.Random(seed)``: the same seed and calls give the same orders.
    """

    def __init__(
        self,
        sku_codes: Sequence[str],
        shop_codes: Sequence[str],
        seed: int,
        *,
        max_lines: int = 3,
        presale_share: float = 0.1,
        western: bool = False,
    ) -> None:
        if not sku_codes:
            raise ValueError("a fake platform needs at least one SKU code")
        if not shop_codes:
            raise ValueError("a fake platform needs at least one shop code")
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.rng = random.Random(seed)
        self.sku_codes = list(sku_codes)
        self.shop_codes = list(shop_codes)
        self.max_lines = max_lines
        self.presale_share = presale_share
        self.western = western
        weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(self.sku_codes))]  # Zipf-like: a few hits
        self._cum_weights = list(itertools.accumulate(weights))
        titles: dict[str, str] = {}
        prices: dict[str, int] = {}
        for index, code in enumerate(self.sku_codes):
            word = _WORDS[index % len(_WORDS)]
            colour = _COLOURS[(index // len(_WORDS)) % len(_COLOURS)]
            size = _SIZES[index % len(_SIZES)]
            titles[code] = f"{word} {colour} {size}"
            if western:
                word_en = _WORDS_EN[index % len(_WORDS_EN)]
                titles[code] = (
                    f"{word_en} - {_COLOURS_EN[(index // len(_WORDS)) % len(_COLOURS_EN)]} / {size}"
                )
            prices[code] = 3990 + (index * 2377) % 26000
        self._titles = titles
        self._prices = prices

    def shop(self) -> str:
        return self.rng.choice(self.shop_codes)

    def lines(self) -> list[FakeLine]:
        random_ = self.rng.random
        cum, total, codes = self._cum_weights, self._cum_weights[-1], self.sku_codes
        count = 1 if self.max_lines == 1 else min(self.max_lines, 1 + int(random_() ** 2 * self.max_lines))
        merged: dict[str, int] = {}
        for _ in range(count):
            code = codes[bisect.bisect(cum, random_() * total)]
            merged[code] = merged.get(code, 0) + (1 if random_() < 0.8 else 2)
        return [FakeLine(code, qty, self._titles[code], self._prices[code]) for code, qty in merged.items()]

    def address(self) -> Address:
        r = self.rng.random

        def pick(seq: Sequence[str] | Sequence[tuple[str, str, str]]) -> Any:
            return seq[int(r() * len(seq))]

        if self.western:
            city, state, zip_code = pick(_WEST_PLACES)
            return Address(
                name=f"{pick(_WEST_FIRST)} {pick(_WEST_LAST)}",
                phone=f"+1 {200 + int(r() * 800)}-{200 + int(r() * 800)}-{1000 + int(r() * 9000)}",
                province=state,
                city=city,
                district="",
                detail=f"{1 + int(r() * 9998)} {pick(_WEST_STREETS)}, {zip_code}, US",
                country="US",
            )
        province, city, district = pick(_PLACES)
        name = pick(_SURNAMES) + pick(_GIVEN) + ("" if r() < 0.3 else pick(_GIVEN))
        phone = f"1{pick('3456789')}{int(r() * 10**9):09d}"
        detail = (
            f"{pick(_STREETS)}{1 + int(r() * 299)}号{1 + int(r() * 29)}栋"
            f"{1 + int(r() * 32)}{1 + int(r() * 4):02d}室"
        )
        return Address(name=name, phone=phone, province=province, city=city, district=district, detail=detail)

    def presale(self) -> bool:
        return self.rng.random() < self.presale_share


class FakePlatform(ABC):
    """What every fake does; subclasses add the platform's wire formats (push, API, signing)."""

    platform: str = ""
    max_lines: int = 3
    western: bool = False
    max_per_push: int | None = 1  # None: any number of messages in one push

    def __init__(
        self,
        credential: AppCredential,
        *,
        sku_codes: Sequence[str],
        shop_codes: Sequence[str],
        seed: int = 0,
        start: dt.datetime = DEFAULT_START,
        step: dt.timedelta = dt.timedelta(milliseconds=50),
        presale_share: float = 0.1,
    ) -> None:
        self.credential = credential
        self.seed = seed
        self.factory = OrderFactory(
            sku_codes,
            shop_codes,
            seed,
            max_lines=self.max_lines,
            presale_share=presale_share,
            western=self.western,
        )
        self.now = start
        self.step = step
        self.orders: dict[str, FakeOrder] = {}
        self.confirmations: list[Confirmation] = []
        self.calls: deque[httpx.Request] = deque(maxlen=10_000)
        self._failures: deque[str] = deque()
        self._counter = itertools.count(1)
        self._message_counter = itertools.count(1)
        self.lock = threading.RLock()
        self.version = 0  # counts state changes: a fake's index over its orders is rebuilt when it moves

    # --- clock and ids ------------------------------------------------------------------------------------

    def tick(self, by: dt.timedelta | None = None) -> dt.datetime:
        self.now += by if by is not None else self.step
        return self.now

    @abstractmethod
    def new_order_id(self, n: int) -> str:
        """The platform-shaped id of the n-th order (1-based)."""

    @abstractmethod
    def new_message_id(self, n: int) -> str:
        """The platform-shaped id of the n-th pushed message (1-based)."""

    # --- state changes ------------------------------------------------------------------------------------

    def _event(self, kind: PushEvent, order: FakeOrder, at: dt.datetime) -> FakeEvent:
        self.version += 1
        return FakeEvent(kind, order.snapshot(), at, self.new_message_id(next(self._message_counter)))

    def order(self, order_id: str) -> FakeOrder:
        try:
            return self.orders[order_id]
        except KeyError:
            raise KeyError(f"{self.platform} fake has no order {order_id!r}") from None

    def create_orders(self, n: int, *, paid: bool = True, shop_code: str | None = None) -> list[FakeEvent]:
        """``n`` new orders, one event each: PAID when ``paid`` (paid at once, as on streams) else CREATED."""
        factory = self.factory
        events: list[FakeEvent] = []
        with self.lock:
            for _ in range(n):
                at = self.tick()
                order_id = self.new_order_id(next(self._counter))
                presale = factory.presale()
                ship_by = None
                if presale:
                    ship_by = at + dt.timedelta(days=5 + factory.rng.randrange(11))
                elif paid:
                    ship_by = at + STANDARD_SHIP_WITHIN
                order = FakeOrder(
                    order_id=order_id,
                    shop_code=shop_code or factory.shop(),
                    status=OrderStatus.PAID if paid else OrderStatus.CREATED,
                    created_at=at,
                    paid_at=at if paid else None,
                    updated_at=at,
                    lines=factory.lines(),
                    address=factory.address(),
                    presale=presale,
                    ship_by=ship_by,
                )
                self.orders[order_id] = order
                events.append(self._event(PushEvent.PAID if paid else PushEvent.CREATED, order, at))
        return events

    def pay(self, order_id: str, *, at: dt.datetime | None = None) -> FakeEvent:
        with self.lock:
            order = self.order(order_id)
            if order.status is not OrderStatus.CREATED:
                raise ValueError(f"order {order_id} is {order.status.value}, cannot be paid")
            at = at or self.tick()
            order.status, order.paid_at, order.updated_at = OrderStatus.PAID, at, at
            if not order.presale:
                order.ship_by = at + STANDARD_SHIP_WITHIN
            return self._event(PushEvent.PAID, order, at)

    def cancel(self, order_id: str, *, reason: str | None = None, at: dt.datetime | None = None) -> FakeEvent:
        with self.lock:
            order = self.order(order_id)
            if order.status not in (OrderStatus.CREATED, OrderStatus.PAID):
                raise ValueError(f"order {order_id} is {order.status.value}, cannot be cancelled")
            at = at or self.tick()
            order.status, order.updated_at = OrderStatus.CANCELLED, at
            order.cancel_reason = reason or self.factory.rng.choice(CANCEL_REASONS)
            return self._event(PushEvent.CANCELLED, order, at)

    def change_address(
        self, order_id: str, address: Address | None = None, *, at: dt.datetime | None = None
    ) -> FakeEvent:
        with self.lock:
            order = self.order(order_id)
            if order.status not in (OrderStatus.CREATED, OrderStatus.PAID):
                raise ValueError(f"order {order_id} is {order.status.value}, its address is fixed")
            at = at or self.tick()
            order.address, order.updated_at = address or self.factory.address(), at
            return self._event(PushEvent.ADDRESS_CHANGED, order, at)

    def ship(
        self, order_id: str, courier: str, tracking_number: str, *, at: dt.datetime | None = None
    ) -> FakeEvent:
        """The seller ships (as the platform records it); ``courier`` in the platform's own code."""
        with self.lock:
            order = self.order(order_id)
            at = at or self.tick()
            self._ship(order, courier, tracking_number, at)
            return self._event(PushEvent.SHIPPED, order, at)

    def _ship(self, order: FakeOrder, courier: str, tracking_number: str, at: dt.datetime) -> None:
        if order.status is not OrderStatus.PAID:
            raise ValueError(f"order {order.order_id} is {order.status.value}, cannot be shipped")
        order.status, order.updated_at = OrderStatus.SHIPPED, at
        self.version += 1
        order.shipments.append(FakeShipment(courier, tracking_number, at))

    def _confirm(self, order: FakeOrder, courier: str, tracking_number: str) -> None:
        """Ship through the API and record the confirmation (once per tracking number)."""
        self._ship(order, courier, tracking_number, self.tick())
        self.confirmations.append(Confirmation(order.order_id, courier, tracking_number))

    # --- pushes -------------------------------------------------------------------------------------------

    @abstractmethod
    def push(self, events: FakeEvent | Sequence[FakeEvent]) -> Push:
        """One signed push carrying ``events`` (platforms without batches take exactly one)."""

    def pushes(self, events: Iterable[FakeEvent], per_push: int | None = None) -> list[Push]:
        """Signed pushes for ``events``, ``per_push`` messages each (the platform's batch size by default)."""
        size = per_push or self.max_per_push or 100
        if self.max_per_push is not None and size > self.max_per_push:
            raise ValueError(f"{self.platform} pushes carry at most {self.max_per_push} message(s)")
        items = list(events)
        return [self.push(items[i : i + size]) for i in range(0, len(items), size)]

    def _one(self, events: FakeEvent | Sequence[FakeEvent]) -> FakeEvent:
        if isinstance(events, FakeEvent):
            return events
        if len(events) != 1:
            raise ValueError(f"a {self.platform} push carries exactly one message, not {len(events)}")
        return events[0]

    # --- API ----------------------------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Answer the next ``times`` API calls with a fault (see :class:`Failure`)."""
        if kind not in Failure.ALL:
            raise ValueError(f"unknown failure {kind!r}; one of {Failure.ALL}")
        with self.lock:
            self._failures.extend([kind] * times)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer one API request as the platform would (``httpx.MockTransport``-compatible)."""
        with self.lock:
            self.calls.append(request)
            failure = self._failures.popleft() if self._failures else None
            if failure == Failure.TIMEOUT:
                raise httpx.ReadTimeout(f"{self.platform} fake: timed out", request=request)
            if failure == Failure.SERVER_ERROR:
                return httpx.Response(503, text="Service Unavailable", request=request)
            if failure == Failure.GARBAGE:
                return httpx.Response(200, text="<html>upstream error</html>", request=request)
            if failure == Failure.RATE_LIMIT:
                return self.rate_limited(request)
            return self.answer(request)

    @abstractmethod
    def answer(self, request: httpx.Request) -> httpx.Response:
        """The platform's answer to a request (signature, routing, state)."""

    @abstractmethod
    def rate_limited(self, request: httpx.Request) -> httpx.Response:
        """The platform's answer when it throttles."""


def json_response(data: object, status: int = 200, request: httpx.Request | None = None) -> httpx.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return httpx.Response(status, content=body, headers={"Content-Type": "application/json"}, request=request)


def measure_generation(fake: FakePlatform, messages: int, per_push: int | None = None) -> dict[str, object]:
    """Generate ``messages`` paid orders and their signed pushes; how fast (for a benchmark's JSON line)."""
    started = time.perf_counter()
    events = fake.create_orders(messages)
    pushes = fake.pushes(events, per_push)
    seconds = time.perf_counter() - started
    return {
        "platform": fake.platform,
        "messages": messages,
        "pushes": len(pushes),
        "bytes": sum(len(body) for _, body in pushes),
        "seconds": round(seconds, 4),
        "messages_per_s": round(messages / seconds) if seconds > 0 else None,
    }
