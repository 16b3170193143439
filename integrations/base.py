"""What every platform adapter speaks: canonical types, errors, and the adapter interfaces.

An adapter verifies and parses what a platform pushes (over the raw request bytes, before any parsing, digests
compared in constant time) and talks to the platform's signed API through an injected ``httpx.Client``.
Nothing here touches the database: the application stores what adapters return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class SignatureError(Exception):
    """The request is not from the platform: bad or missing signature, wrong app. Nothing may be stored."""


class PayloadError(Exception):
    """Correctly signed, but not understood. The raw message is kept with this reason for an operator."""


class ApiError(Exception):
    """The platform's API answered with an error (or not at all). ``retryable`` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


@dataclass(frozen=True)
class AppCredential:
    """One registered app of a platform. During rotation two credentials with the same key may be active.

    ``extra`` holds what some platforms need besides the secret (Kuaishou's message key for decrypting pushes,
    an access token for API calls, a Shopify shop domain ...), by the names the adapter documents.
    """

    platform: str
    app_key: str
    secret: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"AppCredential(platform={self.platform!r}, app_key={self.app_key!r}, secret=<hidden>)"


class PushEvent(StrEnum):
    """What a pushed message says happened to an order, in canonical words."""

    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"  # the seller (or someone on their behalf) shipped it
    ADDRESS_CHANGED = "address_changed"
    REFUND = "refund"
    UPDATED = "updated"  # something else changed: fetch the order to know what
    HEARTBEAT = "heartbeat"  # a platform's test message: acknowledge, store nothing about orders


@dataclass(frozen=True)
class PushMessage:
    """One message out of a push (a push may carry several). ``message_id`` is the platform's dedupe key."""

    platform: str
    message_id: str
    topic: str  # the platform's own tag / event / topic name
    event: PushEvent
    shop_code: str | None
    platform_order_id: str | None
    occurred_at: dt.datetime | None  # naive UTC
    raw: bytes  # this message alone, as the platform sent it (or decrypted it)


@dataclass(frozen=True)
class HttpAnswer:
    """The platform's own success contract: what the receiver must answer."""

    status: int
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Address:
    name: str
    phone: str
    province: str  # as the platform writes it, e.g. "广东省"
    city: str
    district: str
    detail: str  # street, building, door
    country: str = ""  # ISO 3166-1 alpha-2 as a cross-border store gives it; "" on China's own platforms


class OrderStatus(StrEnum):
    """The platform's true state of an order, canonical."""

    CREATED = "created"  # placed, not paid
    PAID = "paid"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"
    COMPLETED = "completed"


@dataclass(frozen=True)
class OrderLine:
    platform_sku_code: str  # the code the shop lists (mapped to the merchant's SKU by the application)
    quantity: int
    title: str = ""


@dataclass(frozen=True)
class CanonicalOrder:
    platform: str
    shop_code: str
    platform_order_id: str
    status: OrderStatus
    created_at: dt.datetime  # naive UTC
    paid_at: dt.datetime | None
    updated_at: dt.datetime  # the platform's last change: orders converge to the newest
    lines: Sequence[OrderLine]
    address: Address | None  # None while the platform does not disclose it (e.g. unpaid)
    ship_by: dt.datetime | None = None  # the platform's promised ship time, if it states one (pre-sale)
    presale: bool = False
    cancel_reason: str | None = None


class PushAdapter(Protocol):
    """A platform that pushes messages to our webhook."""

    platform: str

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[AppCredential]
    ) -> AppCredential:
        """The credential the request was signed (or encrypted) with; :class:`SignatureError` if none."""
        ...

    def parse(self, headers: Mapping[str, str], body: bytes, credential: AppCredential) -> list[PushMessage]:
        """The messages of a verified push; :class:`PayloadError` naming what is wrong if unreadable."""
        ...

    def success(self) -> HttpAnswer:
        """What the platform expects back once the push is stored."""
        ...


class OrderApi(Protocol):
    """A platform's signed order API, over an injected ``httpx.Client``."""

    def fetch_order(self, shop_code: str, platform_order_id: str) -> CanonicalOrder: ...

    def confirm_shipment(
        self, shop_code: str, platform_order_id: str, courier_code: str, tracking_number: str, request_id: str
    ) -> None:
        """Tell the platform the order shipped. Idempotent for the same ``request_id``/tracking number."""
        ...


@dataclass(frozen=True)
class OrderListPage:
    orders: list[CanonicalOrder]  # the readable orders of the page (an unreadable one is left out)
    total: int  # orders in the whole window, as the platform counts them
    page_size: int


class OrderListApi(Protocol):
    """An order API that can also list the orders changed in a time window, a page at a time.

    One call brings a page of whole orders instead of one: what normalisation uses when a job holds many
    orders of one app. Anything the listing misses is still fetched one by one.
    """

    def changed_orders(self, start: dt.datetime, end: dt.datetime, page: int) -> OrderListPage:
        """Page ``page`` (0-based) of the orders updated in [start, end] (naive UTC), oldest change first."""
        ...


@dataclass(frozen=True)
class IncrementPage:
    orders: list[CanonicalOrder]
    next_cursor: str | None  # None: caught up to the window's end


class IncrementApi(Protocol):
    """A platform whose orders are pulled in increments (Taobao/Tmall, JD, Pinduoduo)."""

    def pull(self, shop_code: str, start: dt.datetime, end: dt.datetime, cursor: str | None) -> IncrementPage:
        """Orders changed in [start, end) (naive UTC), one page from ``cursor`` (None: the first page)."""
        ...
