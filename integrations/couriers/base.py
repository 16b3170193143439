"""What every courier adapter speaks: canonical requests and answers, credentials, and the interface.

A courier adapter signs and sends two requests — an electronic waybill (电子面单) for one parcel and a pickup
booking (揽收) for a site's parcels in a window — and verifies and parses the tracking pushes the courier
sends back. It talks through an injected ``httpx.Client`` and never touches the database: the application
stores what it returns. Errors are :class:`integrations.base.ApiError` (``retryable`` says whether to try
again) and, for a push that is not the courier's, :class:`integrations.base.SignatureError`.

Idempotency: every request carries our ``request_id``, stable across retries, and the adapter sends it where
the courier keys orders (``objectId``, ``orderId``, ``requestID`` ...), so a retry after a timeout gets the
first answer back, not a second waybill.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from integrations.base import Address


@dataclass(frozen=True)
class CourierCredential:
    """One account with a courier (or with Cainiao).

    ``app_key`` is what the courier calls the account (partnerID, x-appKey, app-key, app_key,
    logistic_provider_id); ``secret`` the key it signs with (checkWord, appSecret). ``extra`` holds the rest
    by the names the adapter documents (a monthly card, an access token, a customer code, Cainiao's cpCode).
    """

    courier: str  # our courier code: ZTO, SF, JD, YUNDA, YTO, or CAINIAO
    app_key: str
    secret: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"CourierCredential(courier={self.courier!r}, app_key={self.app_key!r}, secret=<hidden>)"


@dataclass(frozen=True)
class Item:
    name: str
    count: int
    weight_g: int  # of one piece


@dataclass(frozen=True)
class WaybillRequest:
    """One parcel for which a waybill number is wanted."""

    request_id: str  # ours, stable across retries of the same parcel
    parcel_ref: str  # our parcel id as text
    sender: Address  # the site the parcel leaves from
    receiver: Address  # unsealed only in memory, for the duration of the call
    items: Sequence[Item]
    weight_g: int
    carrier: str = ""  # through Cainiao: the courier whose waybill is wanted (its cpCode); else ""


@dataclass(frozen=True)
class Waybill:
    tracking_number: str
    courier_order_ref: str | None = None  # the courier's own order id, where it gives one
    print_data: str | None = None  # Cainiao's printData for cloud printing, as given


@dataclass(frozen=True)
class PickupRequest:
    """A courier visit to one site in a window, for ``parcel_count`` parcels of ``total_weight_g``."""

    request_id: str  # ours, stable across retries of the same booking
    site_ref: str  # our site code (workshop or warehouse)
    sender: Address  # where to collect
    window_start: dt.datetime  # naive UTC
    window_end: dt.datetime  # naive UTC
    parcel_count: int
    total_weight_g: int
    tracking_numbers: Sequence[str] = ()


@dataclass(frozen=True)
class PickupBooking:
    booking_ref: str  # the courier's id for the booking
    window_start: dt.datetime  # as the courier confirmed it (naive UTC); may differ from the request's
    window_end: dt.datetime


class TrackingStatus(StrEnum):
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    EXCEPTION = "exception"  # the courier reports a problem (refused, lost, returned)


@dataclass(frozen=True)
class TrackingEvent:
    """One scan a courier pushes for a tracking number. ``event_id`` is the dedupe key."""

    courier: str
    event_id: str
    tracking_number: str
    status: TrackingStatus
    occurred_at: dt.datetime  # naive UTC
    description: str = ""


class PickupNotOffered(Exception):
    """This courier (or Cainiao) takes no pickup bookings by API: its point collects at its standing time."""


class CourierApi(Protocol):
    """A courier's signed API, over an injected ``httpx.Client``."""

    courier: str  # our courier code
    verified: bool  # False: the signing scheme is not confirmed by the courier's own documents (YTO)

    def create_waybill(self, request: WaybillRequest) -> Waybill:
        """A waybill number for the parcel. The same ``request_id`` gives the same number."""
        ...

    def book_pickup(self, request: PickupRequest) -> PickupBooking:
        """Book a collection; :class:`PickupNotOffered` where the courier takes no bookings by API."""
        ...


class TrackingReceiver(Protocol):
    """A courier that pushes tracking scans to our webhook."""

    courier: str

    def verify(
        self, headers: Mapping[str, str], body: bytes, credentials: Sequence[CourierCredential]
    ) -> CourierCredential:
        """The credential the push was signed with, checked over the raw bytes; SignatureError if none."""
        ...

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[TrackingEvent]:
        """The scans of a verified push; :class:`integrations.base.PayloadError` naming what is wrong."""
        ...

    def success(self) -> tuple[int, bytes, str]:
        """What the courier expects back once the push is stored: (status, body, media type)."""
        ...
