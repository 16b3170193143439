"""What every fake courier does: faults, deterministic numbers, idempotent orders, and the transport.

A fake answers its courier's API as an ``httpx.MockTransport`` handler (``fake.handler``), checks each
request's signature with its own few lines of ``hashlib`` (never the adapter's functions, so a round trip
checks two implementations of the published formula against each other) and refuses a wrong one in the
courier's own error shape. Tracking numbers are derived from the seed and the courier's order key, so the same
request id always gets the same number, in any order and across fakes built alike. ``fake.push(number,
status)`` makes a signed tracking push ``(headers, body)`` as the courier would send it (the push formats are
the adapters' [U] assumptions): the base reads the scan, a fake's ``signed_push`` puts it in its courier's
format and signs it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from integrations.couriers.base import CourierCredential, TrackingStatus

DEFAULT_START = dt.datetime(2024, 6, 18, 12, 0, 0)  # naive UTC: 20:00 in Changshu
EPOCH = dt.datetime(1970, 1, 1)
GMT8 = dt.timedelta(hours=8)
GMT8_FORMAT = "%Y-%m-%d %H:%M:%S"
FORM_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"

Push = tuple[dict[str, str], bytes]


class CourierFailure:
    """Faults a fake answers its next calls with (``fake.fail_next``)."""

    TIMEOUT = "timeout"  # httpx.ReadTimeout before the courier sees the request
    LOST_ANSWER = "lost_answer"  # the courier does the work, then the answer is lost (a read timeout)
    SERVER_ERROR = "server_error"  # HTTP 503
    RATE_LIMIT = "rate_limit"  # HTTP 429
    BUSY = "busy"  # the courier's own "system busy" answer inside an HTTP 200
    BUSINESS = "business"  # the courier's own refusal of the order (an address it cannot serve)
    GARBAGE = "garbage"  # HTTP 200 with a body that is not JSON
    ALL = (TIMEOUT, LOST_ANSWER, SERVER_ERROR, RATE_LIMIT, BUSY, BUSINESS, GARBAGE)


@dataclass
class FakeWaybill:
    key: str  # the courier's order key: our request id
    tracking_number: str
    order_ref: str  # the courier's own order id
    carrier: str  # our courier code (through Cainiao: the cpCode's courier)
    order: dict[str, Any] = field(repr=False)  # the order as it was sent


@dataclass
class FakePickup:
    key: str
    booking_ref: str
    window_start: dt.datetime  # naive UTC, as the fake read the courier's time format
    window_end: dt.datetime | None  # None where the courier takes a start only (SF)
    parcel_count: int
    order: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Scan:
    """One scan to push, as the base read it for a fake's ``signed_push``."""

    tracking_number: str
    status: TrackingStatus
    at: dt.datetime  # naive UTC
    description: str  # "" for the fake's own text
    carrier: str  # our code of the courier whose number it is, "" where the fake cannot tell
    order_key: str  # our request id of the order the fake issued the number for, "" for a number it did not


def gmt8_text(utc: dt.datetime) -> str:
    return (utc + GMT8).strftime(GMT8_FORMAT)


def parse_gmt8_text(text: str) -> dt.datetime:
    """``yyyy-MM-dd HH:mm:ss`` Beijing time as naive UTC; ValueError if malformed."""
    return dt.datetime.strptime(text, GMT8_FORMAT) - GMT8


def from_ms(millis: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=millis)


def ms_text(utc: dt.datetime) -> str:
    """Naive UTC as Unix milliseconds, in text."""
    return str(int((utc - EPOCH).total_seconds() * 1000))


def md5_base64(data: bytes) -> str:
    """base64 of the raw 16-byte MD5."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def compact(value: Any) -> str:
    """JSON without spaces, Chinese as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def form_of(request: httpx.Request) -> dict[str, str] | None:
    """The fields of a form body, None when the body is not one."""
    try:
        return dict(parse_qsl(request.content.decode("ascii"), keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return None


def form_push(form: dict[str, str]) -> Push:
    """A push posted as a form."""
    return {"Content-Type": FORM_TYPE}, urlencode(form).encode("ascii")


class FakeCourier(ABC):
    """A courier's API and pushes, in memory. Subclasses add the wire formats."""

    courier: str = ""  # the adapter code the fake stands for (ZTO, SF, JD, YUNDA, YTO, CAINIAO)
    host: str = ""  # the production host the adapter calls by default

    def __init__(
        self, credential: CourierCredential, *, seed: int = 0, now: dt.datetime = DEFAULT_START
    ) -> None:
        self.credential = credential
        self.seed = seed
        self.now = now
        self.waybills: dict[str, FakeWaybill] = {}
        self.pickups: dict[str, FakePickup] = {}
        self.calls: deque[httpx.Request] = deque(maxlen=10_000)  # the latest requests, for tests to read
        self.refused_signatures = 0
        self._failures: deque[str] = deque()
        self._numbers: dict[str, str] = {}  # number -> key, to keep numbers unique
        self._by_number: dict[str, FakeWaybill] = {}
        self.lock = threading.RLock()

    # --- faults and transport -----------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Answer the next ``times`` calls with a fault (see :class:`CourierFailure`)."""
        if kind not in CourierFailure.ALL:
            raise ValueError(f"unknown failure {kind!r}; one of {CourierFailure.ALL}")
        with self.lock:
            self._failures.extend([kind] * times)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport())

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer one API request as the courier would (``httpx.MockTransport``-compatible)."""
        with self.lock:
            self.calls.append(request)
            failure = self._failures.popleft() if self._failures else None
            if failure == CourierFailure.TIMEOUT:
                raise httpx.ReadTimeout(f"{self.courier} fake: timed out", request=request)
            if failure == CourierFailure.SERVER_ERROR:
                return httpx.Response(503, text="Service Unavailable", request=request)
            if failure == CourierFailure.RATE_LIMIT:
                return httpx.Response(429, text="Too Many Requests", request=request)
            if failure == CourierFailure.GARBAGE:
                return httpx.Response(200, text="<html>502 Bad Gateway</html>", request=request)
            if failure == CourierFailure.BUSY:
                return self.busy(request)
            response = self.answer(request, refuse=failure == CourierFailure.BUSINESS)
            if failure == CourierFailure.LOST_ANSWER:
                raise httpx.ReadTimeout(f"{self.courier} fake: answer lost", request=request)
            return response

    @abstractmethod
    def answer(self, request: httpx.Request, *, refuse: bool) -> httpx.Response:
        """The courier's answer to a request; ``refuse``: a business refusal after the checks."""

    @abstractmethod
    def busy(self, request: httpx.Request) -> httpx.Response:
        """The courier's "system busy, try again" answer."""

    def signature_ok(self, given: str, expected: str) -> bool:
        """Whether a request's signature is the one expected (constant time); a refusal is counted."""
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
        self.refused_signatures += 1
        return False

    # --- pushes -------------------------------------------------------------------------------------------

    def push(
        self,
        tracking_number: str,
        status: TrackingStatus,
        *,
        at: dt.datetime | None = None,
        description: str = "",
        secret: str | None = None,
        carrier: str | None = None,
    ) -> Push:
        """A signed tracking push of one scan (``secret``: sign with another secret, to test refusals).

        ``carrier``: our code of the courier whose number it is, for a number the fake did not issue; only
        Cainiao's fake, which issues several couriers' numbers, reads it (the others' numbers are their own).
        """
        waybill = self.waybill_of(tracking_number)
        scan = Scan(
            tracking_number,
            status,
            self.at(at),
            description,
            carrier or (waybill.carrier if waybill else ""),
            waybill.key if waybill else "",
        )
        return self.signed_push(scan, self.credential.secret if secret is None else secret)

    @abstractmethod
    def signed_push(self, scan: Scan, secret: str) -> Push:
        """``scan`` as the courier pushes it, signed with ``secret``."""

    # --- numbers and state --------------------------------------------------------------------------------

    def digits(self, salt: str, count: int) -> str:
        """``count`` decimal digits derived from the seed and ``salt``."""
        value = int.from_bytes(hashlib.sha256(f"{self.seed}:{salt}".encode()).digest()[:16], "big")
        return f"{value % 10**count:0{count}d}"

    def new_number(self, key: str, carrier: str) -> str:
        """A tracking number for the order ``key``: deterministic, unique within this fake."""
        attempt = 0
        while True:
            number = self.number_format(carrier, self.digits(f"{carrier}:{key}:{attempt}", 13))
            owner = self._numbers.setdefault(number, key)
            if owner == key:
                return number
            attempt += 1

    def number_format(self, carrier: str, digits: str) -> str:
        """The courier's shape of a tracking number, from 13 digits."""
        return f"{carrier}{digits}"

    def issue(self, key: str, carrier: str, order: dict[str, Any]) -> tuple[FakeWaybill, bool]:
        """The waybill of order ``key``, and whether it is new (a repeat gets the first one back)."""
        existing = self.waybills.get(key)
        if existing is not None:
            return existing, False
        number = self.new_number(key, carrier)
        waybill = FakeWaybill(key, number, self.order_ref(key), carrier, order)
        self.waybills[key] = waybill
        self._by_number[number] = waybill
        return waybill, True

    def waybill_of(self, tracking_number: str) -> FakeWaybill | None:
        """The waybill this fake issued under ``tracking_number``, if it did."""
        return self._by_number.get(tracking_number)

    def book(
        self,
        key: str,
        start: dt.datetime,
        end: dt.datetime | None,
        parcel_count: int,
        order: dict[str, Any],
    ) -> tuple[FakePickup, bool]:
        existing = self.pickups.get(key)
        if existing is not None:
            return existing, False
        pickup = FakePickup(key, self.order_ref(f"pickup:{key}"), start, end, parcel_count, order)
        self.pickups[key] = pickup
        return pickup, True

    def order_ref(self, key: str) -> str:
        return self.digits(f"order:{key}", 18)

    def at(self, at: dt.datetime | None) -> dt.datetime:
        return at if at is not None else self.now
