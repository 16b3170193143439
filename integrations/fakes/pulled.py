"""What the fakes of the pulled platforms (Taobao/Tmall, JD, Pinduoduo) share: a deterministic order book with
a clock of its own, changes that bump the modified time, newest-first listing, and failure injection.

Each platform's fake (``integrations.fakes.taobao`` ...) renders these orders in the platform's own shapes and
answers its API as an ``httpx.MockTransport`` handler, verifying signatures and timestamps as the platform
does — with their own few lines of ``hashlib``/``hmac``, not the adapters' functions, so that a test of an
adapter against its fake checks two implementations of the published formula against each other. Lines, buyers
and addresses come from the shared :class:`integrations.fakes.OrderFactory`. Times here are naive UTC and
whole seconds, as the platforms keep them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

import httpx

from integrations.base import Address, AppCredential
from integrations.fakes import CANCEL_REASONS, Confirmation, Failure, OrderFactory

STATES = ("unpaid", "paid", "shipped", "completed", "cancelled")


def stable_number(text: str, digits: int) -> int:
    """A ``digits``-digit number derived from ``text``, the same in every process (unlike ``hash``)."""
    value = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return int(value % (9 * 10 ** (digits - 1)) + 10 ** (digits - 1))


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _locked(method: _Method) -> _Method:
    """Run a state change under the fake's lock (its handler may be serving other threads)."""

    @functools.wraps(method)
    def locked(self: PulledPlatformFake, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return cast(_Method, locked)


def _second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


@dataclass
class PulledLine:
    line_id: str
    sku_code: str
    quantity: int
    title: str


@dataclass
class PulledOrder:
    """One order as the fake platform holds it; each platform renders it in its own shape."""

    order_id: str
    shop_code: str
    state: str  # unpaid, paid, shipped, completed, cancelled
    created: dt.datetime
    modified: dt.datetime
    lines: list[PulledLine]
    address: Address
    paid: dt.datetime | None = None
    presale: bool = False
    ship_by: dt.datetime | None = None
    shipped: dt.datetime | None = None
    ended: dt.datetime | None = None
    company: str | None = None  # the platform's own logistics company code, as the seller sent it
    tracking: str | None = None
    cancel_reason: str | None = None
    refunding: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Shipment:
    order_id: str
    company: str
    tracking: str
    at: dt.datetime


def make_credential(
    platform: str, app_key: str, secret: str, shop_codes: Sequence[str], token_key: str
) -> AppCredential:
    """A credential with one deterministic token per shop in ``extra["<token_key>.<shop_code>"]``."""
    extra = {
        f"{token_key}.{shop}": hashlib.sha256(f"{platform}:{app_key}:{shop}".encode()).hexdigest()[:32]
        for shop in shop_codes
    }
    return AppCredential(platform=platform, app_key=app_key, secret=secret, extra=extra)


class PulledPlatformFake:
    """The order book and the plumbing of a fake pulled platform. Subclasses speak the platform's protocol.

    ``orders_per_shop`` orders per shop are made with a history over the last ``history`` before ``now``
    (unpaid, paid, shipped, completed, cancelled, some pre-sales). The fake's clock moves only when told
    (:meth:`advance`); :meth:`new_order`, :meth:`pay`, :meth:`cancel`, :meth:`request_refund`, :meth:`ship`,
    :meth:`complete`, :meth:`change_address` and :meth:`touch` change orders at that time, each setting the
    order's modified time. :attr:`shipments` holds each ship confirmation once; :attr:`calls` every request;
    :meth:`fail_next` injects faults. Give a client ``clock=fake.time`` (or build the fake with ``now`` near
    the real time) so that its timestamps fall in the platform's tolerance.
    """

    platform = ""
    token_key = "access_token"
    default_now = dt.datetime(2026, 11, 11, 4, 0, 0)  # 12:00 on Singles' Day in GMT+8

    def __init__(
        self,
        credentials: AppCredential | Sequence[AppCredential],
        *,
        shop_codes: Sequence[str],
        sku_codes: Sequence[str],
        seed: int = 0,
        now: dt.datetime | None = None,
        orders_per_shop: int = 100,
        history: dt.timedelta = dt.timedelta(days=2),
    ) -> None:
        creds = [credentials] if isinstance(credentials, AppCredential) else list(credentials)
        if not creds or not shop_codes or not sku_codes:
            raise ValueError("a fake needs at least one credential, one shop code and one SKU code")
        self.credentials = creds
        self.shop_codes = list(shop_codes)
        self.sku_codes = list(sku_codes)
        self.now = _second(now or self.default_now)
        self.tokens = self._tokens()
        identity = "|".join(
            [self.platform, str(seed), *sorted(c.app_key for c in creds), *shop_codes, *sku_codes]
        )
        # The shared factory (Zipf-skewed SKUs, titles, buyers, addresses), seeded by all that defines us.
        self.factory = OrderFactory(self.sku_codes, self.shop_codes, stable_number(identity, 18))
        self.orders: dict[str, PulledOrder] = {}
        self.shipments: dict[str, Shipment] = {}
        self.calls: list[httpx.Request] = []  # every request, as the push platforms' fakes keep them
        self.methods: list[str] = []  # the API method of each request that reached the platform's logic
        self._failures: list[tuple[str | dict[str, Any], int]] = []
        self.lock = threading.RLock()  # workers may call the handler from several threads
        for shop in self.shop_codes:
            for _ in range(orders_per_shop):
                self._historic_order(shop, history)

    # --- the clock --------------------------------------------------------------------------------

    def time(self) -> float:
        """The fake's clock as unix seconds: hand it to a client as ``clock=fake.time``."""
        return self.now.replace(tzinfo=dt.UTC).timestamp()

    def advance(self, **delta: float) -> dt.datetime:
        """Move the clock forward (``advance(minutes=5)``); returns the new time."""
        self.now = _second(self.now + dt.timedelta(**delta))
        return self.now

    # --- credentials ------------------------------------------------------------------------------

    def _tokens(self) -> dict[str, tuple[AppCredential, str]]:
        tokens: dict[str, tuple[AppCredential, str]] = {}
        for cred in self.credentials:
            for shop in self.shop_codes:
                token = cred.extra.get(f"{self.token_key}.{shop}") or cred.extra.get(self.token_key)
                if not token:
                    raise ValueError(
                        f"credential {cred.app_key} has no {self.token_key} for shop {shop}: "
                        f"set extra[{self.token_key + '.' + shop!r}] or extra[{self.token_key!r}]"
                    )
                if token in tokens and tokens[token][1] != shop:
                    raise ValueError(
                        f"shops {tokens[token][1]} and {shop} share one {self.token_key}: a token belongs to "
                        f"one shop, set extra['{self.token_key}.<shop_code>'] for each"
                    )
                tokens[token] = (cred, shop)
        return tokens

    def credential(self, app_key: str) -> AppCredential | None:
        return next((c for c in self.credentials if c.app_key == app_key), None)

    # --- the order book ---------------------------------------------------------------------------

    def new_id(self, created: dt.datetime) -> str:
        """A fresh order id in the platform's format."""
        raise NotImplementedError

    def _unique_id(self, created: dt.datetime) -> str:
        while True:
            order_id = self.new_id(created)
            if order_id not in self.orders:
                return order_id

    def _order(self, shop: str, created: dt.datetime) -> PulledOrder:
        factory, rng = self.factory, self.factory.rng
        order_id = self._unique_id(created)
        lines = [
            PulledLine(f"{order_id}{n:02d}", line.sku_code, line.quantity, line.title)
            for n, line in enumerate(factory.lines(), start=1)
        ]
        presale = factory.presale()
        order = PulledOrder(
            order_id=order_id,
            shop_code=shop,
            state="unpaid",
            created=created,
            modified=created,
            lines=lines,
            address=factory.address(),
            presale=presale,
            ship_by=created + dt.timedelta(days=rng.randint(7, 15)) if presale else None,
        )
        self.orders[order_id] = order
        return order

    @_locked
    def new_order(self, shop_code: str, *, paid: bool = False) -> PulledOrder:
        """A buyer places an order now (and pays at once if ``paid``)."""
        if shop_code not in self.shop_codes:
            raise ValueError(f"unknown shop {shop_code!r}; this fake has {self.shop_codes}")
        order = self._order(shop_code, self.now)
        if paid:
            self.pay(order.order_id)
        return order

    def _historic_order(self, shop: str, history: dt.timedelta) -> None:
        rng = self.factory.rng
        span = max(int(history.total_seconds()) - 60, 1)
        order = self._order(shop, _second(self.now - dt.timedelta(seconds=60 + rng.randrange(span))))
        target = rng.choices(STATES, weights=(15, 60, 12, 5, 8))[0]
        steps = {
            "unpaid": [],
            "paid": ["pay"],
            "shipped": ["pay", "ship"],
            "completed": ["pay", "ship", "end"],
        }
        if target == "cancelled":
            steps["cancelled"] = ["cancel"] if rng.random() < 0.5 else ["pay", "cancel"]
        at = order.created
        for step in steps[target]:
            at = at + dt.timedelta(seconds=rng.randint(10, 1800 if step == "pay" else 8 * 3600))
            if at >= self.now:  # the order's history stops at the fake's present
                break
            if step == "pay":
                order.state, order.paid = "paid", at
                self._on_paid(order)
            elif step == "ship":
                order.state, order.shipped = "shipped", at
                order.company, order.tracking = self.default_company(), f"7{rng.randrange(10**13):013d}"
            elif step == "end":
                order.state, order.ended = "completed", at
            else:
                order.state, order.ended = "cancelled", at
                order.cancel_reason = rng.choice(CANCEL_REASONS)
            order.modified = at

    def default_company(self) -> str:
        """The platform's code for the courier that shipped historic orders."""
        raise NotImplementedError

    def _on_paid(self, order: PulledOrder) -> None:
        """Platform-specific bookkeeping when an order is paid (e.g. a promised ship time)."""

    def order(self, order_id: str) -> PulledOrder:
        try:
            return self.orders[order_id]
        except KeyError:
            raise KeyError(f"no order {order_id!r} in this fake") from None

    def _touch(self, order: PulledOrder) -> PulledOrder:
        order.modified = self.now
        return order

    @_locked
    def pay(self, order_id: str) -> PulledOrder:
        order = self.order(order_id)
        if order.state != "unpaid":
            raise ValueError(f"order {order_id} is {order.state}, cannot be paid")
        order.state, order.paid = "paid", self.now
        self._on_paid(order)
        return self._touch(order)

    @_locked
    def cancel(self, order_id: str, reason: str = "买家不想要了") -> PulledOrder:
        order = self.order(order_id)
        if order.state not in ("unpaid", "paid"):
            raise ValueError(f"order {order_id} is {order.state}, cannot be cancelled")
        order.state, order.ended, order.cancel_reason, order.refunding = "cancelled", self.now, reason, False
        return self._touch(order)

    @_locked
    def request_refund(self, order_id: str) -> PulledOrder:
        """The buyer asks for a refund of a paid order (the platform has not decided yet)."""
        order = self.order(order_id)
        if order.state != "paid":
            raise ValueError(f"order {order_id} is {order.state}, no refund to request")
        order.refunding = True
        return self._touch(order)

    @_locked
    def ship(self, order_id: str, company: str, tracking: str) -> PulledOrder:
        """The seller ships (what the platform's ship-confirmation API does)."""
        order = self.order(order_id)
        if order.state != "paid":
            raise ValueError(f"order {order_id} is {order.state}, cannot be shipped")
        order.state, order.shipped, order.company, order.tracking = "shipped", self.now, company, tracking
        self.shipments[order_id] = Shipment(order_id, company, tracking, self.now)
        return self._touch(order)

    @_locked
    def complete(self, order_id: str) -> PulledOrder:
        order = self.order(order_id)
        if order.state != "shipped":
            raise ValueError(f"order {order_id} is {order.state}, cannot be completed")
        order.state, order.ended = "completed", self.now
        return self._touch(order)

    @_locked
    def change_address(self, order_id: str, new: Address | None = None) -> PulledOrder:
        order = self.order(order_id)
        if order.state not in ("unpaid", "paid"):
            raise ValueError(f"order {order_id} is {order.state}: the address can no longer change")
        order.address = new or replace(self.factory.address(), name=order.address.name)
        return self._touch(order)

    @_locked
    def touch(self, *order_ids: str) -> None:
        """A change the canonical order does not show (a seller memo): only the modified time moves."""
        for order_id in order_ids:
            self._touch(self.order(order_id))

    def visible(self, order: PulledOrder) -> bool:
        """Whether the platform lets the seller see the order through its API."""
        return True

    def listing(self, token_shop: str, low: dt.datetime, high: dt.datetime) -> list[PulledOrder]:
        """The shop's visible orders modified in [low, high] (inclusive), newest first; ties by id."""
        found = [
            o
            for o in self.orders.values()
            if o.shop_code == token_shop and low <= o.modified <= high and self.visible(o)
        ]
        found.sort(key=lambda o: (o.modified, o.order_id), reverse=True)
        return found

    # --- failure injection and the transport ------------------------------------------------------

    def fail_next(self, failure: str | Mapping[str, Any], *, times: int = 1, status: int = 200) -> None:
        """Answer the next ``times`` calls with a fault: a :class:`integrations.fakes.Failure` kind (503, a
        timeout, a body that is not JSON, the platform's throttling answer) or a body of the platform's own
        (e.g. ``fake.error(...)``), sent with ``status``."""
        if isinstance(failure, str) and failure not in Failure.ALL:
            raise ValueError(f"unknown failure {failure!r}; one of {Failure.ALL} or an error body")
        kind = failure if isinstance(failure, str) else dict(failure)
        with self.lock:
            self._failures.extend([(kind, status)] * times)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """An ``httpx.MockTransport`` handler: the platform's answer to one API request."""
        with self.lock:
            self.calls.append(request)
            if self._failures:
                failure, status = self._failures.pop(0)
                if failure == Failure.TIMEOUT:
                    raise httpx.ReadTimeout(f"{self.platform} fake: timed out", request=request)
                if failure == Failure.SERVER_ERROR:
                    return httpx.Response(503, text="Service Unavailable", request=request)
                if failure == Failure.GARBAGE:
                    return httpx.Response(200, text="<html>upstream error</html>", request=request)
                if failure == Failure.RATE_LIMIT:
                    return self.json(self.rate_limit_body())
                return self.json(failure, status=status)
            params = dict(request.url.params)
            if request.content:
                params.update(parse_qsl(request.content.decode("utf-8"), keep_blank_values=True))
            return self.answer(params)

    def rate_limit_body(self) -> dict[str, Any]:
        """The platform's own answer when it throttles."""
        raise NotImplementedError

    @property
    def confirmations(self) -> list[Confirmation]:
        """The ship confirmations accepted through the API, one per order (as the push platforms' fakes)."""
        return [Confirmation(s.order_id, s.company, s.tracking) for s in self.shipments.values()]

    def answer(self, params: dict[str, str]) -> httpx.Response:
        raise NotImplementedError

    @staticmethod
    def json(body: Any, *, status: int = 200) -> httpx.Response:
        return httpx.Response(
            status,
            content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json;charset=UTF-8"},
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def client(self) -> httpx.Client:
        """An ``httpx.Client`` whose requests this fake answers."""
        return httpx.Client(transport=self.transport())
